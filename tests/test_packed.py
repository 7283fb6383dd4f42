"""Packed models and packed training (issue 13): N members of DeepMLP / DeepCNN in one model,
and ``kerasparse.packed.train_pack``, which must give every cell exactly what its own
``kerasparse train`` run gives.

The reference is independent of the packing code: the cells' ordinary runs
(``kerasparse.train.run``), compared on per-epoch losses, accuracies (train, validation,
test), every model and optimizer variable of the checkpoints, and the files written.
Tiny nets on the embedded dataset; a partial last batch (100 examples, batch 32) and a
validation split are included on purpose.
"""

import csv
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import keras
from conftest import BACKEND, to_numpy

from kerasparse import packed, train
from kerasparse.config import ConfigError, resolve
from kerasparse.models import DeepCNN, DeepMLP, PackedDeepCNN, PackedDeepMLP
from kerasparse.rundir import RunDirError

PRESET = os.path.join(os.path.dirname(__file__), os.pardir, "configs",
                      "dent-tanner2026-dnn-mnist-q3.toml")
TINY = dict(dataset="embedded", depth=2, width=8, epochs=2, lr=0.01, batch_size=32,
            train_examples=100, test_examples=64, monitor_batch=0)
MEMBERS = [
    dict(seed=3407, sparsity=0.85, q_star=3.0, v_prime=0.7),
    dict(seed=3408, sparsity=0.8, q_star=1.0, v_prime=0.5),
    dict(seed=3409, sparsity=0.9, q_star=2.0, v_prime=0.9),
]
RTOL, ATOL = 1e-5, 1e-6


def cells(members=MEMBERS, **overrides):
    return [resolve(PRESET, {**TINY, **overrides, **m}) for m in members]


def history(run_dir):
    with open(os.path.join(run_dir, "history.csv"), newline="") as f:
        return list(csv.DictReader(f))


def checkpoint(run_dir):
    """(epoch, every variable in model-then-optimizer order) of the run's latest checkpoint:
    a pack member's .npz as written; a `kerasparse train` .weights.h5 restored into the model
    its config.json builds, through the run's own restore (Run.load_checkpoint)."""
    with open(os.path.join(run_dir, "checkpoints", "latest.json")) as f:
        latest = json.load(f)
    if latest["weights"].endswith(".npz"):
        with np.load(os.path.join(run_dir, "checkpoints", latest["weights"])) as data:
            return latest["epoch"], [data[k] for k in sorted(data.files)]
    import keras

    from kerasparse import checkpoint as ks_checkpoint

    config = train.saved_config(run_dir)
    _, model, _ = train._setup(config)
    train.compile_model(model, config, 1)
    model.optimizer.build(model.trainable_variables)
    assert train.RunRecord(run_dir, config, None).load_checkpoint(model) == latest["epoch"]
    return latest["epoch"], [keras.ops.convert_to_numpy(v)
                             for v in ks_checkpoint.all_variables(model)]


def assert_same_run(ref, got, bitwise=False, weight_atol=ATOL, outliers=0.0, outlier_atol=0.0):
    """Two run directories hold the same training (history and final variables). With
    ``outliers`` > 0, up to that fraction of each variable's entries may miss
    ``weight_atol`` if they are within ``outlier_atol``."""
    a, b = history(ref), history(got)
    assert len(a) == len(b) > 0
    assert list(a[0]) == list(b[0])  # the same columns in the same order
    for ra, rb in zip(a, b):
        for key in ra:
            if key == "epoch_time_s":
                continue
            assert float(rb[key]) == pytest.approx(float(ra[key]), rel=RTOL, abs=ATOL), key
            if bitwise:
                assert ra[key] == rb[key], key
    ea, va = checkpoint(ref)
    eb, vb = checkpoint(got)
    assert ea == eb and len(va) == len(vb)
    for x, y in zip(va, vb):
        assert x.shape == y.shape
        if not outliers:
            np.testing.assert_allclose(y, x, rtol=RTOL, atol=weight_atol)
            continue
        off = ~np.isclose(y, x, rtol=RTOL, atol=weight_atol)
        assert off.mean() <= outliers, f"{off.sum()} of {off.size} entries differ"
        np.testing.assert_allclose(y[off], x[off], rtol=0, atol=outlier_atol)


def run_separately(root, configs):
    dirs = [str(root / f"cell{i}") for i in range(len(configs))]
    for d, c in zip(dirs, configs):
        train.run(d, c, verbose=0)
    return dirs


# --- the packed models ------------------------------------------------------------------


def _mlps():
    return [DeepMLP(depth=2, width=8, sparsity=m["sparsity"], q_star=m["q_star"],
                    v_prime=m["v_prime"], input_shape=(4, 4, 1), num_classes=3)
            for m in MEMBERS]


def test_packed_mlp_members_compute_what_their_own_models_compute(rng, tmp_path):
    models = _mlps()
    pack = PackedDeepMLP.from_members(models)
    assert pack.size == 3 and pack.members[1]["q_star"] == 1.0
    # Layer names and variable order of the member model, with a member axis in front.
    assert [w.path for w in pack.weights] == [w.path for w in models[0].weights]
    x = rng.normal(size=(5, 3, 4, 4, 1)).astype("float32") * 1.5
    y = to_numpy(pack(x))
    assert y.shape == (5, 3, 3)
    for i, m in enumerate(models):
        np.testing.assert_allclose(y[:, i], to_numpy(m(x[:, i])), rtol=1e-5, atol=1e-5)
    # member(i): an ordinary DeepMLP with member i's EoC setting and weights.
    member = pack.member(2)
    assert isinstance(member, DeepMLP) and member.sparsity == 0.9 and member.q_star == 2.0
    for a, b in zip(member.get_weights(), models[2].get_weights()):
        np.testing.assert_array_equal(a, b)
    # .keras round trip and config == constructor arguments.
    path = str(tmp_path / "pack.keras")
    pack.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, PackedDeepMLP) and loaded.get_config() == pack.get_config()
    np.testing.assert_allclose(to_numpy(loaded(x)), y, rtol=1e-6, atol=1e-6)
    rebuilt = PackedDeepMLP.from_config(pack.get_config())
    assert [w.shape for w in rebuilt.weights] == [w.shape for w in pack.weights]


def test_packed_cnn_members_compute_what_their_own_models_compute(rng, tmp_path):
    models = [DeepCNN(depth=2, channels=4, sparsity=m["sparsity"], q_star=m["q_star"],
                      v_prime=m["v_prime"], input_shape=(6, 6, 3), num_classes=3)
              for m in MEMBERS]
    pack = PackedDeepCNN.from_members(models)
    x = rng.normal(size=(4, 3, 6, 6, 3)).astype("float32")
    y = to_numpy(pack(x))
    for i, m in enumerate(models):
        np.testing.assert_allclose(y[:, i], to_numpy(m(x[:, i])), rtol=1e-5, atol=1e-5)
    path = str(tmp_path / "pack.keras")
    pack.save(path)
    np.testing.assert_allclose(to_numpy(keras.saving.load_model(path)(x)), y, rtol=1e-6,
                               atol=1e-6)
    np.testing.assert_allclose(to_numpy(pack.member(1)(x[:, 1])), y[:, 1], rtol=1e-5,
                               atol=1e-5)


def test_a_new_pack_initialises_each_member_at_its_own_edge_of_chaos():
    members = [{"sparsity": 0.85, "q_star": q, "v_prime": 0.7} for q in (1.0, 3.0)]
    pack = PackedDeepMLP(members=members, depth=3, width=300, input_shape=(300,))
    first = pack.get_layer("dense1")
    assert np.all(to_numpy(first.bias) == 0)  # the variance-preserving first layer
    kernel = to_numpy(pack.get_layer("dense2").kernel)
    bias = to_numpy(pack.get_layer("dense2").bias)
    for i, setup in enumerate(pack.eoc):
        # 90,000 kernel draws: the standard deviation within 2%; 300 bias draws: within 20%.
        assert kernel[i].std() * np.sqrt(300) == pytest.approx(np.sqrt(setup.sigma_w2), rel=0.02)
        assert bias[i].std() == pytest.approx(np.sqrt(setup.sigma_b2), rel=0.2)
    assert pack.eoc[0].sigma_b2 < pack.eoc[1].sigma_b2  # q* = 1 vs 3: different settings
    assert not np.allclose(kernel[0] / np.sqrt(pack.eoc[0].sigma_w2),
                           kernel[1] / np.sqrt(pack.eoc[1].sigma_w2))  # independent draws
    act = pack.get_layer("act2")
    assert act.params["tau"] == [pytest.approx(s.tau) for s in pack.eoc]
    assert act.params["m"] == [pytest.approx(s.m) for s in pack.eoc]


def test_packed_model_bad_arguments():
    with pytest.raises(ValueError, match="members must be a non-empty list"):
        PackedDeepMLP(members=[], depth=2, width=4)
    with pytest.raises(ValueError, match="member 0 must be a dict"):
        PackedDeepMLP(members=[{"q_star": 1.0, "depth": 3}], depth=2, width=4)
    with pytest.raises(ValueError, match="the models differ in depth"):
        PackedDeepMLP.from_members([DeepMLP(depth=2, width=4), DeepMLP(depth=3, width=4)])
    with pytest.raises(ValueError, match="PackedDeepCNN packs DeepCNN models"):
        PackedDeepCNN.from_members([DeepMLP(depth=2, width=4)])


def test_a_diverged_member_does_not_touch_the_others(rng):
    """NaN weights in member 1: members 0 and 2 train exactly as in a pack without it."""
    crossentropy, member_loss, _ = packed._keras_parts()
    x = rng.normal(size=(16, 3, 4, 4, 1)).astype("float32")
    y = rng.integers(0, 3, size=(16, 3)).astype("int32")
    initial, runs = _mlps(), []
    for poison in (False, True):
        pack = PackedDeepMLP.from_members(initial)
        if poison:
            weights = pack.member_weights(1)
            pack.set_member_weights(1, [np.full_like(w, np.nan) for w in weights])
        pack.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss=crossentropy(),
                     metrics=[member_loss(3)],
                     jit_compile=False if BACKEND == "torch" else "auto")
        logs = pack.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history
        runs.append(([pack.member(i) for i in range(3)], logs))
    (clean, clean_logs), (poisoned, poisoned_logs) = runs
    assert np.isnan(poisoned_logs["member_loss"][-1][1])
    for i in (0, 2):
        assert poisoned_logs["member_loss"][-1][i] == pytest.approx(
            clean_logs["member_loss"][-1][i], rel=1e-6)
        for a, b in zip(poisoned[i].get_weights(), clean[i].get_weights()):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


# --- which cells can be packed ---------------------------------------------------------


def test_compatible_names_what_differs():
    base = cells()
    assert packed.compatible(base) is None  # seed, sparsity, q_star, v_prime may differ
    assert packed.compatible(base + [dict(base[0], depth=3)]).startswith(
        "cells differ in depth (2, 3)")
    assert "cells differ in lr" in packed.compatible([base[0], dict(base[1], lr=0.1)])
    assert "may differ only in seed, sparsity, q_star, v_prime" in packed.compatible(
        [base[0], dict(base[1], momentum=0.5)])
    assert packed.compatible([dict(base[0], model="wrn16-1")]).startswith(
        "model 'wrn16-1' cannot be packed; packable models: mlp100x300, cnn50x300")
    assert "controller 'mult' cannot be packed" in packed.compatible(
        [dict(base[0], controller="mult")])
    assert "optimizer 'lion' cannot be packed exactly" in packed.compatible(
        [dict(base[0], optimizer="lion")])
    assert packed.compatible([]).startswith("a pack needs at least 1 cell")
    for reason in (packed.compatible(base + [dict(base[0], depth=3)]),):
        assert "\n" not in reason


def test_packs_groups_compatible_cells():
    base = cells()
    configs = [base[0], dict(base[0], lr=0.1), base[1], base[2], dict(base[1], lr=0.1)]
    assert packed.packs(configs, 2) == [[0, 2], [3], [1, 4]]
    assert packed.packs(configs, 10) == [[0, 2, 3], [1, 4]]
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ConfigError, match="pack size must be a positive integer"):
            packed.packs(configs, bad)
    with pytest.raises(ConfigError, match="cannot be packed"):
        packed.packs([dict(base[0], model="wrn28-4")], 4)


def test_bad_packs_are_refused_before_anything_is_written(tmp_path):
    base = cells()
    dirs = [str(tmp_path / f"c{i}") for i in range(3)]
    with pytest.raises(ConfigError, match="at least 1 cell"):
        packed.train_pack([], [])
    with pytest.raises(ConfigError, match=r"cells differ in width \(8, 16\)"):
        packed.train_pack(dirs[:2], [base[0], dict(base[1], width=16)])
    with pytest.raises(ConfigError, match="distinct run directories"):
        packed.train_pack([dirs[0], dirs[0]], base[:2])
    # A pack that does not fit: 30 cells of the paper's MLP in a 1 GiB budget.
    big = [resolve(PRESET, {"seed": s}) for s in range(30)]
    with pytest.raises(ConfigError) as info:
        packed.train_pack([str(tmp_path / f"big{i}") for i in range(30)], big,
                          memory_limit=2**30)
    message = str(info.value)
    assert "a pack of 30 cells of mlp100x300 needs about" in message and "GiB" in message
    fits = int(2**30 // (packed.pack_memory(big)["total"] / 30))
    assert 1 <= fits < 30 and f"use packs of at most {fits} cells" in message
    assert "\n" not in message
    os.makedirs(dirs[2])
    open(os.path.join(dirs[2], "x"), "w").close()
    with pytest.raises(RunDirError, match="already exists and is not empty"):
        packed.train_pack(dirs, base)
    assert sorted(os.listdir(tmp_path)) == ["c2"]  # nothing else written


def test_memory_estimate_counts_the_models_weights():
    configs = cells(momentum=0.9)
    need = packed.pack_memory(configs)
    model = PackedDeepMLP.from_members([DeepMLP(depth=2, width=8, input_shape=(32, 32, 3))] * 3)
    params = sum(int(np.prod(w.shape)) for w in model.weights)
    assert need["weights"] == params * 4 * 3  # weights, gradients, momentum
    assert need["total"] > need["weights"]


# --- training: the pack gives each cell its own run ------------------------------------


@pytest.fixture(scope="module")
def separate(tmp_path_factory):
    return run_separately(tmp_path_factory.mktemp("separate"), cells())


@pytest.fixture(scope="module")
def packed_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("packed")
    dirs = [str(root / f"cell{i}") for i in range(3)]
    summaries = packed.train_pack(dirs, cells(), verbose=0)
    return dirs, summaries


def test_pack_equals_separate_runs(separate, packed_run):
    dirs, summaries = packed_run
    for i, (ref, got) in enumerate(zip(separate, dirs)):
        assert_same_run(ref, got, bitwise=False)
        # The same files, best.weights.h5 included: the same epoch chosen, and its weights
        # equal to the separate run's (float tolerance) when loaded into the cell's own model.
        assert sorted(os.listdir(ref)) == sorted(os.listdir(got))
        best = [json.load(open(os.path.join(d, "summary.json")))["best_checkpoint"]
                for d in (ref, got)]
        assert best[1] is not None and best[0]["epoch"] == best[1]["epoch"]
        assert best[0]["monitor"] == best[1]["monitor"]
        own = keras.saving.load_model(os.path.join(ref, "model.keras"))
        loaded = []
        for d in (ref, got):
            own.load_weights(os.path.join(d, "best.weights.h5"))
            loaded.append([np.array(w) for w in own.get_weights()])
        for a, b in zip(*loaded):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
        with open(os.path.join(ref, "config.json")) as f, open(os.path.join(got, "config.json")) as g:
            assert json.load(f) == json.load(g)
        s_ref, s_got = (json.load(open(os.path.join(d, "summary.json"))) for d in (ref, got))
        assert set(s_got) == set(s_ref) | {"packed"}
        assert s_got["status"] == "completed" and s_got["seed"] == MEMBERS[i]["seed"]
        assert s_got["best_test_accuracy"] == pytest.approx(s_ref["best_test_accuracy"], abs=1e-6)
        assert s_got["packed"] == {"size": 3, "index": i, "cells": ["cell0", "cell1", "cell2"]}
        assert summaries[i]["status"] == "completed"
        # model.keras: the member as an ordinary compiled DeepMLP.
        a = keras.saving.load_model(os.path.join(ref, "model.keras"))
        b = keras.saving.load_model(os.path.join(got, "model.keras"))
        assert type(b) is DeepMLP and b.get_config() == a.get_config()
        for x, y in zip(a.get_weights(), b.get_weights()):
            np.testing.assert_allclose(y, x, rtol=RTOL, atol=ATOL)
    rows = history(dirs[0])
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "test_loss", "test_accuracy",
            "lr"} <= set(rows[0])
    assert float(rows[0]["loss"]) != float(rows[1]["loss"])  # it trained


def test_pack_equals_separate_runs_with_adamw_and_a_cosine_schedule(tmp_path):
    configs = cells(MEMBERS[1:], epochs=1, optimizer="adam", lr=1e-3, weight_decay=0.01,
                    schedule="cosine")
    refs = run_separately(tmp_path / "sep", configs)
    dirs = [str(tmp_path / f"p{i}") for i in range(2)]
    packed.train_pack(dirs, configs, verbose=0)
    for ref, got in zip(refs, dirs):
        # Adam divides by sqrt(v) + eps: for a gradient near eps a rounding difference in the
        # gradient (the batched matmul sums in another order) moves the step by a visible
        # fraction of lr (seen on TensorFlow: 4e-6, and in a later full run 1.5e-5, in one of
        # 24,576 weights, lr 1e-3). So the weights are held to 1 % of lr except for at most
        # 1 in 1,000 entries per variable, held to one lr (an Adam step moves a weight by
        # about lr at most); the logged metrics to rel 1e-5 as everywhere.
        assert_same_run(ref, got, weight_atol=1e-2 * 1e-3, outliers=1e-3, outlier_atol=1e-3)
        # The optimizer state is there (Adam's two moments per weight), not only the weights.
        assert len(checkpoint(got)[1]) == 3 * 2 * 3 + 1  # weights, 2 moments, step


def test_packed_cnn_with_nesterov_momentum_equals_separate_runs(tmp_path):
    configs = cells(MEMBERS[:2], model="cnn50x300", depth=2, width=3, epochs=1,
                    train_examples=64, momentum=0.9, nesterov=True, weight_decay=0.01)
    refs = run_separately(tmp_path / "sep", configs)
    dirs = [str(tmp_path / f"p{i}") for i in range(2)]
    packed.train_pack(dirs, configs, verbose=0)
    for ref, got in zip(refs, dirs):
        assert_same_run(ref, got)
        assert len(checkpoint(got)[1]) == 3 * 2 * 2 + 2  # weights, momenta, step, lr


def test_every_member_diverging_stops_the_pack_cleanly(tmp_path):
    # 1e38: the first update sends the weights to ~1e38 and the logits overflow; a smaller
    # step only saturates the clipped activations (the loss stays finite).
    configs = cells(MEMBERS[:2], lr=1e38)
    dirs = [str(tmp_path / f"p{i}") for i in range(2)]
    summaries = packed.train_pack(dirs, configs, verbose=0)
    for d, s in zip(dirs, summaries):
        assert s["status"] == "diverged" and s["diverged"]["epoch"] == 1
        assert s["diverged"]["step"] >= 1 and s["diverged"]["loss"] is None  # strict JSON
        assert s["diverged"]["loss_non_finite"] in ("nan", "inf", "-inf")
        assert json.load(open(os.path.join(d, "summary.json")))["status"] == "diverged"
        for row in history(d) if os.path.exists(os.path.join(d, "history.csv")) else []:
            assert np.isfinite(float(row["loss"]))  # no garbage epoch recorded
        assert not os.path.exists(os.path.join(d, "model.keras"))


def test_guard_marks_only_the_non_finite_member():
    class FakePack:
        def __init__(self):
            self.members = [type("M", (), {"index": i, "status": None})() for i in range(3)]
            self.epoch, self.batches_done, self.interrupted, self.verbose = 0, 0, False, 0
            self.diverged = []

        def active(self):
            return [m for m in self.members if m.status is None]

        def diverge(self, m, epoch, step, loss):
            m.status = "diverged"
            self.diverged.append((m.index, epoch, step))

    pack = FakePack()
    _, guard, _ = packed._pack_callbacks(pack, test=None)
    guard.set_model(keras.Sequential())
    guard.model.stop_training = False
    guard.on_epoch_begin(1)
    guard.on_train_batch_end(0, {"member_loss": np.array([1.0, 2.0, 3.0])})
    guard.on_train_batch_end(1, {"member_loss": np.array([1.0, np.nan, np.inf])})
    assert pack.diverged == [(1, 2, 2), (2, 2, 2)] and not guard.model.stop_training
    guard.on_train_batch_end(2, {"member_loss": np.array([np.nan, np.nan, np.nan])})
    assert pack.diverged[-1] == (0, 2, 3) and guard.model.stop_training


# --- exact resume of a killed pack -------------------------------------------------------

_CHILD = """
import json, sys
from kerasparse.packed import train_pack
dirs, configs = json.load(open(sys.argv[1]))
train_pack(dirs, configs, verbose=0)
"""


@pytest.mark.parametrize("fault", ["batch:2:1", "packflip:1"])
def test_killed_pack_resumes_exactly(packed_run, tmp_path, fault):
    """SIGKILL mid-epoch 2 (every cell at epoch 1), or between two cells' latest.json
    flips (cell 0 at epoch 1, the others at no checkpoint): resuming gives the uninterrupted
    pack's results. After the mid-epoch kill one cell is resumed alone by ``kerasparse
    train --resume`` and the other two as a pack of two."""
    dirs = [str(tmp_path / f"cell{i}") for i in range(3)]
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps([dirs, cells()]))
    env = dict(os.environ, KERAS_BACKEND=BACKEND, TF_CPP_MIN_LOG_LEVEL="3",
               KERASPARSE_FAULT=fault)
    killed = subprocess.run([sys.executable, "-c", _CHILD, str(spec)], capture_output=True,
                            text=True, env=env, timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    latest = [os.path.exists(os.path.join(d, "checkpoints", "latest.json")) for d in dirs]
    if fault.startswith("batch"):
        assert latest == [True] * 3 and all(checkpoint(d)[0] == 1 for d in dirs)
        train.run(dirs[2], resume=True, verbose=0)
        packed.train_pack(dirs[:2], resume=True, verbose=0)
    else:
        assert latest == [True, False, False]
        packed.train_pack(dirs, resume=True, verbose=0)
    for ref, got in zip(packed_run[0], dirs):
        assert_same_run(ref, got, bitwise=BACKEND == "torch" and fault.startswith("packflip"))
        assert json.load(open(os.path.join(got, "summary.json")))["status"] == "completed"
    # A finished pack has nothing left to resume.
    assert [s["status"] for s in packed.train_pack(dirs, resume=True, verbose=0)] == [
        "completed"] * 3

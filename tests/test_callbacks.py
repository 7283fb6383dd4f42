"""Keep-ratio controllers and SparsityMonitor driven by hand: scripted accuracy sequences fed
to on_epoch_begin/on_epoch_end, checked step by step against a reimplementation of the issue's
rules written here from the spec text (and against hand-computed sequences)."""

import json
import math

import keras
import numpy as np
import pytest

from kerasparse.callbacks import (
    AdditiveKeepRatio,
    ConstantKeepRatio,
    MultiplicativeKeepRatio,
    ScheduledKeepRatio,
    SparsityMonitor,
    find_activation_layers,
    find_topk_layers,
)
from kerasparse.layers import GlobalTopK, SparseActivation

from conftest import to_numpy

D1, D2 = 16, 40  # sizes of the two top-k sites of the tiny model


# ----- independent references, from the issue text -------------------------------------------
def spec_trajectory(kind, accuracies, *, smoothing, lo=0.0, hi=1.0, step=None, drop=None,
                    factor=None, gap=None):
    """Per epoch: (r used during the epoch, reset flag at its end), and the final resets."""
    r, e_prev, best, resets, out = hi, None, None, 0, []
    for a in accuracies:
        if e_prev is None:
            e = a
        else:
            e = smoothing * e_prev + (1 - smoothing) * a
        if kind == "additive":
            reset = e_prev is not None and e_prev - e >= drop
        else:
            best = e if best is None else max(best, e)
            reset = e < best - gap
        out.append((r, reset))
        if reset:
            r, resets = hi, resets + 1
        elif kind == "additive":
            r = max(r - step, lo)
        else:
            r = max(r * factor, lo)
        e_prev = e
    return out, resets


def expected_k(r, size):
    # k = max(1, ceil(r * D)); r * D within 1e-6 above an integer counts as that integer
    # (the float32 keep-ratio variable; see kerasparse.ops.keep_count).
    return max(1, math.ceil(r * size - 1e-6 * max(r * size, 1.0)))


# ----- helpers --------------------------------------------------------------------------------
def tiny_model():
    inputs = keras.Input((8,))
    h = keras.layers.Dense(D1, name="d1")(inputs)
    h = SparseActivation("softplus", name="s1")(h)
    h = keras.layers.Dense(D2, name="d2")(h)
    outputs = GlobalTopK(name="t2")(keras.layers.Activation("softplus")(h))
    return keras.Model(inputs, outputs)


def drive(controller, model, accuracies, start=0, monitor="accuracy"):
    """Feed on_epoch_begin / on_epoch_end like fit does; return the per-epoch logs and the
    keep ratios found in the layers' variables during each epoch."""
    controller.set_model(model)
    controller.on_train_begin()
    logs_seen, in_layers = [], []
    for epoch, a in enumerate(accuracies, start=start):
        controller.on_epoch_begin(epoch)
        in_layers.append([float(to_numpy(l.keep_ratio)) for l in find_topk_layers(model)])
        logs = {monitor: a, "loss": 1.0}
        controller.on_epoch_end(epoch, logs)
        logs_seen.append(logs)
    return logs_seen, in_layers


def random_walk(n, seed):
    rng = np.random.default_rng(seed)
    acc, out = 0.5, []
    for _ in range(n):
        acc = float(np.clip(acc + rng.normal(0.01, 0.06), 0.0, 1.0))
        out.append(acc)
    return out


# ----- exact semantics ------------------------------------------------------------------------
def test_additive_hand_computed():
    # e: .5, .5, .5, .9*.5+.1*.3 = .48 -> e_prev - e = .02 >= .01: reset after epoch 3.
    # Then e = .9*.48+.1*.5 = .482 (no reset), .4838 (no reset).
    acc = [0.5, 0.5, 0.5, 0.3, 0.5, 0.5]
    logs, in_layers = drive(AdditiveKeepRatio(), tiny_model(), acc)
    np.testing.assert_allclose(
        [l["keep_ratio"] for l in logs], [1.0, 0.99, 0.98, 0.97, 1.0, 0.99], atol=1e-12
    )
    assert [l["keep_ratio_reset"] for l in logs] == [0, 0, 0, 1, 0, 0]
    np.testing.assert_allclose(in_layers, [[l["keep_ratio"]] * 2 for l in logs], atol=1e-7)


def test_multiplicative_hand_computed():
    # e: .8, .8, .5 (< best .8 - .2: reset), .35 (reset), .575 (reset), .6875 (no reset).
    acc = [0.8, 0.8, 0.2, 0.2, 0.8, 0.8, 0.8]
    ctl = MultiplicativeKeepRatio()
    logs, _ = drive(ctl, tiny_model(), acc)
    np.testing.assert_allclose(
        [l["keep_ratio"] for l in logs], [1.0, 0.98, 0.9604, 1.0, 1.0, 1.0, 0.98], atol=1e-12
    )
    assert [l["keep_ratio_reset"] for l in logs] == [0, 0, 1, 1, 1, 0, 0]
    assert ctl.resets == 3
    assert ctl.get_state()["best"] == pytest.approx(0.8)


def test_first_epoch_never_resets():
    # Additive: no e_prev on the first epoch; multiplicative: e == best on the first epoch.
    for ctl in (AdditiveKeepRatio(drop=0.0), MultiplicativeKeepRatio(gap=0.0)):
        logs, _ = drive(ctl, tiny_model(), [0.0])
        assert logs[0]["keep_ratio_reset"] == 0 and logs[0]["keep_ratio"] == 1.0


@pytest.mark.parametrize(
    "kind, kwargs",
    [
        ("additive", dict(step=0.01, smoothing=0.9, drop=0.01)),
        ("additive", dict(step=0.07, smoothing=0.5, drop=0.02, lo=0.1, hi=0.9)),
        ("multiplicative", dict(factor=0.98, smoothing=0.5, gap=0.2)),
        ("multiplicative", dict(factor=0.8, smoothing=0.2, gap=0.05, lo=0.05, hi=0.8)),
    ],
)
def test_random_sequences_match_spec(kind, kwargs):
    acc = random_walk(150, seed=len(kwargs) + len(kind))
    expected, expected_resets = spec_trajectory(kind, acc, **kwargs)
    args = {k: v for k, v in kwargs.items() if k not in ("lo", "hi")}
    args["min_keep_ratio"], args["max_keep_ratio"] = kwargs.get("lo", 0.0), kwargs.get("hi", 1.0)
    ctl = (AdditiveKeepRatio if kind == "additive" else MultiplicativeKeepRatio)(**args)
    model = tiny_model()
    logs, in_layers = drive(ctl, model, acc)
    np.testing.assert_allclose([l["keep_ratio"] for l in logs], [r for r, _ in expected],
                               atol=1e-12)
    assert [l["keep_ratio_reset"] for l in logs] == [int(s) for _, s in expected]
    assert ctl.resets == expected_resets > 0  # the sequences do exercise resets
    np.testing.assert_allclose([v[0] for v in in_layers], [r for r, _ in expected], atol=1e-7)


def test_keep_ratio_reaches_layers_and_sets_k():
    """Each epoch runs with k = ceil(r*D) at every site; r = 0 (min_keep_ratio=0) keeps one."""
    model = tiny_model()
    sub = keras.Model(model.input, [model.get_layer("s1").output, model.get_layer("t2").output])
    x = np.random.default_rng(0).normal(size=(4, 8)).astype("float32")
    ctl = AdditiveKeepRatio(step=0.3)  # r: 1, .7, .4, .1, 0 (clamped), 0
    ctl.set_model(model)
    ctl.on_train_begin()
    for epoch, r in enumerate([1.0, 0.7, 0.4, 0.1, 0.0, 0.0]):
        ctl.on_epoch_begin(epoch)
        s1, t2 = sub.predict_on_batch(x)  # compiled: reads the variables' values
        logs = {"accuracy": 0.5}
        ctl.on_epoch_end(epoch, logs)
        assert logs["keep_ratio"] == pytest.approx(r, abs=1e-12)
        # softplus outputs are all positive: exactly k non-zeros per sample
        assert (np.count_nonzero(s1, axis=1) == expected_k(r, D1)).all(), r
        assert (np.count_nonzero(t2, axis=1) == expected_k(r, D2)).all(), r
    assert expected_k(0.0, D2) == 1 and expected_k(0.7, D1) == 12


def test_constant_and_scheduled():
    model = tiny_model()
    logs, in_layers = drive(ConstantKeepRatio(0.25), model, [0.1, 0.9, 0.1])
    assert [l["keep_ratio"] for l in logs] == [0.25] * 3
    assert [l["keep_ratio_reset"] for l in logs] == [0] * 3
    np.testing.assert_allclose(in_layers, 0.25)
    seen = []

    def schedule(epoch):
        seen.append(epoch)
        return 1.0 / (1 + epoch)

    ctl = ScheduledKeepRatio(schedule)
    logs, in_layers = drive(ctl, model, [0.5] * 4)
    np.testing.assert_allclose([l["keep_ratio"] for l in logs], [1, 1 / 2, 1 / 3, 1 / 4])
    np.testing.assert_allclose([v[0] for v in in_layers], [1, 1 / 2, 1 / 3, 1 / 4], rtol=1e-7)
    assert seen == [0, 1, 2, 3] and ctl.resets == 0
    bad = ScheduledKeepRatio(lambda epoch: 1.5)
    bad.set_model(model)
    with pytest.raises(ValueError, match=r"schedule\(0\).*Received: keep_ratio=1.5"):
        bad.on_epoch_begin(0)


def test_layers_argument_controls_only_named_layers():
    model = tiny_model()
    drive(ConstantKeepRatio(0.5, layers=["t2"]), model, [0.5])
    assert float(to_numpy(model.get_layer("t2").keep_ratio)) == 0.5
    assert float(to_numpy(model.get_layer("s1").keep_ratio)) == 1.0


# ----- state and resume -----------------------------------------------------------------------
@pytest.mark.parametrize("cls", [AdditiveKeepRatio, MultiplicativeKeepRatio])
def test_get_set_state_resumes_exactly(cls):
    acc = random_walk(60, seed=3)
    kwargs = dict(step=0.05) if cls is AdditiveKeepRatio else dict(factor=0.9, gap=0.05)
    full = cls(**kwargs)
    logs_full, _ = drive(full, tiny_model(), acc)
    first = cls(**kwargs)
    logs_a, _ = drive(first, tiny_model(), acc[:23])
    state = json.loads(json.dumps(first.get_state()))  # must survive JSON
    assert set(state) == {"keep_ratio", "e_prev", "best", "resets", "epoch"}
    assert state["epoch"] == 23
    second = cls(**kwargs)
    second.set_state(state)
    logs_b, _ = drive(second, tiny_model(), acc[23:], start=23)
    assert logs_a + logs_b == logs_full
    assert second.get_state() == full.get_state() and full.resets > 0


def test_backup_dir_resumes_exactly(tmp_path):
    acc = random_walk(40, seed=5)
    kwargs = dict(factor=0.9, gap=0.05, backup_dir=tmp_path / "backup")
    full = MultiplicativeKeepRatio(**{**kwargs, "backup_dir": None})
    logs_full, _ = drive(full, tiny_model(), acc)
    logs_a, _ = drive(MultiplicativeKeepRatio(**kwargs), tiny_model(), acc[:17])
    # A new process: a new controller reads the state for the epoch fit restarts at.
    resumed = MultiplicativeKeepRatio(**kwargs)
    logs_b, _ = drive(resumed, tiny_model(), acc[17:], start=17)
    assert logs_a + logs_b == logs_full
    assert resumed.resets == full.resets > 0
    # An earlier checkpoint (e.g. a ModelCheckpoint of epoch 9) resumes from epoch 9 too.
    logs_c, _ = drive(MultiplicativeKeepRatio(**kwargs), tiny_model(), acc[9:], start=9)
    assert logs_c == logs_full[9:]
    # Other settings than the saved ones: a clear error, not a silent mix.
    other = MultiplicativeKeepRatio(**{**kwargs, "factor": 0.8})
    with pytest.raises(ValueError, match="other settings"):
        drive(other, tiny_model(), acc[20:], start=20)


def test_backup_resumes_twice_from_the_same_epoch(tmp_path):
    """A run resumed from epoch 6 that fails again can be resumed from epoch 6 again (the
    state it started from stays in the file)."""
    acc = random_walk(14, seed=7)
    kwargs = dict(factor=0.9, gap=0.05, backup_dir=tmp_path)
    logs_full, _ = drive(MultiplicativeKeepRatio(**{**kwargs, "backup_dir": None}),
                         tiny_model(), acc)
    drive(MultiplicativeKeepRatio(**kwargs), tiny_model(), acc[:10])
    for _ in range(2):
        logs, _ = drive(MultiplicativeKeepRatio(**kwargs), tiny_model(), acc[6:8], start=6)
        assert logs == logs_full[6:8]
    saved = json.loads((tmp_path / "multiplicative_keep_ratio_state.json").read_text())
    assert sorted(map(int, saved["states"])) == list(range(1, 9))
    assert saved["class"] == "MultiplicativeKeepRatio" and saved["config"]["factor"] == 0.9


def test_corrupted_backup_is_a_clear_error(tmp_path):
    (tmp_path / "additive_keep_ratio_state.json").write_text('{"states": {"3": ')
    with pytest.raises(ValueError, match=r"AdditiveKeepRatio: the backup .*additive_keep_ratio_"
                                         r"state.json is not a readable controller state file"):
        drive(AdditiveKeepRatio(backup_dir=tmp_path), tiny_model(), [0.5], start=3)
    # A fresh run (epoch 0) replaces it.
    drive(AdditiveKeepRatio(backup_dir=tmp_path), tiny_model(), [0.5])
    saved = json.loads((tmp_path / "additive_keep_ratio_state.json").read_text())
    assert list(saved["states"]) == ["1"] and saved["states"]["1"]["keep_ratio"] == 0.99


def test_start_without_state_is_a_clear_error():
    ctl = AdditiveKeepRatio()
    with pytest.raises(ValueError, match="fit starts at epoch 3.*set_state"):
        drive(ctl, tiny_model(), [0.5], start=3)
    ctl.set_state({"epoch": 3})  # start afresh at epoch 3
    logs, _ = drive(ctl, tiny_model(), [0.5, 0.5], start=3)
    assert [l["keep_ratio"] for l in logs] == [1.0, 0.99]


def test_new_fit_from_epoch_zero_starts_afresh():
    ctl = MultiplicativeKeepRatio()
    drive(ctl, tiny_model(), [0.9, 0.1, 0.1])
    assert ctl.resets > 0
    logs, _ = drive(ctl, tiny_model(), [0.5, 0.5])
    assert [l["keep_ratio"] for l in logs] == [1.0, 0.98] and ctl.resets == 0


def test_set_state_validates():
    ctl = AdditiveKeepRatio()
    with pytest.raises(ValueError, match="unknown state keys.*Received"):
        ctl.set_state({"rr": 1})
    with pytest.raises(ValueError, match="Received: keep_ratio=2"):
        ctl.set_state({"keep_ratio": 2})
    with pytest.raises(ValueError, match="Received: epoch=-1"):
        ctl.set_state({"epoch": -1})


# ----- layer discovery ------------------------------------------------------------------------
class Block(keras.layers.Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(6)
        self.site = SparseActivation("relu", keep_ratio=0.5, name="inner_site")

    def call(self, x):
        return self.site(self.dense(x))


class Net(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.block = Block()
        self.head = keras.Sequential([keras.layers.Dense(5), GlobalTopK(name="head_topk")])

    def call(self, x):
        return self.head(self.block(x))


def test_find_topk_layers_recurses_and_names():
    net = Net()  # unbuilt: the layers exist already
    assert sorted(l.name for l in find_topk_layers(net)) == ["head_topk", "inner_site"]
    inner = keras.Sequential(
        [keras.layers.Dense(6), SparseActivation("relu", name="inner_site")], name="inner"
    )
    inputs = keras.Input((4,))
    h = GlobalTopK(name="head_topk")(keras.layers.Dense(5)(inner(inputs)))
    wrapped = keras.Model(inputs, h)  # a model nested in a functional model
    assert {l.name for l in find_topk_layers(wrapped)} == {"inner_site", "head_topk"}
    assert [l.name for l in find_topk_layers(wrapped, ["head_topk"])] == ["head_topk"]
    assert [l.name for l in find_topk_layers(wrapped, "inner_site")] == ["inner_site"]
    with pytest.raises(ValueError, match="no GlobalTopK layer named 'nope'; available: "):
        find_topk_layers(wrapped, ["nope"])
    dense_only = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="no GlobalTopK or SparseActivation layer"):
        find_topk_layers(dense_only)


def test_controller_on_model_without_topk_raises():
    ctl = MultiplicativeKeepRatio()
    ctl.set_model(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]))
    with pytest.raises(ValueError, match="no GlobalTopK or SparseActivation layer"):
        ctl.on_train_begin()


def test_missing_monitor_is_a_clear_error():
    with pytest.raises(ValueError, match="monitor 'accuracy' is not in the epoch's logs"):
        drive(AdditiveKeepRatio(), tiny_model(), [0.5], monitor="acc")


# ----- SparsityMonitor by hand ----------------------------------------------------------------
def numpy_topk(h, k):
    thr = np.sort(h, axis=1)[:, -k][:, None]
    return np.where(h >= thr, h, 0.0)


def test_sparsity_monitor_matches_numpy_on_nested_subclassed_model():
    net = Net()
    x = np.random.default_rng(1).normal(size=(32, 4)).astype("float32")
    net(x)
    net.block.site.keep_ratio.assign(0.5)
    head_topk = net.head.layers[-1]
    head_topk.keep_ratio.assign(0.4)
    mon = SparsityMonitor(x)
    mon.set_model(net)
    mon.on_train_begin()
    logs = {"loss": 1.0}
    mon.on_epoch_end(0, logs)
    # NumPy forward pass with the same weights.
    w, b = (to_numpy(v) for v in net.block.dense.weights)
    h = numpy_topk(np.maximum(x @ w + b, 0), expected_k(0.5, 6))
    w2, b2 = (to_numpy(v) for v in net.head.layers[0].weights)
    out = numpy_topk(h @ w2 + b2, expected_k(0.4, 5))
    nz_site, nz_head = np.count_nonzero(h) / h.size, np.count_nonzero(out) / out.size
    assert logs["nz/inner_site"] == pytest.approx(nz_site, abs=1e-9)
    assert logs["nz/head_topk"] == pytest.approx(nz_head, abs=1e-9)
    total = (np.count_nonzero(h) + np.count_nonzero(out)) / (h.size + out.size)
    assert logs["nz"] == pytest.approx(total, abs=1e-9)
    assert nz_site < 0.5  # ReLU zeroes some entries: nz differs from the nominal keep ratio
    assert "call" not in vars(net.block.site)  # the counting hook is removed
    assert mon.last_seconds > 0


def test_sparsity_monitor_validates():
    with pytest.raises(ValueError, match="x must be a non-empty batch.*Received: x=None"):
        SparsityMonitor(None)
    with pytest.raises(ValueError, match="Received: x=<ndarray of shape \\(0, 3\\)>"):
        SparsityMonitor(np.zeros((0, 3)))
    with pytest.raises(ValueError, match="layers must be None or a non-empty list"):
        SparsityMonitor(np.zeros((2, 3)), layers=[])


# ----- argument validation --------------------------------------------------------------------
@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: AdditiveKeepRatio(step=0), "step=0"),
        (lambda: AdditiveKeepRatio(step=1.5), "step=1.5"),
        (lambda: AdditiveKeepRatio(smoothing=1.0), "smoothing=1.0"),
        (lambda: AdditiveKeepRatio(drop=-0.1), "drop=-0.1"),
        (lambda: AdditiveKeepRatio(drop="x"), "drop='x'"),
        (lambda: AdditiveKeepRatio(monitor=""), "monitor=''"),
        (lambda: AdditiveKeepRatio(min_keep_ratio=-0.1), "min_keep_ratio=-0.1"),
        (lambda: AdditiveKeepRatio(max_keep_ratio=0.0), "max_keep_ratio=0.0"),
        (lambda: AdditiveKeepRatio(min_keep_ratio=0.6, max_keep_ratio=0.5), "min_keep_ratio=0.6"),
        (lambda: AdditiveKeepRatio(layers=[1]), "layers=\\[1\\]"),
        (lambda: AdditiveKeepRatio(backup_dir=3), "backup_dir=3"),
        (lambda: MultiplicativeKeepRatio(factor=1.0), "factor=1.0"),
        (lambda: MultiplicativeKeepRatio(factor=0), "factor=0"),
        (lambda: MultiplicativeKeepRatio(gap=-1), "gap=-1"),
        (lambda: MultiplicativeKeepRatio(smoothing=float("nan")), "smoothing=nan"),
        (lambda: ConstantKeepRatio(1.2), "keep_ratio=1.2"),
        (lambda: ConstantKeepRatio(True), "keep_ratio=True"),
        (lambda: ScheduledKeepRatio(0.5), "schedule=0.5"),
    ],
)
def test_bad_arguments(make, message):
    with pytest.raises(ValueError, match=f"Received: .*{message}"):
        make()


# ----- SparsityMonitor on any activation ------------------------------------------------------
@pytest.mark.parametrize(
    "activation, kwargs",
    [
        ("crelu", {}),
        ("cst", {}),
        ("hard_shrink", {"v_prime": None}),
        ("chard_shrink", {"v_prime": 0.3}),
        ("sawtooth", {}),
        ("relu", {"sparsity": None, "v_prime": None}),
    ],
)
def test_sparsity_monitor_counts_the_activation_layers_of_an_eoc_model(activation, kwargs):
    """A DeepMLP has no top-k site: the monitor counts its act1..act3 layers, checked against
    a NumPy forward pass with the solver's own NumPy activation."""
    from kerasparse.models import DeepMLP

    model = DeepMLP(depth=3, width=16, input_shape=(6,), num_classes=3, activation=activation,
                    **kwargs)
    x = np.random.default_rng(2).normal(size=(24, 6)) * math.sqrt(model.q_star)
    mon = SparsityMonitor(x.astype("float32"))
    mon.set_model(model)
    mon.on_train_begin()
    logs = {}
    mon.on_epoch_end(0, logs)
    assert set(logs) == {"nz", "nz/act1", "nz/act2", "nz/act3"}
    setup, a, nonzero, size = model.eoc, x.astype("float32"), 0, 0
    for i in (1, 2, 3):
        kernel, bias = (to_numpy(v).astype("float64") for v in model.get_layer(f"dense{i}").weights)
        a = setup.spec.fn(a @ kernel + bias, **setup.params)
        assert logs[f"nz/act{i}"] == pytest.approx(np.count_nonzero(a) / a.size, abs=1e-9), i
        nonzero, size = nonzero + np.count_nonzero(a), size + a.size
    assert logs["nz"] == pytest.approx(nonzero / size, abs=1e-9)
    assert 0.0 < logs["nz"] < 1.0


def test_find_activation_layers_skips_the_activation_inside_a_site():
    from kerasparse.layers import CReLU

    inputs = keras.Input((8,))
    h = SparseActivation(CReLU(0.1, 2.0, name="site_phi"), name="site")(
        keras.layers.Dense(6)(inputs))
    h = CReLU(0.2, 1.0, name="plain")(keras.layers.Dense(6)(h))
    h = keras.layers.Activation("relu", name="kact")(h)
    h = keras.layers.ReLU(name="krelu")(keras.layers.Dense(6, activation="relu")(h))
    model = keras.Model(inputs, keras.layers.Dense(2)(h))
    found = [layer.name for layer in find_activation_layers(model)]
    assert found == ["site", "plain", "kact", "krelu"]
    assert [layer.name for layer in find_activation_layers(model, ["kact"])] == ["kact"]
    with pytest.raises(ValueError, match="no GlobalTopK or activation layer named 'site_phi'"):
        find_activation_layers(model, ["site_phi"])
    x = np.random.default_rng(3).normal(size=(10, 8)).astype("float32")
    mon = SparsityMonitor(x)
    mon.set_model(model)
    logs = {}
    mon.on_epoch_end(0, logs)
    assert set(logs) == {"nz", "nz/site", "nz/plain", "nz/kact", "nz/krelu"}

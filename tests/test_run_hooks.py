"""Hooks of a training run (issue 15, item 7): a user's own Keras callbacks
(``train.run(callbacks=...)``, ``--callback module:factory``), TensorBoard scalars
(``--tensorboard``), ``best.weights.h5`` and ``--keep-checkpoints``. One small in-process run
(an MLP on the embedded data, 3 epochs), checked against its own history.csv."""

import csv
import json
import os
import sys
import warnings

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import h5_arrays
from kerasparse.cli import app

runner = CliRunner()
SMALL = ["--model", "mlp100x300", "--set", "depth=2", "--set", "width=16", "--dataset",
         "embedded", "--train-examples", "96", "--batch-size", "32", "--set",
         "monitor_batch=32", "--set", "test_examples=32", "--quiet"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("hooks") / "run"
    result = runner.invoke(app, ["train", *SMALL, "--epochs", "3", "--out", str(out),
                                 "--tensorboard", "--keep-checkpoints", "0",
                                 "--callback", "hooks_helper:make",
                                 "--callback", "hooks_helper:make_two"])
    assert result.exit_code == 0, result.output
    return out


def _history(out):
    with open(out / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


def _json(path):
    with open(path) as f:
        return json.load(f)


def test_config_records_the_hooks(run):
    config = _json(run / "config.json")
    assert config["tensorboard"] is True and config["keep_checkpoints"] == 0
    assert config["callbacks"] == "hooks_helper:make,hooks_helper:make_two"


def test_user_callback_sees_the_complete_logs(run):
    """The factory got run_dir and config; its callback saw every epoch with the test
    metrics and nz (it runs after the runner's callbacks), equal to history.csv."""
    seed = _json(run / "config.json")["seed"]
    with open(run / f"user-logs-{seed}.jsonl") as f:
        rows = [json.loads(line) for line in f]
    history = _history(run)
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    for seen, row in zip(rows, history):
        for key in ("loss", "accuracy", "test_loss", "test_accuracy", "nz"):
            assert seen[key] == pytest.approx(float(row[key]), rel=1e-6), key


def test_tensorboard_scalars_equal_history(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    history = _history(run)
    sites = [k for k in history[0] if k.startswith("nz/")]
    assert sites, history[0].keys()
    for key in ["loss", "accuracy", "test_loss", "test_accuracy", "lr", "nz", *sites]:
        assert key in tags, (key, tags)
        points = events.Scalars(key)
        assert [p.step for p in points] == [1, 2, 3], key
        # TensorBoard stores float32: compare at that precision.
        assert [p.value for p in points] == pytest.approx(
            [float(np.float32(row[key])) for row in history], rel=1e-6), key
    assert "epoch" not in tags


def test_keep_checkpoints_zero_keeps_every_epoch(run):
    names = sorted(os.listdir(run / "checkpoints"))
    assert names == ["epoch-0001.json", "epoch-0001.weights.h5", "epoch-0002.json",
                     "epoch-0002.weights.h5", "epoch-0003.json", "epoch-0003.weights.h5",
                     "latest.json"]


def test_best_weights_are_the_best_epochs_model_weights(run):
    """best.weights.h5 holds the model's variables (no optimizer) of the epoch with the
    highest test accuracy (no validation split; the first epoch wins a tie), as summary.json
    says, and loads into a fresh copy of the model without a warning."""
    from kerasparse import train

    history = _history(run)
    accuracies = [float(r["test_accuracy"]) for r in history]
    epoch = accuracies.index(max(accuracies)) + 1
    best = _json(run / "summary.json")["best_checkpoint"]
    assert best == {"file": "best.weights.h5", "epoch": epoch, "monitor": "test_accuracy",
                    "value": pytest.approx(max(accuracies), rel=1e-12)}
    saved = h5_arrays(run / "best.weights.h5")
    full = h5_arrays(run / "checkpoints" / f"epoch-{epoch:04d}.weights.h5")
    assert saved and not any(k.startswith("optimizer") for k in saved)
    assert set(saved) == {k for k in full if not k.startswith("optimizer")}
    for key, value in saved.items():
        assert np.array_equal(value, full[key]), key
    config = train.saved_config(str(run))
    _, model, _ = train._setup(config)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        model.load_weights(run / "best.weights.h5")


def test_prune_keeps_the_n_newest_checkpointed_epochs(tmp_path):
    """checkpoint.prune with checkpoint_every 2: the N newest epochs up to latest are kept,
    files of a later epoch (a kill before latest.json moved) and other files are left."""
    from kerasparse import checkpoint

    def make(epochs):
        folder = tmp_path / f"c{len(list(tmp_path.iterdir()))}"
        folder.mkdir()
        for e in epochs:
            for suffix in (".weights.h5", ".json"):
                (folder / f"epoch-{e:04d}{suffix}").write_text("x")
        (folder / "epoch-0002.npz").write_text("x")  # an older-format file of epoch 2
        (folder / "latest.json").write_text("{}")
        return folder

    def epochs(folder):
        return sorted({checkpoint.epoch_of(n) for n in os.listdir(folder)} - {None})

    for keep, kept in ((1, [8, 10]), (2, [6, 8, 10]), (3, [4, 6, 8, 10]),
                       (0, [2, 4, 6, 8, 10])):
        folder = make([2, 4, 6, 8, 10])
        checkpoint.prune(str(folder), 8, keep)
        assert epochs(folder) == kept, keep
        assert (folder / "latest.json").exists()


def test_train_run_takes_callbacks(tmp_path):
    """train.run(..., callbacks=[...]): the caller's callback objects run with the run's."""
    import keras

    from kerasparse import config as ks_config
    from kerasparse import train
    from kerasparse.cli._app import use_backend

    from conftest import BACKEND

    use_backend(BACKEND)

    class Seen(keras.callbacks.Callback):
        epochs = []

        def on_epoch_end(self, epoch, logs=None):
            self.epochs.append((epoch, sorted(logs)))

    config = ks_config.resolve(overrides={
        "model": "mlp100x300", "depth": 2, "width": 16, "dataset": "embedded",
        "train_examples": 64, "batch_size": 32, "epochs": 1, "monitor_batch": 0,
        "test_examples": 32})
    seen = Seen()
    summary = train.run(str(tmp_path / "api"), config, verbose=0, callbacks=[seen])
    assert summary["status"] == "completed"
    assert [e for e, _ in seen.epochs] == [0]
    assert "test_accuracy" in seen.epochs[0][1]


def test_run_refuses_a_backend_other_than_the_active_one(tmp_path):
    """train.run(out, config, backend): Keras' backend is fixed on import, so another name is a
    one-line ConfigError before anything is written (never silently ignored)."""
    from kerasparse import config as ks_config
    from kerasparse import train

    from conftest import BACKEND

    other = next(b for b in ("jax", "torch", "tensorflow") if b != BACKEND)
    with pytest.raises(ks_config.ConfigError, match=f"backend '{other}' is not Keras' active "
                       f"backend '{BACKEND}'"):
        train.run(str(tmp_path / "x"), ks_config.resolve(), other)
    assert not (tmp_path / "x").exists()


def test_runner_callbacks_come_in_their_order(tmp_path):
    """run_callbacks.runner_callbacks puts the controller and the sparsity monitor first, then
    TestEvaluator, Guard, Recorder (which read what the earlier ones logged), TensorBoard, the
    user's callbacks, Progress; the Guard it returns is the one the others consult."""
    import keras

    from kerasparse import run_callbacks
    from kerasparse.config import resolve
    from kerasparse.run_record import RunRecord

    record = RunRecord(str(tmp_path), resolve(), "jax", steps=3)
    controller, monitor, board, user = (keras.callbacks.Callback() for _ in range(4))
    guard, cbs = run_callbacks.runner_callbacks(
        record, test_ds=None, controller=controller, sparsity_monitor=monitor,
        tensorboard=board, user_callbacks=[user], verbose=1)
    assert cbs[:2] == [controller, monitor] and cbs[5:7] == [board, user]
    assert [type(cb).__name__ for cb in cbs[2:5] + cbs[7:]] == [
        "TestEvaluator", "Guard", "Recorder", "Progress"]
    assert cbs[3] is guard and cbs[2].guard is guard and cbs[4].guard is guard
    _, quiet = run_callbacks.runner_callbacks(record, test_ds=None, verbose=0)
    assert [type(cb).__name__ for cb in quiet] == ["TestEvaluator", "Guard", "Recorder"]


def test_tensorboard_without_the_package_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if it were not installed
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", *SMALL, "--epochs", "1", "--out", str(out),
                                 "--tensorboard"])
    text = " ".join(result.output.split())
    assert result.exit_code == 2, text
    assert ("TensorBoard logging needs the tensorboard package, which is not installed: "
            "pip install tensorboard") in text
    assert "Traceback" not in text and text.count("Error:") == 1
    assert not out.exists()

"""The training step's speed options (issue 12, items 1 and 4): ``--data-format``,
``--jit-compile``, ``--steps-per-execution`` in ``kerasparse train`` (config keys, so presets
and sweeps have them too), results that do not depend on them, a failed compilation
reported in one line, and the loss guard and progress bar reading no device value after
every batch."""

import csv
import os

import keras
import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import BACKEND
from kerasparse import run_callbacks, step_options, train
from kerasparse.cli import app
from kerasparse.config import ConfigError, resolve

runner = CliRunner()

SMALL = [
    "--model", "wrn16-1", "--set", "depth=10", "--dataset", "embedded", "--train-examples", "32",
    "--batch-size", "32", "--epochs", "2", "--controller", "constant", "--keep-ratio", "0.3",
    "--lr", "0.05", "--set", "monitor_batch=32", "--set", "test_examples=32",
]


def _train(*args):
    # In this process (CliRunner): these tests are about the runs' results, not the process,
    # and a new interpreter would only add the import of Keras and the backend.
    result = runner.invoke(app, ["train", "--quiet", *args])
    assert result.exit_code == 0, (result.output[-3000:], result.exception)


def _history(run_dir):
    with open(os.path.join(run_dir, "history.csv"), newline="") as f:
        return list(csv.DictReader(f))


def test_data_format_does_not_change_the_run(tmp_path):
    """The same run in NHWC and NCHW: the same history within float tolerance (the layout
    only changes the order of the convolutions' sums). TensorFlow runs NCHW on a CPU only
    under XLA, so there both runs are XLA-compiled."""
    xla = ["--jit-compile", "true"] if BACKEND == "tensorflow" else []
    for layout in ("channels_last", "channels_first"):
        _train(*SMALL, *xla, "--data-format", layout, "--out", str(tmp_path / layout))
    a, b = _history(tmp_path / "channels_last"), _history(tmp_path / "channels_first")
    assert len(a) == len(b) == 2
    for ra, rb in zip(a, b):
        for key in ("loss", "accuracy", "test_loss", "test_accuracy", "nz"):
            assert float(ra[key]) == pytest.approx(float(rb[key]), rel=1e-4, abs=1e-5), key
    assert float(a[0]["loss"]) != float(a[1]["loss"])  # it trained
    import json

    steps = [json.load(open(tmp_path / d / "summary.json"))["step"] for d in
             ("channels_last", "channels_first")]
    assert [s["data_format"] for s in steps] == ["channels_last", "channels_first"]


def test_step_options_are_config_keys():
    config = resolve(overrides={"data_format": "channels_first", "jit_compile": True,
                                "steps_per_execution": 4})
    assert (config["data_format"], config["jit_compile"], config["steps_per_execution"]) == (
        "channels_first", "true", 4)  # a TOML/--set boolean is read as "true"
    defaults = resolve()
    assert (defaults["data_format"], defaults["jit_compile"],
            defaults["steps_per_execution"]) == ("auto", "auto", 1)
    with pytest.raises(ConfigError, match="jit_compile must be one of auto, true, false"):
        resolve(overrides={"jit_compile": "sometimes"})
    assert step_options.data_format("auto", "torch") == "channels_first"
    assert step_options.data_format("auto", "jax") == "channels_last"
    assert step_options.compile_kwargs("jax", "false", 3) == {
        "jit_compile": False, "steps_per_execution": 3}


def _tf_has_gpu():
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def test_channels_first_on_a_tensorflow_cpu_needs_xla(tmp_path):
    if BACKEND != "tensorflow" or _tf_has_gpu():
        pytest.skip("tensorflow on a CPU only: jax and torch run NCHW anywhere, and so does "
                    "tensorflow on a GPU (the test above trains channels_first)")
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", *SMALL, "--data-format", "channels_first",
                                 "--out", str(out)])
    text = " ".join(result.output.split())
    assert result.exit_code == 2, text
    assert "channels_first on tensorflow needs a GPU or jit_compile true" in text
    assert "Traceback" not in text and not out.exists()


def test_steps_per_execution_on_torch_is_refused(tmp_path):
    if BACKEND != "torch":
        pytest.skip("torch only: Keras runs jax and tensorflow steps several per execution "
                    "(test_step_options.py::test_steps_per_execution_gives_the_same_run)")
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", *SMALL, "--steps-per-execution", "2", "--out", str(out)])
    text = " ".join(result.output.split())
    assert result.exit_code == 2, text
    assert "steps_per_execution must be 1 on the torch backend" in text
    assert "Traceback" not in text and not out.exists()


def test_steps_per_execution_gives_the_same_run(tmp_path):
    if BACKEND == "torch":
        pytest.skip("Keras runs torch steps one at a time (refused: see the test above)")
    # An MLP: steps per execution is the trainer's loop, not the model's (a WRN here costs
    # minutes of XLA compilation on a 2-core CPU for nothing more).
    common = [*SMALL, "--model", "mlp100x300", "--set", "depth=3", "--set", "width=16",
              "--controller", "none", "--keep-ratio", "1",  # (no controller reads r here)
              "--epochs", "1", "--train-examples", "64", "--set", "monitor_batch=0"]
    _train(*common, "--out", str(tmp_path / "one"))
    _train(*common, "--steps-per-execution", "2", "--out", str(tmp_path / "two"))
    a, b = _history(tmp_path / "one"), _history(tmp_path / "two")
    for key in ("loss", "accuracy", "test_loss"):
        assert float(a[0][key]) == pytest.approx(float(b[0][key]), rel=1e-5, abs=1e-6), key


# --- a compilation that fails ------------------------------------------------------------------


class _FailsWhenCompiled(keras.layers.Layer):
    """Identity, except while the step is being compiled (jax tracing, an XLA-compiled
    TensorFlow function): then it raises, as a layer the compiler cannot handle would."""

    def call(self, x):
        from keras.src.backend.common.symbolic_scope import in_symbolic_scope

        if BACKEND == "jax":
            import jax

            # (Keras' shape inference traces too, inside its symbolic scope: not a compile.)
            if isinstance(x, jax.core.Tracer) and not in_symbolic_scope():
                raise TypeError("this layer cannot be traced by jax.jit")
        elif BACKEND == "tensorflow":
            from kerasparse import ops as ksops

            if ksops._in_xla_tf():
                raise TypeError("this layer has no XLA kernel")
        return x

    def compute_output_shape(self, input_shape):
        return input_shape


def _small_model(config, data):
    inputs = keras.Input(tuple(data.input_shape))
    h = _FailsWhenCompiled()(keras.layers.Flatten()(inputs))
    return keras.Model(inputs, keras.layers.Dense(data.num_classes)(h))


def test_failed_compilation_is_one_line_naming_the_way_out(tmp_path, monkeypatch):
    monkeypatch.setattr(train, "build_model", _small_model)
    if BACKEND == "torch":
        # dynamo falls back to eager on code it cannot trace instead of failing, so a
        # failure of torch.compile itself is simulated.
        import torch

        def failing_compile(fn, *args, **kwargs):
            def compiled(*a, **k):
                raise torch._dynamo.exc.InternalTorchDynamoError("simulated compiler failure")

            return compiled

        monkeypatch.setattr(torch, "compile", failing_compile)
    args = ["train", "--model", "wrn16-1", "--dataset", "embedded", "--train-examples", "64",
            "--batch-size", "32", "--epochs", "1", "--set", "monitor_batch=0",
            "--set", "test_examples=32"]
    out = tmp_path / "run"
    result = runner.invoke(app, [*args, "--jit-compile", "true", "--out", str(out)])
    text = " ".join(result.output.split())
    assert result.exit_code == 1, text
    assert "of the training step failed on " + BACKEND in text
    assert "--jit-compile false" in text and "Traceback" not in text
    assert not out.exists()  # nothing was trained, nothing is left
    # The way out works.
    result = runner.invoke(app, [*args, "--jit-compile", "false", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "summary.json").exists()


# --- no per-batch read in the loss guard and the progress bar ------------------------------------


class _Value:
    """A log value that counts how often it is read as a number."""

    reads = 0

    def __init__(self, value):
        self.value = value

    def __float__(self):
        _Value.reads += 1
        return float(self.value)


def test_guard_and_progress_do_not_read_the_loss_after_every_batch():
    steps = 4 * run_callbacks.CHECK_EVERY + 7
    guard, progress = run_callbacks.Guard(steps), run_callbacks.Progress(1, steps)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    assert guard.async_safe and progress.async_safe
    callbacks = keras.callbacks.CallbackList([guard, progress], model=model)
    # Keras dispatches batch hooks in its thread pool only when every callback is async-safe
    # (jax and torch; TensorFlow is not thread-safe in Keras' sense).
    assert callbacks._async_train == (BACKEND != "tensorflow")
    _Value.reads = 0
    for cb in (guard, progress):
        cb.set_model(model)
    progress.on_train_begin()
    for cb in (guard, progress):
        cb.on_epoch_begin(0)
    for batch in range(steps):
        logs = {"loss": _Value(1.0), "accuracy": _Value(0.5)}
        guard.on_train_batch_end(batch, logs)
        progress.on_train_batch_end(batch, logs)
    per_batch_reads = _Value.reads
    epoch_logs = {"loss": 1.0, "accuracy": 0.5}
    guard.on_epoch_end(0, epoch_logs)
    progress.on_epoch_end(0, epoch_logs)
    progress.on_train_end()
    checks = steps // run_callbacks.CHECK_EVERY
    assert per_batch_reads == checks * 3  # guard: loss; progress: loss and accuracy
    assert guard.diverged is None and guard.steps_done == steps


def test_guard_stops_a_diverged_epoch_at_its_end():
    guard = run_callbacks.Guard(10)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.stop_training = False  # (fit sets it)
    guard.set_model(model)
    guard.on_epoch_begin(2)
    for batch in range(10):  # fewer steps than CHECK_EVERY: only the epoch's end looks
        guard.on_train_batch_end(batch, {"loss": np.inf if batch == 3 else 1.0})
    assert guard.diverged is None and not model.stop_training
    guard.on_epoch_end(2, {"loss": float("nan")})  # the epoch's mean carries the inf/NaN
    assert guard.diverged == {"epoch": 3, "step": 10, "loss": pytest.approx(float("nan"),
                                                                           nan_ok=True)}
    assert model.stop_training

"""Data-parallel training (issue 6): ``kerasparse.distribution.data_parallel`` on 2 faked CPU devices
equals 1 device with the same global batch, on jax (keras.distribution.DataParallel, devices
faked with XLA_FLAGS before jax is imported) and tensorflow (MirroredStrategy over 2 logical
CPUs); torch says it is not supported. Each multi-device run is a fresh subprocess because
the device set-up must happen before the backend initialises (1-device runs of the command
line run in this process)."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import BACKEND

SCRIPT = r"""
import os, sys
import numpy as np
backend = os.environ["KERAS_BACKEND"]
if backend == "tensorflow":
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from kerasparse import bench, distribution

def run(devices):
    keras.utils.set_random_seed(7)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 10, 8).astype("int32")
    with distribution.data_parallel(devices):
        # depth 10: one block per group (the same layer kinds as depth 16: top-k sites,
        # RMSNorm, projection shortcuts) compiles in about half the time.
        model = bench.build_model("wrn16-1", keep_ratio=0.5, data_format="channels_last",
                                  input_shape=(8, 8, 3), depth=10)
        bench.compile_for_benchmark(model, learning_rate=0.05)
    losses = [float(model.train_on_batch(x, y)) for _ in range(3)]
    return losses, [np.asarray(v) for v in model.trainable_weights]

l1, w1 = run(1)
l2, w2 = run(2)
np.testing.assert_allclose(l1, l2, rtol=1e-4, atol=1e-5)
for a, b in zip(w1, w2):
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)
print("LOSSES", l1, l2)
"""


def _run(backend):
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    if backend == "jax":
        env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    return subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                          text=True, timeout=600)


def test_two_devices_equal_one_device():
    if BACKEND == "torch":
        pytest.skip("torch has no multi-device support yet (its error is tested below)")
    proc = _run(BACKEND)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "LOSSES" in proc.stdout


def test_torch_says_multi_device_is_not_supported():
    import keras

    from kerasparse import distribution

    if BACKEND != "torch":
        with pytest.raises(ValueError, match="devices=5 but only"):
            with distribution.data_parallel(5):
                pass
        return
    with pytest.raises(ValueError, match="not supported on the torch backend yet"):
        with distribution.data_parallel(2):
            pass
    assert keras.backend.backend() == "torch"


TRAIN = [
    "--model", "wrn16-1", "--set", "depth=10", "--dataset", "embedded", "--train-examples", "64",
    "--batch-size", "32", "--epochs", "2", "--controller", "mult", "--factor", "0.5",
    "--lr", "0.05", "--set", "monitor_batch=32", "--set", "test_examples=64",
]


def _train(out, devices):
    env = {**os.environ, "KERAS_BACKEND": BACKEND, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("XLA_FLAGS", None)  # `kerasparse train --devices N` makes the CPU devices itself
    return subprocess.run(
        [sys.executable, "-m", "kerasparse.cli", "train", "--quiet", *TRAIN, "--devices",
         str(devices), "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=600,
    )


def test_train_on_two_devices_equals_one_device(tmp_path):
    """`kerasparse train --devices 2` (same global batch) reproduces the 1-device run: the
    same per-epoch losses and keep ratios, on jax (DataParallel over 2 host devices) and
    tensorflow (MirroredStrategy over 2 logical CPUs); torch refuses with one line, exit 2."""
    if BACKEND == "torch":
        proc = _train(tmp_path / "two", 2)
        assert proc.returncode == 2
        assert "not supported on the torch backend yet" in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
        assert not os.path.exists(tmp_path / "two")
        return
    from typer.testing import CliRunner

    from kerasparse.cli import app

    rows = {}
    for devices in (1, 2):
        if devices == 1:  # no device set-up: this process will do (CliRunner)
            result = CliRunner().invoke(app, ["train", "--quiet", *TRAIN, "--devices", "1",
                                              "--out", str(tmp_path / "d1")])
            assert result.exit_code == 0, (result.output[-3000:], result.exception)
        else:
            proc = _train(tmp_path / f"d{devices}", devices)
            assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
        with open(tmp_path / f"d{devices}" / "summary.json") as f:
            summary = json.load(f)
        assert summary["config"]["devices"] == devices
        assert (summary["devices"] is None) == (devices == 1)
        if devices == 2:
            assert len(summary["devices"]) == 2 and summary["devices"][0] != summary["devices"][1]
        with open(tmp_path / f"d{devices}" / "history.csv", newline="") as f:
            rows[devices] = list(csv.DictReader(f))
    assert len(rows[1]) == len(rows[2]) == 2
    for a, b in zip(rows[1], rows[2]):
        assert a["keep_ratio"] == b["keep_ratio"]
        for key in ("loss", "accuracy", "test_loss"):
            np.testing.assert_allclose(float(a[key]), float(b[key]), rtol=1e-4, atol=1e-5)

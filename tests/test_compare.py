"""``kerasparse compare`` (issue 6): a tiny model for a few steps on all three backends, each
in its own subprocess, from the same initial weights.

The command itself spawns one subprocess per backend, so this test covers every backend from
a single pytest process: it runs in the jax process of ``dev.sh test`` and is skipped (with
that reason) in the torch and tensorflow processes, which would only repeat it.
"""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import BACKEND
from kerasparse.cli import app

runner = CliRunner()
BACKENDS = ["jax", "torch", "tensorflow"]


@pytest.mark.slow
def test_compare_three_backends_on_a_tiny_model(tmp_path):
    if BACKEND != "jax":
        pytest.skip("covers all three backends in subprocesses; runs once, in the jax process")
    out = tmp_path / "cmp"
    args = ["compare", "--out", str(out), "--backends", ",".join(BACKENDS), "--model", "wrn16-1",
            "--dataset", "embedded", "--epochs", "2", "--batch-size", "8",
            "--steps-per-epoch", "2", "--train-examples", "16", "--test-examples", "16",
            "--keep-ratio", "0.5"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "compare.json").read_text())
    rows = {r["backend"]: r for r in summary["results"]}
    assert list(rows) == BACKENDS
    for r in rows.values():
        assert r["steps"] == 4 and r["step_s"] > 0 and r["peak_rss_mb"] > 50
        assert len(r["accuracy"]) == 2 and 0 <= r["final_accuracy"] <= r["best_accuracy"] <= 1
        # 16 test examples: accuracies are multiples of 1/16.
        assert r["best_accuracy"] * 16 == pytest.approx(round(r["best_accuracy"] * 16))
    # Same initial weights everywhere: the initial losses agree to float32 round-off.
    losses = [r["initial_loss"] for r in rows.values()]
    assert summary["initial_loss_max_diff"] == pytest.approx(max(losses) - min(losses))
    assert summary["initial_loss_max_diff"] < 1e-4
    table = (out / "compare.md").read_text()
    assert all(f"| {b} |" in table for b in BACKENDS)
    # Results are never overwritten silently.
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "--overwrite" in again.output


def test_compare_rejects_an_unknown_backend(tmp_path):
    result = runner.invoke(app, ["compare", "--out", str(tmp_path / "x"), "--backends", "jax,troch"])
    assert result.exit_code == 2 and "unknown backend 'troch'" in result.output
    assert not (tmp_path / "x").exists()


def test_initial_loss_is_evaluate_on_the_normalised_first_examples():
    """Issue 15, item 5: compare's initial loss is ``model.evaluate`` on the first training
    examples normalised once, built here independently from the raw uint8 images and the
    bundle's per-channel statistics; inputs normalised twice (the old bug) give another loss."""
    from kerasparse import compare, train
    from kerasparse.config import resolve
    from kerasparse.data import load_arrays

    import keras

    config = resolve(overrides={"model": "wrn16-1", "dataset": "embedded", "batch_size": 32})
    data = train.build_data(config)  # CIFAR-like images, per-channel normalisation
    # Any model shows it; a linear one keeps the test fast (a WRN compiles for a minute on jax).
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(data.input_shape), keras.layers.Flatten(),
                              keras.layers.Dense(data.num_classes)])
    model = train.compile_model(model, config, 1)
    loss = compare.initial_loss(model, data, examples=64)

    ((x_raw, y_raw), _), _ = load_arrays("embedded")
    norm = data.normalization
    assert norm["kind"] == "channel"
    x_ref = ((x_raw[:64] / 255.0 - np.asarray(norm["mean"])) / np.asarray(norm["std"]))
    expected = model.evaluate(x_ref.astype("float32"), y_raw[:64], batch_size=32, verbose=0,
                              return_dict=True)["loss"]
    assert loss == pytest.approx(expected, rel=1e-5)
    x_twice = data.normalize(data.train_arrays()[0][:64])
    twice = model.evaluate(x_twice, y_raw[:64], batch_size=32, verbose=0,
                           return_dict=True)["loss"]
    assert abs(twice - loss) > 1e-3 * abs(loss)

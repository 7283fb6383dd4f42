"""The presets (configs/*.toml): each resolves, is headed by its own command and a runtime, and
runs the papers' data protocol (issue 17); the Tiny ImageNet preset trains from a
tiny-imagenet-200 folder (a synthetic one made here: there is no Tiny ImageNet on CI)."""

import json
import pathlib
import re

import pytest
from typer.testing import CliRunner

from kerasparse import config as ks_config
from kerasparse.cli import app
from test_sources import _fake_tiny_imagenet

CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "configs"
PRESETS = sorted(CONFIGS.glob("*.toml"))


@pytest.mark.parametrize("path", PRESETS, ids=[p.stem for p in PRESETS])
def test_preset_resolves_and_is_headed_by_its_command_and_runtime(path):
    config = ks_config.resolve(path)
    header = "".join(line for line in path.read_text().splitlines(keepends=True)
                     if line.startswith("#"))
    assert f"kerasparse train --config configs/{path.name}" in header
    assert re.search(r"# Expected runtime: \S", header), "no runtime line"
    # Dent & Tanner's protocol: 20% test, 10% of the rest validation; the others official.
    expected = "pooled" if path.name.startswith("dent-tanner2026") else "official"
    assert config["split"] == expected
    if expected == "pooled":
        assert config["validation_split"] == 0.1


def test_the_missing_presets_hold_the_papers_settings():
    table4 = ks_config.resolve(CONFIGS / "dent-tanner2026-cst-dnn-mnist.toml")
    assert (table4["model"], table4["activation"], table4["batch_size"], table4["lr"],
            table4["epochs"]) == ("mlp100x300", "cst", 64, 1e-4, 200)
    tiny = ks_config.resolve(CONFIGS / "dent-tanner2026-cnn-tinyimagenet.toml")
    assert (tiny["model"], tiny["dataset"], tiny["schedule"], tiny["lr"], tiny["batch_size"],
            tiny["optimizer"], tiny["momentum"]) == (
        "cnn50x300", "tiny_imagenet", "cosine", 1e-3, 64, "sgd", 0.0)
    for table in ("dnn-mnist", "cnn-cifar10"):
        q2 = ks_config.resolve(CONFIGS / f"dent-tanner2026-{table}-q2.toml")
        q1 = ks_config.resolve(CONFIGS / f"dent-tanner2026-{table}-q1.toml")
        assert q2["q_star"] == 2.0 and {**q2, "q_star": 1.0} == q1
    cst = ks_config.resolve(CONFIGS / "price2024-cst.toml")
    crelu = ks_config.resolve(CONFIGS / "price2024-crelu.toml")
    assert cst["activation"] == "cst" and {**cst, "activation": "crelu"} == crelu


def test_tiny_imagenet_preset_trains_from_a_tiny_imagenet_folder(tmp_path, monkeypatch):
    """The preset (shrunk to 2 layers of 4 channels, one epoch) on a synthetic folder of
    10 JPEGs (3 classes x 2 training images, 4 labelled val images): pooled, that is 7 / 1 / 2
    (round(0.2 * 10) test, round(0.1 * 8) validation)."""
    _fake_tiny_imagenet(tmp_path / "data")
    monkeypatch.setenv("KERASPARSE_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "run"
    result = CliRunner().invoke(app, [
        "train", "--config", str(CONFIGS / "dent-tanner2026-cnn-tinyimagenet.toml"),
        "--data-dir", str(tmp_path / "data"), "--set", "depth=2", "--set", "width=4",
        "--epochs", "1", "--set", "monitor_batch=0", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["data"] == {"split": "pooled", "num_train": 7, "num_val": 1, "num_test": 2,
                               "source": f"files:{tmp_path / 'data'}", "test_evaluated": 2}
    assert {"val_accuracy", "test_accuracy"} <= set(summary["final"])

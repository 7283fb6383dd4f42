"""``kerasparse report`` (issue 17): Dent & Tanner's Fig. 5/6 layout over a sweep folder (mean
+- sd across seeds per q*), Wang's per-run figure with its resets and best-accuracy line, several
runs in one figure, and a table readable at 80 columns. Backend-free: the run directories are
written here as ``kerasparse train`` writes them."""

import io
import json
import os

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from kerasparse import report
from kerasparse.cli import app, report_cmd

runner = CliRunner()


def make_run(path, config, history, summary):
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f)
    keys = list(history[0])
    with open(os.path.join(path, "history.csv"), "w") as f:
        f.write(",".join(keys) + "\n")
        for row in history:
            f.write(",".join("" if row[k] is None else repr(row[k]) for k in keys) + "\n")
    with open(os.path.join(path, "summary.json"), "w") as f:
        json.dump(summary, f)


def losses(q, seed, epochs=4):
    """Made-up curves that differ by q* and seed."""
    rng = np.random.default_rng(int(q * 100 + seed))
    return [float(2.3 / (1 + q * e) + 0.05 * rng.random()) for e in range(1, epochs + 1)]


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    """A 2 (q*) x 2 (s) grid, 3 seeds: what ``kerasparse sweep`` leaves (plan + cells)."""
    out = tmp_path_factory.mktemp("sweep")
    grid = {"sparsity": [0.8, 0.9], "q_star": [1.0, 3.0]}
    seeds = [3407, 3408, 3409]
    cells = []
    for s in grid["sparsity"]:
        for q in grid["q_star"]:
            for seed in seeds:
                name = f"sparsity={s}_q_star={q}_seed={seed}"
                cells.append(name)
                loss = losses(q, seed)
                history = [{"epoch": e + 1, "loss": v, "val_accuracy": 1 - v / 3,
                            "test_accuracy": 1 - v / 2.9, "nz": 1 - s}
                           for e, v in enumerate(loss)]
                config = {"model": "mlp100x300", "dataset": "mnist", "activation": "crelu",
                          "controller": "none", "backend": "jax", "seed": seed, "epochs": 4,
                          "sparsity": s, "q_star": q}
                make_run(out / name, config, history, {
                    "status": "completed", "best_test_accuracy": max(
                        r["test_accuracy"] for r in history), "best_epoch": 4,
                    "steps_per_epoch": 50, "wall_time_s": 12.5,
                    "measured_sparsity": {"overall": s, "layers": {}}})
    (out / "sweep-plan.json").write_text(json.dumps({"grid": grid, "seeds": seeds,
                                                     "cells": cells}))
    return out


def test_seed_curves_are_the_mean_and_sd_across_seeds():
    histories = [[{"epoch": float(e), "loss": v} for e, v in enumerate(losses(1, s), 1)]
                 for s in range(3)]
    histories[2] = histories[2][:3]  # a shorter seed: curves over the epochs all seeds have
    x, mean, sd = report.seed_curves(histories, "loss", steps_per_epoch=50)
    values = np.array([[row["loss"] for row in h[:3]] for h in histories])
    assert x == [50, 100, 150]
    np.testing.assert_allclose(mean, values.mean(axis=0))
    np.testing.assert_allclose(sd, values.std(axis=0, ddof=1))
    assert report.seed_curves(histories[:1], "loss")[2] == [0.0, 0.0, 0.0, 0.0]


def test_report_over_a_sweep_draws_figure5_per_sparsity_with_a_line_per_q_star(sweep_dir):
    result = runner.invoke(app, ["report", "--json", str(sweep_dir)])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert len(rows) == 12 and {r["measured_sparsity"] for r in rows} == {0.8, 0.9}
    for name in ("figure-s=0.8.png", "figure-s=0.9.png"):  # one figure per sparsity
        assert os.path.getsize(sweep_dir / name) > 10_000
    groups, steps = report.sweep_series(str(sweep_dir))
    assert list(groups) == ["s = 0.8", "s = 0.9"] and steps == 50
    series = groups["s = 0.9"]
    assert list(series) == ["q* = 1", "q* = 3"] and len(series["q* = 3"]) == 3
    x, mean, sd = report.seed_curves(series["q* = 3"], "loss", steps)
    values = np.array([losses(3.0, seed) for seed in (3407, 3408, 3409)])
    assert x == [50, 100, 150, 200]  # steps: summary.json's steps_per_epoch
    np.testing.assert_allclose(mean, values.mean(axis=0))
    np.testing.assert_allclose(sd, values.std(axis=0, ddof=1))
    # (b) is the validation accuracy where the runs have it (Dent & Tanner hold out 10%).
    _, acc, _ = report.seed_curves(series["q* = 3"], "val_accuracy", steps)
    np.testing.assert_allclose(acc, (1 - values / 3).mean(axis=0))


def test_reset_epochs_and_the_run_figure(tmp_path):
    history = [{"epoch": float(e), "loss": 1.0 / e, "accuracy": 0.1 * e, "test_accuracy": 0.1 * e,
                "keep_ratio": r, "resets": float(n)}
               for e, r, n in [(1, 1.0, 0), (2, 0.5, 0), (3, 1.0, 1), (4, 0.5, 1), (5, 1.0, 2)]]
    assert report.reset_epochs(history) == [3.0, 5.0]
    make_run(tmp_path / "run", {"model": "wrn16-1", "controller": "mult"}, history,
             {"status": "completed", "best_test_accuracy": 0.5, "best_epoch": 5})
    assert os.path.getsize(report.plot_run(str(tmp_path / "run"))) > 10_000


def test_report_table_of_several_runs_fits_80_columns(sweep_dir, tmp_path, monkeypatch):
    buf = io.StringIO()
    monkeypatch.setattr(report_cmd, "console", Console(file=buf, width=80))
    cells = report.sweep_cells(str(sweep_dir))[:4]
    result = runner.invoke(app, ["report", "--no-plots", *cells])
    assert result.exit_code == 0, result.output
    text = buf.getvalue()
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80, text
    # Values shared by every run go into the title; each number is printed whole.
    assert "model mlp100x300" in text and "backend jax" in text
    for header in ("best acc", "sparsity", "wall s"):
        assert header in text, text
    best = report.run_row(cells[0])["best_test_accuracy"]
    assert f"{best:.4f}" in text and "0.8000" in text and "12.5" in text
    # Several runs in one figure (the CLI writes it to --figure or <parent>/report.png).
    assert os.path.getsize(report.plot_runs(cells[:2], str(tmp_path / "all.png"))) > 10_000

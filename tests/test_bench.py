"""``kerasparse bench`` (issue 6): the --json report of a tiny model on the active backend,
the ReLU baseline, mixed precision, the GlobalTopK micro-benchmark, and bad input."""

import json

import pytest
from typer.testing import CliRunner

from conftest import BACKEND
from kerasparse.cli import app

runner = CliRunner()
KEYS = {"backend", "model", "batch_size", "keep_ratio", "topk", "step_s", "images_per_s",
        "peak_rss_mb", "inference_s", "data_format", "precision"}
TINY = ["--model", "wrn16-1", "--batch-size", "4", "--steps", "2", "--warmup", "1"]


def _json(result):
    assert result.exit_code == 0, result.output
    return json.loads(result.output.strip().splitlines()[-1])


def test_bench_json_reports_a_topk_run():
    report = _json(runner.invoke(app, ["bench", *TINY, "--keep-ratio", "0.25", "--json"]))
    assert KEYS <= set(report)
    assert report["backend"] == BACKEND and report["model"] == "wrn16-1"
    assert report["topk"] is True and report["keep_ratio"] == 0.25 and report["batch_size"] == 4
    assert len(report["train_step_times_s"]) == 2
    assert report["step_s"] > 0 and report["images_per_s"] == pytest.approx(4 / report["step_s"])
    assert report["peak_rss_mb"] > 50
    assert report["data_format"] == ("channels_first" if BACKEND == "torch" else "channels_last")


def test_bench_no_topk_and_mixed_precision():
    report = _json(runner.invoke(
        app, ["bench", *TINY, "--no-topk", "--no-inference", "--precision", "mixed_bfloat16",
              "--json"]))
    assert report["topk"] is False and report["keep_ratio"] is None
    assert report["precision"] == "mixed_bfloat16" and "inference_s" not in report


def test_bench_sites_micro_benchmark():
    report = _json(runner.invoke(app, ["bench", "--sites", "--batch-size", "2", "--steps", "1",
                                       "--warmup", "1", "--json"]))
    rows = report["sites"]
    assert {r["site"] for r in rows} == {"group1", "group2", "group3"}
    assert {r["config"] for r in rows} == {"relu", "topk r=0.5", "topk r=1"}
    relu = [r for r in rows if r["config"] == "relu"]
    assert all(r["ratio_to_relu"] == 1.0 for r in relu) and all(r["ms"] > 0 for r in rows)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--keep-ratio", "0"], "--keep-ratio must be in (0, 1]"),
        (["--steps", "0"], "--steps must be a positive integer"),
        (["--model", "wrn28-5"], "unknown model 'wrn28-5'"),
        (["--devices", "0"], "devices must be a positive integer"),
        (["--sparse-matvec", "--matvec-n", "0"], "--matvec-n values must be integers in"),
        (["--sparse-matvec", "--matvec-n", "3,x"], "--matvec-n must be comma-separated"),
        (["--sparse-matvec", "--matvec-sparsity", "1"], "--matvec-sparsity values must be in"),
        (["--sparse-matvec", "--matvec-m-over-n", "1e9"], "m * n <= 268435456"),
        (["--sparse-matvec", "--run", "no-such-run"], "has no model.keras"),
        (["--sparse-matvec", "--threads", "-1"], "--threads must be >= 0"),
        (["--sparse-matvec", "--clock", "gpu"], "--clock must be wall or cpu"),
    ],
)
def test_bench_bad_input_is_one_line_and_exit_2(args, message):
    result = runner.invoke(app, ["bench", *args])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output

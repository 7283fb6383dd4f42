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
        (["--keep-ratios", "0.5,0.2,0.50"], "--keep-ratios lists 0.5 twice"),
        # An option that the chosen benchmark would ignore (one table, bench_cmd._READ_BY).
        (["--sites", "--keep-ratios", "0.5"],
         "--keep-ratios and --sites are different benchmarks: choose one"),
        (["--sparse-matvec", "--input-pipeline"], "are different benchmarks: choose one"),
        (["--run", "runs/dt-mlp"], "--run is read by --sparse-matvec only; the training-step "
                                   "benchmark (the default) would ignore it. Received: "
                                   "--run=runs/dt-mlp"),
        (["--threads", "1"], "--threads is read by --sparse-matvec only"),
        (["--augment"], "--augment is read by --input-pipeline only"),
        (["--sites", "--model", "wrn16-1"],
         "--model is read by the training-step benchmark (the default) and --keep-ratios only;"
         " --sites would ignore it. Received: --model=wrn16-1"),
        (["--keep-ratios", "0.5", "--keep-ratio", "0.3"],
         "--keep-ratio is read by the training-step benchmark (the default) and --sites only"),
        (["--keep-ratios", "0.5", "--no-topk"], "--keep-ratios would ignore it"),
        (["--sparse-matvec", "--precision", "mixed_bfloat16"], "--sparse-matvec would ignore"),
        (["--input-pipeline", "--warmup", "3"],
         "--warmup is read by the training-step benchmark (the default), --keep-ratios, "
         "--sites and --sparse-matvec only"),
        (["--no-topk", "--keep-ratio", "0.3"], "--no-topk has no sparse sites"),
    ],
)
def test_bench_bad_input_is_one_line_and_exit_2(args, message):
    result = runner.invoke(app, ["bench", *args])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_bench_no_inference_is_accepted_where_inference_is_not_timed():
    # Only the default benchmark times inference; --no-inference agrees with the others
    # (the goal's command in docs/benchmarks.md passes it with --keep-ratios), while an
    # option they would ignore is refused (above).
    result = runner.invoke(app, ["bench", "--sites", "--no-inference", "--batch-size", "2",
                                 "--steps", "1", "--warmup", "1", "--json"])
    assert {r["site"] for r in _json(result)["sites"]} == {"group1", "group2", "group3"}

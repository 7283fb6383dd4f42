"""`kerasparse sweep` and `kerasparse.sweep.run`: cells, executors (local and Ray), retries,
failures, the aggregate table, progress and bad input.

The cells are real `kerasparse train` subprocesses on the backend of this pytest process (a
tiny MLP on the embedded data). The Ray tests run in the jax pytest process only: the executor
does not depend on the backend (a cell is a `kerasparse train --backend ...` subprocess), and
one Ray start per CI run keeps the suite short. The local executor is tested on every backend.
"""

import csv
import importlib.util
import io
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time

import pytest
from rich.console import Console
from typer.testing import CliRunner

from conftest import BACKEND
from kerasparse import config as ks_config
from kerasparse import sweep
from kerasparse.cli import app

runner = CliRunner()

PRESET = """\
model = "mlp100x300"
depth = 3
width = 8
dataset = "embedded"
epochs = 2
batch_size = 32
train_examples = 64
test_examples = 64
monitor_batch = 16
"""
GRID = {"lr": [0.05, 0.1], "sparsity": [0.8, 0.9]}  # 2 x 2 cells; lr=0.05: a pack (below)
HAVE_RAY = importlib.util.find_spec("ray") is not None
RAY_ONLY_ON_JAX = (
    "Ray executor tests run in the jax pytest process only: the executor is backend-independent "
    "(cells are `kerasparse train --backend ...` subprocesses) and Ray starts once per CI run"
)


@pytest.fixture(scope="module")
def preset(tmp_path_factory):
    path = tmp_path_factory.mktemp("preset") / "tiny.toml"
    path.write_text(PRESET)
    return path


def _history(path):
    with open(os.path.join(path, "history.csv"), newline="") as f:
        return [{k: v for k, v in row.items() if k != "epoch_time_s"} for row in csv.DictReader(f)]


def _summary(path):
    with open(os.path.join(path, "summary.json")) as f:
        return json.load(f)


def _listing(root):
    return sorted(os.path.relpath(os.path.join(d, n), root)
                  for d, dirs, files in os.walk(root) for n in dirs + files)


@pytest.fixture(scope="module")
def local_sweep(preset, tmp_path_factory):
    """The 2 x 2 grid on the local executor, two cells at a time, with a terminal-like console
    (the live table's frames land in the buffer)."""
    out = tmp_path_factory.mktemp("local") / "sweep"
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=200)
    table = sweep.run(preset, grid=GRID, out=out, backend=BACKEND, executor="local", workers=2,
                      console=console)
    return table, out, buf.getvalue()


def test_local_sweep_runs_every_cell_and_aggregates_from_the_run_directories(local_sweep):
    table, out, _ = local_sweep
    assert [(r["lr"], r["sparsity"]) for r in table] == [
        (0.05, 0.8), (0.05, 0.9), (0.1, 0.8), (0.1, 0.9)]
    assert not table.failed and not table.interrupted
    for row in table:
        cell = out / sweep.cell_name({"lr": row["lr"], "sparsity": row["sparsity"]}, 3407)
        s = _summary(cell)
        assert s["status"] == "completed" and s["config"]["lr"] == row["lr"]
        assert s["config"]["sparsity"] == row["sparsity"] and s["backend"] == BACKEND
        assert (row["runs"], row["completed"], row["diverged"], row["failed"]) == (1, 1, 0, 0)
        assert row["median_best_test_accuracy"] == s["best_test_accuracy"]
        history = _history(cell)
        # The MLP's CReLU sites are measured (SparsityMonitor): 1 - nz of the last epoch.
        assert row["measured_sparsity"] == pytest.approx(1 - float(history[-1]["nz"]))
        assert row["measured_sparsity"] == s["measured_sparsity"]["overall"]
        assert len(history) == 2 and (cell / "training.png").exists()
    with open(out / "sweep.json") as f:
        assert json.load(f) == list(table)
    with open(out / "sweep.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["median_best_test_accuracy"]) for r in rows] == [
        r["median_best_test_accuracy"] for r in table]


def test_local_workers_2_runs_two_cells_at_once_never_three(local_sweep):
    table, out, _ = local_sweep
    # Each cell's interval: from its subprocess' start (executor) to its summary.json (written
    # by the training process itself at the end).
    intervals = []
    for record in table.cells:
        (attempt,) = record["attempts"]
        intervals.append((attempt["started"], os.path.getmtime(out / record["cell"] / "summary.json")))
    first, second = intervals[0], intervals[1]
    assert first[0] < second[1] and second[0] < first[1], f"cells 1 and 2 did not overlap: {intervals}"
    for t in sorted(start for start, _ in intervals):
        running = sum(start <= t < end for start, end in intervals)
        assert running <= 2, f"{running} cells at once with --workers 2: {intervals}"


def test_local_sweep_progress_shows_the_live_table_and_events(local_sweep):
    _, _, text = local_sweep
    for word in ("queued", "running", "completed", "best test acc", "started (CPU"):
        assert word in text, word
    assert text.count(": completed (best test accuracy") == 4


def test_rerun_skips_finished_cells_and_gives_the_same_table(local_sweep, preset):
    table, out, _ = local_sweep
    mtimes = {c["cell"]: os.path.getmtime(out / c["cell"] / "summary.json") for c in table.cells}
    buf = io.StringIO()
    again = sweep.run(preset, grid=GRID, out=out, backend=BACKEND, workers=2,
                      console=Console(file=buf, width=200))
    assert list(again) == list(table)
    assert buf.getvalue().count("completed, skipped") == 4
    assert all(c["attempts"] == [] for c in again.cells)
    assert mtimes == {p: os.path.getmtime(out / p / "summary.json") for p in mtimes}


def test_a_failing_cell_is_retried_once_then_marked_failed_and_resumed_by_a_rerun(
        local_sweep, preset, tmp_path, monkeypatch):
    """Through the command line: the sparsity=0.8 cell is SIGKILLed in epoch 2 on both attempts
    (the second attempt resumes from the epoch-1 checkpoint and is killed again); the sweep
    goes on, exits 1 naming the cell and the reason, and records it. A re-run resumes it."""
    out = tmp_path / "sweep"
    monkeypatch.setenv(sweep.FAULT_ENV, "batch:2:1@sparsity=0.8_*@1,2")
    result = runner.invoke(app, ["sweep", str(preset), "--grid", "sparsity=0.8,0.9",
                                 "--set", "lr=0.05", "--out", str(out), "--backend", BACKEND,
                                 "--workers", "2"])
    text = " ".join(result.output.split())
    assert result.exit_code == 1, text
    assert "1 of 2 cells failed (sparsity=0.8_seed=3407)" in text
    assert "sparsity=0.8_seed=3407: failed (killed by SIGKILL); retrying, attempt 2 of 2" in text
    assert "Traceback" not in text
    monkeypatch.delenv(sweep.FAULT_ENV)
    with open(out / "sparsity=0.8_seed=3407.failed.json") as f:
        failed = json.load(f)
    assert failed["returncode"] == -9 and failed["error"] == "killed by SIGKILL"
    assert "--resume" in failed["command"]  # the retry resumed from the checkpoint
    assert [a["attempt"] for a in failed["attempts"]] == [1, 2]
    assert _summary(out / "sparsity=0.9_seed=3407")["status"] == "completed"
    with open(out / "sweep.json") as f:
        rows = json.load(f)
    assert [(r["sparsity"], r["completed"], r["failed"]) for r in rows] == [
        (0.8, 0, 1), (0.9, 1, 0)]

    # The re-run (no fault): the failed cell resumes and completes; the finished one is skipped.
    table = sweep.run(preset, grid={"sparsity": [0.8, 0.9]}, sets={"lr": 0.05}, out=out,
                      backend=BACKEND, workers=2, progress=False)
    assert not table.failed and [r["completed"] for r in table] == [1, 1]
    assert not (out / "sparsity=0.8_seed=3407.failed.json").exists()
    (attempt,) = table.cells[0]["attempts"]
    assert "--resume" in attempt["command"] and table.cells[1]["attempts"] == []
    log = (out / "logs" / "sparsity=0.8_seed=3407.log").read_text()
    assert log.count("=== attempt") == 3
    # Killed twice and resumed: the same history as the uninterrupted cell of the 2 x 2 sweep.
    _, local_out, _ = local_sweep
    reference = _history(local_out / "lr=0.05_sparsity=0.8_seed=3407")
    resumed = _history(out / "sparsity=0.8_seed=3407")
    assert len(resumed) == len(reference) == 2
    for a, b in zip(resumed, reference):
        for key in ("loss", "accuracy", "test_loss", "test_accuracy", "lr"):
            assert float(a[key]) == pytest.approx(float(b[key]), rel=1e-5), key


def test_aggregate_takes_medians_over_seeds_of_finished_runs(tmp_path, preset):
    """Dent & Tanner Table 1 style rows from hand-made run directories (NumPy-free reference:
    statistics.median of the values written)."""
    the_plan = sweep.plan(preset, grid={"lr": [0.05, 0.1]}, seeds=3, out=tmp_path / "s",
                          backend=BACKEND)
    values = {  # cell index -> (status, best test accuracy, last nz) or "failed" / None
        0: ("completed", 0.5, 0.2), 1: ("completed", 0.7, 0.4), 2: ("diverged", 0.1, 0.9),
        3: ("completed", 0.6, 0.25), 4: "failed", 5: None,
    }
    for i, cell in enumerate(the_plan.cells):
        value = values[i]
        if value is None:
            continue
        if value == "failed":
            (tmp_path / "s").mkdir(exist_ok=True)
            with open(cell.path + ".failed.json", "w") as f:
                json.dump({"returncode": 1}, f)
            continue
        status, best, nz = value
        os.makedirs(cell.path)
        with open(os.path.join(cell.path, "config.json"), "w") as f:
            json.dump({**cell.config, "backend": BACKEND}, f)
        with open(os.path.join(cell.path, "summary.json"), "w") as f:
            json.dump({"status": status, "best_test_accuracy": best}, f)
        with open(os.path.join(cell.path, "history.csv"), "w") as f:
            f.write(f"epoch,test_accuracy,nz\n1,{best},{nz}\n")
    rows = sweep.aggregate(the_plan)
    # history.csv's one row holds test_accuracy = best: the final equals the best here.
    assert rows[0] == {"lr": 0.05, "runs": 3, "completed": 2, "diverged": 1, "failed": 0,
                       "median_best_test_accuracy": statistics.median([0.5, 0.7, 0.1]),
                       "median_final_test_accuracy": statistics.median([0.5, 0.7, 0.1]),
                       "measured_sparsity": 1 - statistics.median([0.2, 0.4, 0.9])}
    assert rows[1] == {"lr": 0.1, "runs": 3, "completed": 1, "diverged": 0, "failed": 1,
                       "median_best_test_accuracy": 0.6, "median_final_test_accuracy": 0.6,
                       "measured_sparsity": 1 - 0.25}


def _fake_runs(the_plan, values):
    """Hand-made finished run directories: ``values(cell) -> (best, final test acc, last nz)``
    or None (no run)."""
    for cell in the_plan.cells:
        value = values(cell)
        if value is None:
            continue
        best, final, nz = value
        os.makedirs(cell.path)
        with open(os.path.join(cell.path, "config.json"), "w") as f:
            json.dump({**cell.config, "backend": BACKEND}, f)
        with open(os.path.join(cell.path, "summary.json"), "w") as f:
            json.dump({"status": "completed", "best_test_accuracy": best}, f)
        with open(os.path.join(cell.path, "history.csv"), "w") as f:
            f.write(f"epoch,test_accuracy,nz\n1,{best},0.5\n2,{final},{nz}\n")


def test_table1_layout_of_a_sparsity_vprime_qstar_grid(tmp_path, preset):
    """Dent & Tanner's Table 1 layout: rows s x V'(q*) (ascending), columns q*, each cell
    the median over seeds of the final test accuracy and 1 - the last nz (the reference is
    statistics.median of the values written); written as sweep-table1.md with the sweep
    table and printed by `kerasparse report SWEEP --layout table1`."""
    grid = {"q_star": [3.0, 1.0], "sparsity": [0.9, 0.8], "v_prime": [0.5, 0.7]}
    the_plan = sweep.plan(preset, grid=grid, seeds=3, out=tmp_path / "s", backend=BACKEND)
    final = {}

    def values(cell):
        p = cell.point
        if (p["sparsity"], p["v_prime"], p["q_star"], cell.seed) == (0.9, 0.7, 1.0, 3409):
            return None  # a cell not run yet: 2 of 3 finished
        acc = round(p["sparsity"] - p["v_prime"] / 10 + p["q_star"] / 100
                    + cell.seed % 10 / 1000, 4)
        final.setdefault((p["sparsity"], p["v_prime"], p["q_star"]), []).append(acc)
        return 0.99, acc, round(1 - p["sparsity"] + cell.seed % 10 / 100, 4)

    _fake_runs(the_plan, values)
    rows = sweep.aggregate(the_plan)
    (table,) = sweep.table1(rows)
    assert table["other"] == {} and table["q_star"] == [1.0, 3.0]
    assert [(r["sparsity"], r["v_prime"]) for r in table["rows"]] == [
        (0.8, 0.5), (0.8, 0.7), (0.9, 0.5), (0.9, 0.7)]
    for row in table["rows"]:
        for q in (1.0, 3.0):
            cell = row["cells"][q]
            key = (row["sparsity"], row["v_prime"], q)
            assert cell["accuracy"] == pytest.approx(statistics.median(final[key]))
            seeds = [7, 8] if key == (0.9, 0.7, 1.0) else [7, 8, 9]
            nz = statistics.median([1 - row["sparsity"] + k / 100 for k in seeds])
            assert cell["sparsity"] == pytest.approx(1 - nz)
            assert cell["runs"] == 3 and cell["finished"] == len(seeds)
    text = sweep.format_table1([table])
    lines = text.splitlines()
    assert lines[0] == "| s | V'(q*) | q*=1 acc | sparsity | q*=3 acc | sparsity |"
    assert lines[2].startswith("| 0.8 | 0.5 | ") and " (2/3) " in lines[5]
    assert max(len(line) for line in lines) <= 80
    sweep.write_table(the_plan.out, rows)
    assert (tmp_path / "s" / sweep.TABLE1_FILE).read_text() == text
    result = runner.invoke(app, ["report", str(tmp_path / "s"), "--layout", "table1"])
    assert result.exit_code == 0, result.output
    assert lines[0] in result.output and lines[5] in result.output
    # A grid without q_star has no such layout: one line, exit 2, nothing written.
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "sweep.json").write_text(json.dumps([{**r, "q_star": None} for r in rows][:1])
                                     .replace('"q_star": null, ', ""))
    result = runner.invoke(app, ["report", str(flat), "--layout", "table1"])
    text = " ".join(result.output.split())
    assert result.exit_code == 2 and "needs a sweep whose grid is over sparsity, v_prime and " \
        "q_star" in text and "Traceback" not in text, text
    assert sorted(os.listdir(flat)) == ["sweep.json"]


def test_controller_keys_are_checked_per_cell(tmp_path):
    """A controller swept by the grid: `--set step=...` is fine where every cell's
    controller reads it, and refused, naming the cell, where one would ignore it."""
    the_plan = sweep.plan(None, grid={"controller": ["add"]}, sets={"step": 0.02},
                          out=tmp_path / "a", backend=BACKEND)
    assert [c.config["step"] for c in the_plan.cells] == [0.02]
    with pytest.raises(sweep.SweepError, match=r"cell controller=mult_seed=\d+: step is read by "
                                               r"the add controller only"):
        sweep.plan(None, grid={"controller": ["add", "mult"]}, sets={"step": 0.02},
                   out=tmp_path / "b", backend=BACKEND)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_sgd_keys_of_a_preset_do_not_block_a_grid_over_optimizers(tmp_path):
    """A preset written for plain SGD (momentum 0, no Nesterov) swept over sgd and adam: the
    sgd cell keeps the preset's values, the adam cell records the defaults (Adam reads
    neither) and starts with a command `kerasparse train` accepts. A --set momentum with
    adam in the grid is refused, naming the cell."""
    plain = tmp_path / "plain_sgd.toml"
    plain.write_text('model = "mlp100x300"\ndataset = "embedded"\nmomentum = 0.0\n'
                     'nesterov = false\n')
    the_plan = sweep.plan(str(plain), grid={"optimizer": ["sgd", "adam"]},
                          out=tmp_path / "a", backend=BACKEND)
    by_optimizer = {c.config["optimizer"]: c for c in the_plan.cells}
    assert (by_optimizer["sgd"].config["momentum"], by_optimizer["sgd"].config["nesterov"]) \
        == (0.0, False)
    adam = by_optimizer["adam"]
    assert (adam.config["momentum"], adam.config["nesterov"]) == (0.9, True)
    args = sweep.train_args(adam, BACKEND, "new")
    sets = [args[i + 1] for i, a in enumerate(args) if a == "--set"]
    parsed = dict(ks_config.parse_assignment(a) for a in sets)
    assert "momentum" not in parsed and ks_config.resolve(overrides=parsed) == adam.config
    with pytest.raises(sweep.SweepError, match=r"cell optimizer=adam_seed=\d+: momentum is "
                                               r"read by the sgd optimizer only"):
        sweep.plan(str(plain), grid={"optimizer": ["sgd", "adam"]}, sets={"momentum": 0.5},
                   out=tmp_path / "b", backend=BACKEND)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_train_args_carry_the_full_config(tmp_path, preset):
    """A fresh cell's command gives `kerasparse train` exactly the cell's config (strings with
    quotes and backslashes, small floats, booleans), so no preset file has to reach a worker."""
    the_plan = sweep.plan(
        preset, grid={"weight_decay": [1e-05, 0.25]},
        sets={"data_dir": 'd "x"\\y', "nesterov": False, "controller": "mult",
              "smoothing": 0.5},
        out=tmp_path / "s", backend=BACKEND)
    for cell in the_plan.cells:
        args = sweep.train_args(cell, BACKEND, "new")
        sets = [args[i + 1] for i, a in enumerate(args) if a == "--set"]
        parsed = dict(ks_config.parse_assignment(s) for s in sets)
        assert ks_config.resolve(overrides=parsed) == cell.config
        assert sweep.train_args(cell, BACKEND, "resumable")[-2:] == ["--resume", cell.path]
        assert "--overwrite" in sweep.train_args(cell, BACKEND, "started")


def test_error_line_names_why_a_cell_failed(tmp_path):
    log = tmp_path / "x.log"
    log.write_text("old\n=== attempt 1 ...\nepoch 1/2 ...\nError: unknown dataset 'x'\n")
    assert sweep.error_line(str(log), 0, 2) == "Error: unknown dataset 'x'"
    log.write_text("Traceback (most recent call last):\n  File ...\nValueError: bad shape\n"
                   "W0000 some warning\n")
    assert sweep.error_line(str(log), 0, 1) == "ValueError: bad shape"
    assert sweep.error_line(str(log), 0, -9) == "killed by SIGKILL"
    assert sweep.error_line(str(log), 0, 3) is None  # diverged is a result, not an error
    assert sweep.error_line(str(log), 0, 130).startswith("interrupted")
    log.write_text("something odd\n│ wall time │ 1 s │\n└────┘\n")
    assert sweep.error_line(str(log), 0, 7) == "something odd"


def test_gpu_detection_without_a_backend(monkeypatch):
    assert sweep.visible_gpus({"CUDA_VISIBLE_DEVICES": "0,2"}) == ["0", "2"]
    assert sweep.visible_gpus({"CUDA_VISIBLE_DEVICES": ""}) == []
    assert sweep.visible_gpus({"CUDA_VISIBLE_DEVICES": "-1"}) == []

    class Result:
        returncode = 0
        stdout = ("GPU 0: NVIDIA H200 (UUID: GPU-a)\nGPU 1: NVIDIA H200 (UUID: GPU-b)\n"
                  "  MIG 1g.18gb Device 0: (UUID: MIG-c)\n")

    monkeypatch.setattr(sweep.subprocess, "run", lambda *a, **k: Result())
    assert sweep.visible_gpus({}) == ["0", "1"]

    def missing(*a, **k):
        raise FileNotFoundError("nvidia-smi")

    monkeypatch.setattr(sweep.subprocess, "run", missing)
    assert sweep.visible_gpus({}) == []


def test_local_executor_pins_cells_to_gpus_or_cpu_threads(monkeypatch):
    specs = []
    monkeypatch.setattr(sweep, "execute_job", lambda spec, control=None: specs.append(spec) or [])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    ex = sweep.LocalExecutor("jax", workers=3)
    ex.start()
    where = [ex.submit(sweep.Job([]), {"cells": []}) for _ in range(3)]
    ex.close()
    assert where == ["GPU 3", "GPU 5", "GPU 3"]
    assert [s["env"]["CUDA_VISIBLE_DEVICES"] for s in specs] == ["3", "5", "3"]
    assert all(s["env"]["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false" for s in specs)  # shared
    assert sweep.LocalExecutor("jax").workers == 2  # default: one cell per GPU

    specs.clear()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.setattr(sweep, "_usable_cores", lambda: [0, 1, 2, 3])
    ex = sweep.LocalExecutor("jax", workers=2)
    ex.start()
    where = [ex.submit(sweep.Job([]), {"cells": []}) for _ in range(2)]
    ex.close()
    assert where == ["CPU 0,1", "CPU 2,3"]
    assert [s["cores"] for s in specs] == ["0,1", "2,3"]
    assert all(s["env"]["OMP_NUM_THREADS"] == "2" and s["env"]["TF_NUM_INTRAOP_THREADS"] == "2"
               for s in specs)
    assert sweep.LocalExecutor("jax", workers=1).threads is None  # one worker: whole machine
    assert sweep.LocalExecutor("jax", workers=2**63 - 1).slots() == 2**63 - 1  # no slot list
    assert sweep.thread_env(1, "jax")["XLA_FLAGS"].endswith(sweep.XLA_ONE_THREAD)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_training_process_dies_with_the_worker_that_started_it():
    """A cell's process is started through sweep._LAUNCHER: if the thread or Ray worker waiting
    on it is killed, the kernel kills it too (no orphan keeps training or holds the run lock)."""
    worker_code = (
        "import os, subprocess, sys, time\n"
        "from kerasparse import sweep\n"
        "child = subprocess.Popen([sys.executable, '-c', sweep._LAUNCHER, str(os.getpid()), '',"
        " '-c', 'import time; time.sleep(120)'])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    worker = subprocess.Popen([sys.executable, "-c", worker_code], stdout=subprocess.PIPE, text=True)
    child = int(worker.stdout.readline())
    time.sleep(0.5)  # the launcher has exec'd the long-running command by now
    assert _alive(child)
    worker.kill()
    worker.wait()
    deadline = time.time() + 10
    while _alive(child) and time.time() < deadline:
        time.sleep(0.05)
    assert not _alive(child), "the child outlived the worker that started it"


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_importing_kerasparse_sweep_imports_neither_keras_nor_ray():
    code = ("import sys, kerasparse.sweep; "
            "assert 'keras' not in sys.modules and 'ray' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------------------------------
# Packed sweeps (--pack N): compatible cells trained as one `kerasparse train-pack` process

# 2 cells that differ only in sparsity: one pack. Their unpacked reference is the local
# sweep's lr=0.05 cells (the same configs, each its own `kerasparse train` process).
PACK_GRID, PACK_SETS = {"sparsity": [0.8, 0.9]}, {"lr": 0.05}


def _same_history(got, ref):
    a, b = _history(ref), _history(got)
    assert len(a) == len(b) == 2
    assert list(a[0]) == list(b[0])  # the same columns (nz and nz/<site> included), same order
    for ra, rb in zip(a, b):
        for key in ra:
            assert float(rb[key]) == pytest.approx(float(ra[key]), rel=1e-5, abs=1e-6), key


def _same_table(got, ref):
    assert [list(r) for r in got] == [list(r) for r in ref]  # the same cells and columns
    for rg, rr in zip(got, ref):
        for key, value in rr.items():
            assert rg[key] == (value if not isinstance(value, float)
                               else pytest.approx(value, rel=1e-5, abs=1e-6)), key


def test_a_killed_packed_sweep_resumes_and_gives_what_the_unpacked_sweep_gives(
        local_sweep, preset, tmp_path, monkeypatch):
    """--pack 2: the 2 cells run as one train-pack process, SIGKILLed in epoch 2 (after every
    cell's epoch-1 checkpoint); with retries=0 the 2 cells are recorded failed. The same
    command again (through the command line) resumes them as one pack from epoch 1, and
    every cell's run directory then holds what the --pack 1 sweep's holds: the same files,
    history (loss, accuracy, nz per site, test metrics; float tolerance) and aggregate row.
    (An uninterrupted pack against separate runs: tests/test_packed.py.)"""
    local_table, ref_out, _ = local_sweep
    # The --pack 1 reference: the local sweep's lr=0.05 rows and cells, lr being --set here.
    ref_rows = [{k: v for k, v in r.items() if k != "lr"} for r in local_table
                if r["lr"] == 0.05]
    refs = [c["cell"] for c in local_table.cells if c["cell"].startswith("lr=0.05_")]
    out = tmp_path / "packed"
    names = [sweep.cell_name({"sparsity": s}, 3407) for s in PACK_GRID["sparsity"]]
    assert refs == ["lr=0.05_" + name for name in names]
    pack_log = out / "logs" / f"pack-{names[0]}+1.log"
    monkeypatch.setenv(sweep.FAULT_ENV, "batch:2:1@sparsity=0.9_*")
    table = sweep.run(preset, grid=PACK_GRID, sets=PACK_SETS, out=out, backend=BACKEND, pack=2,
                      retries=0, progress=False)
    assert table.failed == names
    for name in names:
        with open(out / f"{name}.failed.json") as f:
            failed = json.load(f)
        assert failed["error"] == "killed by SIGKILL" and failed["log"] == str(pack_log)
        assert "train-pack" in failed["command"] and failed["command"].count("--member") == 2
        with open(out / name / "checkpoints" / "latest.json") as f:
            assert json.load(f)["epoch"] == 1
    monkeypatch.delenv(sweep.FAULT_ENV)

    result = runner.invoke(app, ["sweep", str(preset), "--grid", "sparsity=0.8,0.9",
                                 "--set", "lr=0.05", "--pack", "2", "--out", str(out),
                                 "--backend", BACKEND])
    text = " ".join(result.output.split())
    assert result.exit_code == 0, text
    assert "2 to run (1 packs)" in text and text.count("pack 1 of 2 cells") == 2
    assert not list(out.glob("*.failed.json"))
    with open(out / "sweep.json") as f:
        _same_table(json.load(f), ref_rows)
    for i, (name, ref) in enumerate(zip(names, refs)):
        _same_history(out / name, ref_out / ref)
        s = _summary(out / name)
        assert s["status"] == "completed"
        assert s["packed"] == {"size": 2, "index": i, "cells": names}
        assert sorted(os.listdir(out / name)) == sorted(os.listdir(ref_out / ref))
        # Each cell's log names the pack's log, which holds the one process' output.
        log = (out / "logs" / f"{name}.log").read_text()
        assert log.count(f"its output: {pack_log}") == 2
    text = pack_log.read_text()
    assert text.count("=== attempt") == 2 and "train-pack --backend" in text
    assert "--resume --cell" in text
    with open(out / sweep.PLAN_FILE) as f:
        assert json.load(f)["pack"] == 2


def test_pack_jobs_group_compatible_cells_that_start_the_same_way(tmp_path, preset):
    """Only cells that differ in seed / sparsity / q* / V' share a pack (a grid over width
    gives a pack per width), at most N per pack; a cell resuming from a checkpoint is packed
    only with cells resuming from the same epoch."""
    the_plan = sweep.plan(preset, grid={"width": [8, 16]}, seeds=3, out=tmp_path / "s",
                          backend=BACKEND)
    cells = the_plan.cells
    names = [[c.name for c in job.cells] for job in sweep.pack_jobs(cells, 2)]
    assert names == [["width=8_seed=3407", "width=8_seed=3408"], ["width=8_seed=3409"],
                     ["width=16_seed=3407", "width=16_seed=3408"], ["width=16_seed=3409"]]
    assert [len(j.cells) for j in sweep.pack_jobs(cells, 1)] == [1] * 6
    assert [len(j.cells) for j in sweep.pack_jobs(cells, 10)] == [3, 3]
    os.makedirs(os.path.join(cells[1].path, "checkpoints"))
    with open(os.path.join(cells[1].path, "config.json"), "w") as f:
        json.dump(cells[1].config, f)
    for ext in ("npz", "json"):
        open(os.path.join(cells[1].path, "checkpoints", f"epoch-0001.{ext}"), "w").close()
    assert sweep.start_key(cells[1].path) == ("resume", 1)
    names = [[c.name for c in job.cells] for job in sweep.pack_jobs(cells[:3], 3)]
    assert names == [["width=8_seed=3407", "width=8_seed=3409"], ["width=8_seed=3408"]]
    # A newer checkpoint written by `kerasparse train` (.weights.h5): that cell resumes alone.
    for name in ("epoch-0002.weights.h5", "epoch-0002.json"):
        open(os.path.join(cells[1].path, "checkpoints", name), "w").close()
    assert sweep.start_key(cells[1].path) == ("alone", cells[1].path)
    assert sweep.checkpoint_epoch(cells[1].path) == 2


def test_train_pack_args_carry_the_full_configs(tmp_path, preset):
    """A new pack's command gives `kerasparse train-pack` exactly each cell's config: the
    shared settings once (--set), each cell's seed / sparsity / q* / V' (--member)."""
    the_plan = sweep.plan(preset, grid={"sparsity": [0.8, 0.9], "q_star": [1.0, 3.0]},
                          seeds=2, sets={"data_dir": 'd "x"\\y', "v_prime": 0.7},
                          out=tmp_path / "s", backend=BACKEND)
    cells = the_plan.cells
    args = sweep.train_pack_args(cells, BACKEND, ("fresh",))
    sets = dict(ks_config.parse_assignment(args[i + 1]) for i, a in enumerate(args)
                if a == "--set")
    dirs = [args[i + 1] for i, a in enumerate(args) if a == "--cell"]
    members = [args[i + 1] for i, a in enumerate(args) if a == "--member"]
    assert dirs == [c.path for c in cells] and len(members) == len(cells)
    for cell, member in zip(cells, members):
        own = dict(ks_config.parse_assignment(m) for m in member.split(","))
        assert ks_config.resolve(overrides={**sets, **own}) == cell.config
    resume = sweep.train_pack_args(cells, BACKEND, ("resume", 3))
    assert "--resume" in resume and "--set" not in resume and "--member" not in resume


def test_an_optimizer_that_cannot_be_packed_is_refused(monkeypatch, tmp_path, preset):
    """Every optimizer kerasparse offers (sgd, adam) packs exactly; one that did not (here:
    adam, declared unpackable for the test) is refused before anything is written."""
    from kerasparse import packed

    monkeypatch.setattr(packed, "PACKABLE_OPTIMIZERS", ("sgd",))
    result, before = _invoke(["--pack", "2", "--grid", "optimizer=sgd,adam"], tmp_path, preset)
    text = " ".join(result.output.split())
    assert result.exit_code == 2, text
    assert "cell optimizer=adam_seed=3407: optimizer 'adam' cannot be packed exactly" in text
    assert _listing(tmp_path) == before


# ---------------------------------------------------------------------------------------------
# Bad input: one line, exit 2, no traceback, nothing written (mirrored in docs/bad-input.md)

# (id, arguments after `sweep PRESET` (OUT, FILE, SWEEPDIR replaced), expected text)
SWEEP_CASES = [
    ("grid-key-twice", ["--grid", "lr=0.05", "--grid", "lr=0.1"], "--grid lr is given twice"),
    ("grid-value-twice", ["--grid", "lr=0.05,0.05"], "--grid lr lists 0.05 twice"),
    ("grid-value-out-of-range", ["--grid", "sparsity=0.8,1.5"],
     "sparsity must be a number in (0, 1)"),
    ("grid-unknown-key", ["--grid", "sparsty=0.8"], "Did you mean 'sparsity'"),
    ("grid-seed", ["--grid", "seed=1,2"], "use --seeds N"),
    ("grid-no-equals", ["--grid", "lr"], "--grid expects key=v1,v2,..."),
    ("grid-model-unknown", ["--grid", "model=mlp100x30"], "Did you mean 'mlp100x300'"),
    ("set-dataset-unknown", ["--set", "dataset=mnsit"], "Did you mean 'mnist'"),
    ("set-and-grid-same-key", ["--set", "lr=0.1", "--grid", "lr=0.05,0.2"],
     "lr is both swept (--grid) and fixed (--set)"),
    ("cell-config-invalid", ["--grid", "min_keep_ratio=0.5,0.95", "--set", "max_keep_ratio=0.9",
                             "--set", "controller=mult"],
     "min_keep_ratio must not exceed max_keep_ratio"),
    ("preset-missing", ["MISSING"], "config file not found"),
    ("seeds-zero", ["--seeds", "0"], "Invalid value for '--seeds'"),
    ("out-is-a-file", ["--out", "FILE"], "exists and is not a directory"),
    ("out-under-a-file", ["--out", "FILE/sub"], "is a file"),
    ("out-not-a-sweep", ["--out", "FOREIGN"], "is not a kerasparse sweep folder"),
    ("out-cell-other-config", ["--out", "SWEEPDIR", "--set", "epochs=3"],
     "holds a run with epochs=2, this sweep asks for epochs=3"),
    ("out-cell-other-backend", ["--out", "SWEEPDIR_OTHER_BACKEND"], "was trained on"),
    ("out-cell-not-a-run", ["--out", "SWEEPDIR_NOT_A_RUN"], "is not a kerasparse run"),
    ("workers-zero", ["--workers", "0"], "--workers must be a whole number >= 1"),
    ("cpus-per-cell-zero", ["--cpus-per-cell", "0"], "--cpus-per-cell must be a number > 0"),
    ("gpus-per-cell-negative", ["--executor", "ray", "--gpus-per-cell", "-1"],
     "--gpus-per-cell must be a number >= 0"),
    ("gpus-per-cell-fraction-above-one", ["--executor", "ray", "--gpus-per-cell", "1.5"],
     "--gpus-per-cell above 1 must be a whole number"),
    ("gpus-per-cell-on-local", ["--gpus-per-cell", "1"], "--gpus-per-cell is for --executor ray"),
    ("address-on-local", ["--address", "127.0.0.1:1"], "--address is for --executor ray"),
    ("retries-negative", ["--retries", "-1"], "retries must be a whole number >= 0"),
    ("cpus-per-cell-above-the-machine", ["--cpus-per-cell", "1e9"], "is more than the"),
    ("seeds-huge", ["--seeds", "9223372036854775807"], "--seeds must be in [1, 100000]"),
    ("cells-too-many", ["--grid", "lr=" + ",".join(f"0.{i:03d}1" for i in range(1000)),
                        "--seeds", "101"], "this sweep has 101000 cells; at most 100000"),
    ("executor-unknown", ["--executor", "slurm"], "'slurm' is not one of"),
    ("pack-zero", ["--pack", "0"], "--pack must be a whole number >= 1"),
    ("pack-negative", ["--pack", "-2"], "--pack must be a whole number >= 1"),
    ("pack-model-not-packable", ["--pack", "2", "--grid", "model=mlp100x300,wrn16-1"],
     "--pack 2: cell model=wrn16-1_seed=3407: model 'wrn16-1' cannot be packed; packable "
     "models: mlp100x300, cnn50x300"),
    ("pack-controller", ["--pack", "2", "--set", "controller=mult"],
     "controller 'mult' cannot be packed"),
    ("pack-devices", ["--pack", "2", "--set", "devices=2"], "devices=2 cannot be packed"),
    ("pack-out-of-memory", ["--pack", "3", "--grid", "sparsity=0.8,0.85,0.9",
                            "ENV:KERASPARSE_PACK_MEMORY=2M"],
     "a pack of 3 cells of mlp100x300 needs about"),
    ("pack-memory-not-a-size", ["--pack", "2", "ENV:KERASPARSE_PACK_MEMORY=lots"],
     "KERASPARSE_PACK_MEMORY must be a number of bytes"),
]


def _sweep_dir(tmp_path, *, backend=BACKEND, cell_text=None):
    """A sweep folder from an earlier run of the test preset (one cell, config.json only)."""
    root = tmp_path / "earlier"
    cell = root / "seed=3407"
    cell.mkdir(parents=True)
    (root / sweep.PLAN_FILE).write_text("{}")
    if cell_text is not None:
        (cell / "notes.txt").write_text(cell_text)
    else:
        config = ks_config.resolve(overrides=_preset_values())
        (cell / "config.json").write_text(json.dumps({**config, "backend": backend}))
    return root


def _preset_values():
    import tomllib

    return ks_config.validate(tomllib.loads(PRESET))


def _invoke(args, tmp_path, preset):
    argv = ["sweep", str(preset)]
    made = None
    env = {}
    for arg in args:
        if arg.startswith("ENV:"):
            key, _, value = arg[4:].partition("=")
            env[key] = value
            continue
        if arg == "MISSING":
            argv[1] = str(tmp_path / "missing.toml")
            continue
        if arg.startswith("FILE"):
            (tmp_path / "file.txt").write_text("x")
            arg = str(tmp_path / "file.txt") + arg[4:]
            made = tmp_path / "file.txt"
        elif arg == "FOREIGN":
            made = tmp_path / "results"
            made.mkdir()
            (made / "paper.tex").write_text("x")
            arg = str(made)
        elif arg == "SWEEPDIR":
            made = _sweep_dir(tmp_path)
            arg = str(made)
        elif arg == "SWEEPDIR_OTHER_BACKEND":
            made = _sweep_dir(tmp_path, backend="torch" if BACKEND != "torch" else "jax")
            arg = str(made)
        elif arg == "SWEEPDIR_NOT_A_RUN":
            made = _sweep_dir(tmp_path, cell_text="my notes")
            arg = str(made)
        argv.append(arg)
    if "--out" not in args:
        argv += ["--out", str(tmp_path / "out")]
    argv += ["--backend", BACKEND]
    before = _listing(tmp_path)
    result = runner.invoke(app, argv, env=env or None)
    return result, before


@pytest.mark.parametrize("case", SWEEP_CASES, ids=[c[0] for c in SWEEP_CASES])
def test_sweep_bad_input(case, tmp_path, preset):
    _, args, expected = case
    result, before = _invoke(args, tmp_path, preset)
    text = " ".join(result.output.split())
    assert result.exit_code == 2, text
    assert expected in text
    assert "Traceback" not in text
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert _listing(tmp_path) == before, "a refused sweep must not write anything"


def test_executor_ray_without_ray_names_the_extra(monkeypatch, tmp_path, preset):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "ray" else real(name, *a))
    result, before = _invoke(["--executor", "ray"], tmp_path, preset)
    text = " ".join(result.output.split())
    assert result.exit_code == 2
    assert "--executor ray needs Ray, an optional extra: pip install 'kerasparse[ray]'" in text
    assert _listing(tmp_path) == before


@pytest.mark.skipif(not HAVE_RAY, reason="ray is not installed (pip install 'kerasparse[ray]')")
@pytest.mark.parametrize("address,expected", [
    ("127.0.0.1:1", "cannot reach the Ray cluster at --address 127.0.0.1:1"),
    ("nohost", "--address must be host:port"),
])
def test_ray_address_that_cannot_be_reached(address, expected, tmp_path, preset):
    result, before = _invoke(["--executor", "ray", "--address", address], tmp_path, preset)
    text = " ".join(result.output.split())
    assert result.exit_code == 2, text
    assert expected in text and "Traceback" not in text
    assert _listing(tmp_path) == before


def test_sweep_cases_are_documented():
    doc = os.path.join(os.path.dirname(__file__), "..", "docs", "bad-input.md")
    text = open(doc).read()
    missing = [case[0] for case in SWEEP_CASES if f"`{case[0]}`" not in text]
    assert not missing, f"cases missing from docs/bad-input.md: {missing}"


# ---------------------------------------------------------------------------------------------
# Ray: one local instance for the module (2 CPUs, a small object store)

ray_only = [
    pytest.mark.skipif(not HAVE_RAY, reason="ray is not installed (pip install 'kerasparse[ray]')"),
    pytest.mark.skipif(BACKEND != "jax", reason=RAY_ONLY_ON_JAX),
]


@pytest.fixture(scope="module")
def ray_instance():
    import ray

    ray.init(num_cpus=2, object_store_memory=80 * 2**20, include_dashboard=False,
             log_to_driver=False)
    yield ray
    ray.shutdown()


@ray_only[0]
@ray_only[1]
def test_ray_gives_the_same_table_and_results_as_local_despite_a_killed_cell_and_a_dead_worker(
        ray_instance, local_sweep, preset, tmp_path, monkeypatch):
    """The 2 x 2 grid on Ray, two of its cells hit by faults on their first attempt.
    lr=0.05_sparsity=0.8: its training process is SIGKILLed in epoch 2: retried, it resumes
    from the epoch-1 checkpoint. lr=0.05_sparsity=0.9: the Ray worker running it dies while
    the cell trains; its training process must die with it (else the retry would find the run
    locked), and the retry starts it again. The table and every cell's history are the local
    sweep's; the other two cells ran once. (One Ray sweep for what were two tests, with
    separate runs of the same two cells.)"""
    local_table, local_out, _text = local_sweep
    monkeypatch.setenv(sweep.FAULT_ENV,
                       "batch:2:1@lr=0.05_sparsity=0.8_*;worker@lr=0.05_sparsity=0.9_*")
    out = tmp_path / "ray"
    buf = io.StringIO()
    table = sweep.run(preset, grid=GRID, out=out, backend=BACKEND, executor="ray",
                      console=Console(file=buf, force_terminal=True, width=200))
    assert not table.failed and [r["completed"] for r in table] == [1, 1, 1, 1]
    # The aggregate: identical rows for the cells that ran once; those of the two retried
    # cells within float tolerance (a resume is exact within rel 1e-5 on jax, not bitwise).
    assert list(table)[2:] == list(local_table)[2:]
    _same_table(list(table)[:2], list(local_table)[:2])
    killed, crashed, *clean = table.cells
    assert [c["cell"] for c in clean] == [c["cell"] for c in local_table.cells[2:]]
    assert [a["error"] for a in killed["attempts"]] == ["killed by SIGKILL", None]
    assert "worker running it died" in crashed["attempts"][0]["error"]
    assert crashed["attempts"][1]["error"] is None
    assert "--resume" in killed["attempts"][1]["command"]
    assert {"--overwrite", "--resume"} & set(crashed["attempts"][1]["command"])
    for record in clean:
        assert [a["attempt"] for a in record["attempts"]] == [1]
    for record in table.cells:  # every cell's history is the uninterrupted local cell's
        reference = _history(local_out / record["cell"])
        got = _history(out / record["cell"])
        if record["attempts"] and len(record["attempts"]) == 1:  # ran once: identical
            assert got == reference
            continue
        assert len(got) == len(reference) == 2
        for a, b in zip(got, reference):
            for key in ("loss", "accuracy", "test_loss", "test_accuracy", "lr"):
                assert float(a[key]) == pytest.approx(float(b[key]), rel=1e-5), key
    text = buf.getvalue()
    for word in ("queued", "running", "ray, 1 node(s), 2 CPUs", "best test acc"):
        assert word in text, word
    leftover = subprocess.run(["pgrep", "-f", f"--out {out}|--resume {out}"],
                              capture_output=True, text=True)
    assert leftover.stdout.strip() == "", "a training process outlived its Ray worker"


@pytest.mark.parametrize("executor", ["local", "ray", "ray_without_cancel"])
def test_ctrl_c_stops_the_running_cells_after_their_batch(executor, request, preset, tmp_path,
                                                          monkeypatch):
    """SIGINT to the driver: the running cell gets one SIGINT (on Ray through the task's
    cancellation and a stop file the worker polls: Ray starts its workers' children with
    SIGINT blocked, the launcher unblocks it), stops after its batch with status interrupted
    and a checkpoint; the queued cell is not started; run() reports interrupted.
    ``ray_without_cancel``: Ray's non-forced cancellation does nothing (it is best effort, and
    was lost in full test runs): the stop file alone must stop the cell."""
    if executor.startswith("ray"):
        if not HAVE_RAY:
            pytest.skip("ray is not installed (pip install 'kerasparse[ray]')")
        if BACKEND != "jax":
            pytest.skip(RAY_ONLY_ON_JAX)
        request.getfixturevalue("ray_instance")
        if executor == "ray_without_cancel":
            import ray

            cancel = ray.cancel
            monkeypatch.setattr(ray, "cancel", lambda ref, force=False, **kw:
                                cancel(ref, force=True, **kw) if force else None)
        executor = "ray"
    out = tmp_path / "sweep"
    first = out / "width=8_seed=3407"

    finished = threading.Event()

    def interrupt_when_training():
        while not finished.is_set() and sweep._epochs_done(str(first)) < 2:
            time.sleep(0.2)
        if not finished.is_set():
            os.kill(os.getpid(), signal.SIGINT)  # sweep.run's handler is installed by now

    timer = threading.Thread(target=interrupt_when_training, daemon=True)
    timer.start()
    try:
        # 500 epochs of 20 steps: far longer than the stop takes to arrive (with 2-step
        # epochs a Ray cell once finished all 500 before the cancellation reached it).
        table = sweep.run(preset, grid={"width": [8, 16]},
                          sets={"epochs": 500, "train_examples": 640}, out=out,
                          backend=BACKEND, executor=executor, workers=1, progress=False)
    finally:
        finished.set()
    timer.join(timeout=5)
    assert table.interrupted
    assert [c["status"] for c in table.cells] == ["interrupted", "not run"]
    s = _summary(first)
    assert s["status"] == "interrupted" and 2 <= s["epochs_done"] < 500
    assert (first / "checkpoints" / "latest.json").exists()
    assert "Interrupted" in (out / "logs" / "width=8_seed=3407.log").read_text()
    assert not (out / "width=16_seed=3407").exists()
    assert not list(out.glob("*.failed.json"))


@ray_only[0]
@ray_only[1]
@pytest.mark.parametrize("option,value,expected", [
    ("--gpus-per-cell", "1", "--gpus-per-cell 1 is more than any node of the Ray cluster has"),
    ("--cpus-per-cell", "64", "--cpus-per-cell 64 is more than any node of the Ray cluster has"),
])
def test_ray_resources_no_node_has(option, value, expected, ray_instance, tmp_path, preset):
    result, before = _invoke(["--executor", "ray", option, value], tmp_path, preset)
    text = " ".join(result.output.split())
    assert result.exit_code == 2, text
    assert expected in text
    assert _listing(tmp_path) == before

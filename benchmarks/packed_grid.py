"""Wall time of a Dent & Tanner grid: N cells packed in one program vs one after another.

Each cell of the grid is what ``kerasparse sweep`` runs: one ``kerasparse train`` process
(start-up, data, compilation, training, evaluation, files). The packed side is one process
running ``kerasparse.packed.train_pack`` on all N cells, writing the same N run directories.
Both sides are timed from process start to exit, in one invocation; the sequential cells are
split around the packed run so that machine load drifts hit both alike.

The cells follow Table 1: sparsity x V'(q*) (9), then x q* in {1, 2, 3} (27), then x 5 seeds
(135); the rest of the settings come from the preset (default: the q* = 3 DNN-MNIST preset:
CReLU, plain SGD lr 1e-4, batch 64, 10 % validation).

    # CPU, small cells (depth 12, width 64), 2 epochs, full MNIST:
    KERAS_BACKEND=jax python benchmarks/packed_grid.py --files-dir ../shared/data/mnist \
        --depth 12 --width 64 --cells 9 --json runs/bench-small-jax.json
    # The paper's MLP (depth 100, width 300), with a step cap on CPU:
    python benchmarks/packed_grid.py --backend torch --files-dir ../shared/data/mnist \
        --cells 9 --steps-per-epoch 100
    # On a GPU, the grid sizes of the issue, packed only (the sequential side is ~N x one
    # cell), and the projected wall time of Table 1 (135 cells x 200 epochs):
    python benchmarks/packed_grid.py --backend jax --files-dir DATA --cells 135 --packed-only

Prints one JSON object (also written to ``--json``): per mode the wall time, per cell the
sequential wall times, the ratio packed / sequential, the machine's load before and after,
and, when epochs are full (no step cap), the packed seconds per epoch and the projection
for 200 epochs.
"""

import argparse
import itertools
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PRESET = os.path.join(ROOT, "configs", "dent-tanner2026-dnn-mnist-q3.toml")

SPARSITY = (0.8, 0.85, 0.9)
V_PRIME = (0.5, 0.7, 0.9)
Q_STAR = (1.0, 2.0, 3.0)


def grid(n, base_seed):
    """The first n cells of Table 1's order: sparsity x V' fastest, then q*, then seeds."""
    cells = []
    for seed in itertools.count(base_seed):
        for q, s, v in itertools.product(Q_STAR, SPARSITY, V_PRIME):
            cells.append({"seed": seed, "q_star": q, "sparsity": s, "v_prime": v})
            if len(cells) == n:
                return cells
    return cells


_PACK_CHILD = """
import json, sys
from kerasparse.packed import train_pack
dirs, configs = json.load(open(sys.argv[1]))
train_pack(dirs, configs, verbose=0)
"""


def _toml(value):
    return str(value).lower() if isinstance(value, bool) else json.dumps(value)


def timed(cmd, env):
    start = time.perf_counter()
    result = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"failed ({result.returncode}): {' '.join(cmd)}\n"
                         f"{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
    return seconds


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", default=os.environ.get("KERAS_BACKEND", "jax"))
    p.add_argument("--preset", default=PRESET)
    p.add_argument("--cells", type=int, default=9)
    p.add_argument("--depth", type=int, default=100)
    p.add_argument("--width", type=int, default=300)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps-per-epoch", type=int, default=None, help="cap (CPU)")
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--files-dir", default=None)
    p.add_argument("--seed", type=int, default=3407)
    p.add_argument("--set", action="append", default=[], help="key=value for every cell")
    p.add_argument("--packed-only", action="store_true", help="skip the sequential cells")
    p.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for both sides")
    p.add_argument("--out", default=None, help="folder for the run directories (kept)")
    p.add_argument("--json", default=None, help="also write the result here")
    args = p.parse_args(argv)
    if args.cells < 1:
        raise SystemExit(f"--cells must be a positive integer. Received: --cells={args.cells}")

    sys.path.insert(0, ROOT)
    from kerasparse.config import parse_assignment, resolve

    common = {"depth": args.depth, "width": args.width, "epochs": args.epochs,
              "batch_size": args.batch_size, "dataset": args.dataset, "monitor_batch": 0}
    if args.files_dir:
        common["files_dir"] = os.path.abspath(args.files_dir)
    if args.steps_per_epoch:
        common["steps_per_epoch"] = args.steps_per_epoch
    common.update(dict(parse_assignment(item) for item in args.set))
    cells = grid(args.cells, args.seed)
    configs = [resolve(args.preset, {**common, **cell}) for cell in cells]

    out = args.out or tempfile.mkdtemp(prefix="packed-grid-")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    env = dict(os.environ, KERAS_BACKEND=args.backend, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)

    def sequential(indices):
        times = []
        for i in indices:
            cmd = [sys.executable, "-m", "kerasparse.cli", "train", "--backend", args.backend,
                   "--quiet", "--config", args.preset, "--out", os.path.join(out, f"seq{i}")]
            for key, value in {**common, **cells[i]}.items():
                cmd += ["--set", f"{key}={_toml(value)}"]
            times.append(timed(cmd, env))
        return times

    load_before = os.getloadavg()
    half = args.cells // 2
    seq_times = [] if args.packed_only else sequential(range(half))
    dirs = [os.path.join(out, f"pack{i}") for i in range(args.cells)]
    spec = os.path.join(out, "pack.json")
    with open(spec, "w") as f:
        json.dump([dirs, configs], f)
    packed_s = timed([sys.executable, "-c", _PACK_CHILD, spec], env)
    if not args.packed_only:
        seq_times += sequential(range(half, args.cells))
    load_after = os.getloadavg()

    with open(os.path.join(dirs[0], "summary.json")) as f:
        summary = json.load(f)
    import csv

    with open(os.path.join(dirs[0], "history.csv")) as f:
        rows = list(csv.DictReader(f))
    epoch_s = [float(r["epoch_time_s"]) for r in rows]
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "host": platform.node(),
        "backend": args.backend,
        "versions": summary["versions"],
        "cells": args.cells,
        "model": f"{configs[0]['model']} depth {args.depth} width {args.width}",
        "epochs": args.epochs,
        "steps_per_epoch": args.steps_per_epoch or "full",
        "batch_size": args.batch_size,
        "threads": args.threads,
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in load_after],
        "packed_s": round(packed_s, 1),
        "packed_epoch_s": epoch_s,
    }
    if seq_times:
        result["sequential_s"] = round(sum(seq_times), 1)
        result["sequential_cell_s"] = [round(t, 1) for t in seq_times]
        result["ratio"] = round(packed_s / sum(seq_times), 3)
    if not args.steps_per_epoch and len(epoch_s) > 1:
        # The last epoch is past compilation: 200 epochs of this pack.
        result["projected_200_epochs_h"] = round(200 * epoch_s[-1] / 3600, 2)
    print(json.dumps(result))
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    if not args.out:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()

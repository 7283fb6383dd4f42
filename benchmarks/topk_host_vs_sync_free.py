"""torch: the WRN-28-4 training step with the current (host-sync-free) GlobalTopK against the
CPU-tuned one it replaced (host-side exits and a Python-int ``torch.topk``, commit 4ca8e3b),
and plain ReLU, all interleaved in one process (issue 12: "measure both and decide").

    OMP_NUM_THREADS=1 python benchmarks/topk_host_vs_sync_free.py --keep-ratios 1,0.5,0.2,0.05

The old ``kerasparse/ops.py`` is read from git (``--old-rev``) into a separate module; each
timed step runs with one or the other ``global_topk`` (torch runs the layers eagerly, so the
op is looked up at every call). Prints one JSON object: median seconds per step and ratios
to ReLU.
"""

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile

os.environ.setdefault("KERAS_BACKEND", "torch")

from kerasparse import bench  # noqa: E402
from kerasparse import ops as ksops  # noqa: E402


def load_old_ops(rev):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    source = subprocess.run(["git", "-C", root, "show", f"{rev}:kerasparse/ops.py"],
                            capture_output=True, text=True, check=True).stdout
    path = os.path.join(tempfile.mkdtemp(), "old_ops.py")
    with open(path, "w") as f:
        f.write(source)
    spec = importlib.util.spec_from_file_location("kerasparse_old_ops", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="wrn28-4")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--keep-ratios", default="1,0.5,0.2,0.05")
    parser.add_argument("--old-rev", default="4ca8e3b")
    args = parser.parse_args()
    import keras

    if keras.backend.backend() != "torch":
        sys.exit("torch only (the old host-side path was torch's)")
    old, new = load_old_ops(args.old_rev).global_topk, ksops.global_topk
    fns, x, y = {}, None, None
    relu = bench.compile_for_benchmark(bench.build_model(args.model, topk=False))
    x, y = bench.synthetic_batch(relu.input_shape[1:], 10, args.batch_size)
    fns["relu"] = bench._train_step_fn(relu, x, y)
    for r in (float(v) for v in args.keep_ratios.split(",")):
        keras.utils.set_random_seed(0)
        model = bench.compile_for_benchmark(bench.build_model(args.model, keep_ratio=r))
        step = bench._train_step_fn(model, x, y)
        for label, op in (("sync_free", new), ("host", old)):
            def run(step=step, op=op):
                ksops.global_topk = op
                try:
                    step()
                finally:
                    ksops.global_topk = new
            fns[f"{label} r={r:g}"] = run
    times = bench.interleaved_times(fns, args.steps, args.warmup)
    step_s = {k: statistics.median(v) for k, v in times.items()}
    print(json.dumps({
        "model": args.model, "batch_size": args.batch_size, "steps": args.steps,
        "old_rev": args.old_rev, "step_s": step_s,
        "ratio_to_relu": {k: v / step_s["relu"] for k, v in step_s.items() if k != "relu"},
        **bench.machine_state(),
    }, indent=1))


if __name__ == "__main__":
    main()

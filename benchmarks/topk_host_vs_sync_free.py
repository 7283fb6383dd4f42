"""torch: the WRN-28-4 training step with GlobalTopK's two torch paths -- host-side exits
(eager CPU tensors, ``kerasparse.ops.TORCH_CPU_HOST_EXITS``) and the sync-free path that
accelerators and torch.compile run -- and plain ReLU, all interleaved in one process
(issue 12: "measure both and decide").

    OMP_NUM_THREADS=1 python benchmarks/topk_host_vs_sync_free.py --keep-ratios 1,0.5,0.2,0.05

Each timed step sets the switch for its own path (torch runs the layers eagerly, so the
switch is read at every call). Prints one JSON object: median seconds per step and ratios
to ReLU.
"""

import argparse
import json
import os
import statistics
import sys

os.environ.setdefault("KERAS_BACKEND", "torch")

from kerasparse import bench  # noqa: E402
from kerasparse import ops as ksops  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="wrn28-4")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--keep-ratios", default="1,0.5,0.2,0.05")
    args = parser.parse_args()
    import keras

    if keras.backend.backend() != "torch":
        sys.exit("torch only (the host-side exits are torch's)")
    fns, x, y = {}, None, None
    relu = bench.compile_for_benchmark(bench.build_model(args.model, topk=False))
    x, y = bench.synthetic_batch(relu.input_shape[1:], 10, args.batch_size)
    fns["relu"] = bench._train_step_fn(relu, x, y)
    for r in (float(v) for v in args.keep_ratios.split(",")):
        keras.utils.set_random_seed(0)
        model = bench.compile_for_benchmark(bench.build_model(args.model, keep_ratio=r))
        step = bench._train_step_fn(model, x, y)
        for label, host in (("sync_free", False), ("host", True)):
            def run(step=step, host=host):
                ksops.TORCH_CPU_HOST_EXITS = host
                try:
                    step()
                finally:
                    ksops.TORCH_CPU_HOST_EXITS = True
            fns[f"{label} r={r:g}"] = run
    times = bench.interleaved_times(fns, args.steps, args.warmup)
    step_s = {k: statistics.median(v) for k, v in times.items()}
    print(json.dumps({
        "model": args.model, "batch_size": args.batch_size, "steps": args.steps,
"step_s": step_s,
        "ratio_to_relu": {k: v / step_s["relu"] for k, v in step_s.items() if k != "relu"},
        **bench.machine_state(),
    }, indent=1))


if __name__ == "__main__":
    main()

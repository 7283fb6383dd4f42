"""A/B of the CPU selection (issue 12): NumPy's introselect (``kth_largest_numpy``, the
default on CPUs) against the backend's own top-k, in one WRN-28-4 training step, interleaved
in one process.

    OMP_NUM_THREADS=1 KERAS_BACKEND=torch python benchmarks/topk_numpy_select.py --keep-ratio 0.2
    KERAS_BACKEND=tensorflow python benchmarks/topk_numpy_select.py --keep-ratio 0.2

Two identical models (same weights); tensorflow reads ``NUMPY_CPU_SELECT`` when it traces
the step, so each model's step is traced with its setting; torch reads it per call. Prints
one JSON line: median step seconds per side and the ratio numpy / backend.
"""

import argparse
import json
import os
import time

import numpy as np


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="wrn28-4")
    p.add_argument("--keep-ratio", type=float, default=0.2)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=6)
    args = p.parse_args()

    import keras

    from kerasparse import bench
    from kerasparse import ops as ksops

    backend = keras.backend.backend()
    models, steps = {}, {}
    for side in ("backend", "numpy"):
        keras.utils.set_random_seed(0)
        model = bench.build_model(args.model, keep_ratio=args.keep_ratio)
        bench.compile_for_benchmark(model)
        x, y = bench.synthetic_batch(model.input_shape[1:], 10, args.batch_size)
        models[side] = model
        step = bench._train_step_fn(model, x, y)
        ksops.NUMPY_CPU_SELECT = side == "numpy"
        step()  # traces tensorflow's step with this side's setting

        def run(step=step, on=side == "numpy"):
            ksops.NUMPY_CPU_SELECT = on
            step()

        steps[side] = run
    times = bench.interleaved_times(steps, args.steps, warmup=1)
    med = {k: float(np.median(v)) for k, v in times.items()}
    print(json.dumps({
        "backend": backend, "model": args.model, "keep_ratio": args.keep_ratio,
        "batch_size": args.batch_size, "threads": os.environ.get("OMP_NUM_THREADS"),
        "step_s": med, "ratio_numpy_to_backend": med["numpy"] / med["backend"],
        "times": times, "date": time.strftime("%Y-%m-%d %H:%M"), "load": os.getloadavg(),
    }))


if __name__ == "__main__":
    main()

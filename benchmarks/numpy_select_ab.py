"""A/B of the CPU selection's two versions (issue 12): the WRN-28-4 training step with
``kth_largest_numpy`` as it was before 2026-12-02 (introselect over whole rows, one thread)
against the current one (a sample's bracket, then introselect on the entries in it; rows
split between threads), each beside the plain-ReLU step, interleaved in one process.

    KERAS_BACKEND=jax python benchmarks/numpy_select_ab.py --keep-ratios 1,0.5,0.2,0.05
    KERAS_BACKEND=tensorflow python benchmarks/numpy_select_ab.py
    OMP_NUM_THREADS=1 KERAS_BACKEND=torch python benchmarks/numpy_select_ab.py --steps 4

Both versions run the same compiled step (the selection is a host call at run time: jax's
callback, TensorFlow's ``numpy_function``, torch's host path); "old" sets the sampled
path's minimum row length out of reach and one thread for that step. Prints one JSON line:
the machine's state, median seconds per step and the ratio of each to the ReLU step.
"""

import argparse
import json
import statistics


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="wrn28-4")
    p.add_argument("--keep-ratios", default="1,0.5,0.2,0.05")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=6)
    args = p.parse_args()

    import keras

    import kerasparse.ops as ko
    from kerasparse import bench

    current = (ko.select_threads, ko._SAMPLED_SELECT_MIN_LENGTH)

    def step_fn(topk, r):
        model = bench.build_model(args.model, topk=topk, keep_ratio=r)
        bench.compile_for_benchmark(model)
        x, y = bench.synthetic_batch(model.input_shape[1:], 10, args.batch_size)
        step = bench._train_step_fn(model, x, y)
        step()
        return step

    def version(step, old):
        def run():
            if old:
                ko.select_threads, ko._SAMPLED_SELECT_MIN_LENGTH = (lambda: 1), 2**62
            try:
                step()
            finally:
                ko.select_threads, ko._SAMPLED_SELECT_MIN_LENGTH = current

        return run

    fns = {"relu": step_fn(False, 1.0)}
    for r in (float(v) for v in args.keep_ratios.split(",")):
        step = step_fn(True, r)
        if r < 1:  # r = 1 selects nothing: one version
            fns[f"r={r} old"] = version(step, True)
        fns[f"r={r} new"] = version(step, False)
    times = bench.interleaved_times(fns, args.steps, warmup=1)
    median = {k: statistics.median(v) for k, v in times.items()}
    print(json.dumps({
        **bench.machine_state(), "backend": keras.backend.backend(), "model": args.model,
        "batch_size": args.batch_size, "steps": args.steps, "select_threads": current[0](),
        "step_s": {k: round(v, 4) for k, v in median.items()},
        "ratio_to_relu": {k: round(v / median["relu"], 3) for k, v in median.items()},
    }))


if __name__ == "__main__":
    main()

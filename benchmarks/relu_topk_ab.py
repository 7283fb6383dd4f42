"""A/B of the sparse site's two forms on a TensorFlow CPU (issue 12): the WRN-28-4
training step with ``relu_topk`` fused (``_relu_topk_tf``: one positives count, a NumPy
selection on the pre-activations, one mask pass forward and one backward, the count and
the mask XLA-compiled) against ``global_topk(relu(x))`` (ReLU, the exits' reductions, the
selection on ReLU's output, the mask, and ReLU's gradient, each its own kernel), each
beside the plain-ReLU step, interleaved in one process. Both use the current NumPy
selection.

    KERAS_BACKEND=tensorflow python benchmarks/relu_topk_ab.py --keep-ratios 1,0.5,0.2,0.05

The form is chosen when the step is traced (its first call), so each model is built and
called once under its form. Prints one JSON line: the machine's state, median seconds per
step and the ratio of each to the ReLU step, by medians and by fastest steps.
"""

import argparse
import json
import statistics


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="wrn28-4")
    p.add_argument("--keep-ratios", default="0.5,0.2,0.05")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=6)
    args = p.parse_args()

    import keras

    import kerasparse.ops as ko
    from kerasparse import bench

    fused_site = ko._tf_numpy_site

    def step_fn(topk, r, fused=True):
        ko._tf_numpy_site = fused_site if fused else (lambda x: False)
        try:
            model = bench.build_model(args.model, topk=topk, keep_ratio=r)
            bench.compile_for_benchmark(model)
            x, y = bench.synthetic_batch(model.input_shape[1:], 10, args.batch_size)
            step = bench._train_step_fn(model, x, y)
            step()  # traced here, under this form
        finally:
            ko._tf_numpy_site = fused_site
        return step

    fns = {"relu": step_fn(False, 1.0)}
    for r in (float(v) for v in args.keep_ratios.split(",")):
        fns[f"r={r} unfused"] = step_fn(True, r, fused=False)
        fns[f"r={r} fused"] = step_fn(True, r)
    times = bench.interleaved_times(fns, args.steps, warmup=1)
    median = {k: statistics.median(v) for k, v in times.items()}
    print(json.dumps({
        **bench.machine_state(), "backend": keras.backend.backend(), "model": args.model,
        "batch_size": args.batch_size, "steps": args.steps,
        "step_s": {k: round(v, 4) for k, v in median.items()},
        "ratio_to_relu": {k: round(v / median["relu"], 3) for k, v in median.items()},
        # The fastest step of each: interference on a shared machine only slows a step.
        "best_ratio_to_relu": {k: round(min(v) / min(times["relu"]), 3)
                               for k, v in times.items()},
    }))


if __name__ == "__main__":
    main()

"""The whole WRN-28-4 training step with this checkout's sparse sites against another
version's (``ops.py`` from git), interleaved in one process beside the plain-ReLU step, on
the backend of ``KERAS_BACKEND`` (issue 12).

    git show 1655d90:kerasparse/ops.py > /tmp/ops_old.py
    KERAS_BACKEND=jax python benchmarks/site_versions_ab.py --old /tmp/ops_old.py
    KERAS_BACKEND=jax python benchmarks/site_versions_ab.py --old /tmp/ops_old.py --sites
    KERAS_BACKEND=tensorflow python benchmarks/site_versions_ab.py --unfused

``--unfused`` instead of ``--old``: the other version is this checkout with TensorFlow's
fused site off (``relu_topk`` as ``global_topk(relu(x))``: ReLU, the exits' reductions, the
selection on ReLU's output, the mask and ReLU's gradient, each its own kernel), against
the fused ``_relu_topk_tf`` (one count, the selection on the pre-activations, one mask
pass each way).

``--sites``: instead of the whole step, one sparse site per WRN-28-4 group (the one-site
model of ``kerasparse bench --sites``: forward and backward), more steps.

A site's code is chosen when the step is traced (its first call), so each model is built
and called once with the version it times (``kerasparse.ops.relu_topk``, ``global_topk``
and ``_tf_numpy_site`` swapped meanwhile). Prints one JSON line: the machine's state,
median seconds per step ("old": the other version, "new": this checkout), the ratio of
each to the ReLU step by medians and by fastest steps, and the process's CPU seconds per
step (less sensitive to other processes than wall time).
"""

import argparse
import importlib.util
import json
import statistics
import time

import numpy as np


def main():
    p = argparse.ArgumentParser()
    other = p.add_mutually_exclusive_group(required=True)
    other.add_argument("--old", help="path of the other version's ops.py")
    other.add_argument("--unfused", action="store_true",
                       help="the other version: this checkout with TensorFlow's fused site off")
    p.add_argument("--model", default="wrn28-4")
    p.add_argument("--keep-ratios", default="1,0.5,0.2,0.05")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--sites", action="store_true", help="one site per WRN-28-4 group instead")
    args = p.parse_args()

    import keras

    import kerasparse.ops as ko
    from kerasparse import bench

    current = (ko.relu_topk, ko.global_topk, ko._tf_numpy_site)
    if args.unfused:
        versions = {"new": current, "old": (*current[:2], lambda x: False)}
    else:
        spec = importlib.util.spec_from_file_location("ops_old", args.old)
        old = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(old)
        versions = {"new": current, "old": (old.relu_topk, old.global_topk, current[2])}

    def step_fn(topk, r, version="new", shape=None):
        ko.relu_topk, ko.global_topk, ko._tf_numpy_site = versions[version]
        try:
            if shape is None:
                model = bench.build_model(args.model, topk=topk, keep_ratio=r)
                bench.compile_for_benchmark(model)
                x, y = bench.synthetic_batch(model.input_shape[1:], 10, args.batch_size)
            else:
                model = bench._site_model(shape, topk, r, args.batch_size)
                x = np.random.default_rng(0).standard_normal((args.batch_size, *shape))
                x = x.astype("float32")
                y = np.zeros_like(x)
            step = bench._train_step_fn(model, x, y)
            step()  # traced here, under this version
        finally:
            ko.relu_topk, ko.global_topk, ko._tf_numpy_site = current
        return step

    ratios = [float(v) for v in args.keep_ratios.split(",")]
    if args.sites:
        out = {}
        for group, shape in bench.WRN28_4_SITE_SHAPES.items():
            fns = {"relu": step_fn(False, 1.0, shape=shape)}
            for r in ratios:
                fns[f"r={r:g} old"] = step_fn(True, r, "old", shape)
                fns[f"r={r:g} new"] = step_fn(True, r, "new", shape)
            out[group] = measure(fns, args.steps)
        print(json.dumps({**bench.machine_state(), "backend": keras.backend.backend(),
                          "batch_size": args.batch_size, "steps": args.steps, "sites": out}))
        return
    fns = {"relu": step_fn(False, 1.0)}
    for r in ratios:
        fns[f"r={r:g} old"] = step_fn(True, r, "old")
        fns[f"r={r:g} new"] = step_fn(True, r)
    print(json.dumps({
        **bench.machine_state(), "backend": keras.backend.backend(), "model": args.model,
        "batch_size": args.batch_size, "steps": args.steps, **measure(fns, args.steps)}))


def measure(fns, steps):
    """Interleaved steps: median seconds, ratios to "relu" (medians, fastest steps) and the
    process's CPU seconds per step as a ratio to ReLU's."""
    from kerasparse import bench

    cpu = {name: [] for name in fns}

    def timed(name, fn):
        def call():
            start = time.process_time()
            fn()
            cpu[name].append(time.process_time() - start)
        return call

    times = bench.interleaved_times({k: timed(k, f) for k, f in fns.items()}, steps, warmup=1)
    median = {k: statistics.median(v) for k, v in times.items()}
    cpu_median = {k: statistics.median(v[1:]) for k, v in cpu.items()}  # (v[0]: warm-up)
    return {
        "step_s": {k: round(v, 4) for k, v in median.items()},
        "ratio_to_relu": {k: round(v / median["relu"], 3) for k, v in median.items()},
        # The fastest step of each: interference on a shared machine only slows a step.
        "best_ratio_to_relu": {k: round(min(v) / min(times["relu"]), 3)
                               for k, v in times.items()},
        "cpu_ratio_to_relu": {k: round(v / cpu_median["relu"], 3)
                              for k, v in cpu_median.items()},
    }


if __name__ == "__main__":
    main()

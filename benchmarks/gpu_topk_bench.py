"""WRN-28-4 training steps with plain ReLU and with GlobalTopK at several keep ratios,
interleaved in one process on the current backend (for benchmarks/gpu_check.sh).

    KERAS_BACKEND=jax python benchmarks/gpu_topk_bench.py --batch-size 128 \\
        --precision mixed_bfloat16 --keep-ratios 1,0.5,0.2,0.05

Two models are compiled, not one per ratio: the keep ratio is a variable of each GlobalTopK
site, so assigning it between steps neither retraces nor recompiles (docs/architecture.md);
after every timed step the sites are checked to still hold the assigned ratio (a stale
training state would have written the old one back). Prints one JSON list: a row per
configuration with the median step time, images/s and the ratio to ReLU.
"""

import argparse
import json
import statistics
import time

import numpy as np

from kerasparse import bench


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="wrn28-4")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--precision", default="mixed_bfloat16")
    p.add_argument("--keep-ratios", default="1,0.5,0.2,0.05")
    args = p.parse_args()
    import keras

    from kerasparse.callbacks import find_topk_layers

    keras.utils.set_random_seed(0)
    keras.mixed_precision.set_dtype_policy(args.precision)
    relu = bench.compile_for_benchmark(bench.build_model(args.model, topk=False))
    topk = bench.compile_for_benchmark(bench.build_model(args.model, topk=True, keep_ratio=1.0))
    sites = find_topk_layers(topk)
    x, y = bench.synthetic_batch(topk.input_shape[1:], topk.output_shape[-1], args.batch_size)
    ratios = [float(r) for r in args.keep_ratios.split(",")]

    def run(name):
        if name == "relu":
            relu.train_on_batch(x, y)  # returns host floats: the step has finished
            return
        r = float(name)
        for layer in sites:
            layer.keep_ratio.assign(r)
        start = time.perf_counter()
        topk.train_on_batch(x, y)
        return time.perf_counter() - start

    names = ["relu"] + [f"{r:g}" for r in ratios]
    times = {n: [] for n in names}
    for _ in range(args.warmup):
        for n in names:
            run(n)
    for _ in range(args.steps):
        for n in names:
            if n == "relu":
                start = time.perf_counter()
                run(n)
                times[n].append(time.perf_counter() - start)
            else:
                times[n].append(run(n))
                held = {float(np.asarray(keras.ops.convert_to_numpy(s.keep_ratio))) for s in sites}
                assert held == {float(np.float32(float(n)))}, (n, held)
    relu_s = statistics.median(times["relu"])
    rows = []
    for n in names:
        step = statistics.median(times[n])
        rows.append({"backend": keras.backend.backend(), "model": args.model,
                     "batch_size": args.batch_size, "precision": args.precision,
                     "data_format": getattr(topk, "data_format", None),
                     "config": "relu" if n == "relu" else f"topk r={n}",
                     "keep_ratio": None if n == "relu" else float(n),
                     "step_s": step, "images_per_s": args.batch_size / step,
                     "step_ratio_to_relu": step / relu_s, "steps": args.steps,
                     "warmup": args.warmup, "peak_rss_mb": bench.peak_rss_mb()})
    print(json.dumps(rows))


if __name__ == "__main__":
    main()

"""WRN-28-4 training step with GlobalTopK (r = 0.5 and r = 1) vs plain ReLU, interleaved in
one process on the current backend (issue 6 goal: within 1.10x and 1.02x of ReLU).

    KERAS_BACKEND=jax python benchmarks/topk_overhead.py --batch-size 32 --steps 5
    KERAS_BACKEND=torch python benchmarks/topk_overhead.py --data-formats channels_first,channels_last

Prints one JSON object: median seconds per step of each configuration and the ratios.
"""

import argparse
import json
import statistics

from kerasparse import bench


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="wrn28-4")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--data-formats", default="auto")
    args = parser.parse_args()
    import keras

    x = y = None
    fns = {}
    for data_format in args.data_formats.split(","):
        for label, topk, r in (("relu", False, 1.0), ("topk_r0.5", True, 0.5), ("topk_r1", True, 1.0)):
            model = bench.compile_for_benchmark(
                bench.build_model(args.model, topk=topk, keep_ratio=r, data_format=data_format)
            )
            if x is None:
                x, y = bench.synthetic_batch(model.input_shape[1:], 10, args.batch_size)
            fns[f"{model.data_format}/{label}"] = bench._train_step_fn(model, x, y)
    times = bench.interleaved_times(fns, args.steps, args.warmup)
    result = {"backend": keras.backend.backend(), "model": args.model,
              "batch_size": args.batch_size, "steps": args.steps,
              "step_s": {k: statistics.median(v) for k, v in times.items()}}
    ratios = {}
    for name, value in result["step_s"].items():
        data_format, label = name.split("/")
        if label != "relu":
            ratios[name] = value / result["step_s"][f"{data_format}/relu"]
    result["ratio_to_relu"] = ratios
    result["peak_rss_mb"] = bench.peak_rss_mb()
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

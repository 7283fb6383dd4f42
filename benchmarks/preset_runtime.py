"""Measured runtime of a preset, extrapolated: the "Expected runtime" line of configs/*.toml.

Times a few training steps and evaluation batches of the preset's model (its configuration:
model, activation, EoC settings, optimizer, batch size; random inputs of the dataset's shape,
which cost the same as real ones) on this machine, then extrapolates to the preset's full
run: epochs x (steps per epoch x step time + evaluation batches of the validation and test
parts x evaluation time), with the part sizes of its split (docs/data.md, "Splits").

Models too slow to time whole on a CPU (the 50-layer 300-channel CNNs) are timed with fewer
layers and a smaller batch (``--depth``, ``--batch``) and scaled linearly by depth and batch
(every hidden layer has the same shape, and a CPU convolution's time is linear in the batch
at these sizes); per-step overhead is scaled too, so the estimate errs high.

    KERAS_BACKEND=torch python benchmarks/preset_runtime.py configs/dent-tanner2026-cst-dnn-mnist.toml
    KERAS_BACKEND=torch python benchmarks/preset_runtime.py \\
        configs/dent-tanner2026-cnn-tinyimagenet.toml --depth 2 --batch 8

The backend runs on ONE thread and the figure is its CPU time: on a shared machine the wall
time depends on the load, and with two threads the CPU time counts the spin-waits of a thread
whose partner was descheduled (measured 2026-12-02 at load 16 on 2 cores: plain PyTorch,
the 100 x 300 MLP at batch 64, 2.4 CPU-s per step on 2 threads, 0.12 on one). The result is
single-core CPU time; on an idle machine with c cores a run takes at least that / c.
Prints one JSON object (measured and extrapolated figures, backend, date, load).
"""

import argparse
import datetime
import json
import math
import os
import statistics
import sys
import time
import types

# One thread, set before any backend starts (see the docstring).
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
             "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
    os.environ[_var] = "1"
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_cpu_multi_thread_eigen=false").strip()

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

# Official (train, test) sizes of the datasets the presets use; the pooled split follows.
OFFICIAL = {"mnist": (60_000, 10_000), "cifar10": (50_000, 10_000),
            "tiny_imagenet": (100_000, 10_000), "embedded": (5_000, 1_000)}


def part_sizes(config):
    from kerasparse.data import pooled_split

    n_train, n_test = OFFICIAL[config["dataset"]]
    if config["split"] == "pooled":
        train, val, test = (len(p) for p in pooled_split(n_train + n_test, config["seed"],
                                                          config["validation_split"]))
    else:
        val = round(config["validation_split"] * n_train)
        train, test = n_train - val, n_test
    if config["train_examples"]:
        train = min(train, config["train_examples"])
    if config["test_examples"]:
        test = min(test, config["test_examples"])
    return train, val, test


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preset")
    parser.add_argument("--depth", type=int,
                        help="time this many layers (scaled to the full depth)")
    parser.add_argument("--batch", type=int, help="time this batch (scaled to the preset's)")
    parser.add_argument("--steps", type=int, default=3, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args()

    import keras
    import numpy as np

    if keras.backend.backend() == "torch":
        import torch

        torch.set_num_threads(1)

    from kerasparse import config as ks_config
    from kerasparse import models
    from kerasparse.data import DATASETS
    from kerasparse.train import build_model, compile_model, data_q_star

    config = ks_config.resolve(args.preset)
    full_depth = config["depth"] or models.model_spec(config["model"]).defaults["depth"]
    depth = args.depth or full_depth
    batch = args.batch or config["batch_size"]
    info = DATASETS[config["dataset"]]
    timed = {**config, "depth": depth, "q_star": data_q_star(config)}
    keras.utils.set_random_seed(config["seed"])
    model = build_model(timed, types.SimpleNamespace(num_classes=info.num_classes,
                                                     input_shape=info.input_shape))
    n_train, n_val, n_test = part_sizes(config)
    steps = math.ceil(n_train / config["batch_size"])
    if config["steps_per_epoch"]:
        steps = min(steps, config["steps_per_epoch"])
    compile_model(model, config, steps)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, *info.input_shape)).astype("float32")
    y = rng.integers(0, info.num_classes, batch).astype("int32")

    def timed_calls(fn, n):
        """Median wall seconds and median CPU seconds (all threads of this process) of a
        call. The CPU time is what a shared, loaded machine does not inflate."""
        wall, cpu = [], []
        for _ in range(n):
            start, start_cpu = time.perf_counter(), time.process_time()
            out = fn()
            keras.ops.convert_to_numpy(out[0] if isinstance(out, (list, tuple)) else out)
            wall.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        return statistics.median(wall), statistics.median(cpu)

    for _ in range(args.warmup):
        model.train_on_batch(x, y)
        model.test_on_batch(x, y)
    (t_step, c_step) = timed_calls(lambda: model.train_on_batch(x, y), args.steps)
    (t_eval, c_eval) = timed_calls(lambda: model.test_on_batch(x, y), args.steps)
    scale = (full_depth / depth) * (config["batch_size"] / batch)
    eval_batches = (math.ceil(n_val / config["batch_size"])
                    + math.ceil(n_test / config["batch_size"]))
    epoch_s = scale * (steps * t_step + eval_batches * t_eval)
    epoch_cpu_s = scale * (steps * c_step + eval_batches * c_eval)
    print(json.dumps({
        "preset": args.preset, "backend": keras.backend.backend(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="minutes"),
        "load_average": os.getloadavg()[0], "cpus": os.cpu_count(), "threads": 1,
        "timed": {"depth": depth, "batch": batch, "steps": args.steps,
                  "train_step_s": round(t_step, 4), "eval_batch_s": round(t_eval, 4),
                  "train_step_cpu_s": round(c_step, 4), "eval_batch_cpu_s": round(c_eval, 4)},
        "scale": round(scale, 3),
        "parts": {"train": n_train, "val": n_val, "test": n_test},
        "steps_per_epoch": steps, "eval_batches_per_epoch": eval_batches,
        "epoch_s": round(epoch_s, 1), "epochs": config["epochs"],
        "run_hours": round(epoch_s * config["epochs"] / 3600, 2),  # wall, at this load
        "run_cpu_hours": round(epoch_cpu_s * config["epochs"] / 3600, 2),  # one core
    }))


if __name__ == "__main__":
    main()

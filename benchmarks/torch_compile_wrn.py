"""torch.compile (``jit_compile=True`` on torch, issue 12 item 3) on WRN-16-1 with inductor:
3 epochs while a controller moves the keep ratio every epoch (r = 1, 0.5, 0.2), against the
same run eager, in one process. Reports the compiled graphs dynamo made after each epoch
(they must not grow after the first: a new r is a tensor value, not a new graph), the
largest difference of the histories and weights, and the seconds per epoch of each run
(epoch 1 of the compiled run includes tracing and inductor's code generation).

    OMP_NUM_THREADS=1 python benchmarks/torch_compile_wrn.py --examples 256 --batch-size 32

The optimizer is the paper's SGD (Nesterov, momentum 0.9; Keras' torch SGD reads its learning
rate on the host: a graph break, so a few graphs, but a fixed number).
"""

import argparse
import json
import os
import time

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from kerasparse import bench, callbacks  # noqa: E402

RATIOS = [1.0, 0.5, 0.2]


def fit(model_name, jit_compile, x, y, batch_size):
    from torch._dynamo.utils import counters

    keras.utils.set_random_seed(7)
    model = bench.build_model(model_name, keep_ratio=1.0, jit_compile=jit_compile)
    model = bench.compile_for_benchmark(model, jit_compile=jit_compile)
    graphs, seconds = [], []

    class Watch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds.append(time.perf_counter() - self.t0)
            graphs.append(counters["stats"]["unique_graphs"])

    controller = callbacks.ScheduledKeepRatio(lambda epoch: RATIOS[epoch])
    history = model.fit(x, y, batch_size=batch_size, epochs=len(RATIOS), shuffle=False,
                        verbose=0, callbacks=[controller, Watch()])
    return history.history, model.get_weights(), graphs, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="wrn16-1")
    parser.add_argument("--examples", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--json")
    args = parser.parse_args()
    import torch._dynamo
    from torch._dynamo.utils import counters

    if keras.backend.backend() != "torch":
        raise SystemExit("torch only")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.examples, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, size=(args.examples,)).astype("int32")
    torch._dynamo.reset()
    counters.clear()
    eager, w_eager, _, t_eager = fit(args.model, False, x, y, args.batch_size)
    compiled, w_compiled, graphs, t_compiled = fit(args.model, True, x, y, args.batch_size)
    result = {
        "model": args.model, "examples": args.examples, "batch_size": args.batch_size,
        "keep_ratios": RATIOS, "graphs_after_epoch": graphs,
        "recompiled_after_epoch_1": graphs != [graphs[0]] * len(graphs),
        "max_rel_loss_diff": float(np.max(np.abs(np.subtract(compiled["loss"], eager["loss"]))
                                          / np.abs(eager["loss"]))),
        "max_abs_weight_diff": float(max(np.max(np.abs(a - b)) for a, b in zip(w_compiled, w_eager))),
        "loss_eager": eager["loss"], "loss_compiled": compiled["loss"],
        "epoch_s_eager": t_eager, "epoch_s_compiled": t_compiled,
        "steady_ratio_compiled_to_eager": float(np.median(t_compiled[1:]) / np.median(t_eager[1:])),
        **bench.machine_state(),
    }
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()

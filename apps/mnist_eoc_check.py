"""Real-data check of Dent & Tanner 2026 (Fig. 5) on MNIST, sized for a CPU.

A deep CReLU MLP at the edge of chaos (``kerasparse.models.DeepMLP``), sparsity s = 0.85 and
V'(q*) = 0.7, is trained with plain SGD for the same number of steps at q* = 1 and q* = 3
(several seeds), from MNIST inputs scaled to per-example variance q*. The paper's claim:
the larger q* reaches a lower training loss after the same number of steps. The script
prints and saves (JSON) the training loss per window of steps, the training-set loss at the
end, and the test accuracy.

    KERAS_BACKEND=torch python apps/mnist_eoc_check.py --data-dir ../shared/data/mnist \\
        --depth 20 --width 300 --epochs 3 --seeds 0 1 2 --out runs/mnist_eoc_check.json

Without ``--data-dir`` MNIST is downloaded by ``keras.datasets`` (cached in ~/.keras/datasets). Only the public API is used:
``kerasparse.data.load``, ``kerasparse.models.DeepMLP`` and ``model.fit``.
"""

import argparse
import json
import os
import time

import kerasparse

kerasparse.use_default_backend()  # $KERAS_BACKEND, else jax: the backend of kerasparse train

import keras  # noqa: E402
import numpy as np  # noqa: E402

from kerasparse import data, eoc  # noqa: E402
from kerasparse.models import DeepMLP  # noqa: E402
from kerasparse.train import compile_model  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=None, help="folder of the MNIST idx .gz files (or a "
                   "tensorflow-datasets data_dir)")
    p.add_argument("--files-dir", default=None, help="older name of --data-dir (files only)")
    p.add_argument("--depth", type=int, default=20, help="hidden layers (paper: 100)")
    p.add_argument("--width", type=int, default=300)
    p.add_argument("--sparsity", type=float, default=0.85)
    p.add_argument("--v-prime", type=float, default=0.7)
    p.add_argument("--q-stars", type=float, nargs="+", default=[1.0, 3.0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--window", type=int, default=50, help="steps per logged loss window")
    p.add_argument("--lr", type=float, default=1e-2, help="SGD learning rate (paper: 1e-4 "
                   "for 200 epochs; larger here for a few epochs)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--validation-split", type=float, default=0.1)
    p.add_argument("--out", default=None, help="write the results here (JSON)")
    return p.parse_args()


def run(args, q_star, seed):
    keras.utils.set_random_seed(seed)
    bundle = data.load("mnist", batch_size=args.batch_size, files_dir=args.files_dir,
                       data_dir=args.data_dir, q_star=q_star, seed=seed,
                       validation_split=args.validation_split)
    model = DeepMLP(depth=args.depth, width=args.width, activation="crelu",
                    sparsity=args.sparsity, q_star=q_star, v_prime=args.v_prime,
                    num_classes=bundle.num_classes, input_shape=bundle.input_shape)
    # Cross-entropy from logits, accuracy, jit_compile "auto": as kerasparse train compiles.
    compile_model(model, optimizer=keras.optimizers.SGD(args.lr))
    steps_per_epoch = -(-bundle.num_train // args.batch_size)
    windows = steps_per_epoch * args.epochs // args.window
    # Keras logs the mean loss of each "epoch": an epoch of `window` steps gives the mean
    # training loss of every window of steps.
    start = time.time()
    # train_epochs: the batches of all epochs as one sequence (epoch e: a shuffle of (seed,
    # e)), read straight through in windows of `window` steps.
    history = model.fit(bundle.train_epochs(args.epochs), steps_per_epoch=args.window,
                        epochs=windows, validation_data=bundle.val, validation_freq=windows,
                        shuffle=False, verbose=0)
    seconds = time.time() - start
    x, y = bundle.sample(10000, seed=seed)
    train_loss, train_acc = model.evaluate(x, y, batch_size=1000, verbose=0)
    test_loss, test_acc = model.evaluate(bundle.test, verbose=0)
    return {
        "q_star": q_star,
        "seed": seed,
        "steps": windows * args.window,
        "window_loss": [float(v) for v in history.history["loss"]],
        "final_train_loss": float(train_loss),
        "final_train_accuracy": float(train_acc),
        "val_accuracy": float(history.history["val_accuracy"][-1]),
        "test_loss": float(test_loss),
        "test_accuracy": float(test_acc),
        "seconds": seconds,
    }


def main():
    args = parse_args()
    print(f"backend {keras.backend.backend()}, depth {args.depth} x width {args.width}, "
          f"s={args.sparsity}, V'={args.v_prime}, SGD lr {args.lr}, {args.epochs} epochs")
    for q in args.q_stars:
        s = eoc.setup("crelu", sparsity=args.sparsity, q_star=q, v_prime=args.v_prime)
        print(f"q*={q:g}: tau={s.tau:.4f} m={s.m:.4f} sigma_w2={s.sigma_w2:.4f} "
              f"sigma_b2={s.sigma_b2:.4f}")
    results = []
    for seed in args.seeds:
        for q in args.q_stars:
            r = run(args, q, seed)
            results.append(r)
            w = r["window_loss"]
            print(f"seed {seed} q*={q:g}: loss first/mid/last window {w[0]:.4f} "
                  f"{w[len(w) // 2]:.4f} {w[-1]:.4f}; train loss after {r['steps']} steps "
                  f"{r['final_train_loss']:.4f}; test acc {r['test_accuracy']:.4f} "
                  f"({r['seconds']:.0f} s)", flush=True)
    print("\nmean over seeds:")
    for q in args.q_stars:
        rs = [r for r in results if r["q_star"] == q]
        curves = np.array([r["window_loss"] for r in rs])
        print(f"q*={q:g}: train loss after {rs[0]['steps']} steps "
              f"{np.mean([r['final_train_loss'] for r in rs]):.4f} "
              f"(+- {np.std([r['final_train_loss'] for r in rs]):.4f}), window losses "
              + " ".join(f"{v:.3f}" for v in curves.mean(0)[:: max(1, len(curves[0]) // 8)])
              + f", test acc {np.mean([r['test_accuracy'] for r in rs]):.4f}")
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump({"args": vars(args), "backend": keras.backend.backend(),
                       "results": results}, f, indent=1)


if __name__ == "__main__":
    main()

"""Wang 2026 as a plain user script: WRN-28-4 with global top-k sites on CIFAR-10, no
augmentation, SGD 0.1 Nesterov with a cosine decay over all epochs, batch 128, seed 3407,
and a keep-ratio controller (additive, multiplicative, or none for the dense-at-r=1 run).

    # the paper's three runs (GPU; about an hour each on an H100/H200-class GPU, estimate)
    KERAS_BACKEND=jax python apps/wang2026_wrn_topk.py --controller mult --out runs/app-mult
    KERAS_BACKEND=jax python apps/wang2026_wrn_topk.py --controller add --out runs/app-add
    KERAS_BACKEND=jax python apps/wang2026_wrn_topk.py --model wrn28-4-dense --controller none \
        --out runs/app-dense

    # a CPU-sized try (a minute): a small WRN on the embedded (generated) dataset
    KERAS_BACKEND=torch python apps/wang2026_wrn_topk.py --model wrn16-1 --dataset embedded \\
        --epochs 6 --lr 0.05 --factor 0.8 --out runs/app-quick

Paper (CIFAR-10 test accuracy, best epoch): dense 0.869, additive 0.8797, multiplicative
0.8802. The same experiment from the command line is ``kerasparse train --config
configs/wang2026-multiplicative.toml``; with the same arguments this script trains the same
model on the same batches and gives the same per-epoch losses and keep ratios
(tests/test_apps.py checks that for a few steps). Only the public API is used:
``kerasparse.data.load``, ``kerasparse.models.get_model``, ``kerasparse.callbacks`` and
``model.fit``. Writes ``history.csv`` (``kerasparse.callbacks.HistoryCSV``: the columns of a
``kerasparse train`` run) and ``summary.json`` to ``--out``. Runs on ``$KERAS_BACKEND``, else
jax, as ``kerasparse train``.
"""

import argparse
import json
import os

import kerasparse

kerasparse.use_default_backend()  # $KERAS_BACKEND, else jax: the backend of kerasparse train

import keras  # noqa: E402

from kerasparse import callbacks, data, layers, models, step_options  # noqa: E402
from kerasparse.train import compile_model  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="wrn28-4", help="registered model (kerasparse models)")
    p.add_argument("--depth", type=int, default=None, help="override the model's depth")
    p.add_argument("--width", type=int, default=None, help="override the model's width")
    p.add_argument("--dataset", default="cifar10")
    p.add_argument("--data-dir", default=None, help="folder of the dataset's standard files "
                   "(layout detected) or a tensorflow-datasets data_dir")
    p.add_argument("--files-dir", default=None, help="older name of --data-dir (files only)")
    p.add_argument("--controller", choices=["none", "add", "mult"], default="mult")
    p.add_argument("--factor", type=float, default=0.98, help="multiplicative factor")
    p.add_argument("--gap", type=float, default=0.2, help="multiplicative reset gap")
    p.add_argument("--step", type=float, default=0.01, help="additive step")
    p.add_argument("--drop", type=float, default=0.01, help="additive reset drop")
    p.add_argument("--epochs", type=int, default=500)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=3407)
    p.add_argument("--steps-per-epoch", type=int, default=None, help="cap (short tries)")
    p.add_argument("--train-examples", type=int, default=None, help="use the first N only")
    p.add_argument("--out", default="runs/wang2026-app")
    return p.parse_args()


def main():
    args = parse_args()
    if os.path.exists(os.path.join(args.out, "summary.json")):
        raise SystemExit(f"{args.out} already holds a finished run; choose another --out")
    os.makedirs(args.out, exist_ok=True)

    keras.utils.set_random_seed(args.seed)  # Python, NumPy and the backend
    ds = data.load(args.dataset, batch_size=args.batch_size, seed=args.seed,
                   files_dir=args.files_dir, data_dir=args.data_dir,
                   max_train_examples=args.train_examples)
    overrides = {k: v for k, v in (("depth", args.depth), ("width", args.width)) if v is not None}
    # The layout kerasparse train uses by default (channels_first on torch).
    overrides["data_format"] = step_options.data_format("auto", keras.backend.backend())
    model = models.get_model(args.model, num_classes=ds.num_classes, input_shape=ds.input_shape,
                             **overrides)
    steps = ds.steps_per_epoch(args.steps_per_epoch)

    schedule = keras.optimizers.schedules.CosineDecay(args.lr, decay_steps=args.epochs * steps)
    # Cross-entropy from logits, accuracy, jit_compile "auto" (Keras' choice: eager on torch),
    # as kerasparse train compiles.
    compile_model(model, optimizer=keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True))

    cbs = []
    if args.controller == "mult":  # Strategy 2: r *= factor, reset to 1 on an accuracy drop
        cbs.append(callbacks.MultiplicativeKeepRatio(factor=args.factor, smoothing=0.5,
                                                     gap=args.gap))
    elif args.controller == "add":  # Strategy 1: r -= step, reset on an accuracy drop
        cbs.append(callbacks.AdditiveKeepRatio(step=args.step, smoothing=0.9, drop=args.drop))
    if any(isinstance(layer, layers.GlobalTopK) for layer in model.layers):
        cbs.append(callbacks.SparsityMonitor(ds.sample(256)[0]))  # logs nz: the actual density
    # The paper reports test accuracy per epoch (no validation split): the test split is
    # evaluated at each epoch's end and logged as test_* (history.csv as kerasparse train's).
    cbs.append(callbacks.HistoryCSV(os.path.join(args.out, "history.csv"), test_data=ds.test))

    history = model.fit(
        # Epoch e: a stateless shuffle of (seed, e), capped at the same steps as fit takes.
        ds.train_epochs(args.epochs, steps_per_epoch=steps),
        epochs=args.epochs,
        steps_per_epoch=steps,
        callbacks=cbs,
        shuffle=False,  # train_epochs already shuffles, per epoch
        verbose=2,
    ).history

    best = max(range(args.epochs), key=lambda e: history["test_accuracy"][e])
    summary = {
        "best_test_accuracy": history["test_accuracy"][best],
        "best_epoch": best + 1,
        "final": {k: v[-1] for k, v in history.items()},
        "resets": cbs[0].resets if args.controller != "none" else 0,
        "backend": keras.backend.backend(),
        "args": vars(args),
    }
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(f"best test accuracy {summary['best_test_accuracy']:.4f} at epoch {best + 1}; "
          f"{summary['resets']} keep-ratio resets; results in {args.out}")


if __name__ == "__main__":
    main()

"""Dent & Tanner 2026 (and Price et al. 2024) as a plain user script: a deep plain net with a
clipped sparsifying activation at the edge of chaos, trained from inputs scaled to variance q*.

    # Table 1 / Fig. 5: DNN 100 x 300 on MNIST, CReLU, s = 0.85, V'(q*) = 0.7, q* = 1 and 3
    KERAS_BACKEND=jax python apps/dent_tanner2026_eoc.py --q-star 3 --out runs/dt-mnist-q3
    KERAS_BACKEND=jax python apps/dent_tanner2026_eoc.py --q-star 1 --out runs/dt-mnist-q1
    # Table 2 / Fig. 6: CNN 50 x 300 on CIFAR-10, cosine learning rate 1e-3, 300 epochs
    KERAS_BACKEND=jax python apps/dent_tanner2026_eoc.py --model cnn50x300 --dataset cifar10 \\
        --lr 1e-3 --schedule cosine --epochs 300 --q-star 3 --out runs/dt-cifar-q3
    # Price et al. 2024's CReLU setting: q* = 1, MNIST's official split, no validation
    KERAS_BACKEND=jax python apps/dent_tanner2026_eoc.py --q-star 1 --split official \\
        --validation-split 0 --out runs/price-crelu
    # CPU-sized (minutes): depth 20 on the real MNIST files
    KERAS_BACKEND=torch python apps/dent_tanner2026_eoc.py --depth 20 --epochs 3 --lr 1e-2 \\
        --data-dir ../shared/data/mnist --out runs/dt-mnist-d20

The six-step recipe (tau from the sparsity, m from V'(q*), sigma_w^2 from chi_1 = 1, sigma_b^2
from q* = V(q*)) runs inside the model builder (``kerasparse.models.DeepMLP`` / ``DeepCNN``);
``kerasparse.eoc.setup`` prints it here. The same experiments from the command line are the
``configs/dent-tanner2026-*.toml`` and ``configs/price2024-*.toml`` presets; with the same
arguments this script sees the same batches (``DatasetBundle.train_epochs``) and builds the
same model. Expected runtime per paper run: about 15 minutes (MNIST) and several hours
(CIFAR-10) on one GPU (estimates). Writes ``history.csv`` and ``summary.json`` to ``--out``.
"""

import argparse
import json
import os

import kerasparse

kerasparse.use_default_backend()  # $KERAS_BACKEND, else jax: the backend of kerasparse train

import keras  # noqa: E402

from kerasparse import callbacks, data, eoc, models  # noqa: E402
from kerasparse.train import compile_model  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=["mlp100x300", "cnn50x300"], default="mlp100x300")
    p.add_argument("--depth", type=int, default=None, help="override the model's depth")
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--data-dir", default=None, help="folder of the dataset's standard files "
                   "(layout detected) or a tensorflow-datasets data_dir")
    p.add_argument("--files-dir", default=None, help="older name of --data-dir (files only)")
    p.add_argument("--activation", default="crelu", help="crelu, cst, chard_shrink, ...")
    p.add_argument("--sparsity", type=float, default=0.85)
    p.add_argument("--v-prime", type=float, default=0.7)
    p.add_argument("--q-star", type=float, default=3.0)
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--schedule", choices=["constant", "cosine"], default="constant")
    p.add_argument("--split", choices=data.SPLITS, default="pooled",
                   help="pooled: the paper's (train+test pooled, 20%% test, 10%% of the rest "
                   "validation); official: the dataset's own train/test sets")
    p.add_argument("--validation-split", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=3407)
    p.add_argument("--steps-per-epoch", type=int, default=None, help="cap (short tries)")
    p.add_argument("--out", default="runs/dent-tanner2026-app")
    return p.parse_args()


def main():
    args = parse_args()
    if os.path.exists(os.path.join(args.out, "summary.json")):
        raise SystemExit(f"{args.out} already holds a finished run; choose another --out")
    os.makedirs(args.out, exist_ok=True)

    setup = eoc.setup(args.activation, sparsity=args.sparsity, q_star=args.q_star,
                      v_prime=args.v_prime)
    print(f"EoC: tau={setup.tau:.4f} m={setup.m:.4f} sigma_w^2={setup.sigma_w2:.4f} "
          f"sigma_b^2={setup.sigma_b2:.4f}")

    keras.utils.set_random_seed(args.seed)
    ds = data.load(args.dataset, batch_size=args.batch_size, seed=args.seed,
                   q_star=args.q_star,  # each input scaled to variance q* (section 3)
                   validation_split=args.validation_split, split=args.split,
                   files_dir=args.files_dir, data_dir=args.data_dir)
    overrides = {} if args.depth is None else {"depth": args.depth}
    model = models.get_model(
        args.model, activation=args.activation, sparsity=args.sparsity, q_star=args.q_star,
        v_prime=args.v_prime, num_classes=ds.num_classes, input_shape=ds.input_shape,
        **overrides,
    )
    steps = ds.steps_per_epoch(args.steps_per_epoch)
    lr = args.lr
    if args.schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(args.lr, decay_steps=args.epochs * steps)
    # Plain SGD, as in the paper; cross-entropy from logits, accuracy, jit_compile "auto" (Keras'
    # choice: eager on torch), as kerasparse train compiles.
    compile_model(model, optimizer=keras.optimizers.SGD(lr))
    history = model.fit(
        ds.train_epochs(args.epochs, steps_per_epoch=steps),  # epoch e: shuffle of (seed, e)
        epochs=args.epochs,
        steps_per_epoch=steps,
        validation_data=ds.val,
        # history.csv as kerasparse train writes it: val_* (the validation split) and test_*.
        callbacks=[callbacks.HistoryCSV(os.path.join(args.out, "history.csv"),
                                        test_data=ds.test)],
        shuffle=False,  # train_epochs already shuffles, per epoch
        verbose=2,
    ).history
    test = model.evaluate(ds.test, return_dict=True, verbose=0)

    summary = {
        "test_accuracy": test["accuracy"],
        "test_loss": test["loss"],
        "final_train_loss": history["loss"][-1],
        "eoc": {"tau": setup.tau, "m": setup.m, "sigma_w2": setup.sigma_w2,
                "sigma_b2": setup.sigma_b2},
        "backend": keras.backend.backend(),
        "args": vars(args),
    }
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(f"test accuracy {test['accuracy']:.4f}, final training loss "
          f"{history['loss'][-1]:.4f}; results in {args.out}")


if __name__ == "__main__":
    main()

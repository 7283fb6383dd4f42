"""Wang 2026's multiplicative keep-ratio controller on a small net, in a plain user script.

    python apps/keep_ratio_controller.py [--out runs/keep_ratio_controller.png] [--epochs 40]

Trains a small MLP with two SparseActivation sites on generated data (no download, under a
minute on a CPU), with `MultiplicativeKeepRatio` moving the keep ratio r epoch by epoch and
`SparsityMonitor` logging the actual non-zero rate, then plots both per epoch.
"""

import argparse
import os

import kerasparse

kerasparse.use_default_backend()  # $KERAS_BACKEND, else jax: the backend of kerasparse train

import keras  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from kerasparse.callbacks import MultiplicativeKeepRatio, SparsityMonitor  # noqa: E402
from kerasparse.layers import SparseActivation  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out", default="runs/keep_ratio_controller.png", help="PNG to write")
parser.add_argument("--epochs", type=int, default=40)
args = parser.parse_args()

# --- the user script ---------------------------------------------------------------------------
rng = np.random.default_rng(0)
x = rng.normal(size=(1024, 32)).astype("float32")
y = (x[:, :4].sum(axis=1) > 0).astype("int32") + 2 * (x[:, 4:8].sum(axis=1) > 0)  # 4 classes
model = keras.Sequential([keras.Input((32,)), keras.layers.Dense(128), SparseActivation("relu"),
                          keras.layers.Dense(128), SparseActivation("relu"), keras.layers.Dense(4)])
loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
model.compile("adam", loss, metrics=["accuracy"])
controller = MultiplicativeKeepRatio(factor=0.85)  # the paper's 0.98, faster for a short demo
history = model.fit(x, y, batch_size=128, epochs=args.epochs, verbose=2,
                    callbacks=[controller, SparsityMonitor(x[:256])]).history
epochs = range(1, len(history["loss"]) + 1)  # numbered from 1, as kerasparse train does
plt.plot(epochs, history["keep_ratio"], label="keep ratio r (nominal)")
plt.plot(epochs, history["nz"], label="non-zero fraction nz (actual)")
plt.plot(epochs, history["accuracy"], label="training accuracy")
plt.xlabel("epoch"), plt.legend(), plt.title(f"MultiplicativeKeepRatio: {controller.resets} resets")
# -----------------------------------------------------------------------------------------------

os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
plt.savefig(args.out, dpi=120)
print(f"resets: {controller.resets}; plot written to {args.out}")

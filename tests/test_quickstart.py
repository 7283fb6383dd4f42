"""The quick start shows the papers' idea (issue 17, item 6): with the settings of
configs/quickstart.toml the keep-ratio controller compresses r until the training accuracy
falls, then resets it, within the preset's epochs; and ``kerasparse train``'s final table
shows the number of resets.

The full quick-start run is too slow for the suite (about a minute); its measured trajectory
is in the preset's header. Here the preset's controller, optimizer and epochs drive a cheap
model through ``model.fit``: frozen random ReLU features, a GlobalTopK site, a trainable
readout, on labels from a teacher readout of the same features. At r = 1 the task is
realisable; as r shrinks towards one feature per sample the information is gone and the
accuracy must fall, so a controller that compresses fast enough must reset.
"""

import io
import os

import numpy as np

import keras

from kerasparse import config as ks_config
from kerasparse import train as ks_train
from kerasparse.layers import GlobalTopK

PRESET = os.path.join(os.path.dirname(__file__), "..", "configs", "quickstart.toml")


def _cheap_problem(n=640, dim=20, features=128, classes=10, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim)).astype("float32")
    w1 = (rng.normal(size=(dim, features)) / np.sqrt(dim)).astype("float32")
    teacher = rng.normal(size=(features, classes)).astype("float32")
    y = (np.maximum(x @ w1, 0.0) @ teacher).argmax(1).astype("int32")
    return x, y, w1


def test_quickstart_controller_compresses_then_resets():
    config = ks_config.resolve(PRESET)
    assert config["controller"] in ("add", "mult") and config["dataset"] == "embedded"
    x, y, w1 = _cheap_problem()
    inputs = keras.Input((x.shape[1],))
    frozen = keras.layers.Dense(w1.shape[1], activation="relu", use_bias=False,
                                trainable=False, name="features")
    h = GlobalTopK(name="site")(frozen(inputs))
    model = keras.Model(inputs, keras.layers.Dense(10, name="readout")(h))
    frozen.kernel.assign(w1)
    steps = len(x) // config["batch_size"]
    ks_train.compile_model(model, {**config, "jit_compile": "auto"}, steps)
    controller = ks_train.build_controller(config)
    history = model.fit(x, y, batch_size=config["batch_size"], epochs=config["epochs"],
                        callbacks=[controller], shuffle=False, verbose=0).history
    r, reset = history["keep_ratio"], history["keep_ratio_reset"]
    assert controller.resets >= 1, (r, history["accuracy"])
    first = reset.index(1)
    # A full cycle: r was compressed below its start, the accuracy fell, r went back to 1.
    assert min(r[: first + 1]) < 0.1 * config["max_keep_ratio"]
    assert max(history["accuracy"][:first]) > history["accuracy"][first] + config["gap"]
    assert first + 1 < len(r) and r[first + 1] == config["max_keep_ratio"]


def _table(summary):
    from rich.console import Console

    from kerasparse.cli import train_cmd

    buffer = io.StringIO()
    console = Console(file=buffer, width=100)
    original = train_cmd.console
    train_cmd.console = console
    try:
        train_cmd._print_summary(summary, "runs/quickstart")
    finally:
        train_cmd.console = original
    return buffer.getvalue()


def test_final_table_shows_the_resets():
    summary = {"status": "completed", "backend": "jax", "device": "cpu", "epochs_done": 10,
               "epochs": 10, "best_test_accuracy": 0.5, "best_epoch": 4, "wall_time_s": 60.0,
               "final": {"loss": 1.5, "keep_ratio": 1.0, "nz": 0.4, "resets": 2}}
    lines = [line for line in _table(summary).splitlines() if "keep-ratio resets" in line]
    assert len(lines) == 1 and lines[0].split("│")[2].strip() == "2", lines
    no_controller = {**summary, "final": {"loss": 1.5}}
    line = next(l for l in _table(no_controller).splitlines() if "keep-ratio resets" in l)
    assert line.split("│")[2].strip() == "-"

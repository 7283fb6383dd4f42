"""The ``warmup_epochs`` option: the learning rate of every step against its closed form
(linear from 0 to lr over W steps, then the cosine over the remaining T - W steps), in the
optimizer that ``kerasparse train`` builds, on the backend of this process."""

import math

import numpy as np
import pytest

import keras

from kerasparse import config as ks_config
from kerasparse import train as ks_train


def closed_form(step, lr, warmup, total, schedule="cosine"):
    if step < warmup:
        return lr * step / warmup
    if schedule == "constant":
        return lr
    s = min(step - warmup, total - warmup)
    return lr * 0.5 * (1.0 + math.cos(math.pi * s / (total - warmup)))


def lr_per_step(optimizer, steps):
    out = []
    for s in steps:
        optimizer.iterations.assign(s)
        out.append(float(keras.ops.convert_to_numpy(optimizer.learning_rate)))
    return np.array(out)


@pytest.mark.parametrize("schedule", ["cosine", "constant"])
def test_lr_per_step_follows_the_closed_form(schedule):
    config = ks_config.resolve(overrides={"epochs": 5, "lr": 0.1, "warmup_epochs": 1.5,
                                          "schedule": schedule})
    steps_per_epoch = 4  # W = 6 warm-up steps, T = 20 steps in all
    optimizer = ks_train.build_optimizer(config, steps_per_epoch)
    optimizer.build([keras.Variable(np.zeros(2, "float32"))])
    steps = [0, 1, 3, 5, 6, 7, 13, 19, 20, 22]  # warm-up, its end, the cosine, past T
    expected = [closed_form(s, 0.1, 6, 20, schedule) for s in steps]
    np.testing.assert_allclose(lr_per_step(optimizer, steps), expected, rtol=1e-5, atol=1e-7)
    assert ks_train.warmup_steps(config, steps_per_epoch) == 6


def test_without_warmup_the_recipe_is_unchanged():
    config = ks_config.resolve(overrides={"epochs": 2, "lr": 0.1})
    assert config["warmup_epochs"] == 0.0  # the paper's recipe stays the default
    optimizer = ks_train.build_optimizer(config, 5)
    optimizer.build([keras.Variable(np.zeros(2, "float32"))])
    steps = [0, 1, 4, 9, 10]
    expected = [0.1 * 0.5 * (1 + math.cos(math.pi * s / 10)) for s in steps]
    np.testing.assert_allclose(lr_per_step(optimizer, steps), expected, rtol=1e-5, atol=1e-7)


def test_fit_uses_the_warmup_schedule():
    """Through model.fit as ``kerasparse train`` compiles it: the lr read at each epoch's end
    (what history.csv's ``lr`` column records) is the closed form at that step."""
    config = ks_config.resolve(overrides={"epochs": 3, "lr": 0.2, "warmup_epochs": 1.0,
                                          "jit_compile": "false"})
    steps = 4
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    ks_train.compile_model(model, config, steps)
    seen = []

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))

    x = np.random.default_rng(0).normal(size=(16, 3)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    model.fit(x, y, batch_size=4, epochs=3, callbacks=[Record()], verbose=0, shuffle=False)
    expected = [closed_form(s, 0.2, 4, 12) for s in (4, 8, 12)]
    np.testing.assert_allclose(seen, expected, rtol=1e-5, atol=1e-7)


def test_warmup_is_recorded_and_validated():
    assert "warmup_epochs" in ks_config.FIELDS
    assert ks_config.resolve(overrides={"epochs": 4, "warmup_epochs": 2})["warmup_epochs"] == 2.0
    with pytest.raises(ks_config.ConfigError, match=r"warmup_epochs must be a number in \[0"):
        ks_config.resolve(overrides={"warmup_epochs": -0.5})
    with pytest.raises(ks_config.ConfigError, match="warmup_epochs must be below epochs"):
        ks_config.resolve(overrides={"epochs": 2, "warmup_epochs": 2.0})

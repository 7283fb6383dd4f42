"""history.csv, one format everywhere (issue 15, item 8): kerasparse.history and the
HistoryCSV callback a plain ``model.fit`` script uses to write what ``kerasparse train`` writes."""

import csv

import keras
import numpy as np
import pytest

from kerasparse import history
from kerasparse.callbacks import HistoryCSV


def test_floats_are_the_shortest_text_of_their_float32():
    assert history.format_value(0.1 + 0.2) == "0.3"  # 0.30000000000000004 in float64
    assert history.format_value(np.float32(0.05)) == "0.05"
    assert history.format_value(7) == "7" and history.format_value(True) == "1"
    assert history.format_value("x") == "x"
    rng = np.random.default_rng(0)
    for v in np.concatenate([rng.standard_normal(200), 10.0 ** rng.uniform(-12, 12, 200)]):
        text = history.format_value(float(v))
        assert np.float32(float(text)) == np.float32(v), (v, text)  # float32 round trip
        digits = text.split("e")[0].replace("-", "").replace(".", "").strip("0")
        assert len(digits) <= 9, text  # at most 9 significant digits
    assert history.format_value(float("nan")) == "nan"


def test_history_csv_callback_writes_what_kerasparse_train_writes(tmp_path):
    """Epochs from 1, test_* from the test split (equal to evaluate after the last epoch),
    the learning rate of each epoch's first step on a schedule, clean decimals."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((64, 5)).astype("float32"), rng.integers(0, 3, 64)
    xt, yt = rng.standard_normal((32, 5)).astype("float32"), rng.integers(0, 3, 32)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
    schedule = keras.optimizers.schedules.CosineDecay(0.1, decay_steps=3 * 4)
    model.compile(keras.optimizers.SGD(schedule),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    path = tmp_path / "history.csv"
    logged = model.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0,
                       callbacks=[HistoryCSV(path, test_data=(xt, yt))]).history
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert list(rows[0])[0] == "epoch" and "val_loss" not in rows[0]
    for e, row in enumerate(rows):
        assert float(row["lr"]) == pytest.approx(0.05 * (1 + np.cos(np.pi * e / 3)), rel=1e-6)
        assert row["loss"] == str(np.float32(logged["loss"][e]))
    final = model.evaluate(xt, yt, verbose=0, return_dict=True)
    assert float(rows[-1]["test_loss"]) == pytest.approx(final["loss"], rel=1e-6)
    assert logged["test_accuracy"][-1] == pytest.approx(final["accuracy"])  # in History too

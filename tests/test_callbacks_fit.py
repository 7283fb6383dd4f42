"""The keep-ratio controllers and SparsityMonitor in real `model.fit` runs: functional,
sequential and subclassed models, compiled and eager, and interrupted + resumed runs.

The models end in a top-k site fed by softplus (all values positive and distinct), so the
fraction of non-zeros of the model output, computed by a metric inside the (compiled) train
step, is exactly k/D: it shows which keep ratio each training step really used."""

import math

import keras
import numpy as np
import pytest
from keras import ops

from kerasparse.callbacks import (
    AdditiveKeepRatio,
    ConstantKeepRatio,
    MultiplicativeKeepRatio,
    ScheduledKeepRatio,
    SparsityMonitor,
)
from kerasparse.layers import SparseActivation

from conftest import BACKEND

D1, D2 = 16, 12  # widths of the two sites: s1 (ReLU, hidden) and s2 (softplus, the output)
N, BATCH = 16, 16  # one full batch per epoch (eager JAX steps are slow)


def expected_k(r, size):
    # k = max(1, ceil(r * D)), r * D within float32 rounding above an integer = that integer
    return max(1, math.ceil(r * size - 1e-6 * max(r * size, 1.0)))


def out_nz(y_true, y_pred):
    """Fraction of non-zero model outputs, averaged over the epoch's steps by Keras."""
    return ops.mean(ops.cast(ops.not_equal(y_pred, 0), "float32"))


class Block(keras.layers.Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(D1, name="d1")
        self.site = SparseActivation("relu", name="s1")

    def call(self, x):
        return self.site(self.dense(x))


class Net(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.block = Block()
        self.d2 = keras.layers.Dense(D2, name="d2")
        self.s2 = SparseActivation("softplus", name="s2")

    def call(self, x):
        return self.s2(self.d2(self.block(x)))


def make_model(kind):
    if kind == "functional":
        inputs = keras.Input((8,))
        h = SparseActivation("relu", name="s1")(keras.layers.Dense(D1, name="d1")(inputs))
        outputs = SparseActivation("softplus", name="s2")(keras.layers.Dense(D2, name="d2")(h))
        model = keras.Model(inputs, outputs)
    elif kind == "sequential":
        model = keras.Sequential(
            [
                keras.Input((8,)),
                keras.layers.Dense(D1, name="d1"),
                SparseActivation("relu", name="s1"),
                keras.layers.Dense(D2, name="d2"),
                SparseActivation("softplus", name="s2"),
            ]
        )
    else:
        model = Net()
        model(np.zeros((1, 8), "float32"))  # build
    return model


def compile_model(model, run_eagerly=False):
    jit = False if BACKEND == "torch" else "auto"  # torch + jit_compile recompiles endlessly
    model.compile(
        keras.optimizers.SGD(0.05), "mse", metrics=[out_nz], run_eagerly=run_eagerly,
        jit_compile=jit,
    )
    return model


def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(N, 8)).astype("float32"), rng.normal(size=(N, D2)).astype("float32")


class Scripted(keras.callbacks.Callback):
    """Writes a scripted 'accuracy' into the logs (placed before the controller)."""

    def __init__(self, values):
        super().__init__()
        self.values = values

    def on_epoch_end(self, epoch, logs=None):
        logs["scripted"] = self.values[epoch]


class Probe(keras.callbacks.Callback):
    """Records each epoch's logs and, at epoch end, the weights needed for a NumPy forward."""

    def __init__(self):
        super().__init__()
        self.logs, self.weights = [], []

    def on_epoch_end(self, epoch, logs=None):
        self.logs.append(dict(logs))
        by_path = {v.path.split("/")[-2] + "/" + v.name: np.asarray(ops.convert_to_numpy(v))
                   for v in self.model.weights}
        self.weights.append(by_path)


class Interrupt(keras.callbacks.Callback):
    def __init__(self, at):
        super().__init__()
        self.at = at

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.at:
            raise RuntimeError("interrupted")


def numpy_forward(x, w, r):
    def topk(h, k):
        thr = np.sort(h, axis=1)[:, -k][:, None]
        return np.where(h >= thr, h, 0.0)

    h1 = topk(np.maximum(x @ w["d1/kernel"] + w["d1/bias"], 0.0), expected_k(r, D1))
    h2 = topk(np.logaddexp(0.0, h1 @ w["d2/kernel"] + w["d2/bias"]), expected_k(r, D2))
    return h1, h2


@pytest.mark.parametrize("run_eagerly", [False, True], ids=["compiled", "eager"])
@pytest.mark.parametrize("kind", ["functional", "sequential", "subclassed"])
def test_fit_applies_keep_ratio_and_monitor_measures(kind, run_eagerly):
    x, y = data()
    model = compile_model(make_model(kind), run_eagerly)
    scripted = [0.9, 0.9, 0.3, 0.3, 0.9, 0.9]
    ctl = MultiplicativeKeepRatio(factor=0.7, gap=0.2, monitor="scripted")
    probe = Probe()
    history = model.fit(
        x, y, batch_size=BATCH, epochs=6, verbose=0, shuffle=False,
        callbacks=[Scripted(scripted), ctl, SparsityMonitor(x[:12]), probe],
    )
    # e: .9, .9, .6 (< best .9 - .2: reset), .45 (reset), .675 (reset), .7875
    rs = [1.0, 0.7, 0.49, 1.0, 1.0, 1.0]
    np.testing.assert_allclose(history.history["keep_ratio"], rs, atol=1e-12)
    assert history.history["keep_ratio_reset"] == [0, 0, 1, 1, 1, 0] and ctl.resets == 3
    # Every train step of epoch e used r_e: the output keeps exactly k of D2 entries.
    np.testing.assert_allclose(
        history.history["out_nz"], [expected_k(r, D2) / D2 for r in rs], atol=1e-6
    )
    # SparsityMonitor: measured on x[:12] with the epoch's r and end-of-epoch weights.
    for epoch, r in enumerate(rs):
        h1, h2 = numpy_forward(x[:12], probe.weights[epoch], r)
        logs = probe.logs[epoch]
        assert logs["nz/s1"] == pytest.approx(np.count_nonzero(h1) / h1.size, abs=1e-9)
        assert logs["nz/s2"] == pytest.approx(np.count_nonzero(h2) / h2.size, abs=1e-9)
        total = (np.count_nonzero(h1) + np.count_nonzero(h2)) / (h1.size + h2.size)
        assert logs["nz"] == pytest.approx(total, abs=1e-9)
    # ReLU already zeroes entries: the actual rate is below the nominal r at the ReLU site.
    assert history.history["nz/s1"][0] < 1.0
    assert history.history["nz"] == [l["nz"] for l in probe.logs]


@pytest.mark.parametrize(
    "controller, rs",
    [
        (lambda: AdditiveKeepRatio(step=0.25, monitor="scripted"), [1.0, 0.75, 0.5, 0.25]),
        (lambda: ConstantKeepRatio(0.3), [0.3] * 4),
        (lambda: ScheduledKeepRatio(lambda e: [0.9, 0.2, 0.0, 0.6][e]), [0.9, 0.2, 0.0, 0.6]),
    ],
    ids=["additive", "constant", "scheduled"],
)
def test_other_controllers_in_fit(controller, rs, tmp_path):
    x, y = data()
    model = compile_model(make_model("functional"))
    history = model.fit(x, y, batch_size=BATCH, epochs=4, verbose=0,
                        callbacks=[Scripted([0.5] * 4), controller()])
    np.testing.assert_allclose(history.history["keep_ratio"], rs, atol=1e-12)
    np.testing.assert_allclose(
        history.history["out_nz"], [expected_k(r, D2) / D2 for r in rs], atol=1e-6
    )
    assert history.history["keep_ratio_reset"] == [0] * 4
    # A .keras file saved after fit holds the last epoch's r (the layers' variable).
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras", compile=False)
    for name in ("s1", "s2"):
        value = float(ops.convert_to_numpy(loaded.get_layer(name).keep_ratio))
        assert value == pytest.approx(rs[-1], abs=1e-7)


def test_model_without_topk_fails_clearly():
    x, y = data()
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(D2)])
    compile_model(model)
    for callback in (AdditiveKeepRatio(), SparsityMonitor(x)):
        with pytest.raises(ValueError, match="no GlobalTopK or SparseActivation layer"):
            model.fit(x, y, epochs=1, verbose=0, callbacks=[callback])


SCRIPT = [0.9, 0.4, 0.9, 0.9, 0.9, 0.9, 0.3, 0.3, 0.9]  # resets at epochs 1, 6, 7


def resumable_fit(backup, epochs, callbacks_extra=()):
    x, y = data()
    model = compile_model(make_model("functional"))
    ctl = MultiplicativeKeepRatio(factor=0.7, gap=0.2, monitor="scripted", backup_dir=backup)
    probe = Probe()
    callbacks = [keras.callbacks.BackupAndRestore(backup), Scripted(SCRIPT), ctl, probe]
    model.fit(x, y, batch_size=BATCH, epochs=epochs, verbose=0, shuffle=False,
              callbacks=callbacks + list(callbacks_extra))
    return probe.logs, ctl


def test_interrupted_run_resumes_exactly_with_backup_and_restore(tmp_path):
    epochs = len(SCRIPT)
    full_logs, full_ctl = resumable_fit(str(tmp_path / "full"), epochs)
    backup = str(tmp_path / "run")
    with pytest.raises(RuntimeError, match="interrupted"):
        resumable_fit(backup, epochs, [Interrupt(at=4)])
    # A new model and new callbacks (as in a new process), same backup_dir.
    second_logs, second_ctl = resumable_fit(backup, epochs)
    assert len(second_logs) == epochs - 4  # BackupAndRestore restarted at epoch 4
    first_logs = full_logs[:4]  # (the interrupted run's first 4 epochs are the same run)
    for key in ("keep_ratio", "keep_ratio_reset", "out_nz"):
        resumed = [l[key] for l in first_logs + second_logs]
        assert resumed == [l[key] for l in full_logs], key
    assert second_ctl.get_state() == full_ctl.get_state()
    assert full_ctl.resets >= 2 and sum(l["keep_ratio_reset"] for l in full_logs[4:]) >= 1
    assert [l["keep_ratio"] for l in full_logs][4] < 1.0  # the resumed r is not a fresh start


def test_resume_with_get_state_and_initial_epoch():
    x, y = data()
    kwargs = dict(factor=0.7, gap=0.2, monitor="scripted")
    full = MultiplicativeKeepRatio(**kwargs)
    model = compile_model(make_model("functional"))
    full_h = model.fit(x, y, batch_size=BATCH, epochs=7, verbose=0,
                       callbacks=[Scripted(SCRIPT), full]).history
    first = MultiplicativeKeepRatio(**kwargs)
    model = compile_model(make_model("functional"))
    h1 = model.fit(x, y, batch_size=BATCH, epochs=3, verbose=0,
                   callbacks=[Scripted(SCRIPT), first]).history
    second = MultiplicativeKeepRatio(**kwargs)
    second.set_state(first.get_state())
    h2 = model.fit(x, y, batch_size=BATCH, epochs=7, initial_epoch=3, verbose=0,
                   callbacks=[Scripted(SCRIPT), second]).history
    for key in ("keep_ratio", "keep_ratio_reset", "out_nz"):
        assert h1[key] + h2[key] == full_h[key], key
    assert second.get_state() == full.get_state()

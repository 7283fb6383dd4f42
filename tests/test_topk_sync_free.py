"""No host round trip inside a training step (issue 12, item 1).

On torch, a Python read of a tensor (``Tensor.item``, ``int()``, ``float()``, ``bool()``,
``operator.index``) makes the host wait for the device: on a GPU every such read stalls the
step. These tests run the forward and backward pass (and Keras' whole train step) of a model
with several sparse sites, in every top-k mode, at r = 1, 0.5 and 0.05, with those methods
patched to count their calls, and require zero. They also watch the dispatcher
(``TorchDispatchMode``) for the ATen ops behind any device-to-host read, including reads
made inside torch's C++ (a tensor passed where torch wants a number) and ops whose output
shape depends on the data (``nonzero``, ``masked_select``, ``unique``). Where CUDA is present
the same runs under ``torch.cuda.set_sync_debug_mode("error")``.

(Found this way, not ours: Keras' torch SGD reads the learning rate on the host twice per
step, ``alpha=-learning_rate`` in keras/src/backend/torch/optimizers/torch_sgd.py; its Adam
and AdamW do not, so the train-step test uses AdamW.)
"""

import keras
import numpy as np
import pytest

import reference as ref
from conftest import BACKEND, to_numpy
from kerasparse import layers

pytestmark = pytest.mark.skipif(
    BACKEND != "torch",
    reason="torch only: jax and tensorflow trace the step once into a graph that runs on the "
    "device; a Python-level host read there would fail the trace (tested in test_topk.py)",
)

READS = ("item", "__int__", "__float__", "__bool__", "__index__", "tolist")
RATIOS = (1.0, 0.5, 0.05)


@pytest.fixture(autouse=True)
def accelerator_path(monkeypatch):
    """On a CPU tensor, eager torch takes host-side exits (a CPU has no device queue to
    stall: ``ksops.TORCH_CPU_HOST_EXITS``). These tests check the path every other device
    and torch.compile run, on CPU tensors: switch the CPU exits off."""
    from kerasparse import ops as ksops

    monkeypatch.setattr(ksops, "TORCH_CPU_HOST_EXITS", False)


def _model(data_format="channels_first"):
    axis = 1 if data_format == "channels_first" else -1
    inputs = keras.Input((3, 8, 8) if axis == 1 else (8, 8, 3))
    h = keras.layers.Conv2D(8, 3, padding="same", data_format=data_format)(inputs)
    h = layers.SparseActivation("relu", keep_ratio=0.5, axis=axis, name="site_global")(h)
    h = keras.layers.Conv2D(8, 3, padding="same", data_format=data_format)(h)
    h = layers.SparseActivation(layers.CReLU(tau=0.1, m=2.0), keep_ratio=0.5, mode="channel",
                                axis=axis, name="site_channel")(h)
    h = keras.layers.Conv2D(8, 3, padding="same", data_format=data_format)(h)
    h = layers.RMSNorm2D(axis=axis)(h)
    h = layers.GlobalTopK(0.5, mode="spatial", axis=axis, name="site_spatial")(h)
    h = layers.GlobalTopK(0.5, name="topk_global")(h)  # negative entries too
    h = keras.layers.GlobalAveragePooling2D(data_format=data_format)(h)
    outputs = keras.layers.Dense(4)(h)
    return keras.Model(inputs, outputs)


HOST_OPS = ("_local_scalar_dense", "aten.item", "is_nonzero", "aten.nonzero",
            "masked_select", "aten.unique", "_unique")


class _CountReads:
    """Patches torch.Tensor's host-read methods to count calls (they still work) and
    records the ATen ops that read a tensor on the host, as seen by the dispatcher."""

    def __enter__(self):
        import torch
        from torch.utils._python_dispatch import TorchDispatchMode

        calls = self.calls = []

        class Watch(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                if any(op in str(func) for op in HOST_OPS):
                    calls.append(str(func))
                return func(*args, **(kwargs or {}))

        self._mode = Watch()
        self._mode.__enter__()
        self._saved = {}
        for name in READS:
            original = getattr(torch.Tensor, name)
            self._saved[name] = original

            def counted(tensor, *args, _name=name, _original=original, **kwargs):
                self.calls.append(_name)
                return _original(tensor, *args, **kwargs)

            setattr(torch.Tensor, name, counted)
        return self

    def __exit__(self, *exc):
        import torch

        for name, original in self._saved.items():
            setattr(torch.Tensor, name, original)
        self._mode.__exit__(*exc)


def _set_keep_ratio(model, r):
    for layer in model.layers:
        if isinstance(layer, layers.GlobalTopK):
            layer.keep_ratio.assign(r)


def _sites_out(model, x):
    """The outputs of the four sites (NumPy), for checking the counts below."""
    names = ["site_global", "site_channel", "site_spatial", "topk_global"]
    probe = keras.Model(model.inputs, [model.get_layer(n).output for n in names])
    return dict(zip(names, (to_numpy(y) for y in probe(x))))


@pytest.mark.parametrize("r", RATIOS)
def test_forward_and_backward_make_no_host_read(r):
    import torch

    model = _model()
    x = torch.tensor(np.random.default_rng(0).normal(size=(4, 3, 8, 8)).astype("float32"))
    model(x)  # build
    _set_keep_ratio(model, r)
    with _CountReads() as reads:
        loss = model(x).square().sum()
        loss.backward()
    assert reads.calls == [], f"host reads in the step at r={r}: {reads.calls}"
    grads = [v.value.grad for v in model.trainable_variables]
    assert all(g is not None and bool(torch.isfinite(g).all()) for g in grads)
    # The sites did select: at r < 1 the global site keeps ceil(r*D) of 512 (tie-free data
    # after ReLU: min(k, positives)), at r = 1 everything.
    out = _sites_out(model, x)
    k = ref.keep_count(r, 512)
    kept = (out["site_global"].reshape(4, -1) != 0).sum(1)
    positives = (out["site_global"].reshape(4, -1) > 0).sum(1) if r == 1 else None
    if r == 1:
        np.testing.assert_array_equal(kept, positives)
    else:
        assert (kept <= k).all() and (kept == k).any()


@pytest.mark.parametrize("r", RATIOS)
def test_keras_train_step_makes_no_host_read(r):
    """Keras' torch train step (forward, loss, backward, SGD update, metrics) on our model:
    no read of a tensor on the host either (Keras reads the logs only when a caller does)."""
    model = _model()
    model.compile(optimizer=keras.optimizers.AdamW(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 3, 8, 8)).astype("float32")
    y = rng.integers(0, 4, size=(4,)).astype("int32")
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)  # builds model, optimizer and metrics
    _set_keep_ratio(model, r)
    data = keras.tree.map_structure(keras.ops.convert_to_tensor, (x, y))
    with _CountReads() as reads:
        logs = model.train_step(data)
    assert reads.calls == [], f"host reads in the train step at r={r}: {reads.calls}"
    assert np.isfinite(float(to_numpy(logs["loss"])))


def test_cpu_tensors_take_the_host_exits_by_default(monkeypatch):
    """The switch the tests above turn off is what decides: with it on (the default), a CPU
    step reads k and the counts on the host (so the sync-free tests do test another path)."""
    import torch

    from kerasparse import ops as ksops

    monkeypatch.setattr(ksops, "TORCH_CPU_HOST_EXITS", True)
    model = _model()
    x = torch.tensor(np.random.default_rng(0).normal(size=(4, 3, 8, 8)).astype("float32"))
    model(x)
    _set_keep_ratio(model, 0.5)
    with _CountReads() as reads:
        model(x)
    assert reads.calls


@pytest.mark.parametrize("r", RATIOS)
def test_no_device_sync_on_cuda(r):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device: torch.cuda.set_sync_debug_mode only checks CUDA "
                    "streams (the CPU tests above count the Python- and ATen-level reads)")
    model = _model()
    x = torch.tensor(np.random.default_rng(0).normal(size=(4, 3, 8, 8)).astype("float32"),
                     device="cuda")
    model(x)
    _set_keep_ratio(model, r)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        loss = model(x).square().sum()
        loss.backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()

"""Keras' own layer-test harness (``keras.src.testing.TestCase.run_layer_test``) over every
layer of :mod:`kerasparse.layers`: build, symbolic and eager calls, get_config and
serialization round trips, weight counts, a compiled training step, and the mixed-precision
check (output dtype == ``compute_output_spec``'s, float32 weights). The harness skips its
mixed-precision check on torch CPU ("torch lacks support" for float16 there), so
:func:`_mixed_precision_check` runs the same check with ``mixed_bfloat16`` on every backend.

Expected outputs come from the independent NumPy references in ``tests/reference.py``.
Also here: unknown spatial sizes (``keras.Input((None, None, C))``, two input sizes, eager
and compiled), and the activation layer wrapped by ``SparseActivation`` following the
wrapper's dtype policy (issue 12, item 6)."""

import keras
import numpy as np
import pytest
from keras.src.testing import TestCase

import reference as ref
from conftest import BACKEND, to_numpy
from kerasparse import layers

SHAPE = (2, 3, 4, 5)  # small: every case below builds, calls, serializes and trains once


def _tie_free(shape=SHAPE):
    """Distinct non-zero multiples of 1/32 (exact in bfloat16: at most 8 significant bits for
    up to 256 entries), so the top-k is tie-free in every precision tested here."""
    n = int(np.prod(shape))
    return ref.tie_free(np.random.default_rng(0), shape) * np.float32(n / 32)


def _act(name, **params):
    fn = ref.ACTIVATIONS[name][0]
    return lambda x: fn(x, **params).astype(np.float32)


# (id, layer class, init kwargs, input (NumPy), reference output fn, trainable, non-trainable)
X = _tie_free()
CASES = [
    ("GlobalTopK-global", layers.GlobalTopK, {"keep_ratio": 0.3}, X,
     lambda x: ref.topk(x, 0.3), 0, 1),
    ("GlobalTopK-channel", layers.GlobalTopK, {"keep_ratio": 0.3, "mode": "channel"}, X,
     lambda x: ref.topk(x, 0.3, "channel", -1), 0, 1),
    ("GlobalTopK-channel-first", layers.GlobalTopK,
     {"keep_ratio": 0.5, "mode": "channel", "axis": 1}, X,
     lambda x: ref.topk(x, 0.5, "channel", 1), 0, 1),
    ("GlobalTopK-spatial", layers.GlobalTopK, {"keep_ratio": 0.4, "mode": "spatial"}, X,
     lambda x: ref.topk(x, 0.4, "spatial", -1), 0, 1),
    ("SparseActivation-name", layers.SparseActivation, {"activation": "relu", "keep_ratio": 0.3},
     X, lambda x: ref.topk(np.maximum(x, 0), 0.3), 0, 1),
    ("SparseActivation-callable", layers.SparseActivation,
     {"activation": keras.activations.relu6, "keep_ratio": 0.25, "mode": "channel"}, X,
     lambda x: ref.topk(np.clip(x, 0, 6), 0.25, "channel", -1), 0, 1),
    ("SparseActivation-layer", layers.SparseActivation,
     {"activation": layers.CReLU(tau=0.125, m=4.0), "keep_ratio": 0.25}, X,
     lambda x: ref.topk(ref.crelu(x, 0.125, 4.0).astype(np.float32), 0.25), 0, 1),
    ("RMSNorm2D", layers.RMSNorm2D, {}, X, lambda x: ref.rms_norm(x, 1, 0), 2, 0),
    ("RMSNorm2D-channels-first", layers.RMSNorm2D, {"axis": 1}, X,
     lambda x: np.moveaxis(ref.rms_norm(np.moveaxis(x, 1, -1), 1, 0), -1, 1), 2, 0),
    ("CReLU", layers.CReLU, {"tau": 0.1, "m": 1.5}, X, _act("crelu", tau=0.1, m=1.5), 0, 0),
    ("CST", layers.CST, {"tau": 0.1, "m": 1.5}, X, _act("cst", tau=0.1, m=1.5), 0, 0),
    ("HardShrink", layers.HardShrink, {"tau": 0.2, "alpha": 2.0, "eps": 0.05}, X,
     _act("hard_shrink", tau=0.2, alpha=2.0, eps=0.05), 0, 0),
    ("CHardShrink", layers.CHardShrink, {"tau": 0.2, "alpha": 2.0, "eps": 0.05, "m": 1.0}, X,
     _act("chard_shrink", tau=0.2, alpha=2.0, eps=0.05, m=1.0), 0, 0),
    ("Sawtooth", layers.Sawtooth, {"tau": 0.2, "m": 1.5}, X, _act("sawtooth", tau=0.2, m=1.5),
     0, 0),
]
IDS = [c[0] for c in CASES]


class _Harness(TestCase):
    def runTest(self):  # unittest needs one; the harness methods are called directly
        pass


def _mixed_precision_check(layer_cls, init_kwargs, x, policy="mixed_bfloat16"):
    """The harness' mixed-precision check (keras/src/testing/test_case.py), for ``policy``:
    the eager output's dtype equals ``compute_output_spec``'s and every float weight stays
    float32."""
    layer = layer_cls(**{**init_kwargs, "dtype": policy})
    y = layer(x)
    spec = layer.compute_output_spec(keras.KerasTensor(x.shape, dtype=layer.compute_dtype))
    assert keras.backend.standardize_dtype(y.dtype) == spec.dtype == layer.compute_dtype, (
        keras.backend.standardize_dtype(y.dtype), spec.dtype, layer.compute_dtype)
    for weight in layer.weights:
        assert keras.backend.standardize_dtype(weight.dtype) == "float32", weight.path
    return y


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_keras_layer_harness(case):
    _, cls, kwargs, x, reference, trainable, non_trainable = case
    _Harness().run_layer_test(
        cls,
        init_kwargs=kwargs,
        input_data=keras.ops.convert_to_tensor(x),
        expected_output=keras.ops.convert_to_tensor(reference(x)),  # the harness wants one type
        expected_num_trainable_weights=trainable,
        expected_num_non_trainable_weights=non_trainable,
        expected_num_seed_generators=0,
        expected_num_losses=0,
        custom_objects={"relu6": keras.activations.relu6},
        run_training_check=True,
        run_mixed_precision_check=True,  # (skipped by the harness on torch CPU: see below)
    )


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_mixed_bfloat16_on_every_backend(case):
    _, cls, kwargs, x, reference, _, _ = case
    # The harness' check with bfloat16 (torch CPU supports it). The inputs are exact in
    # bfloat16, so only the layer's own rounding differs from the float32 reference.
    y = _mixed_precision_check(cls, kwargs, x)
    assert keras.backend.standardize_dtype(y.dtype) == "bfloat16"
    np.testing.assert_allclose(
        to_numpy(keras.ops.cast(y, "float32")), reference(x), rtol=2**-7, atol=2**-7
    )


# --- unknown spatial sizes -------------------------------------------------------------------

DYNAMIC = [
    (layers.GlobalTopK, {"keep_ratio": 0.3}, "global", -1),
    (layers.GlobalTopK, {"keep_ratio": 0.3, "mode": "channel"}, "channel", -1),
    (layers.GlobalTopK, {"keep_ratio": 0.3, "mode": "spatial"}, "spatial", -1),
    (layers.SparseActivation, {"keep_ratio": 0.3}, "global", -1),
    (layers.SparseActivation, {"keep_ratio": 0.3, "mode": "channel"}, "channel", -1),
]


@pytest.mark.parametrize("run_eagerly", [False, True], ids=["compiled", "eager"])
@pytest.mark.parametrize("cls, kwargs, mode, axis", DYNAMIC,
                         ids=[f"{c.__name__}-{m}" for c, _, m, _ in DYNAMIC])
def test_unknown_spatial_size(cls, kwargs, mode, axis, run_eagerly):
    inputs = keras.Input((None, None, 6))
    model = keras.Model(inputs, cls(**kwargs)(inputs))
    model.compile(run_eagerly=run_eagerly, jit_compile={"torch": False}.get(BACKEND, "auto"))
    relu = cls is layers.SparseActivation
    for size in (4, 5):
        x = _tie_free((2, size, size, 6))
        y = model.predict(x, verbose=0)
        expected = ref.topk(np.maximum(x, 0) if relu else x, 0.3, mode, axis)
        np.testing.assert_array_equal(y, expected, err_msg=f"size {size}")


def test_unknown_spatial_size_under_xla_tensorflow():
    if BACKEND != "tensorflow":
        pytest.skip("tensorflow only: jax steps are always XLA (covered above) and torch "
                    "steps are not XLA-compiled")
    inputs = keras.Input((None, None, 6))
    model = keras.Model(inputs, layers.GlobalTopK(0.3)(inputs))
    model.compile(jit_compile=True)
    for size in (4, 5):
        x = _tie_free((2, size, size, 6))
        np.testing.assert_array_equal(model.predict(x, verbose=0), ref.topk(x, 0.3))


# --- SparseActivation(activation=<layer>) follows the wrapper's dtype policy --------------------


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16", "bfloat16"])
def test_wrapped_activation_layer_follows_the_wrapper_policy(policy):
    if BACKEND == "torch" and "float16" in policy and "bfloat16" not in policy:
        pytest.skip("torch CPU has no float16 kernels for every op (Keras' harness skips it too)")
    inner = layers.CReLU(tau=0.125, m=2.0)  # created under the global float32 policy
    layer = layers.SparseActivation(inner, keep_ratio=0.5, dtype=policy)
    assert inner.dtype_policy.name == layer.dtype_policy.name == policy
    x = _tie_free((2, 40))
    y = layer(x)
    assert keras.backend.standardize_dtype(y.dtype) == layer.compute_dtype
    spec = layer.compute_output_spec(keras.KerasTensor(x.shape, dtype=layer.compute_dtype))
    assert spec.dtype == layer.compute_dtype
    # After a .keras-style round trip the inner layer follows the wrapper again.
    revived = layers.SparseActivation.from_config(layer.get_config())
    assert revived.activation.dtype_policy.name == policy

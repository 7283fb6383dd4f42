"""Every kerasparse layer inside ``model.fit``, eager and compiled, and under the
``mixed_bfloat16`` policy."""

import keras
import numpy as np
import pytest

import reference as ref
from conftest import BACKEND, to_numpy
from kerasparse import layers


def _model_with_every_layer():
    # Two top-k sites only (the other modes are covered in test_topk.py): each costs an
    # XLA compile per call in eager JAX.
    inputs = keras.Input((3, 3, 4))
    h = keras.layers.Dense(8)(inputs)
    h = layers.RMSNorm2D()(h)
    h = keras.layers.Dense(6)(h)
    h = layers.RMSNorm2D(axis=1)(h)  # channels_first view: axis 1 as the channels
    h = layers.GlobalTopK(keep_ratio=0.6, mode="channel", axis=1)(h)
    branches = [
        layers.CReLU(tau=0.1, m=1.5),
        layers.CST(tau=0.1, m=1.5),
        layers.HardShrink(tau=0.1, alpha=3.0, eps=0.05),
        layers.CHardShrink(tau=0.1, alpha=3.0, eps=0.05, m=1.0),
        layers.Sawtooth(tau=0.2, m=1.5),
        layers.SparseActivation(layers.CReLU(tau=0.05, m=2.0), keep_ratio=0.4, mode="spatial"),
    ]
    h = keras.layers.Concatenate()([layer(keras.layers.Dense(4)(h)) for layer in branches])
    outputs = keras.layers.Dense(2)(keras.layers.Flatten()(h))
    return keras.Model(inputs, outputs)


def test_fit_eager_and_compiled_agree_with_every_layer(rng):
    x = rng.normal(size=(32, 3, 3, 4)).astype(np.float32)
    y = rng.normal(size=(32, 2)).astype(np.float32)
    initial = _model_with_every_layer().get_weights()
    results = {}
    for run_eagerly in (True, False):
        model = _model_with_every_layer()
        model.set_weights(initial)
        model.compile(
            optimizer=keras.optimizers.SGD(0.05),
            loss="mse",
            run_eagerly=run_eagerly,
            jit_compile=False if BACKEND == "torch" else "auto",
        )
        # Two steps: the second runs on the weights the first one updated.
        history = model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
        results[run_eagerly] = (history.history["loss"], model.get_weights())
    (loss_e, w_e), (loss_c, w_c) = results[True], results[False]
    assert np.all(np.isfinite(loss_e))
    np.testing.assert_allclose(loss_c, loss_e, rtol=1e-4)
    for a, b in zip(w_c, w_e):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    # Training really moved every trainable weight (gradients reach through every layer),
    # and only those (the keep ratios are not trained).
    moved = [not np.allclose(a, b) for a, b in zip(w_e, initial)]
    trainable = [v.trainable for v in model.weights]
    assert sum(trainable) == 2 * 2 + 9 * 2  # 2 RMSNorm2D and 9 Dense (kernel, bias) each
    assert moved == trainable, [(v.path, m) for v, m in zip(model.weights, moved)]


@pytest.fixture
def mixed_bfloat16():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_rms_norm_bfloat16(rng, mixed_bfloat16):
    x = rng.normal(0, 3, (2, 4, 4, 16)).astype(np.float32)
    layer = layers.RMSNorm2D()
    assert layer.compute_dtype == "bfloat16"
    y = layer(keras.ops.cast(x, "bfloat16"))
    assert keras.backend.standardize_dtype(y.dtype) == "bfloat16"
    assert layer.scale.dtype == "float32" and layer.bias.dtype == "float32"
    x_bf16 = to_numpy(keras.ops.cast(keras.ops.cast(x, "bfloat16"), "float32"))
    # The float32 result for the bf16-rounded input, then one bfloat16 rounding (2^-8 relative).
    np.testing.assert_allclose(
        to_numpy(keras.ops.cast(y, "float32")), ref.rms_norm(x_bf16, 1, 0), rtol=2**-7, atol=1e-3
    )


@pytest.mark.parametrize("mode", ["global", "channel", "spatial"])
def test_topk_layers_bfloat16(rng, mixed_bfloat16, mode):
    # Distinct integers up to 192 are exact in bfloat16 (8 significant bits): tie-free there too.
    x = ref.tie_free(rng, (2, 4, 4, 6)) * 192
    assert np.array_equal(x, np.round(x))
    for layer in (
        layers.GlobalTopK(keep_ratio=0.25, mode=mode),
        layers.SparseActivation("linear", keep_ratio=0.25, mode=mode),
    ):
        y = layer(keras.ops.cast(x, "bfloat16"))
        assert keras.backend.standardize_dtype(y.dtype) == "bfloat16"
        assert layer.keep_ratio.dtype == "float32"
        np.testing.assert_array_equal(
            to_numpy(keras.ops.cast(y, "float32")), ref.topk(x, 0.25, mode)
        )


def test_activation_layers_bfloat16(rng, mixed_bfloat16):
    x = rng.uniform(-3, 3, 64).astype(np.float32)
    x = to_numpy(keras.ops.cast(keras.ops.cast(x, "bfloat16"), "float32"))
    for layer, (fn, _, _), params in [
        (layers.CReLU(1.0, 1.0), ref.ACTIVATIONS["crelu"], (1.0, 1.0)),
        (layers.CST(1.0, 1.0), ref.ACTIVATIONS["cst"], (1.0, 1.0)),
        (layers.HardShrink(1.0, 3.0, 0.25), ref.ACTIVATIONS["hard_shrink"], (1.0, 3.0, 0.25)),
        (
            layers.CHardShrink(1.0, 3.0, 0.25, 2.0),
            ref.ACTIVATIONS["chard_shrink"],
            (1.0, 3.0, 0.25, 2.0),
        ),
        (layers.Sawtooth(1.0, 1.0), ref.ACTIVATIONS["sawtooth"], (1.0, 1.0)),
    ]:
        y = layer(keras.ops.cast(x, "bfloat16"))
        assert keras.backend.standardize_dtype(y.dtype) == "bfloat16"
        np.testing.assert_allclose(
            to_numpy(keras.ops.cast(y, "float32")), fn(x, *params), rtol=2**-6, atol=2**-6
        )


def test_fit_under_mixed_bfloat16(rng, mixed_bfloat16):
    model = keras.Sequential(
        [
            keras.Input((12,)),
            keras.layers.Dense(16),
            layers.RMSNorm2D(),
            layers.SparseActivation("relu", keep_ratio=0.3),
            keras.layers.Dense(2),
        ]
    )
    model.compile(
        optimizer="sgd", loss="mse", jit_compile=False if BACKEND == "torch" else "auto"
    )
    x = rng.normal(size=(16, 12)).astype(np.float32)
    y = rng.normal(size=(16, 2)).astype(np.float32)
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert model.layers[1].scale.dtype == "float32"

"""RMSNorm2D (Wang 2026, section 2.3) against a float64 NumPy reference: forward, input gradient
(closed form), layouts, mixed precision and argument checks."""

import keras
import numpy as np
import pytest

import reference as ref
from autodiff import grad_of_weighted_sum
from conftest import to_numpy
from kerasparse import layers

LAYOUTS = [
    ((2, 5, 6, 8), -1),  # channels_last
    ((2, 8, 5, 6), 1),  # channels_first
    ((4, 16), -1),  # rank 2 (MLP features)
    ((3, 7, 5), -1),  # rank 3 (sequence, channels)
    ((2, 8, 5, 6), -3),  # channels_first given as a negative axis
]
IDS = [f"{'x'.join(map(str, s))}-axis{a}" for s, a in LAYOUTS]


def _layer_with_random_weights(rng, shape, axis, **kwargs):
    layer = layers.RMSNorm2D(axis=axis, **kwargs)
    layer.build((None,) + shape[1:])
    c = shape[axis]
    scale = rng.uniform(0.5, 2.0, c).astype(np.float32)
    bias = rng.normal(0, 0.5, c).astype(np.float32)
    layer.scale.assign(scale)
    layer.bias.assign(bias)
    return layer, scale, bias


@pytest.mark.parametrize("shape, axis", LAYOUTS, ids=IDS)
def test_forward_matches_reference(rng, shape, axis):
    x = rng.normal(0, 3, shape).astype(np.float32)
    layer, scale, bias = _layer_with_random_weights(rng, shape, axis)
    y = to_numpy(layer(x))
    assert y.dtype == np.float32 and y.shape == shape
    np.testing.assert_allclose(y, ref.rms_norm(x, scale, bias, axis), rtol=1e-5, atol=1e-5)


def test_default_weights_give_unit_rms_per_location(rng):
    x = rng.normal(0, 5, (2, 3, 4, 6)).astype(np.float32)
    layer = layers.RMSNorm2D()
    y = to_numpy(layer(x))
    np.testing.assert_array_equal(to_numpy(layer.scale), np.ones(6))
    np.testing.assert_array_equal(to_numpy(layer.bias), np.zeros(6))
    np.testing.assert_allclose(np.sqrt(np.mean(y**2, axis=-1)), 1.0, rtol=1e-5)
    assert [w.name for w in layer.trainable_weights] == ["scale", "bias"]


def test_no_batch_statistics(rng):
    # Each sample is normalised on its own: a sample's output does not depend on the batch.
    x = rng.normal(size=(4, 3, 3, 5)).astype(np.float32)
    layer = layers.RMSNorm2D()
    np.testing.assert_allclose(to_numpy(layer(x))[:1], to_numpy(layer(x[:1])), rtol=1e-6)


def test_zero_input_gives_the_bias_and_epsilon_is_used(rng):
    layer, _, bias = _layer_with_random_weights(rng, (1, 2, 2, 4), -1)
    y = to_numpy(layer(np.zeros((1, 2, 2, 4), np.float32)))
    np.testing.assert_allclose(y, np.broadcast_to(bias, y.shape), rtol=0, atol=0)
    x = np.full((1, 4), 0.1, np.float32)  # mean square 0.01, so epsilon = 0.03 halves the output
    y = to_numpy(layers.RMSNorm2D(epsilon=0.03)(x))
    np.testing.assert_allclose(y, ref.rms_norm(x, 1.0, 0.0, epsilon=0.03), rtol=1e-6)
    np.testing.assert_allclose(y, 0.5, rtol=1e-6)


@pytest.mark.parametrize("shape, axis", LAYOUTS[:3], ids=IDS[:3])
def test_input_gradient_matches_closed_form(rng, shape, axis):
    x = rng.normal(0, 2, shape).astype(np.float32)
    w = rng.normal(size=shape).astype(np.float32)
    layer, scale, _ = _layer_with_random_weights(rng, shape, axis)
    _, grad = grad_of_weighted_sum(layer, x, w)
    np.testing.assert_allclose(grad, ref.rms_norm_grad(x, scale, w, axis), rtol=1e-4, atol=1e-5)


def test_scale_and_bias_are_learned_in_fit(rng):
    # A target that needs scale 2 and bias 0.5 on the normalised input: fit must move them.
    x = rng.normal(size=(64, 6)).astype(np.float32)
    target = ref.rms_norm(x, 2.0, 0.5).astype(np.float32)
    model = keras.Sequential([keras.Input((6,)), layers.RMSNorm2D(name="norm")])
    model.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse")
    model.fit(x, target, batch_size=16, epochs=15, verbose=0)
    norm = model.get_layer("norm")
    np.testing.assert_allclose(to_numpy(norm.scale), 2.0, atol=0.05)
    np.testing.assert_allclose(to_numpy(norm.bias), 0.5, atol=0.05)


@pytest.mark.parametrize(
    "kwargs, bad",
    [
        ({"epsilon": 0.0}, "epsilon=0.0"),
        ({"epsilon": -1e-5}, "epsilon=-1e-05"),
        ({"epsilon": "small"}, "epsilon='small'"),
        ({"axis": 1.0}, "axis=1.0"),
        ({"axis": None}, "axis=None"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_value(kwargs, bad):
    with pytest.raises(ValueError, match=f"RMSNorm2D.*Received: {bad}"):
        layers.RMSNorm2D(**kwargs)


@pytest.mark.parametrize(
    "axis, batch_shape, match",
    [
        (-1, (None,), r"rank >= 2.*Received: input_shape=\(None,\)"),
        (0, (None, 4, 4, 3), r"axis=0 for input_shape=\(None, 4, 4, 3\)"),
        (4, (None, 4, 4, 3), r"axis=4 for input_shape"),
        (-1, (None, 4, None), r"known channel dimension.*input_shape=\(None, 4, None\)"),
    ],
)
def test_wrong_input_shape_fails_in_build(axis, batch_shape, match):
    with pytest.raises(ValueError, match=match):
        layers.RMSNorm2D(axis=axis)(keras.Input(batch_shape=batch_shape))

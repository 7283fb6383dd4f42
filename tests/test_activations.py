"""CReLU, CST, HardShrink, CHardShrink, Sawtooth: the pure functions and their layers against
the piecewise definitions of Dent & Tanner 2026 (eqs. (1), (34), (37)-(39)), value and gradient."""

import keras
import numpy as np
import pytest

import reference as ref
from autodiff import grad_of_weighted_sum
from conftest import to_numpy
from kerasparse import activations, layers

CASES = [
    ("crelu", layers.CReLU, {"tau": 1.0, "m": 2.0}),
    ("crelu", layers.CReLU, {"tau": 0.0, "m": 0.5}),
    ("cst", layers.CST, {"tau": 1.0, "m": 1.0}),
    ("cst", layers.CST, {"tau": 0.3, "m": 2.0}),
    ("hard_shrink", layers.HardShrink, {"tau": 1.0, "alpha": 10.0, "eps": 0.01}),  # fig. 10a
    ("hard_shrink", layers.HardShrink, {"tau": 0.5, "alpha": 3.0, "eps": 0.2}),
    ("chard_shrink", layers.CHardShrink, {"tau": 1.0, "alpha": 10.0, "eps": 0.01, "m": 2.0}),
    ("chard_shrink", layers.CHardShrink, {"tau": 0.2, "alpha": 0.5, "eps": 0.3, "m": 1.5}),
    ("sawtooth", layers.Sawtooth, {"tau": 1.0, "m": 1.0}),  # fig. 10c
    ("sawtooth", layers.Sawtooth, {"tau": 0.5, "m": 0.25}),
]
IDS = [f"{name}-{'-'.join(map(str, p.values()))}" for name, _, p in CASES]


def _inputs(rng, kinks):
    """A grid over [-4, 4], the kinks themselves and their float32 neighbours, random points."""
    kinks = np.asarray(kinks, np.float32)
    return np.concatenate(
        [
            np.linspace(-4, 4, 801, dtype=np.float32),
            kinks,
            np.nextafter(kinks, np.float32(-np.inf)),
            np.nextafter(kinks, np.float32(np.inf)),
            rng.normal(0, 2, 200).astype(np.float32),
        ]
    )


@pytest.mark.parametrize("name, layer_cls, params", CASES, ids=IDS)
def test_function_and_layer_match_the_paper_definition(rng, name, layer_cls, params):
    fn, _, kinks = ref.ACTIVATIONS[name]
    x = _inputs(rng, kinks(**params))
    expected = fn(x, **params)
    function = activations.get_activation(name)
    from_function = to_numpy(function(keras.ops.convert_to_tensor(x), **params))
    from_layer = to_numpy(layer_cls(**params)(x))
    # float32 evaluation (|x| <= 8): a few float32 ulps of 8, times the slope alpha in a ramp.
    tol = 8 * 2**-23 * 4 * max(1.0, params.get("alpha", 1.0))
    np.testing.assert_allclose(from_function, expected, rtol=0, atol=tol)
    np.testing.assert_allclose(from_layer, expected, rtol=0, atol=tol)
    assert from_layer.dtype == np.float32


@pytest.mark.parametrize("name, layer_cls, params", CASES, ids=IDS)
def test_gradient_matches_the_analytic_derivative(rng, name, layer_cls, params):
    _, dfn, kinks = ref.ACTIVATIONS[name]
    # Points in every piece (including inside the narrow HardShrink ramp), kept 1e-3 (or eps/4)
    # away from the kinks, where the derivative is undefined.
    margin = min(1e-3, params.get("eps", 1.0) / 4)
    pieces = np.asarray(kinks(**params))
    x = np.concatenate([rng.uniform(-4, 4, 300), (pieces[:-1] + pieces[1:]) / 2, pieces + 0.5])
    x = ref.away_from(x, pieces, margin).astype(np.float32)
    w = rng.normal(size=x.shape).astype(np.float32)
    layer = layer_cls(**params)
    _, grad = grad_of_weighted_sum(layer, x, w)
    np.testing.assert_allclose(grad, w * dfn(x, **params), rtol=1e-5, atol=1e-6)


def test_paper_example_values():
    # Dent & Tanner fig. 10 parameters, values from the printed formulas by hand.
    x = np.array([0.0, 0.99, 1.0, 1.01, 1.5, 2.0, 3.0], np.float32)
    hs = to_numpy(activations.hard_shrink(x, tau=1.0, alpha=10.0, eps=0.01))
    np.testing.assert_allclose(hs, [0, 0, 0.1, 0.2, 0.69, 1.19, 2.19], atol=1e-5)
    chs = to_numpy(activations.chard_shrink(x, tau=1.0, alpha=10.0, eps=0.01, m=2.0))
    np.testing.assert_allclose(chs, [0, 0, 0.1, 0.2, 0.69, 1.19, 1.19], atol=1e-5)
    saw = to_numpy(activations.sawtooth(x, tau=1.0, m=1.0))
    np.testing.assert_allclose(saw, [0, 0.99, 1.0, 0.99, 0.5, 0, 0], atol=1e-6)
    cr = to_numpy(activations.crelu(x, tau=1.0, m=1.0))
    np.testing.assert_allclose(cr, [0, 0, 0, 0.01, 0.5, 1.0, 1.0], atol=1e-6)
    cs = to_numpy(activations.cst(-x, tau=1.0, m=1.0))
    np.testing.assert_allclose(cs, [0, 0, 0, -0.01, -0.5, -1.0, -1.0], atol=1e-6)


@pytest.mark.parametrize(
    "identifier, expected",
    [
        ("crelu", "crelu"),
        ("CReLU", "crelu"),
        ("cst", "cst"),
        ("HardShrink", "hard_shrink"),
        ("hard-shrink", "hard_shrink"),
        ("chard_shrink", "chard_shrink"),
        ("CHardShrink", "chard_shrink"),
        ("sawtooth", "sawtooth"),
    ],
)
def test_get_activation_by_name(identifier, expected):
    assert activations.get_activation(identifier) is activations.ACTIVATIONS[expected]


def test_get_activation_keras_names_and_callables():
    x = np.array([-1.0, 0.5], np.float32)
    np.testing.assert_allclose(to_numpy(activations.get_activation("relu")(x)), [0.0, 0.5])

    def fn(x):
        return x

    assert activations.get_activation(fn) is fn


@pytest.mark.parametrize("identifier", ["not_an_activation", "crelux", 3])
def test_get_activation_unknown_raises(identifier):
    with pytest.raises(ValueError, match=f"activation={identifier!r}"):
        activations.get_activation(identifier)


@pytest.mark.parametrize("name, layer_cls, params", CASES[::2], ids=IDS[::2])
def test_layers_get_builds_the_layer(rng, name, layer_cls, params):
    layer = layers.get(name, **params)
    assert type(layer) is layer_cls
    assert layer.get_config() | params == layer.get_config()


def test_layers_get_keras_name_and_errors():
    assert isinstance(layers.get("relu"), keras.layers.Activation)
    with pytest.raises(ValueError, match="takes no parameters"):
        layers.get("relu", tau=1.0)
    with pytest.raises(ValueError, match="activation='nope'"):
        layers.get("nope")
    with pytest.raises(TypeError):
        layers.get("crelu", tau=1.0)  # m missing


@pytest.mark.parametrize(
    "layer_cls, params, bad",
    [
        (layers.CReLU, {"tau": -0.5, "m": 1.0}, "tau=-0.5"),
        (layers.CReLU, {"tau": 1.0, "m": 0.0}, "m=0.0"),
        (layers.CReLU, {"tau": 1.0, "m": -2}, "m=-2"),
        (layers.CReLU, {"tau": "1", "m": 1.0}, "tau='1'"),
        (layers.CReLU, {"tau": float("nan"), "m": 1.0}, "tau=nan"),
        (layers.CST, {"tau": -1.0, "m": 1.0}, "tau=-1.0"),
        (layers.CST, {"tau": 1.0, "m": 0}, "m=0"),
        (layers.HardShrink, {"tau": -1.0, "alpha": 10.0, "eps": 0.01}, "tau=-1.0"),
        (layers.HardShrink, {"tau": 1.0, "alpha": 0.0, "eps": 0.01}, "alpha=0.0"),
        (layers.HardShrink, {"tau": 1.0, "alpha": 10.0, "eps": -0.01}, "eps=-0.01"),
        (layers.CHardShrink, {"tau": -1.0, "alpha": 10.0, "eps": 0.01, "m": 2.0}, "tau=-1.0"),
        (layers.CHardShrink, {"tau": 1.0, "alpha": 10.0, "eps": 0.01, "m": 0.0}, "m=0.0"),
        # eq. (38) needs the clip point beyond the ramp: m > tau + eps
        (layers.CHardShrink, {"tau": 1.0, "alpha": 10.0, "eps": 0.01, "m": 1.005}, "m=1.005"),
        (layers.Sawtooth, {"tau": -0.1, "m": 1.0}, "tau=-0.1"),
        (layers.Sawtooth, {"tau": 1.0, "m": -1.0}, "m=-1.0"),
    ],
)
def test_bad_parameters_raise_value_error_naming_the_value(layer_cls, params, bad):
    with pytest.raises(ValueError, match=f"{layer_cls.__name__}: .*Received: {bad}") as info:
        layer_cls(**params)
    assert "\n" not in str(info.value)

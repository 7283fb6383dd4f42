"""get_config/from_config round trips for every kerasparse layer and a ``.keras`` save/load of a
model holding all of them (identical outputs, the assigned keep ratio and learned weights kept)."""

import json

import keras
import numpy as np
import pytest

import reference as ref
from conftest import to_numpy
from kerasparse import layers


def _all_layers():
    return [
        layers.CReLU(tau=0.5, m=1.5),
        layers.CST(tau=0.25, m=2.0),
        layers.HardShrink(tau=0.5, alpha=10.0, eps=0.01),
        layers.CHardShrink(tau=0.5, alpha=10.0, eps=0.01, m=1.25),
        layers.Sawtooth(tau=0.5, m=0.75),
        layers.RMSNorm2D(epsilon=1e-6, axis=1),
        layers.GlobalTopK(keep_ratio=0.3, mode="channel", axis=1),
        layers.SparseActivation("gelu", keep_ratio=0.4, mode="spatial", axis=-1),
        layers.SparseActivation(layers.CReLU(tau=0.1, m=1.0), keep_ratio=0.2),
        layers.SparseActivation(keras.activations.relu, keep_ratio=0.6),
    ]


@pytest.mark.parametrize("layer", _all_layers(), ids=lambda layer: type(layer).__name__)
def test_get_config_round_trip(rng, layer):
    x = rng.normal(size=(2, 4, 3, 5)).astype(np.float32)
    y = to_numpy(layer(x))
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    clone.build(x.shape)
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(to_numpy(clone(x)), y)
    # And through Keras' registry ("kerasparse>ClassName").
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is type(layer) and restored.get_config() == config


def test_config_holds_the_constructor_arguments():
    config = layers.SparseActivation("relu", keep_ratio=0.25, mode="spatial", axis=1).get_config()
    assert (config["activation"], config["keep_ratio"], config["mode"], config["axis"]) == (
        "relu",
        0.25,
        "spatial",
        1,
    )
    config = layers.CHardShrink(tau=1, alpha=10, eps=0.01, m=2).get_config()
    assert {k: config[k] for k in ("tau", "alpha", "eps", "m")} == {
        "tau": 1.0,
        "alpha": 10.0,
        "eps": 0.01,
        "m": 2.0,
    }
    assert layers.RMSNorm2D(epsilon=1e-5, axis=1).get_config()["epsilon"] == 1e-5


def _model_with_every_layer():
    inputs = keras.Input((4, 3, 5))
    h = layers.RMSNorm2D(name="norm_last")(inputs)
    outputs = [
        layers.RMSNorm2D(axis=1, name="norm_first")(inputs),
        layers.GlobalTopK(0.5, name="topk_global")(h),
        layers.GlobalTopK(0.5, mode="channel", axis=1, name="topk_channel")(h),
        layers.SparseActivation("relu", keep_ratio=0.3, mode="spatial", name="sparse_relu")(h),
        layers.SparseActivation(layers.CReLU(0.1, 1.0), keep_ratio=0.4, name="sparse_crelu")(h),
        # An activation layer with weights of its own: they are saved with the model.
        layers.SparseActivation(keras.layers.PReLU(name="prelu"), 0.5, name="sparse_prelu")(h),
    ]
    for layer in _all_layers()[:5]:
        outputs.append(layer(h))
    return keras.Model(inputs, outputs)


def test_keras_file_round_trip_with_every_layer(rng, tmp_path):
    model = _model_with_every_layer()
    # Non-default state: learned-looking RMSNorm weights and keep ratios assigned by a
    # controller (different from the constructor's keep_ratio).
    for name in ("norm_last", "norm_first"):
        norm = model.get_layer(name)
        norm.scale.assign(rng.uniform(0.5, 2, norm.scale.shape).astype(np.float32))
        norm.bias.assign(rng.normal(0, 0.3, norm.bias.shape).astype(np.float32))
    prelu = model.get_layer("sparse_prelu").activation
    prelu.alpha.assign(rng.uniform(0.1, 0.9, prelu.alpha.shape).astype(np.float32))
    model.get_layer("topk_global").keep_ratio.assign(0.15)
    model.get_layer("sparse_crelu").keep_ratio.assign(0.05)
    x = rng.normal(size=(3, 4, 3, 5)).astype(np.float32)
    expected = [to_numpy(y) for y in model(x)]

    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)

    assert float(to_numpy(loaded.get_layer("topk_global").keep_ratio)) == pytest.approx(0.15)
    assert float(to_numpy(loaded.get_layer("sparse_crelu").keep_ratio)) == pytest.approx(0.05)
    assert len(model.weights) == len(loaded.weights)
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))
    got = [to_numpy(y) for y in loaded(x)]
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)
    # The assigned ratio is really in use: ceil(0.15 * 60) = 9 non-zeros per sample.
    topk_out = got[1].reshape(3, -1)
    np.testing.assert_array_equal((topk_out != 0).sum(axis=1), [ref.keep_count(0.15, 60)] * 3)
    for a, b in zip(model.layers, loaded.layers):  # compared as JSON (tuples become lists)
        assert type(a) is type(b) and _json(a.get_config()) == _json(b.get_config())


def _json(config):
    return json.loads(json.dumps(config))

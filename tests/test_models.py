"""kerasparse.models: the registry, WideResNet, DeepMLP, DeepCNN, and `kerasparse models`.

Small configurations throughout (JAX's CPU convolutions and sorts are slow); the big presets
are built but never run.
"""

import numpy as np
import pytest

import keras
from conftest import BACKEND, to_numpy, weights_not_initialized

from kerasparse.callbacks import find_activation_layers, find_topk_layers
from kerasparse.layers import CReLU, GlobalTopK, RMSNorm2D, SparseActivation
from kerasparse.models import MODELS, DeepCNN, DeepMLP, WideResNet, get_model

# A tiny WRN (one block per group) on 8x8 inputs: fast enough for eager JAX.
TINY = dict(depth=10, width=1, input_shape=(8, 8, 3), num_classes=5)


def _compile_kwargs(run_eagerly):
    kw = {"run_eagerly": run_eagerly}
    if BACKEND == "torch":
        kw["jit_compile"] = False  # torch + jit_compile recompiles endlessly
    return kw


def _trainable_count(model):
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def _images(rng, n=4, shape=(8, 8, 3)):
    return rng.normal(size=(n, *shape)).astype("float32")


# --- registry ---------------------------------------------------------------------------


def test_registry_names_and_builders():
    assert {"wrn28-4", "wrn16-4", "wrn28-10", "wrn16-1", "mlp100x300", "cnn50x300"} <= set(MODELS)
    for spec in MODELS.values():
        assert spec.builder in ("WideResNet", "DeepMLP", "DeepCNN")
        assert spec.description


def test_unknown_model_name_suggests_nearest():
    with pytest.raises(ValueError, match=r"Did you mean 'wrn28-4'\?"):
        get_model("wrn28_4")
    with pytest.raises(ValueError, match="registered models"):
        get_model("resnet50")


# --- WideResNet -------------------------------------------------------------------------


def test_wrn28_4_has_the_papers_parameter_count():
    # The structure only: the weights are created with their shapes but not initialized.
    with weights_not_initialized():
        _check_wrn28_4(get_model("wrn28-4"))


def _check_wrn28_4(model):
    trainable = _trainable_count(model)
    # Wang 2026 / the issue: "WRN-28-4 (5.85 M parameters)", to 3 significant digits.
    assert round(trainable / 1e6, 2) == 5.85
    assert trainable == 5_849_050
    assert MODELS["wrn28-4"].parameter_count() == trainable
    sites = [layer for layer in model.layers if isinstance(layer, SparseActivation)]
    # 2 sites per block x 12 blocks + the final one.
    assert len(sites) == 25
    assert {s.name for s in sites} == {
        f"group{g}_block{b}_act{i}" for g in (1, 2, 3) for b in (1, 2, 3, 4) for i in (1, 2)
    } | {"final_act"}
    assert sum(isinstance(layer, RMSNorm2D) for layer in model.layers) == 25
    # Group output shapes: 16k/32k/64k channels at strides 1, 2, 2.
    assert tuple(model.get_layer("group1_block4_add").output.shape) == (None, 32, 32, 64)
    assert tuple(model.get_layer("group2_block4_add").output.shape) == (None, 16, 16, 128)
    assert tuple(model.get_layer("group3_block4_add").output.shape) == (None, 8, 8, 256)
    assert tuple(model.output.shape) == (None, 10)


@pytest.mark.parametrize(
    "overrides",
    [
        dict(TINY),
        dict(TINY, width=2, norm="batchnorm"),
        dict(TINY, depth=16, norm="none", num_classes=3),
        dict(TINY, input_shape=(8, 8, 1), topk=False),
    ],
)
def test_wrn_closed_form_parameter_count_matches_the_built_model(overrides):
    # Independent reference: the per-layer count of the reference WRN architecture.
    depth, k, c_in = overrides["depth"], overrides["width"], overrides["input_shape"][-1]
    n = (depth - 4) // 6
    norm = {"rmsnorm": 2, "batchnorm": 2, "none": 0}[overrides.get("norm", "rmsnorm")]
    expected = 9 * c_in * 16
    prev = 16
    for width in (16 * k, 32 * k, 64 * k):
        for b in range(n):
            expected += norm * prev + 9 * prev * width + norm * width + 9 * width * width
            if b == 0 and (prev != width or width != 16 * k):
                expected += prev * width
            prev = width
    classes = overrides.get("num_classes", 10)
    expected += norm * prev + (prev + 1) * classes
    model = WideResNet(**overrides)
    assert _trainable_count(model) == expected
    assert WideResNet.count_parameters(**overrides) == expected


def test_wrn_topk_at_keep_ratio_one_equals_the_dense_baseline(rng):
    x = _images(rng)
    sparse = WideResNet(**TINY)
    dense = WideResNet(**TINY, topk=False)
    # Same weights less the sites' keep-ratio scalars.
    dense.set_weights(
        [w for w, v in zip(sparse.get_weights(), sparse.weights) if "keep_ratio" not in v.path]
    )
    np.testing.assert_allclose(to_numpy(sparse(x)), to_numpy(dense(x)), rtol=1e-5, atol=1e-5)
    assert not any(isinstance(layer, GlobalTopK) for layer in dense.layers)
    # SparsityMonitor measures the dense baseline at the same places (its activation layers).
    sites = find_topk_layers(sparse)
    assert [layer.name for layer in find_activation_layers(dense)] == [s.name for s in sites]


def test_wrn_sites_apply_the_keep_ratio(rng):
    model = WideResNet(**TINY, keep_ratio=0.25)
    probe = keras.Model(model.input, model.get_layer("group1_block1_act2").output)
    out = to_numpy(probe(_images(rng)))
    per_sample = (out != 0).reshape(len(out), -1).sum(axis=1)
    d = out[0].size  # 8 * 8 * 16
    assert np.all(per_sample <= int(np.ceil(0.25 * d)))
    assert np.all(per_sample > 0)


def test_wrn_crelu_sites(rng):
    model = WideResNet(**TINY, activation="crelu", activation_params={"tau": 0.5, "m": 1.0})
    site = model.get_layer("final_act")
    assert isinstance(site, SparseActivation) and isinstance(site.activation, CReLU)
    # SparsityMonitor's layers are exactly the 7 sites, not the CReLU inside each.
    assert find_activation_layers(model) == find_topk_layers(model) and len(
        find_topk_layers(model)) == 7
    out = to_numpy(keras.Model(model.input, site.output)(_images(rng)))
    assert out.min() >= 0.0 and out.max() <= 1.0 + 1e-6


def test_wrn_channels_first_gives_the_same_outputs(rng):
    x = _images(rng)
    last = WideResNet(**TINY, keep_ratio=0.5)
    first = WideResNet(**TINY, keep_ratio=0.5, data_format="channels_first")
    first.set_weights(last.get_weights())  # conv kernels are layout-independent in Keras
    assert first.get_layer("group1_block1_act1").axis == 1
    assert first.get_layer("group1_block1_norm1").axis == 1
    call_first = first
    if keras.backend.backend() == "tensorflow":
        # TensorFlow's CPU kernels have no NCHW Conv2D; XLA has (kerasparse refuses NCHW on a
        # TensorFlow CPU without jit_compile, tests/test_step_options.py).
        import tensorflow as tf

        call_first = tf.function(first, jit_compile=True)
    np.testing.assert_allclose(to_numpy(call_first(x)), to_numpy(last(x)), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("run_eagerly", [True, False], ids=["eager", "compiled"])
def test_wrn_fit_updates_every_weight(rng, run_eagerly):
    model = WideResNet(**TINY, keep_ratio=0.5)
    before = [to_numpy(w).copy() for w in model.trainable_weights]
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        **_compile_kwargs(run_eagerly),
    )
    # One step: enough to see every weight move (JAX's eager mode compiles op by op).
    x, y = _images(rng, 4), rng.integers(0, 5, 4)
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    changed = [not np.allclose(b, to_numpy(w)) for b, w in zip(before, model.trainable_weights)]
    assert all(changed), [w.path for w, c in zip(model.trainable_weights, changed) if not c]


def test_wrn_config_round_trip_and_keras_file(rng, tmp_path):
    model = WideResNet(**TINY, norm="batchnorm", keep_ratio=0.5, name="tiny_wrn")
    model.get_layer("final_act").keep_ratio.assign(0.3)  # state a controller would set
    x = _images(rng)
    expected = to_numpy(model(x))
    config = model.get_config()
    assert config["depth"] == 10 and config["norm"] == "batchnorm" and config["keep_ratio"] == 0.5
    clone = WideResNet.from_config(config)
    assert clone.get_config() == config
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(to_numpy(clone(x)), expected, rtol=1e-6, atol=1e-6)

    path = tmp_path / "wrn.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, WideResNet) and loaded.name == "tiny_wrn"
    assert float(to_numpy(loaded.get_layer("final_act").keep_ratio)) == pytest.approx(0.3)
    np.testing.assert_allclose(to_numpy(loaded(x)), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(depth=12), "depth must be 6n"),
        (dict(width=0), "width must be a positive integer"),
        (dict(norm="layernorm"), "norm must be one of"),
        (dict(data_format="NCHW"), "data_format must be one of"),
        (dict(activation="crelu"), "takes activation_params tau, m"),
        (dict(activation="relu", activation_params={"tau": 1.0}), "takes no activation_params"),
        (dict(keep_ratio=0.0), "keep_ratio must be"),
        (dict(input_shape=(8, 8)), "input_shape must be 3 positive integers"),
    ],
)
def test_wrn_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        WideResNet(**{**TINY, **kwargs})


# --- DeepMLP / DeepCNN ------------------------------------------------------------------


def test_eoc_presets_parameter_counts():
    # Dent & Tanner 2026, section 3: 784 -> 100 x 300 hidden -> 10; 3 -> 50 x 300 conv -> 10.
    mlp = 784 * 300 + 300 + 99 * (300 * 300 + 300) + 300 * 10 + 10
    cnn = 27 * 300 + 300 + 49 * (9 * 300 * 300 + 300) + 300 * 10 + 10
    assert MODELS["mlp100x300"].parameter_count() == mlp
    assert MODELS["cnn50x300"].parameter_count() == cnn
    with weights_not_initialized():  # the structure only (shapes, not values)
        model = get_model("mlp100x300")
        assert _trainable_count(model) == mlp
        assert len([layer for layer in model.layers
                    if isinstance(layer, keras.layers.Dense)]) == 101


def test_deep_mlp_sits_at_the_fixed_point(rng):
    """Inputs of per-example variance q* keep pre-activation variance ~ q* through depth."""
    from kerasparse import eoc

    q_star = 3.0
    model = DeepMLP(depth=8, width=400, sparsity=0.85, q_star=q_star, v_prime=0.7,
                    input_shape=(784,))
    setup = eoc.setup("crelu", sparsity=0.85, q_star=q_star, v_prime=0.7)
    act = model.get_layer("act3")
    assert isinstance(act, CReLU)
    assert act.tau == pytest.approx(setup.tau) and act.m == pytest.approx(setup.m)
    x = rng.normal(size=(256, 784))
    x = ((x - x.mean(1, keepdims=True)) / x.std(1, keepdims=True) * np.sqrt(q_star))
    names = [f"dense{i}" for i in (1, 4, 8)] + ["act8"]
    probe = keras.Model(model.input, [model.get_layer(n).output for n in names])
    outs = [to_numpy(o) for o in probe(x.astype("float32"))]
    for out in outs[:3]:
        assert np.var(out) == pytest.approx(q_star, rel=0.25)
    # The fraction of zero activations is the target sparsity.
    assert np.mean(outs[3] == 0) == pytest.approx(0.85, abs=0.05)
    # Kernel scales: the first layer N(0, 1/fan_in), the others N(0, sigma_w^2/fan_in).
    assert np.std(to_numpy(model.get_layer("dense1").kernel)) == pytest.approx(
        np.sqrt(1 / 784), rel=0.05)
    assert np.std(to_numpy(model.get_layer("dense2").kernel)) == pytest.approx(
        np.sqrt(setup.sigma_w2 / 400), rel=0.05)


@pytest.mark.parametrize("run_eagerly", [True, False], ids=["eager", "compiled"])
def test_deep_cnn_fits_and_round_trips(rng, run_eagerly, tmp_path):
    model = DeepCNN(depth=3, channels=8, input_shape=(8, 8, 3), num_classes=4, q_star=2.0)
    assert tuple(model.output.shape) == (None, 4)
    assert _trainable_count(model) == DeepCNN.count_parameters(
        depth=3, channels=8, num_classes=4, input_shape=(8, 8, 3))
    model.compile(optimizer=keras.optimizers.SGD(0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  **_compile_kwargs(run_eagerly))
    x, y = _images(rng, 4), rng.integers(0, 4, 4)
    before = [to_numpy(w).copy() for w in model.trainable_weights]
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert any(not np.allclose(b, to_numpy(w)) for b, w in zip(before, model.trainable_weights))
    path = tmp_path / "cnn.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.get_config() == model.get_config()
    np.testing.assert_allclose(to_numpy(loaded(x)), to_numpy(model(x)), rtol=1e-5, atol=1e-6)


def test_deep_mlp_config_round_trip(rng):
    model = get_model("mlp100x300", depth=3, width=16, q_star=1.0)
    clone = DeepMLP.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    clone.set_weights(model.get_weights())
    x = rng.normal(size=(4, 28, 28, 1)).astype("float32")
    np.testing.assert_allclose(to_numpy(clone(x)), to_numpy(model(x)), rtol=1e-6, atol=1e-6)


def test_eoc_models_bad_arguments():
    with pytest.raises(ValueError, match="depth must be a positive integer"):
        DeepMLP(depth=0)
    with pytest.raises(ValueError, match="q_star"):
        DeepCNN(depth=2, channels=4, q_star=-1.0)
    with pytest.raises(ValueError, match="channels must be a positive integer"):
        DeepCNN(depth=2, channels=2.5)


# --- `kerasparse models` ----------------------------------------------------------------


def test_models_command_lists_the_registry():
    from typer.testing import CliRunner

    from kerasparse.cli import app

    result = CliRunner().invoke(app, ["models", "--defaults"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in MODELS:
        assert name in result.output
    assert "5,849,050" in result.output  # wrn28-4's closed-form count
    assert "depth=28" in result.output

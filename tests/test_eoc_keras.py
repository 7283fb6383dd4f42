"""The Keras side of one solved EoC setting (kerasparse.eoc_keras, EoCKernel/EoCBias.from_setup):
one solve per distinct setting in a model, config round trips, and .keras files written by the
earlier code (tests/data, see the README there) loading unchanged."""

import pathlib

import keras
import numpy as np
import pytest

from conftest import to_numpy
from kerasparse import eoc, eoc_keras
from kerasparse.eoc import activations as acts
from kerasparse.eoc import recipe
from kerasparse.initializers import EoCBias, EoCKernel
from kerasparse.models import DeepCNN, DeepMLP

DATA = pathlib.Path(__file__).parent / "data"


@pytest.fixture
def solver_calls(monkeypatch):
    """The settings the root finder runs on (cache misses), from an empty cache."""
    calls = []
    real = recipe._solve

    def counting(setting):
        calls.append(setting)
        return real(setting)

    monkeypatch.setattr(recipe, "_solve", counting)
    eoc.solve.cache_clear()
    yield calls
    eoc.solve.cache_clear()


def test_a_deep_model_solves_each_setting_once(solver_calls):
    model = DeepMLP(depth=20, width=4, input_shape=(3,), num_classes=2)
    assert len(solver_calls) == 1
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    eoc_inits = [init for layer in dense[1:]
                 for init in (layer.kernel_initializer, layer.bias_initializer)]
    assert len(eoc_inits) == 2 * 20  # dense2..dense20 and the logits layer
    assert all(init.setup is model.eoc for init in eoc_inits)  # one solved setup, shared
    # Rebuilding it (from its config, as a .keras file does) and the same setting written
    # differently: no solve.
    DeepMLP.from_config(model.get_config())
    EoCKernel("crelu", sparsity=0.85, q_star=3, v_prime=0.7)
    assert len(solver_calls) == 1
    # A second distinct setting: one more solve, for a CNN of 3 EoC layers too.
    DeepCNN(depth=3, channels=2, input_shape=(4, 4, 1), sparsity=0.8, q_star=3.0)
    assert len(solver_calls) == 2
    assert [s.sparsity for s in solver_calls] == [0.85, 0.8]


def test_initializers_from_setup_match_the_theory_inputs(solver_calls):
    st = eoc.setup("hard_shrink", sparsity=0.8, q_star=2.0, alpha=5.0)
    k = EoCKernel.from_setup(st, seed=3)
    b = eoc_keras.bias_initializer(st, seed=4)
    assert len(solver_calls) == 1 and k.setup is st and b.setup is st
    theory = {"activation": "hard_shrink", "sparsity": 0.8, "q_star": 2.0, "v_prime": None,
              "alpha": 5.0, "eps": 0.01}
    assert k.get_config() == {**theory, "seed": 3}
    k2 = EoCKernel(**theory, seed=3)
    np.testing.assert_array_equal(to_numpy(k((7, 5))), to_numpy(k2((7, 5))))
    assert (k2.sigma_w2, EoCBias(**theory).sigma_b2) == (st.sigma_w2, st.sigma_b2)
    # A setting with fixed parameters is saved as given, not as re-derived targets.
    fixed = eoc.setup("crelu", q_star=3.0, tau=1.0, m=2.0)
    assert EoCKernel.from_setup(fixed).get_config() == {
        "activation": "crelu", "sparsity": None, "q_star": 3.0, "v_prime": None,
        "tau": 1.0, "m": 2.0, "seed": None}
    assert len(solver_calls) == 2  # hard_shrink, the fixed crelu: nothing else re-solved


def test_from_setup_errors():
    with pytest.raises(ValueError, match=r"EoCKernel: setup must be the result of .*Received"):
        EoCKernel.from_setup({"sigma_w2": 2.0})
    custom = eoc.setup(lambda x, tau: np.maximum(x - tau, 0.0), q_star=1.0, tau=0.5,
                       kinks=lambda tau: (tau,))
    with pytest.raises(ValueError, match="EoCBias: the setup needs a named activation"):
        EoCBias.from_setup(custom)
    with pytest.raises(ValueError, match="eoc_keras.activation_layer: setup must be"):
        eoc_keras.activation_layer("crelu")


def test_deep_mlp_with_relu_builds():
    """ReLU has one sparsity (0.5) and no parameters; its EoC initializers are He's."""
    model = DeepMLP(depth=3, width=64, input_shape=(5,), activation="relu", sparsity=None,
                    v_prime=None, q_star=1.0)
    assert isinstance(model.get_layer("act2"), keras.layers.ReLU)
    w = to_numpy(model.get_layer("dense3").kernel)
    assert abs(w.var() * 64 / 2.0 - 1.0) < 5 * np.sqrt(2.0 / w.size)
    assert np.all(to_numpy(model.get_layer("dense3").bias) == 0.0)


def _numpy_mlp(model, x, dense_names, phi):
    h = x
    for name in dense_names:
        kernel, bias = (to_numpy(v).astype("float64") for v in model.get_layer(name).weights)
        h = h @ kernel + bias
        if name != dense_names[-1]:
            h = phi(h)
    return h


def test_old_deep_mlp_file_loads():
    model = keras.saving.load_model(DATA / "deep_mlp_crelu_v0.keras")
    st = eoc.setup("crelu", sparsity=0.85, q_star=3.0, v_prime=0.7)
    assert (model.get_layer("act2").tau, model.get_layer("act2").m) == (st.tau, st.m)
    x = np.random.default_rng(0).normal(size=(5, 6))
    want = _numpy_mlp(model, x, ["dense1", "dense2", "dense3", "logits"],
                      lambda h: acts.crelu(h, st.tau, st.m))
    np.testing.assert_allclose(to_numpy(model(x.astype("float32"))), want, rtol=1e-5, atol=1e-5)


def test_old_initializer_configs_load(solver_calls):
    """A Sequential model whose Dense layer holds EoCKernel / EoCBias configs as the earlier
    code wrote them (hard_shrink, alpha=5: the default eps written out); the two configs of
    one setting are solved once."""
    model = keras.saving.load_model(DATA / "sequential_hard_shrink_v0.keras")
    assert len(solver_calls) == 1
    dense, act = model.layers[0], model.layers[1]
    st = eoc.setup("hard_shrink", sparsity=0.8, q_star=2.0, alpha=5.0)
    assert dense.kernel_initializer.get_config() == {**st.setting.inputs(), "seed": 1}
    assert dense.kernel_initializer.sigma_w2 == st.sigma_w2
    assert dense.bias_initializer.sigma_b2 == st.sigma_b2
    assert act.tau == pytest.approx(st.tau, abs=1e-12)
    x = np.random.default_rng(1).normal(size=(5, 6))
    want = _numpy_mlp(model, x, [dense.name, model.layers[2].name],
                      lambda h: acts.hard_shrink(h, act.tau, act.alpha, act.eps))
    np.testing.assert_allclose(to_numpy(model(x.astype("float32"))), want, rtol=1e-5, atol=1e-5)

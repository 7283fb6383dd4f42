"""EoCKernel / EoCBias on the current backend, and the deep-MLP check of the EoC theory."""

import dataclasses
import math

import keras
import numpy as np
import pytest
from scipy import special

from conftest import to_numpy
from kerasparse import eoc, eoc_keras
from kerasparse.initializers import EoCBias, EoCKernel

THEORY = {"activation": "crelu", "sparsity": 0.85, "q_star": 3.0, "v_prime": 0.7}


@pytest.mark.parametrize(
    "shape,fan_in",
    [((400, 300), 400), ((3, 3, 64, 128), 3 * 3 * 64), ((5, 32, 16), 5 * 32)],
)
def test_kernel_variance_uses_fan_in(shape, fan_in):
    init = EoCKernel(**THEORY, seed=7)
    w = to_numpy(init(shape))
    want = eoc.setup(**THEORY).sigma_w2 / fan_in
    # sample variance of n normals: relative standard error sqrt(2/n); allow 5 of them
    n = w.size
    assert abs(w.var() / want - 1.0) < 5 * math.sqrt(2.0 / n)
    assert abs(w.mean()) < 5 * math.sqrt(want / n)


def test_bias_variance_and_relu():
    b = to_numpy(EoCBias(**THEORY, seed=3)((200_000,)))
    want = eoc.setup(**THEORY).sigma_b2
    assert abs(b.var() / want - 1.0) < 5 * math.sqrt(2.0 / b.size)
    assert np.all(to_numpy(EoCBias("relu", seed=1)((50,))) == 0.0)  # sigma_b^2 = 0
    w = to_numpy(EoCKernel("relu", seed=1)((1000, 500)))
    assert abs(w.var() * 1000 / 2.0 - 1.0) < 5 * math.sqrt(2.0 / w.size)  # He: 2 / fan_in


def test_seed_reproducible():
    a = to_numpy(EoCKernel(**THEORY, seed=11)((30, 20)))
    b = to_numpy(EoCKernel(**THEORY, seed=11)((30, 20)))
    c = to_numpy(EoCKernel(**THEORY, seed=12)((30, 20)))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    gen = keras.random.SeedGenerator(5)
    d = to_numpy(EoCBias(**THEORY, seed=gen)((10,)))
    e = to_numpy(EoCBias(**THEORY, seed=gen)((10,)))
    assert not np.allclose(d, e)  # a SeedGenerator advances


def test_config_keeps_theory_and_round_trips():
    k = EoCKernel("hard_shrink", sparsity=0.85, q_star=2.0, alpha=5.0, eps=0.02, seed=4)
    cfg = k.get_config()
    assert cfg == {"activation": "hard_shrink", "sparsity": 0.85, "q_star": 2.0,
                   "v_prime": None, "alpha": 5.0, "eps": 0.02, "seed": 4}
    k2 = keras.initializers.deserialize(keras.initializers.serialize(k))
    assert isinstance(k2, EoCKernel) and k2.get_config() == cfg
    np.testing.assert_array_equal(to_numpy(k((6, 4))), to_numpy(k2((6, 4))))
    b = EoCBias(**THEORY, seed=9)
    b2 = EoCBias.from_config(b.get_config())
    assert b2.sigma_b2 == b.sigma_b2 and b2.get_config()["v_prime"] == 0.7


def test_setup_helper_returns_matching_layer_and_initializers():
    st = eoc.setup("crelu", sparsity=0.85, q_star=3, v_prime=0.7)
    layer = eoc_keras.activation_layer(st)
    assert type(layer).__name__ == "CReLU" and (layer.tau, layer.m) == (st.tau, st.m)
    k, b = eoc_keras.kernel_initializer(st, seed=1), eoc_keras.bias_initializer(st, seed=2)
    assert k.sigma_w2 == st.sigma_w2 and b.sigma_b2 == st.sigma_b2
    x = np.linspace(-2, 6, 17).astype("float32")
    np.testing.assert_allclose(
        to_numpy(layer(x)), st.spec.fn(x.astype("float64"), **st.params), atol=1e-6
    )
    sr = eoc_keras.activation_layer(eoc.setup("shifted_relu", sparsity=0.8))
    np.testing.assert_allclose(to_numpy(sr(x)), np.maximum(x - sr.tau, 0), atol=1e-6)
    assert type(eoc_keras.activation_layer(eoc.setup("relu"))).__name__ == "ReLU"


def test_errors():
    with pytest.raises(ValueError, match=r"EoCKernel: .*no m gives V'\(q\*\)=1.5"):
        EoCKernel("crelu", sparsity=0.85, q_star=3, v_prime=1.5)
    with pytest.raises(ValueError, match=r"EoCBias: .*sparsity=2"):
        EoCBias("cst", sparsity=2, v_prime=0.7)
    with pytest.raises(ValueError, match="name of a built-in activation"):
        EoCKernel(np.tanh)
    with pytest.raises(ValueError, match="seed"):
        EoCKernel("relu", seed="abc")


def _model(st, seed=0):
    return keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, kernel_initializer=eoc_keras.kernel_initializer(st, seed=seed),
                               bias_initializer=eoc_keras.bias_initializer(st, seed=seed + 1)),
            eoc_keras.activation_layer(st),
            keras.layers.Dense(16, kernel_initializer=eoc_keras.kernel_initializer(st, seed=seed + 2),
                               bias_initializer=eoc_keras.bias_initializer(st, seed=seed + 3)),
            eoc_keras.activation_layer(st),
            keras.layers.Dense(1),
        ]
    )


@pytest.mark.parametrize("run_eagerly", [True, False])
def test_fit_eager_and_compiled_and_keras_save(tmp_path, run_eagerly):
    st = eoc.setup("cst", sparsity=0.6, q_star=1.0, v_prime=0.7)
    model = _model(st)
    kw = {"jit_compile": False} if keras.backend.backend() == "torch" else {}
    model.compile(optimizer="sgd", loss="mse", run_eagerly=run_eagerly, **kw)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8)).astype("float32")
    y = x[:, :1] * 0.5
    hist = model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    assert np.all(np.isfinite(hist.history["loss"]))
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(to_numpy(loaded(x)), to_numpy(model(x)), atol=1e-5)
    cfg = loaded.layers[0].get_config()["kernel_initializer"]
    assert cfg["class_name"] == "EoCKernel" and cfg["config"]["sparsity"] == 0.6


# ---- the empirical check of the theory: a deep random MLP at the edge of chaos -------------

WIDTH, DEPTH, BATCH = 300, 50, 200


def _deep_forward(st, bias=True, seed=0):
    """Input h^(0) ~ N(0, q*), then DEPTH x [phi, Dense]; returns per-layer variance of the
    pre-activations h^(l) and sparsity of phi(h^(l-1)), l = 1..DEPTH."""
    inp = keras.Input((WIDTH,))
    h, pre, post = inp, [], []
    for i in range(DEPTH):
        a = eoc_keras.activation_layer(st)(h)
        post.append(a)
        h = keras.layers.Dense(
            WIDTH,
            kernel_initializer=eoc_keras.kernel_initializer(st, seed=1000 * seed + 2 * i),
            bias_initializer=eoc_keras.bias_initializer(st, seed=1000 * seed + 2 * i + 1) if bias else "zeros",
        )(a)
        pre.append(h)
    model = keras.Model(inp, pre + post)
    x = np.random.default_rng(seed).normal(0, math.sqrt(st.q_star), (BATCH, WIDTH))
    out = [to_numpy(o).astype("float64") for o in model(x.astype("float32"))]
    q = np.array([np.mean(o**2) for o in out[:DEPTH]])
    sparsity = np.array([np.mean(o == 0.0) for o in out[DEPTH:]])
    return q, sparsity


def test_deep_mlp_keeps_q_star_and_sparsity():
    """Tolerances from finite-width theory (Dent & Tanner sec. 2.2, Roberts & Yaida): the
    layer variance fluctuates around q* with variance r / N, r = fourth_moment / (1 - V'^2)
    (the fixed point of eq. 12); here sqrt(r / N) = 0.38 for q* = 3 (measured: 0.33-0.40 over
    seeds). The mean shift |q~{1}| / N <= bound / N = 0.002 is negligible. Per layer we allow
    4.5 sd (50 layers: a false alarm < 1e-3 for Gaussian fluctuations), for the mean over
    layers 6..50 (AR(1) with coefficient V' = 0.7: ~8 effective samples) 4 sd / sqrt(8).
    Sparsity: P(phi = 0) moves with q as dP/dq * dq; and units differ through their bias
    b_i ~ N(0, sigma_b^2): unit i is zero with probability Phi((tau - b_i) / sqrt(q* -
    sigma_b^2)), whose spread over units, divided by sqrt(N), is the second term (0.012; the
    N * batch indicator sampling error, 0.0015, is smaller). Same multiples of sd."""
    st = eoc.setup("crelu", sparsity=0.85, q_star=3.0, v_prime=0.7)
    q, sparsity = _deep_forward(st)
    sd_q = math.sqrt(st.fourth_moment / (1 - st.v_prime**2) / WIDTH)
    assert np.max(np.abs(q - st.q_star)) < 4.5 * sd_q + st.q1_bound / WIDTH
    assert abs(q[5:].mean() - st.q_star) < 4 * sd_q / math.sqrt(8)
    dq = 1e-4
    dp_dq = (st.maps(st.q_star + dq)["sparsity"] - st.maps(st.q_star - dq)["sparsity"]) / (2 * dq)
    z, w = np.polynomial.hermite_e.hermegauss(80)
    w = w / w.sum()
    per_unit = special.ndtr(
        (st.tau - math.sqrt(st.sigma_b2) * z) / math.sqrt(st.q_star - st.sigma_b2)
    )
    assert w @ per_unit == pytest.approx(0.85, abs=1e-9)
    sd_unit = math.sqrt(w @ per_unit**2 - (w @ per_unit) ** 2)
    sd_s = math.hypot(abs(dp_dq) * sd_q, sd_unit / math.sqrt(WIDTH))
    # layer 1 sees the exact N(0, q*) input: only sampling error
    assert abs(sparsity[0] - 0.85) < 5 * math.sqrt(0.85 * 0.15 / (WIDTH * BATCH))
    assert np.max(np.abs(sparsity[1:] - 0.85)) < 4.5 * sd_s
    assert abs(sparsity[5:].mean() - 0.85) < 4 * sd_s / math.sqrt(8)

    # The same net with sigma_b^2 = 0, so V(q*) = q* - sigma_b^2 != q*: the variance leaves
    # q* as the deterministic map predicts (first step within the same tolerance) and
    # collapses; every unit is then zero (sparsity 1).
    q0, sparsity0 = _deep_forward(st, bias=False)
    drift = dataclasses.replace(st, sigma_b2=0.0).iterate(st.q_star, DEPTH)
    assert abs(st.q_star - drift[0]) > 4 * sd_q  # the predicted departure is large ...
    assert abs(q0[0] - drift[0]) < 4.5 * sd_q  # ... and it happens
    assert np.all(q0[5:] < 1e-3 * st.q_star) and drift[5] < 1e-3 * st.q_star
    assert np.all(sparsity0[6:] == 1.0)

"""kerasparse.eoc: closed forms vs quadrature vs independent references, the recipe, errors.

Pure NumPy/SciPy: backend independent. References used: scipy.integrate.quad on the raw
definitions, central differences of V(q), Monte Carlo, the recursions (12)-(13) of Dent &
Tanner 2026 iterated directly.
"""

import math

import numpy as np
import pytest
from scipy import integrate, special

from kerasparse import eoc
from kerasparse.eoc import activations as acts
from kerasparse.eoc import closed_form, quadrature

CLOSED = [
    ("crelu", {"tau": 1.2, "m": 1.7}),
    ("crelu", {"tau": 0.3, "m": 0.4}),
    ("cst", {"tau": 0.7, "m": 0.9}),
    ("shifted_relu", {"tau": 1.0}),
    ("soft_threshold", {"tau": 0.5}),
    ("relu", {}),
]
NUMERIC = [
    ("hard_shrink", {"tau": 1.0, "alpha": 10.0, "eps": 0.01}),
    ("chard_shrink", {"tau": 1.0, "alpha": 10.0, "eps": 0.01, "m": 2.5}),
    ("sawtooth", {"tau": 1.5, "m": 1.0}),
]


def _quad_expect(f, q, points):
    """E[f(h)], h ~ N(0, q), by adaptive scipy quad split at the kinks (independent path)."""
    s = math.sqrt(q)
    pts = sorted(p for p in points if -12 * s < p < 12 * s)
    edges = [-12 * s, *pts, 12 * s]
    dens = lambda x: math.exp(-x * x / (2 * q)) / math.sqrt(2 * math.pi * q)  # noqa: E731
    return sum(
        integrate.quad(lambda x: f(x) * dens(x), a, b, epsabs=1e-13, epsrel=1e-12, limit=200)[0]
        for a, b in zip(edges[:-1], edges[1:])
    )


@pytest.mark.parametrize("name,params", CLOSED)
@pytest.mark.parametrize("q", [0.3, 1.0, 3.0])
def test_closed_forms_agree_with_quadrature(name, params, q):
    act = acts.get(name)
    numeric = quadrature.moments(act.fn, acts.finite_kinks(act, params), q, params)
    closed = closed_form.moments(name, q, params)
    for key in numeric:
        assert abs(numeric[key] - float(closed[key])) < 1e-9, key


@pytest.mark.parametrize("name,params", CLOSED + NUMERIC)
def test_moments_match_scipy_quad_on_the_definition(name, params):
    q = 2.0
    act = acts.get(name)
    fn = lambda x: float(act.fn(np.array([x]), **params)[0])  # noqa: E731
    kinks = list(acts.finite_kinks(act, params))
    got = eoc.maps(name, q, sigma_w2=1.0, **params)
    e2 = _quad_expect(lambda x: fn(x) ** 2, q, kinks)
    e4 = _quad_expect(lambda x: fn(x) ** 4, q, kinks)
    assert got["V"] == pytest.approx(e2, abs=1e-9)
    assert got["fourth_moment"] == pytest.approx(e4 - e2 * e2, abs=1e-8)
    h = 1e-7  # phi' by finite differences away from kinks
    d2 = _quad_expect(lambda x: ((fn(x + h) - fn(x - h)) / (2 * h)) ** 2, q, kinks)
    assert got["chi1"] == pytest.approx(d2, abs=1e-6)
    p0 = _quad_expect(lambda x: float(fn(x) == 0.0), q, kinks)
    assert got["sparsity"] == pytest.approx(p0, abs=1e-9)


@pytest.mark.parametrize("name,params", CLOSED + NUMERIC)
def test_q_derivatives_match_central_differences(name, params):
    q, dq = 1.7, 1e-4
    f = lambda x: eoc.maps(name, x, sigma_w2=1.3, sigma_b2=0.2, **params)  # noqa: E731
    lo, mid, hi = f(q - dq), f(q), f(q + dq)
    assert mid["V_prime"] == pytest.approx((hi["V"] - lo["V"]) / (2 * dq), abs=1e-7)
    assert mid["V_second"] == pytest.approx(
        (hi["V"] - 2 * mid["V"] + lo["V"]) / dq**2, abs=2e-5
    )
    assert mid["V_second"] == pytest.approx(
        (hi["V_prime"] - lo["V_prime"]) / (2 * dq), abs=1e-7
    )
    assert mid["chi1_prime"] == pytest.approx((hi["chi1"] - lo["chi1"]) / (2 * dq), abs=1e-7)


def test_variance_map_matches_monte_carlo():
    rng = np.random.default_rng(0)
    q = 3.0
    h = rng.normal(0.0, math.sqrt(q), 2_000_000)
    for name, params in CLOSED + NUMERIC:
        phi2 = acts.get(name).fn(h, **params) ** 2
        se = phi2.std() / math.sqrt(h.size)
        assert abs(eoc.variance_map(name, q, 1.0, **params) - phi2.mean()) < 5 * se, name


def test_paper_closed_form_relations():
    """eq. (40): chi_1 = V' + sigma_w^2 m p(tau+m) for CReLU; eqs. (35)-(36): CST = 2 CReLU."""
    q, tau, m, sw = 2.0, 1.1, 1.5, 3.0
    cr = eoc.maps("crelu", q, sw, tau=tau, m=m)
    dens = math.exp(-((tau + m) ** 2) / (2 * q)) / math.sqrt(2 * math.pi * q)
    assert cr["chi1"] == pytest.approx(cr["V_prime"] + sw * m * dens, abs=1e-12)
    # eq. (41)
    assert cr["chi1_prime"] == pytest.approx(
        cr["V_second"] + sw * m * dens * (-1 / (2 * q) + (tau + m) ** 2 / (2 * q * q)), abs=1e-12
    )
    cs = eoc.maps("cst", q, sw, tau=tau, m=m, method="numeric")
    for key in ("V", "V_prime", "V_second", "chi1", "chi1_prime"):
        assert cs[key] == pytest.approx(2 * cr[key], abs=1e-9), key
    # eq. (7) and eq. (15) written out
    e = lambda x: special.erf(x / math.sqrt(2 * q))  # noqa: E731
    eq7 = sw * (0.5 * e(tau + m) - 0.5 * e(tau) - m / math.sqrt(2 * math.pi * q)
                * math.exp(-((tau + m) ** 2) / (2 * q)))
    assert cr["V_prime"] == pytest.approx(eq7, abs=1e-12)
    assert cr["chi1"] == pytest.approx(sw / 2 * (e(tau + m) - e(tau)), abs=1e-12)


@pytest.mark.parametrize("q", [1.0, 2.0, 3.0])
@pytest.mark.parametrize("s", [0.6, 0.85, 0.95])
def test_tau_closed_forms(q, s):
    assert eoc.setup("crelu", sparsity=s, q_star=q, v_prime=0.7).tau == pytest.approx(
        math.sqrt(q) * special.ndtri(s), abs=1e-12
    )
    assert eoc.setup("cst", sparsity=s, q_star=q, v_prime=0.7).tau == pytest.approx(
        math.sqrt(2 * q) * special.erfinv(s), abs=1e-12
    )
    # CST at s has the tau and m of CReLU at (1 + s) / 2
    a = eoc.setup("cst", sparsity=s, q_star=q, v_prime=0.7)
    b = eoc.setup("crelu", sparsity=(1 + s) / 2, q_star=q, v_prime=0.7)
    assert (a.tau, a.m) == pytest.approx((b.tau, b.m), abs=1e-9)
    assert a.sigma_w2 == pytest.approx(b.sigma_w2 / 2, rel=1e-12)


@pytest.mark.parametrize(
    "name,kw",
    [
        ("crelu", {"sparsity": 0.85, "v_prime": 0.7}),
        ("cst", {"sparsity": 0.7, "v_prime": 0.5}),
        ("crelu", {"sparsity": 0.9, "v_prime": 0.9}),
        ("shifted_relu", {"sparsity": 0.8}),
        ("soft_threshold", {"sparsity": 0.6}),
    ],
)
@pytest.mark.parametrize("q", [0.5, 3.0])
def test_closed_and_numeric_recipes_agree(name, kw, q):
    a = eoc.setup(name, q_star=q, **kw)
    b = eoc.setup(name, q_star=q, method="numeric", **kw)
    assert (a.method, b.method) == ("closed", "numeric")
    for field in ("tau", "m", "sigma_w2", "sigma_b2", "v_prime", "v_second", "chi1_prime",
                  "fourth_moment", "q1_bound"):
        x, y = getattr(a, field), getattr(b, field)
        if x is None or math.isinf(x):
            assert x == y, field
        else:
            assert abs(x - y) <= 1e-6 * max(1.0, abs(x)), field


@pytest.mark.parametrize(
    "name,kw",
    [
        ("crelu", {"sparsity": 0.85, "v_prime": 0.7}),
        ("cst", {"sparsity": 0.8, "v_prime": 0.9}),
        ("chard_shrink", {"sparsity": 0.85, "v_prime": 0.3}),
        ("sawtooth", {"sparsity": 0.85, "v_prime": 0.7}),
        ("hard_shrink", {"sparsity": 0.85}),
        ("shifted_relu", {"sparsity": 0.7}),
        ("soft_threshold", {"sparsity": 0.7}),
    ],
)
def test_recipe_conditions_hold(name, kw):
    q = 2.5
    st = eoc.setup(name, q_star=q, **kw)
    # checked with the independent scipy-quad path, not the solver's own moments
    act = acts.get(name)
    fn = lambda x: float(act.fn(np.array([x]), **st.params)[0])  # noqa: E731
    kinks = list(acts.finite_kinks(act, st.params))
    p0 = _quad_expect(lambda x: float(fn(x) == 0.0), q, kinks)
    e2 = _quad_expect(lambda x: fn(x) ** 2, q, kinks)
    assert p0 == pytest.approx(kw["sparsity"], abs=1e-9)  # P(phi(h) = 0) = s
    assert st.sigma_w2 * e2 + st.sigma_b2 == pytest.approx(q, abs=1e-8)  # V(q*) = q*
    assert st.chi1 == pytest.approx(1.0, abs=1e-12)  # chi_1(q*) = 1
    if "v_prime" in kw:
        assert st.maps(q)["V_prime"] == pytest.approx(kw["v_prime"], abs=1e-9)
    assert st.sigma_b2 >= 0.0


def test_relu_and_unclipped_are_marginal():
    st = eoc.setup("relu", q_star=2.0)
    assert (st.sigma_w2, st.sigma_b2, st.sparsity) == pytest.approx((2.0, 0.0, 0.5), abs=1e-9)
    assert st.marginal and st.v_prime == 1.0 and math.isinf(st.q1_bound)
    for name in ("shifted_relu", "soft_threshold"):
        st = eoc.setup(name, sparsity=0.8, q_star=1.5)
        assert st.marginal and st.v_prime == 1.0
        assert st.v_second > 0  # the instability of Price et al.: V'' > 0 at V' = 1
        with pytest.raises(ValueError, match=r"V'\(q\*\) = chi_1\(q\*\) = 1.*v_prime=0.7"):
            eoc.setup(name, sparsity=0.8, q_star=1.5, v_prime=0.7)
    # clipping gives V'(q*) < 1; as m grows CReLU tends to shifted ReLU
    big = eoc.setup("crelu", sparsity=0.8, q_star=1.5, m=50.0)
    sr = eoc.setup("shifted_relu", sparsity=0.8, q_star=1.5)
    assert big.v_prime == pytest.approx(1.0, abs=1e-12)
    assert big.sigma_b2 == pytest.approx(sr.sigma_b2, abs=1e-12)


def test_given_parameters_round_trip():
    st = eoc.setup("crelu", sparsity=0.85, q_star=3.0, v_prime=0.7)
    again = eoc.setup("crelu", q_star=3.0, tau=st.tau, m=st.m)
    assert again.sparsity == pytest.approx(0.85, abs=1e-12)
    assert again.v_prime == pytest.approx(0.7, abs=1e-12)
    assert again.sigma_b2 == pytest.approx(st.sigma_b2, abs=1e-12)


def test_user_callable_matches_builtin_and_smooth_function():
    def my_crelu(x, tau, m):
        return np.clip(x - tau, 0.0, m)

    mine = eoc.setup(my_crelu, sparsity=0.85, q_star=3.0, v_prime=0.7,
                     kinks=lambda tau, m: (tau, tau + m), clip="m")
    ref = eoc.setup("crelu", sparsity=0.85, q_star=3.0, v_prime=0.7)
    assert mine.method == "numeric"
    assert (mine.tau, mine.m, mine.sigma_b2) == pytest.approx((ref.tau, ref.m, ref.sigma_b2), abs=1e-8)
    # a smooth activation with no kinks: tanh (sigma_w^2 against scipy.quad)
    st = eoc.setup(np.tanh, q_star=0.5)
    d2 = _quad_expect(lambda x: 1.0 / math.cosh(x) ** 4, 0.5, [])
    assert st.sigma_w2 == pytest.approx(1.0 / d2, rel=1e-9)
    from kerasparse import eoc_keras  # (imports Keras; the rest of this file does not)

    with pytest.raises(ValueError, match="no kerasparse layer"):
        eoc_keras.activation_layer(st)


def test_theorem_2_2_bound_holds_for_the_recursions():
    """Iterate eqs. (12)-(13) at q = q* and check |q~{1}(l)| <= the bound for all l >= 3."""
    for kw in ({"sparsity": 0.85, "v_prime": 0.7}, {"sparsity": 0.9, "v_prime": 0.9},
               {"sparsity": 0.8, "v_prime": 0.5}):
        st = eoc.setup("crelu", q_star=2.0, **kw)
        r, q1, seen = 0.0, 0.0, []
        for _ in range(400):
            q1, r = st.v_prime * q1 + 0.5 * st.v_second * r, st.v_prime**2 * r + st.fourth_moment
            seen.append(abs(q1))
        assert max(seen) <= st.q1_bound * (1 + 1e-12)
        # the bound is the l -> inf limit: |q1| approaches it
        assert seen[-1] == pytest.approx(st.q1_bound, rel=1e-9)


def test_raising_q_star_at_fixed_m_reduces_the_control_metrics():
    """Dent & Tanner Figs. 2 and 4: at fixed s and m, larger q* lowers V''(q*) and chi_1'(q*)."""
    rows = [eoc.setup("crelu", sparsity=0.85, q_star=q, m=1.8) for q in (1.0, 2.0, 3.0)]
    assert rows[0].v_second > rows[1].v_second > rows[2].v_second
    assert rows[0].chi1_prime > rows[1].chi1_prime > rows[2].chi1_prime


def test_figure_2_and_4_highlighted_points():
    """s = 0.85, V'(q*) = 0.7, q* = 1, 2, 3. Fig. 2 prints V'' = 0.023, 0.013, 0.008 (these
    match V'' at the m printed in Table 1, 1.17/1.66/2.03); Fig. 4 prints chi_1' = 0.6, 0.3, 0.2."""
    for q, m_printed, v2, c1 in [(1, 1.17, 0.023, 0.6), (2, 1.66, 0.013, 0.3), (3, 2.03, 0.008, 0.2)]:
        at_printed_m = eoc.setup("crelu", sparsity=0.85, q_star=q, m=m_printed)
        assert round(at_printed_m.v_second, 3) == v2
        assert round(eoc.setup("crelu", sparsity=0.85, q_star=q, v_prime=0.7).chi1_prime, 1) == c1


def test_fixed_slope_settings_are_a_rescaling_of_q_star():
    """At fixed (s, V'(q*)), CReLU is scale-covariant: tau, m ~ sqrt(q*), sigma_w^2 fixed,
    sigma_b^2, the Theorem 2.2 bound ~ q*, V'', chi_1' ~ 1/q* (compare Table 1: m(q*=2) =
    sqrt(2) m(q*=1))."""
    a, b = (eoc.setup("crelu", sparsity=0.85, q_star=q, v_prime=0.9) for q in (1.0, 3.0))
    r = math.sqrt(3.0)
    assert (b.tau, b.m) == pytest.approx((r * a.tau, r * a.m), rel=1e-9)
    assert b.sigma_w2 == pytest.approx(a.sigma_w2, rel=1e-9)
    assert (b.sigma_b2, b.q1_bound) == pytest.approx((3 * a.sigma_b2, 3 * a.q1_bound), rel=1e-9)
    assert (b.v_second, b.chi1_prime) == pytest.approx((a.v_second / 3, a.chi1_prime / 3), rel=1e-9)


@pytest.mark.parametrize(
    "call,pattern",
    [
        (lambda: eoc.setup("crelu", sparsity=1.2, v_prime=0.7), r"sparsity must be .* \(0, 1\).*sparsity=1.2"),
        (lambda: eoc.setup("crelu", sparsity=0.0, v_prime=0.7), r"sparsity=0.0"),
        (lambda: eoc.setup("crelu", sparsity=0.8, q_star=0.0, v_prime=0.7), r"q_star must be .*q_star=0.0"),
        (lambda: eoc.setup("crelu", sparsity=0.8, q_star=-1, v_prime=0.7), r"q_star=-1"),
        (lambda: eoc.setup("crelu", sparsity=0.85, q_star=3, v_prime=1.2),
         r"no m gives V'\(q\*\)=1.2 .*attainable V'\(q\*\) is \[0.000\d+, 1\]"),
        (lambda: eoc.setup("chard_shrink", sparsity=0.85, q_star=3, v_prime=0.7),
         r"attainable V'\(q\*\) is \[0.00\d+, 0.423\d*\]"),
        (lambda: eoc.setup("crelu", sparsity=0.3, v_prime=0.7), r"tau=-.*attainable sparsity is \[0.5, 1\)"),
        (lambda: eoc.setup("crelu", sparsity=0.8), r"needs a target v_prime"),
        (lambda: eoc.setup("crelu", v_prime=0.7), r"needs a sparsity"),
        (lambda: eoc.setup("hard_shrink", sparsity=0.8, v_prime=0.7), r"no clipping parameter m"),
        (lambda: eoc.setup("relu", sparsity=0.8), r"always 0.5"),
        (lambda: eoc.setup("nope"), r"Unknown activation.*nope"),
        (lambda: eoc.setup("crelu", sparsity=0.8, v_prime=0.7, beta=1), r"takes the parameters tau, m.*beta=1"),
        (lambda: eoc.setup("sawtooth", sparsity=0.001, q_star=1.0, m=3.0), r"attainable sparsity is \[0.0026\d*, 1\]"),
        (lambda: eoc.setup("sawtooth", sparsity=0.05, q_star=1.0, m=3.0), r"sigma_b\^2 would be -2.37\d* < 0"),
        (lambda: eoc.setup("hard_shrink", sparsity=0.85, method="closed"), r"no closed form"),
    ],
)
def test_errors_are_one_line_and_name_the_value(call, pattern):
    with pytest.raises(ValueError, match=pattern) as info:
        call()
    assert "\n" not in str(info.value)



# --- a leaf package: validate / solve / assemble, no Keras ------------------------------


def test_eoc_imports_no_backend():
    """``import kerasparse.eoc`` (and the other Keras-free modules) in a fresh interpreter
    leaves keras and the backends out of sys.modules (scipy, which eoc does import, is the
    positive control of the check)."""
    import os
    import subprocess
    import sys

    code = (
        "import sys, kerasparse.eoc, kerasparse.validation, kerasparse._io, kerasparse.rundir; "
        "print(','.join(m for m in ('keras', 'tensorflow', 'jax', 'torch', 'scipy') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "KERAS_BACKEND": "jax"},
                         check=True, capture_output=True, text=True).stdout.strip()
    assert out == "scipy"


def test_setup_is_validate_solve_assemble():
    setting = eoc.validate("crelu", sparsity=0.85, q_star=3, v_prime=0.7)
    st = eoc.assemble(setting, eoc.solve(setting))
    assert st == eoc.setup("crelu", sparsity=0.85, q_star=3.0, v_prime=0.7)
    assert st.setting == setting
    assert dict(eoc.solve(setting).params) == {"tau": st.tau, "m": st.m}
    # The inputs, normalised: an int q*, or a default spelled out, is the same setting.
    assert setting == eoc.validate("crelu", sparsity=0.85, q_star=3.0, v_prime=0.7)
    assert hash(setting) == hash(eoc.validate("crelu", sparsity=0.85, q_star=3.0, v_prime=0.7))
    hs = eoc.validate("hard_shrink", sparsity=0.8, q_star=2.0)
    assert hs == eoc.validate("hard_shrink", sparsity=0.8, q_star=2.0, alpha=10.0, eps=0.01)
    assert hs.inputs() == {"activation": "hard_shrink", "sparsity": 0.8, "q_star": 2.0,
                           "v_prime": None, "alpha": 10.0, "eps": 0.01}
    assert hs != eoc.validate("hard_shrink", sparsity=0.8, q_star=2.0, alpha=5.0)
    # ReLU's only sparsity, 0.5, is nothing to solve for: the same setting as none.
    assert eoc.validate("relu", sparsity=0.5) == eoc.validate("relu")
    assert eoc.setup("relu", sparsity=0.5).sparsity == 0.5
    # Two user callables are two settings, even with the same name and inputs.
    def phi(x, tau):
        return np.maximum(x - tau, 0.0)

    a, b = (eoc.validate(phi, tau=1.0, kinks=lambda tau: (tau,)) for _ in range(2))
    assert a != b and not a.builtin and setting.builtin
    # validate raises before any solving; solve raises what only the solve can know.
    with pytest.raises(ValueError, match="q_star=0"):
        eoc.validate("crelu", sparsity=0.85, q_star=0, v_prime=0.7)
    with pytest.raises(ValueError, match=r"no m gives V'\(q\*\)=1.2"):
        eoc.solve(eoc.validate("crelu", sparsity=0.85, q_star=3, v_prime=1.2))


def test_solve_is_cached_and_returns_the_same_numbers():
    eoc.solve.cache_clear()
    first = eoc.setup("cst", sparsity=0.7, q_star=2.0, v_prime=0.5)
    info = eoc.solve.cache_info()
    again = eoc.setup("cst", sparsity=0.7, q_star=2, v_prime=0.5)
    assert eoc.solve.cache_info().hits == info.hits + 1
    assert again == first and again.to_dict() == first.to_dict()
    eoc.solve.cache_clear()
    assert eoc.setup("cst", sparsity=0.7, q_star=2.0, v_prime=0.5).to_dict() == first.to_dict()

"""The edge-of-chaos recipe (Dent & Tanner 2026, section 2) and its diagnostics.

Given an activation phi, a fixed point q*, a sparsity s and a target slope V'(q*):

  1. tau from s, so that P(phi(h) = 0) = s for h ~ N(0, q*)
     (CReLU: sqrt(q*) Phi^-1(s); CST: sqrt(2 q*) erfinv(s); otherwise numerically);
  2. m from V'(q*) by root finding (V'(q*) = E[d/dq phi^2] / E[phi'^2] at the EoC);
  3. sigma_w^2 = 1 / E[phi'(h)^2], so that chi_1(q*) = 1;
  4. sigma_b^2 = q* - sigma_w^2 E[phi(h)^2], so that V(q*) = q*.

Unclipped activations (shifted ReLU, soft threshold, ReLU) have phi phi'' = 0, hence
V'(q) = sigma_w^2 E[phi'^2] = chi_1(q): at the EoC V'(q*) = 1 whatever tau is. There is no m to
solve for, so asking for a v_prime raises; without one the setting is returned with
``marginal=True`` (q* is only marginally stable, the instability of Price et al. 2024).
HardShrink has no clipping parameter either; its V'(q*) follows from tau, alpha and eps.

:func:`setup` is three steps, each a public function: :func:`validate` (the inputs, one-line
errors, into a hashable :class:`Setting`), :func:`solve` (the root finding; cached, so a model
whose layers all use one setting solves it once) and :func:`assemble` (the diagnostics, into
an :class:`EoCSetup`). The Keras side (activation layer, initializers) is built from an
``EoCSetup`` by :mod:`kerasparse.eoc_keras`; this package imports no Keras.
"""

import dataclasses
import functools
import math
import types
from typing import Optional

import numpy as np
from scipy import optimize

from kerasparse.eoc import activations as _acts
from kerasparse.eoc import closed_form as _cf
from kerasparse.eoc import quadrature as _quad
from kerasparse.validation import check_choice, check_number

# m is searched on m_floor + sqrt(q*) * [1e-3, 24]: below 1e-3 sqrt(q*) V'(q*) is ~1e-3 or
# less (V' -> 0 as m -> 0 for CReLU/CST), above 24 sqrt(q*) the clip is beyond 12 standard
# deviations of h and V'(q*) equals its unclipped limit to double precision.
_M_SCAN = np.geomspace(1e-3, 24.0, 33)
_M_SCAN_NUMERIC = _M_SCAN[::2]  # 17 points: each numeric evaluation costs ~50 us
_TAU_MAX_SIGMAS = 13.0


def _fmt(x):
    return f"{x:.6g}" if isinstance(x, float) else repr(x)


def _check_real(name, value, low=None, high=None, owner="eoc.setup", allow_none=False):
    """A finite number in the open interval (low, high)."""
    return check_number(owner, name, value, low=low, high=high, low_open=True, high_open=True,
                        finite=True, allow_none=allow_none)


def _moments(act, q, params, method):
    if method == "closed":
        return _cf.moments(act.closed_form, q, params)
    return _quad.moments(act.fn, _acts.finite_kinks(act, params), q, params)


def _method(act, method):
    check_choice("eoc.setup", "method", method, ("auto", "closed", "numeric"))
    if method == "closed" and act.closed_form is None:
        raise ValueError(
            f"{act.name} has no closed form (crelu, cst, relu, shifted_relu and soft_threshold "
            f"do); use method='numeric'. Received: method={method!r}"
        )
    if method == "auto":
        return "closed" if act.closed_form else "numeric"
    return method


def maps(activation, q, sigma_w2, sigma_b2=0.0, *, method="auto", **params):
    """The Gaussian-process maps of ``activation`` at variance ``q`` (a dict of floats).

    Keys: ``V`` = sigma_w^2 E[phi(sqrt(q) z)^2] + sigma_b^2, ``V_prime``, ``V_second`` (its
    q-derivatives), ``chi1`` = sigma_w^2 E[phi'(sqrt(q) z)^2], ``chi1_prime``,
    ``fourth_moment`` = sigma_w^4 (<phi^4>_q - <phi^2>_q^2) and ``sparsity`` = P(phi = 0).
    """
    act = _acts.get(activation)
    q = _check_real("q", q, low=0.0, owner="eoc.maps")
    params = {**act.defaults, **params}
    _check_params(act, params, required=act.params)
    mo = _moments(act, q, params, _method(act, method))
    return _maps_from_moments(mo, sigma_w2, sigma_b2)


def _maps_from_moments(mo, sigma_w2, sigma_b2):
    e2 = float(mo["e2"])
    return {
        "V": sigma_w2 * e2 + sigma_b2,
        "V_prime": sigma_w2 * float(mo["e2_d1"]),
        "V_second": sigma_w2 * float(mo["e2_d2"]),
        "chi1": sigma_w2 * float(mo["d1"]),
        "chi1_prime": sigma_w2 * float(mo["d1_d1"]),
        "fourth_moment": sigma_w2**2 * (float(mo["e4"]) - e2 * e2),
        "sparsity": float(mo["p0"]),
    }


def variance_map(activation, q, sigma_w2, sigma_b2=0.0, **params):
    """V(q) = sigma_w^2 E[phi(sqrt(q) z)^2] + sigma_b^2 (eq. 3)."""
    return maps(activation, q, sigma_w2, sigma_b2, **params)["V"]


def chi1(activation, q, sigma_w2, **params):
    """chi_1(q) = sigma_w^2 E[phi'(sqrt(q) z)^2] (eqs. 5, 6)."""
    return maps(activation, q, sigma_w2, **params)["chi1"]


def q1_bound(v_prime, v_second, fourth_moment):
    """Theorem 2.2: |q~{1}| <= fourth_moment |V''| / (2 (1 - V')^2 (1 + V')), for 0 < V' < 1.

    ``fourth_moment`` is sigma_w^4 (<phi^4> - <phi^2>^2). Returns inf for V'(q*) >= 1 (the
    finite-width correction then grows with depth) and nan for V'(q*) <= 0 (outside the
    theorem's assumptions).
    """
    if v_prime >= 1.0:
        return math.inf
    if v_prime <= 0.0:
        return math.nan
    return 0.5 * abs(fourth_moment) * abs(v_second) / ((1.0 - v_prime) ** 2 * (1.0 + v_prime))


def _check_params(act, params, required):
    unknown = sorted(set(params) - set(act.params))
    if unknown:
        raise ValueError(
            f"{act.name} takes the parameters {', '.join(act.params) or 'none'}. "
            f"Received: {', '.join(f'{k}={params[k]!r}' for k in unknown)}"
        )
    for name in required:
        if name not in params:
            raise ValueError(f"{act.name} needs a value for {name}. Received: {name}=None")
        value = params[name]
        if name == "m" and value == math.inf and act.clip is None:
            continue
        _check_real(name, value, low=None if name == "tau" else 0.0)


@dataclasses.dataclass(frozen=True)
class EoCSetup:
    """One edge-of-chaos setting and its diagnostics (all at q = q*).

    Fields: the inputs (``activation``, ``sparsity``, ``q_star``, ``v_prime`` = V'(q*), the
    target or, where it cannot be chosen, the resulting value), the activation parameters
    (``tau``, ``m``, ``alpha``, ``eps``; None where the activation has none), the variances
    ``sigma_w2``, ``sigma_b2``, and the diagnostics ``v_second`` = V''(q*), ``chi1``
    (= 1 at the EoC), ``chi1_prime`` = chi_1'(q*), ``fourth_moment`` =
    sigma_w^4 (<phi^4> - <phi^2>^2), ``q1_bound`` (Theorem 2.2), ``marginal`` (V'(q*) = 1: q*
    only marginally stable), ``method`` ("closed" or "numeric"); ``setting`` is the validated
    input (:class:`Setting`) it was solved from.

    Pure numbers: build the matching Keras activation layer and initializers with
    :mod:`kerasparse.eoc_keras` (``eoc_keras.activation_layer(s)``,
    ``eoc_keras.kernel_initializer(s, seed=...)``, ``eoc_keras.bias_initializer(s, seed=...)``).
    """

    activation: str
    sparsity: Optional[float]
    q_star: float
    v_prime: float
    tau: Optional[float]
    m: Optional[float]
    sigma_w2: float
    sigma_b2: float
    alpha: Optional[float] = None
    eps: Optional[float] = None
    v_second: float = math.nan
    chi1: float = math.nan
    chi1_prime: float = math.nan
    fourth_moment: float = math.nan
    q1_bound: float = math.nan
    marginal: bool = False
    method: str = "closed"
    spec: _acts.Activation = dataclasses.field(default=None, repr=False, compare=False)
    setting: "Setting" = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def params(self):
        """The activation's parameters as keyword arguments (``{"tau": .., "m": ..}``)."""
        return {k: getattr(self, k) for k in self.spec.params}

    def maps(self, q):
        """:func:`maps` of this setting at variance ``q``."""
        return maps(self.spec, q, self.sigma_w2, self.sigma_b2, method=self.method, **self.params)

    def variance_map(self, q):
        return self.maps(q)["V"]

    def chi1_map(self, q):
        return self.maps(q)["chi1"]

    def iterate(self, q0, depth):
        """The deterministic variances q^(1..depth) from q^(0) = q0 under q -> V(q)."""
        out, q = [], float(q0)
        for _ in range(depth):
            if q > 1e-300:
                q = self.variance_map(q)
            else:  # h = 0 exactly: V(0) = sigma_w^2 phi(0)^2 + sigma_b^2
                phi0 = float(self.spec.fn(np.zeros(1), **self.params)[0])
                q = self.sigma_w2 * phi0 * phi0 + self.sigma_b2
            out.append(q)
        return out

    def to_dict(self):
        """JSON-ready summary (the keys of ``kerasparse eoc --json``)."""
        d = {
            "activation": self.activation,
            "sparsity": self.sparsity,
            "q_star": self.q_star,
            "v_prime": self.v_prime,
            "tau": self.tau,
            "m": self.m,
            "sigma_w2": self.sigma_w2,
            "sigma_b2": self.sigma_b2,
            "v_second": self.v_second,
            "chi1": self.chi1,
            "chi1_prime": self.chi1_prime,
            "fourth_moment": self.fourth_moment,
            "q1_bound": self.q1_bound,
            "marginal": self.marginal,
        }
        if self.alpha is not None:
            d["alpha"] = self.alpha
            d["eps"] = self.eps
        return d


def _solve_tau(act, sparsity, q, params, method):
    """tau >= 0 with P(phi(h) = 0) = sparsity, h ~ N(0, q)."""
    if method == "closed" and act.name in _cf.TAU:
        tau = float(_cf.TAU[act.name](sparsity, q))
        if tau < 0.0:
            lo = float(_cf.moments(act.closed_form, q, {**params, "tau": 0.0})["p0"])
            raise ValueError(
                f"{act.name}: sparsity={_fmt(sparsity)} needs tau={_fmt(tau)} < 0; with tau >= 0 "
                f"the attainable sparsity is [{lo:.6g}, 1). Received: sparsity={_fmt(sparsity)}"
            )
        return tau

    def p0(tau):
        p = {**params, "tau": tau}
        return _quad.zero_probability(act.fn, _acts.finite_kinks(act, p), q, p)

    lo = 0.0
    hi = _TAU_MAX_SIGMAS * math.sqrt(q) + sum(
        abs(v) for k, v in params.items() if k != "tau" and math.isfinite(v)
    )
    p_lo, p_hi = p0(lo), p0(hi)
    if not p_lo <= sparsity <= p_hi:
        raise ValueError(
            f"{act.name}: no tau >= 0 gives sparsity={_fmt(sparsity)} at q*={_fmt(q)}"
            + _fmt_params(params, skip=("tau",))
            + f"; attainable sparsity is [{p_lo:.6g}, {p_hi:.6g}]. "
            f"Received: sparsity={_fmt(sparsity)}"
        )
    if p_lo == sparsity:
        return lo
    return optimize.brentq(lambda t: p0(t) - sparsity, lo, hi, xtol=1e-13, rtol=1e-14)


def _fmt_params(params, skip=()):
    items = [f"{k}={_fmt(v)}" for k, v in params.items() if k not in skip]
    return f" ({', '.join(items)})" if items else ""


def _v_prime_eoc(mo):
    """V'(q*) at the EoC: sigma_w^2 = 1 / d1, so V' = e2_d1 / d1."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(mo["e2_d1"]) / np.asarray(mo["d1"])


def _solve_clip(act, target, sparsity, q, params, method):
    """The smallest clip value m whose EoC slope V'(q*) equals ``target``; returns (m, tau)."""
    name = act.clip

    def tau_for(m):
        if not act.tau_depends_on_clip:
            return params["tau"]
        return _solve_tau(act, sparsity, q, {**params, name: m}, method)

    def slope(m):
        p = {**params, name: m, "tau": tau_for(m)}
        return float(_v_prime_eoc(_moments(act, q, p, method)))

    floor = act.clip_floor(**params) if not act.tau_depends_on_clip else 0.0
    grid = floor + math.sqrt(q) * (_M_SCAN if method == "closed" else _M_SCAN_NUMERIC)
    if method == "closed":
        values = _v_prime_eoc(_moments(act, q, {**params, name: grid}, method))
    else:
        values = []
        for m in grid:
            try:
                values.append(slope(m))
            except ValueError:  # this m cannot reach the sparsity (Sawtooth: too narrow)
                values.append(np.nan)
        values = np.asarray(values)
    diff = values - target
    ok = np.isfinite(diff)
    for i in range(len(grid) - 1):
        if ok[i] and ok[i + 1] and diff[i] * diff[i + 1] <= 0.0:
            if diff[i] == 0.0:
                m = float(grid[i])
            else:
                m = optimize.brentq(
                    lambda x: slope(x) - target, grid[i], grid[i + 1], xtol=1e-13, rtol=1e-14
                )
            return m, tau_for(m)
    if not ok.any():
        raise ValueError(
            f"{act.name}: no m in [{grid[0]:.6g}, {grid[-1]:.6g}] reaches sparsity="
            f"{_fmt(sparsity)} at q*={_fmt(q)}. Received: sparsity={_fmt(sparsity)}"
        )
    raise ValueError(
        f"{act.name}: no m gives V'(q*)={_fmt(target)} at q*={_fmt(q)}"
        + (f", sparsity={_fmt(sparsity)}" if sparsity is not None else "")
        + f"; attainable V'(q*) is [{np.nanmin(values):.6g}, {np.nanmax(values):.6g}] for m in "
        f"[{grid[ok][0]:.6g}, {grid[ok][-1]:.6g}]. Received: v_prime={_fmt(target)}"
    )


@dataclasses.dataclass(frozen=True, repr=False)
class Setting:
    """The validated inputs of one edge-of-chaos setting (:func:`validate`'s result).

    Hashable: it is the cache key of :func:`solve`. ``spec`` is the
    :class:`~kerasparse.eoc.activations.Activation` (compared by identity: a built-in name
    always gives the same one); ``params`` the fixed activation parameters as
    ``((name, value), ...)``, defaults (alpha, eps) included; ``method`` "closed" or
    "numeric" (``"auto"`` resolved).
    """

    spec: _acts.Activation = dataclasses.field(repr=False)
    sparsity: Optional[float]
    q_star: float
    v_prime: Optional[float]
    params: tuple = ()
    method: str = "closed"

    @property
    def activation(self):
        return self.spec.name

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.inputs().items())
        return f"Setting({args}, method={self.method!r})"

    @property
    def builtin(self):
        """True for a named built-in activation (then the setting can be saved by name)."""
        return _acts.ACTIVATIONS.get(self.spec.name) is self.spec

    def inputs(self):
        """The inputs as keyword arguments of :func:`setup` (and the config of the EoC
        initializers): ``{"activation", "sparsity", "q_star", "v_prime", **params}``."""
        return {
            "activation": self.activation,
            "sparsity": self.sparsity,
            "q_star": self.q_star,
            "v_prime": self.v_prime,
            **dict(self.params),
        }


@dataclasses.dataclass(frozen=True)
class Solution:
    """What :func:`solve` finds for a :class:`Setting`: all activation parameters
    (``params``, ``((name, value), ...)``, tau and m solved), ``sigma_w2``, ``sigma_b2``, and
    the Gaussian moments at q* (``moments``, read-only) from which :func:`assemble` computes
    the diagnostics."""

    params: tuple
    sigma_w2: float
    sigma_b2: float
    moments: types.MappingProxyType = dataclasses.field(repr=False)


def validate(
    activation,
    sparsity=None,
    q_star=1.0,
    v_prime=None,
    *,
    method="auto",
    kinks=None,
    clip=None,
    **params,
):
    """Check the inputs of :func:`setup` (same arguments); returns a :class:`Setting`.

    Raises:
        ValueError: one line naming the bad value and what is allowed.
    """
    act = _acts.get(activation, kinks=kinks, clip=clip)
    q = _check_real("q_star", q_star, low=0.0)
    sparsity = _check_real("sparsity", sparsity, low=0.0, high=1.0, allow_none=True)
    if v_prime is not None:
        v_prime = _check_real("v_prime", v_prime, low=0.0)
    method = _method(act, method)
    params = {**act.defaults, **params}

    if act.name == "relu" and act is _acts.ACTIVATIONS["relu"]:
        if sparsity is not None and sparsity != 0.5:
            raise ValueError(
                "relu: the sparsity of ReLU is always 0.5 (tau = 0); use crelu or shifted_relu "
                f"for another. Received: sparsity={_fmt(sparsity)}"
            )
        sparsity = None  # nothing to solve for: 0.5 is what ReLU gives
    elif sparsity is not None and not act.has_tau:
        raise ValueError(
            f"{act.name} has no threshold tau to solve from a sparsity. "
            f"Received: sparsity={_fmt(sparsity)}"
        )
    if act.has_tau:
        if sparsity is not None and "tau" in params:
            raise ValueError(
                f"{act.name}: give sparsity or tau, not both. "
                f"Received: sparsity={_fmt(sparsity)}, tau={params['tau']!r}"
            )
        if sparsity is None and "tau" not in params:
            raise ValueError(
                f"{act.name} needs a sparsity in (0, 1) (or tau). Received: sparsity=None"
            )
    if v_prime is not None and act.clip is None:
        hint = (
            "is unclipped: at the edge of chaos V'(q*) = chi_1(q*) = 1 for every tau, so "
            "V'(q*) cannot be chosen (use crelu or cst to get V'(q*) < 1)"
            if act.name in ("relu", "shifted_relu", "soft_threshold")
            else "has no clipping parameter m; V'(q*) follows from its other parameters"
        )
        raise ValueError(f"{act.name} {hint}. Received: v_prime={_fmt(v_prime)}")
    if act.clip is not None:
        if v_prime is not None and act.clip in params:
            raise ValueError(
                f"{act.name}: give v_prime or {act.clip}, not both. "
                f"Received: v_prime={_fmt(v_prime)}, {act.clip}={params[act.clip]!r}"
            )
        if v_prime is None and act.clip not in params:
            raise ValueError(
                f"{act.name} needs a target v_prime = V'(q*) (e.g. 0.7) or {act.clip}. "
                "Received: v_prime=None"
            )
    _check_params(
        act, params,
        required=[p for p in act.params if p in params or p not in ("tau", act.clip)],
    )
    return Setting(
        spec=act,
        sparsity=sparsity,
        q_star=q,
        v_prime=v_prime,
        params=tuple((k, float(params[k])) for k in act.params if k in params),
        method=method,
    )


@functools.lru_cache(maxsize=1024)
def solve(setting):
    """Solve a :class:`Setting` (steps 2-5 of the recipe); returns a :class:`Solution`.

    Cached on the setting (an LRU cache of 1024 settings; ``solve.cache_clear()`` empties
    it): building a model, or loading one whose initializers all carry the same setting,
    runs the root finding once. Errors are not cached.

    Raises:
        ValueError: a sparsity or V'(q*) that no parameter reaches, or no edge-of-chaos
            setting (sigma_b^2 < 0, E[phi'^2] = 0).
    """
    return _solve(setting)


def _solve(setting):
    act, q, method = setting.spec, setting.q_star, setting.method
    sparsity, v_prime = setting.sparsity, setting.v_prime
    params = dict(setting.params)
    # 1. tau from the sparsity (unless it moves with m: then inside the m-solve)
    if sparsity is not None and not act.tau_depends_on_clip:
        trial = {**params, "tau": 0.0}
        if act.clip is not None and act.clip not in params:
            trial[act.clip] = math.inf  # the zero set does not depend on the clip here
        params["tau"] = _solve_tau(act, sparsity, q, trial, method)
    elif sparsity is not None and act.clip in params:
        params["tau"] = _solve_tau(act, sparsity, q, params, method)
    if act.clip is not None and act.clip in params:
        floor = act.clip_floor(**params)
        if not params[act.clip] > floor:
            raise ValueError(
                f"{act.name}: {act.clip} must be > {floor:.6g} here. "
                f"Received: {act.clip}={params[act.clip]!r}"
            )
    # 2. m from the target V'(q*)
    if v_prime is not None:
        params[act.clip], tau = _solve_clip(act, v_prime, sparsity, q, params, method)
        params["tau"] = tau
    # 3., 4. sigma_w^2 from chi_1(q*) = 1, sigma_b^2 from V(q*) = q*
    mo = _moments(act, q, params, method)
    d1 = float(mo["d1"])
    if not d1 > 0.0:
        raise ValueError(
            f"{act.name}: E[phi'(h)^2] = 0 at q*={_fmt(q)}{_fmt_params(params)}, so no "
            f"sigma_w^2 gives chi_1(q*) = 1. Received: q_star={_fmt(q)}"
        )
    sigma_w2 = 1.0 / d1
    sigma_b2 = q - sigma_w2 * float(mo["e2"])
    if sigma_b2 < -1e-12 * q:
        raise ValueError(
            f"{act.name}: no edge-of-chaos setting at q*={_fmt(q)}{_fmt_params(params)}: "
            f"sigma_w^2 E[phi^2] = {q - sigma_b2:.6g} > q*, so sigma_b^2 would be "
            f"{sigma_b2:.6g} < 0. Received: q_star={_fmt(q)}"
        )
    return Solution(
        params=tuple((k, float(params[k])) for k in act.params if k in params),
        sigma_w2=sigma_w2,
        sigma_b2=max(sigma_b2, 0.0),
        moments=types.MappingProxyType({k: float(v) for k, v in mo.items()}),
    )


def assemble(setting, solution):
    """The :class:`EoCSetup` of a setting and its solution, with the diagnostics at q*
    (V''(q*), chi_1'(q*), the fourth moment, the Theorem 2.2 bound, marginality)."""
    act, q = setting.spec, setting.q_star
    params = dict(solution.params)
    sigma_w2, sigma_b2 = solution.sigma_w2, solution.sigma_b2
    mp = _maps_from_moments(solution.moments, sigma_w2, sigma_b2)
    slope = mp["V_prime"]
    marginal = abs(slope - 1.0) < 1e-9
    if marginal:
        slope = 1.0
    return EoCSetup(
        activation=act.name,
        sparsity=mp["sparsity"] if setting.sparsity is None else setting.sparsity,
        q_star=q,
        v_prime=slope if setting.v_prime is None else setting.v_prime,
        tau=params.get("tau"),
        m=params.get("m"),
        sigma_w2=sigma_w2,
        sigma_b2=sigma_b2,
        alpha=params.get("alpha"),
        eps=params.get("eps"),
        v_second=mp["V_second"],
        chi1=mp["chi1"],
        chi1_prime=mp["chi1_prime"],
        fourth_moment=mp["fourth_moment"],
        q1_bound=q1_bound(slope, mp["V_second"], mp["fourth_moment"]),
        marginal=marginal,
        method=setting.method,
        spec=act,
        setting=setting,
    )


def setup(
    activation,
    sparsity=None,
    q_star=1.0,
    v_prime=None,
    *,
    method="auto",
    kinks=None,
    clip=None,
    **params,
):
    """Solve the edge-of-chaos recipe; returns an :class:`EoCSetup`.

    ``assemble(s, solve(s))`` with ``s = validate(...)``: the inputs are checked, the
    (cached) solver finds tau, m, sigma_w^2 and sigma_b^2, and the diagnostics are added.

    Args:
        activation: ``"crelu"``, ``"cst"``, ``"relu"``, ``"shifted_relu"``,
            ``"soft_threshold"``, ``"hard_shrink"``, ``"chard_shrink"``, ``"sawtooth"``, an
            :class:`~kerasparse.eoc.activations.Activation`, or a NumPy callable
            ``fn(x, **params)`` (then give ``kinks`` and, to solve for it, ``clip``).
        sparsity: target P(phi(h) = 0) in (0, 1), solved for tau (or give ``tau=``).
        q_star: the fixed-point variance q* > 0.
        v_prime: target V'(q*), solved for the clipping parameter m (or give ``m=``).
            Only activations with a clipping parameter (crelu, cst, chard_shrink, sawtooth)
            accept it.
        method: ``"auto"`` (closed form where one exists), ``"closed"`` or ``"numeric"``.
        **params: fixed activation parameters (tau, m, alpha, eps).

    Raises:
        ValueError: one line naming the bad value and the attainable range.
    """
    setting = validate(
        activation, sparsity, q_star, v_prime, method=method, kinks=kinks, clip=clip, **params
    )
    return assemble(setting, solve(setting))

"""NumPy definitions of the activations the edge-of-chaos solver knows, with their kinks.

The Keras versions (``kerasparse.activations``) run inside models; the solver needs plain NumPy
functions to integrate against a Gaussian. Each activation is defined ONCE here: a function
``fn(x, **params)`` plus ``kinks(**params)``, the points where it (or its derivative) jumps.
Quadrature splits the real line at the kinks, so every piece is smooth (here: linear) and the
Gauss-Legendre rules in :mod:`kerasparse.eoc.quadrature` are exact to rounding.

References: Dent & Tanner 2026 (arXiv 2602.05779) eqs. (1), (34), (37)-(39); Price et al. 2024
(arXiv 2402.16184) for the unclipped shifted ReLU and soft threshold.
"""

import dataclasses
from typing import Callable, Optional

import numpy as np

from kerasparse import presets

# The paper's example HardShrink parameters (Dent & Tanner 2026, Figures 10 and 11).
DEFAULT_ALPHA = 10.0
DEFAULT_EPS = 0.01


@dataclasses.dataclass(frozen=True, eq=False)
class Activation:
    """An elementwise activation as the solver sees it.

    Compared and hashed by identity (``eq=False``): a built-in name always gives the same
    object, a user's callable a new one, so a :class:`~kerasparse.eoc.recipe.Setting` holding
    it is a safe cache key.

    Args:
        name: a short name (``"crelu"``); also the kerasparse layer name when ``layer`` is set.
        fn: ``fn(x, **params)`` on NumPy arrays.
        kinks: ``kinks(**params)`` -> the x where ``fn`` or its derivative jumps (may be empty).
            Zero-set boundaries must be among them for the sparsity to be exact.
        params: the parameter names ``fn`` takes, e.g. ``("tau", "m")``.
        clip: the parameter solved from a target V'(q*) (``"m"``), or None (V'(q*) is then a
            consequence of the other parameters, e.g. 1 for unclipped shifted ReLU).
        clip_floor: ``clip_floor(**params)``, the smallest admissible clip value (exclusive).
        tau_depends_on_clip: True when the zero set moves with the clip parameter (Sawtooth),
            so tau is re-solved for every trial m.
        defaults: default values of extra parameters (alpha, eps).
        layer: name in ``kerasparse.layers.get`` for ``eoc_keras.activation_layer()``, or None.
        closed_form: name of a closed form in :mod:`kerasparse.eoc.closed_form`, or None.
    """

    name: str
    fn: Callable
    kinks: Callable = lambda **params: ()
    params: tuple = ()
    clip: Optional[str] = None
    clip_floor: Callable = lambda **params: 0.0
    tau_depends_on_clip: bool = False
    defaults: dict = dataclasses.field(default_factory=dict)
    layer: Optional[str] = None
    closed_form: Optional[str] = None

    @property
    def has_tau(self):
        return "tau" in self.params


def relu(x):
    return np.maximum(x, 0.0)


def crelu(x, tau, m):
    """CReLU_{tau,m}, eq. (1): 0 below tau, x - tau on [tau, tau+m], m above."""
    return np.clip(x - tau, 0.0, m)


def cst(x, tau, m):
    """CST_{tau,m}, eq. (34): sign(x) * CReLU_{tau,m}(|x|)."""
    return np.sign(x) * np.clip(np.abs(x) - tau, 0.0, m)


def shifted_relu(x, tau):
    """Shifted ReLU max(0, x - tau) (Price et al. 2024): CReLU without clipping."""
    return np.maximum(x - tau, 0.0)


def soft_threshold(x, tau):
    """Soft threshold sign(x) max(0, |x| - tau) (Price et al. 2024): CST without clipping."""
    return np.sign(x) * np.maximum(np.abs(x) - tau, 0.0)


def hard_shrink(x, tau, alpha, eps):
    """HardShrink_{tau,alpha,eps}, eq. (37)."""
    ramp = alpha * (x - tau + eps)
    linear = x + 2.0 * alpha * eps - tau - eps
    return np.where(x < tau - eps, 0.0, np.where(x <= tau + eps, ramp, linear))


def chard_shrink(x, tau, alpha, eps, m):
    """CHardShrink_{tau,alpha,eps,m}, eq. (38): HardShrink of min(x, m)."""
    return hard_shrink(np.minimum(x, m), tau, alpha, eps)


def sawtooth(x, tau, m):
    """Sawtooth_{tau,m}, eq. (39): a tent of height m on [tau - m, tau + m]."""
    return np.maximum(m - np.abs(x - tau), 0.0)


ACTIVATIONS = {
    a.name: a
    for a in [
        Activation("relu", relu, lambda: (0.0,), layer="relu", closed_form="relu"),
        Activation(
            "crelu", crelu, lambda tau, m: (tau, tau + m), ("tau", "m"), clip="m",
            layer="crelu", closed_form="crelu",
        ),
        Activation(
            "cst", cst, lambda tau, m: (-tau - m, -tau, tau, tau + m), ("tau", "m"), clip="m",
            layer="cst", closed_form="cst",
        ),
        Activation(
            "shifted_relu", shifted_relu, lambda tau: (tau,), ("tau",),
            layer="crelu", closed_form="crelu",
        ),
        Activation(
            "soft_threshold", soft_threshold, lambda tau: (-tau, tau), ("tau",),
            layer="cst", closed_form="cst",
        ),
        Activation(
            "hard_shrink", hard_shrink, lambda tau, alpha, eps: (tau - eps, tau + eps),
            ("tau", "alpha", "eps"), defaults={"alpha": DEFAULT_ALPHA, "eps": DEFAULT_EPS},
            layer="hard_shrink",
        ),
        Activation(
            "chard_shrink", chard_shrink,
            lambda tau, alpha, eps, m: (tau - eps, tau + eps, m),
            ("tau", "alpha", "eps", "m"), clip="m",
            clip_floor=lambda tau, alpha, eps, **_: tau + eps,
            defaults={"alpha": DEFAULT_ALPHA, "eps": DEFAULT_EPS}, layer="chard_shrink",
        ),
        Activation(
            "sawtooth", sawtooth, lambda tau, m: (tau - m, tau, tau + m), ("tau", "m"),
            clip="m", tau_depends_on_clip=True, layer="sawtooth",
        ),
    ]
}

def get(identifier, kinks=None, params=None, clip=None):
    """The :class:`Activation` for a name, an :class:`Activation`, or a user's NumPy callable.

    A callable ``fn(x, **params)`` becomes a custom activation; pass ``kinks`` (a sequence, or
    a callable of the parameters) so quadrature splits there, ``params`` (the names it takes;
    read from its signature when omitted) and ``clip`` (the name of its clipping parameter).
    """
    if isinstance(identifier, Activation):
        return identifier
    if isinstance(identifier, str):
        key = presets.canonical_activation(identifier)
        if key not in ACTIVATIONS:
            raise ValueError(
                f"Unknown activation. Allowed: {', '.join(ACTIVATIONS)}, or a NumPy callable. "
                f"Received: activation={identifier!r}"
            )
        return ACTIVATIONS[key]
    if callable(identifier):
        import inspect

        if params is None:  # the parameters without defaults after x
            try:
                sig = list(inspect.signature(identifier).parameters.values())[1:]
            except (TypeError, ValueError):
                sig = []
            kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
            params = tuple(p.name for p in sig if p.kind in kinds and p.default is p.empty)
        if kinks is None:
            kink_fn = lambda **p: ()  # noqa: E731
        elif callable(kinks):
            kink_fn = kinks
        else:
            fixed = tuple(float(k) for k in kinks)
            kink_fn = lambda **p: fixed  # noqa: E731
        if clip is not None and clip not in params:
            raise ValueError(
                f"clip must name one of the activation's parameters {params}. "
                f"Received: clip={clip!r}"
            )
        name = getattr(identifier, "__name__", "custom")
        return Activation(name, identifier, kink_fn, tuple(params), clip=clip)
    raise ValueError(
        "activation must be a name, an eoc.Activation or a NumPy callable. "
        f"Received: activation={identifier!r}"
    )


def finite_kinks(act, params):
    """The activation's finite kinks for these parameter values, as a float array."""
    ks = np.asarray(act.kinks(**params), dtype=float).ravel()
    return ks[np.isfinite(ks)]


__all__ = ["ACTIVATIONS", "Activation", "get"]

"""Sparsifying activation functions as pure ``keras.ops`` functions.

Each function takes the input first and its parameters as keyword arguments; the layers in
:mod:`kerasparse.layers` wrap them. ``get_activation(name)`` looks one up by name.

References:
- CReLU and CST: Price et al., ICLR 2024 (arXiv 2402.16184); Dent & Tanner 2026
  (arXiv 2602.05779) eqs. (1) and (34).
- HardShrink, CHardShrink, Sawtooth: Dent & Tanner 2026, appendix D, eqs. (37)-(39).
"""

import keras
from keras import ops

from kerasparse import presets


def crelu(x, tau, m):
    """Clipped shifted ReLU, eq. (1): 0 for x < tau, x - tau on [tau, tau+m], m above."""
    return ops.clip(x - tau, 0.0, m)


def cst(x, tau, m):
    """Clipped soft threshold, eq. (34): the odd version of CReLU.

    0 for |x| < tau, x - sign(x) tau on tau <= |x| <= tau+m, sign(x) m above.
    """
    return ops.sign(x) * ops.clip(ops.abs(x) - tau, 0.0, m)


def hard_shrink(x, tau, alpha, eps):
    """HardShrink, eq. (37) (one-sided, as printed).

    0 for x < tau-eps; alpha (x - tau + eps) on [tau-eps, tau+eps];
    x + 2 alpha eps - tau - eps for x > tau+eps (continuous, slope alpha in the ramp).
    """
    ramp = alpha * (x - tau + eps)
    linear = x + 2.0 * alpha * eps - tau - eps
    zero = ops.zeros_like(x)
    return ops.where(x < tau - eps, zero, ops.where(x <= tau + eps, ramp, linear))


def chard_shrink(x, tau, alpha, eps, m):
    """Clipped HardShrink, eq. (38): HardShrink of min(x, m), i.e. constant
    m + 2 alpha eps - tau - eps for x > m (m is the clipping point on the input axis,
    m > tau + eps)."""
    return hard_shrink(ops.minimum(x, m), tau, alpha, eps)


def sawtooth(x, tau, m):
    """Sawtooth, eq. (39): m - |x - tau| where |x - tau| <= m, 0 elsewhere (a tent at tau)."""
    return ops.relu(m - ops.abs(x - tau))


# The functions by name; the names are kerasparse.presets.ACTIVATIONS (the one table of names).
ACTIVATIONS = {name: globals()[name] for name in presets.ACTIVATIONS}

canonical_name = presets.canonical_activation  # "HardShrink" -> "hard_shrink"


def get_activation(identifier):
    """Return the activation function for ``identifier``.

    Strings name a kerasparse activation (``crelu``, ``cst``, ``hard_shrink``,
    ``chard_shrink``, ``sawtooth``; these take parameters as keyword arguments) or any Keras
    activation (``relu``, ``gelu``, ...). Callables are returned unchanged.
    """
    if callable(identifier):
        return identifier
    if not isinstance(identifier, str):
        raise ValueError(
            "activation must be a string or a callable. "
            f"Received: activation={identifier!r}"
        )
    key = canonical_name(identifier)
    if key in ACTIVATIONS:
        return ACTIVATIONS[key]
    try:
        return keras.activations.get(key)
    except (ValueError, TypeError):
        allowed = ", ".join(sorted(ACTIVATIONS)) + ", or a Keras activation name"
        raise ValueError(
            f"Unknown activation. Allowed: {allowed}. Received: activation={identifier!r}"
        ) from None

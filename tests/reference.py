"""Independent NumPy references for kerasparse's layers (no kerasparse code is used here).

The activations are the piecewise definitions exactly as printed in the papers, written with
``np.select`` branch by branch (Dent & Tanner 2026, arXiv 2602.05779: eq. (1) CReLU, eq. (34)
CST, appendix D eqs. (37) HardShrink, (38) CHardShrink, (39) Sawtooth), together with their
analytic derivatives (valid away from the kinks). Top-k and RMSNorm follow Wang 2026
(arXiv 2603.03131) sections 2.3 and 2.4, computed in float64.
"""

import math

import numpy as np

# ---------------------------------------------------------------------------------------------
# Activations: value and derivative, branch by branch.


def crelu(x, tau, m):
    """Eq. (1): 0 if x < tau; x - tau if tau <= x <= tau + m; m if x > tau + m."""
    x = np.asarray(x, np.float64)
    return np.select([x < tau, x <= tau + m], [0.0, x - tau], default=m)


def crelu_grad(x, tau, m):
    x = np.asarray(x, np.float64)
    return np.select([x < tau, x <= tau + m], [0.0, 1.0], default=0.0)


def cst(x, tau, m):
    """Eq. (34): 0 if |x| < tau; x - sign(x) tau if tau <= |x| <= tau + m; sign(x) m above."""
    x = np.asarray(x, np.float64)
    a = np.abs(x)
    return np.select([a < tau, a <= tau + m], [0.0, x - np.sign(x) * tau], default=np.sign(x) * m)


def cst_grad(x, tau, m):
    x = np.asarray(x, np.float64)
    a = np.abs(x)
    return np.select([a < tau, a <= tau + m], [0.0, 1.0], default=0.0)


def hard_shrink(x, tau, alpha, eps):
    """Eq. (37): 0 if x < tau - eps; alpha (x - tau + eps) on [tau - eps, tau + eps];
    x + 2 alpha eps - tau - eps if x > tau + eps."""
    x = np.asarray(x, np.float64)
    return np.select(
        [x < tau - eps, x <= tau + eps],
        [0.0, alpha * (x - tau + eps)],
        default=x + 2 * alpha * eps - tau - eps,
    )


def hard_shrink_grad(x, tau, alpha, eps):
    x = np.asarray(x, np.float64)
    return np.select([x < tau - eps, x <= tau + eps], [0.0, alpha], default=1.0)


def chard_shrink(x, tau, alpha, eps, m):
    """Eq. (38): as (37) for x < m, then the constant m + 2 alpha eps - tau - eps for x > m."""
    x = np.asarray(x, np.float64)
    return np.select(
        [x < tau - eps, x <= tau + eps, x < m],
        [0.0, alpha * (x - tau + eps), x + 2 * alpha * eps - tau - eps],
        default=m + 2 * alpha * eps - tau - eps,
    )


def chard_shrink_grad(x, tau, alpha, eps, m):
    x = np.asarray(x, np.float64)
    return np.select(
        [x < tau - eps, x <= tau + eps, x < m], [0.0, alpha, 1.0], default=0.0
    )


def sawtooth(x, tau, m):
    """Eq. (39): 0 if |x - tau| > m; -sign(x - tau)(x - tau) + m if |x - tau| <= m."""
    x = np.asarray(x, np.float64)
    d = x - tau
    return np.select([np.abs(d) > m], [0.0], default=-np.sign(d) * d + m)


def sawtooth_grad(x, tau, m):
    x = np.asarray(x, np.float64)
    d = x - tau
    return np.select([np.abs(d) > m], [0.0], default=-np.sign(d))


# name -> (function, derivative, kinks(params) -> list of x where the function is not smooth)
ACTIVATIONS = {
    "crelu": (crelu, crelu_grad, lambda tau, m: [tau, tau + m]),
    "cst": (cst, cst_grad, lambda tau, m: [-tau - m, -tau, tau, tau + m]),
    "hard_shrink": (
        hard_shrink,
        hard_shrink_grad,
        lambda tau, alpha, eps: [tau - eps, tau + eps],
    ),
    "chard_shrink": (
        chard_shrink,
        chard_shrink_grad,
        lambda tau, alpha, eps, m: [tau - eps, tau + eps, m],
    ),
    "sawtooth": (sawtooth, sawtooth_grad, lambda tau, m: [tau - m, tau, tau + m]),
}


def away_from(x, points, margin):
    """``x`` with every entry within ``margin`` of one of ``points`` moved 2*margin away."""
    x = np.array(x, np.float64)
    for p in points:
        near = np.abs(x - p) < margin
        x[near] = p + np.where(x[near] >= p, 2 * margin, -2 * margin)
    return x


# ---------------------------------------------------------------------------------------------
# Top-k (Wang 2026, section 2.4).


def keep_count(r, size):
    """k = ceil(r * D) in float64, at least 1 and at most D."""
    return min(size, max(1, math.ceil(float(r) * size)))


def _groups(x, mode, axis):
    """(rows, restore): rows of ``x`` are the top-k groups of ``mode``; restore undoes it."""
    x = np.asarray(x)
    rank = x.ndim
    axis = axis % rank
    if mode == "global":
        return x.reshape(x.shape[0], -1), lambda y: y.reshape(x.shape)
    if mode == "spatial":  # one group per (sample, location): the channels
        moved = np.moveaxis(x, axis, -1)
        return moved.reshape(-1, moved.shape[-1]), lambda y: np.moveaxis(
            y.reshape(moved.shape), -1, axis
        )
    if mode == "channel":  # one group per (sample, channel): its spatial positions
        moved = np.moveaxis(x, axis, 1)
        return moved.reshape(moved.shape[0] * moved.shape[1], -1), lambda y: np.moveaxis(
            y.reshape(moved.shape), 1, axis
        )
    raise ValueError(mode)


def topk_mask(x, r, mode="global", axis=-1):
    """Boolean mask of the k = ceil(r * D) largest entries of every group (tie-free input)."""
    rows, restore = _groups(x, mode, axis)
    k = keep_count(r, rows.shape[1])
    order = np.argsort(-rows, axis=1, kind="stable")[:, :k]
    mask = np.zeros(rows.shape, bool)
    np.put_along_axis(mask, order, True, axis=1)
    return restore(mask)


def topk(x, r, mode="global", axis=-1):
    x = np.asarray(x)
    return np.where(topk_mask(x, r, mode, axis), x, 0).astype(x.dtype)


def group_size(shape, mode, axis):
    """D for ``mode`` on an input of ``shape`` (batch first)."""
    axis = axis % len(shape)
    if mode == "global":
        return int(np.prod(shape[1:]))
    if mode == "spatial":
        return shape[axis]
    return int(np.prod(shape[1:])) // shape[axis]


def tie_free(rng, shape):
    """A float32 array with all-distinct, non-zero entries (a shuffled, signed ramp)."""
    n = int(np.prod(shape))
    values = (np.arange(n) + 1.0) / n * np.where(rng.random(n) < 0.5, -1.0, 1.0)
    return rng.permutation(values).reshape(shape).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# RMSNorm2D (Wang 2026, section 2.3).


def rms_norm(x, scale, bias, axis=-1, epsilon=1e-10):
    """y = x / sqrt(mean_c x^2 + eps) * scale + bias, per location, in float64."""
    x = np.asarray(x, np.float64)
    shape = [1] * x.ndim
    shape[axis] = x.shape[axis]
    scale, bias = (np.broadcast_to(np.asarray(v, np.float64), shape[axis]) for v in (scale, bias))
    rms = np.sqrt(np.mean(x**2, axis=axis, keepdims=True) + epsilon)
    return x / rms * np.reshape(scale, shape) + np.reshape(bias, shape)


def rms_norm_grad(x, scale, w, axis=-1, epsilon=1e-10):
    """d/dx of sum(w * rms_norm(x)), in closed form.

    With s = sqrt(mean_c x^2 + eps) and C channels: d y_i / d x_j = g_i (delta_ij / s
    - x_i x_j / (C s^3)), so the gradient is g w / s - x * sum_c(g w x) / (C s^3).
    """
    x = np.asarray(x, np.float64)
    shape = [1] * x.ndim
    shape[axis] = x.shape[axis]
    c = x.shape[axis]
    gw = np.reshape(scale, shape) * w
    s = np.sqrt(np.mean(x**2, axis=axis, keepdims=True) + epsilon)
    return gw / s - x * np.sum(gw * x, axis=axis, keepdims=True) / (c * s**3)

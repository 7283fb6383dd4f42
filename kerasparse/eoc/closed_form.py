"""Closed forms for CReLU_{tau,m}, CST_{tau,m} and ReLU (per unit sigma_w^2).

With h ~ N(0, q), s = sqrt(q), a = tau/s, b = (tau+m)/s, dPhi = Phi(b) - Phi(a) and
p(.) the standard normal density (Dent & Tanner 2026, eqs. (7), (8)/(32), (15), (16)/(33)):

    e2    = E[CReLU(h)^2] = (q + tau^2) dPhi - s tau p(a) + s (tau - m) p(b) + m^2 (1 - Phi(b))
    e2_d1 = dPhi - m p(b) / s                                   (eq. 7 / sigma_w^2)
    e2_d2 = [tau p(a) - tau p(b) - m (tau+m)^2 p(b) / q] / (2 q^1.5)   (eq. 8 = eq. 32)
    d1    = dPhi                                                (eq. 15 / sigma_w^2)
    d1_d1 = [tau p(a) - (tau+m) p(b)] / (2 q^1.5)               (eq. 16 = eq. 33)
    e4    = sum_k C(4,k) s^k (-tau)^(4-k) I_k + m^4 (1 - Phi(b)),  I_k = int_a^b z^k p(z) dz
    p0    = Phi(a)

CST is the odd extension of CReLU, so every even moment doubles (eqs. 35, 36) and
p0 = 2 Phi(a) - 1 = erf(a / sqrt 2). The unclipped shifted ReLU and soft threshold are the
limits m -> inf (p(b) -> 0, Phi(b) -> 1); ReLU is shifted ReLU with tau = 0. The arguments may
be NumPy arrays (the m-solver evaluates many m at once).
"""

import numpy as np
from scipy import special

_SQRT_2PI = np.sqrt(2.0 * np.pi)


def _pdf(z):
    return np.exp(-0.5 * z * z) / _SQRT_2PI


def crelu_moments(q, tau, m):
    q = np.asarray(q, dtype=float)
    tau = np.asarray(tau, dtype=float)
    m = np.asarray(m, dtype=float)
    s = np.sqrt(q)
    a = tau / s
    b = (tau + m) / s
    pa = _pdf(a)
    with np.errstate(invalid="ignore"):
        pb = np.where(np.isinf(b), 0.0, _pdf(b))
        mpb = np.where(np.isinf(m), 0.0, m * pb)  # m p(b) -> 0 as m -> inf
        tail = special.ndtr(-b)  # 1 - Phi(b), accurate in the tail
        m2tail = np.where(np.isinf(m), 0.0, m * m * tail)
        m4tail = np.where(np.isinf(m), 0.0, m**4 * tail)
    dphi = special.ndtr(-a) - tail
    # truncated moments I_k = int_a^b z^k p(z) dz by I_k = a^(k-1)p(a) - b^(k-1)p(b) + (k-1)I_(k-2)
    with np.errstate(invalid="ignore"):
        bpb = np.where(np.isinf(b), 0.0, b * pb)
        b2pb = np.where(np.isinf(b), 0.0, b * b * pb)
        b3pb = np.where(np.isinf(b), 0.0, b**3 * pb)
    i0 = dphi
    i1 = pa - pb
    i2 = a * pa - bpb + i0
    i3 = a * a * pa - b2pb + 2.0 * i1
    i4 = a**3 * pa - b3pb + 3.0 * i2
    e4 = q * q * i4 - 4.0 * s**3 * tau * i3 + 6.0 * q * tau**2 * i2 - 4.0 * s * tau**3 * i1
    e4 = e4 + tau**4 * i0 + m4tail
    q15 = 2.0 * q * s
    return {
        "e2": (q + tau**2) * dphi - s * tau * pa + s * tau * pb - s * mpb + m2tail,
        "e2_d1": dphi - mpb / s,
        "e2_d2": (tau * pa - tau * pb - mpb * (tau + np.where(np.isinf(m), 0.0, m)) ** 2 / q)
        / q15,
        "d1": dphi,
        "d1_d1": (tau * pa - bpb * s) / q15,
        "e4": e4,
        "p0": special.ndtr(a),
    }


def cst_moments(q, tau, m):
    out = {k: 2.0 * v for k, v in crelu_moments(q, tau, m).items()}
    out["p0"] = special.erf(np.asarray(tau, dtype=float) / np.sqrt(2.0 * np.asarray(q)))
    return out


def moments(name, q, params):
    """Closed-form moments for ``name`` in {crelu, cst, shifted_relu, soft_threshold, relu}."""
    tau = params.get("tau", 0.0)
    m = params.get("m", np.inf)
    if name in ("crelu", "shifted_relu", "relu"):
        return crelu_moments(q, tau, m)
    if name in ("cst", "soft_threshold"):
        return cst_moments(q, tau, m)
    raise KeyError(name)


def crelu_tau(sparsity, q):
    """tau with P(CReLU(h) = 0) = Phi(tau / sqrt q) = s: tau = sqrt(q) Phi^-1(s)."""
    return np.sqrt(q) * special.ndtri(sparsity)


def cst_tau(sparsity, q):
    """tau with P(|h| < tau) = erf(tau / sqrt(2q)) = s: tau = sqrt(2q) erfinv(s)."""
    return np.sqrt(2.0 * q) * special.erfinv(sparsity)


TAU = {
    "crelu": crelu_tau,
    "shifted_relu": crelu_tau,
    "cst": cst_tau,
    "soft_threshold": cst_tau,
}

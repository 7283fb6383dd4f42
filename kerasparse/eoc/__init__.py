"""Edge-of-chaos theory for sparsifying activations (pure NumPy/SciPy: imports no Keras).

    from kerasparse import eoc
    s = eoc.setup("crelu", sparsity=0.85, q_star=3, v_prime=0.7)
    s.tau, s.m, s.sigma_w2, s.sigma_b2            # the recipe of Dent & Tanner 2026, sec. 2
    s.v_second, s.chi1_prime, s.q1_bound         # the diagnostics of sec. 2.1-2.3

``setup`` = ``assemble(setting, solve(setting))`` with ``setting = validate(...)``; ``solve``
is cached. The Keras objects (activation layer, ``EoCKernel``, ``EoCBias``) are built from
``s`` by :mod:`kerasparse.eoc_keras`. See docs/eoc.md for the formulas, the error cases and
the reproduction of the paper's tables.
"""

from kerasparse.eoc.activations import ACTIVATIONS, Activation
from kerasparse.eoc.recipe import (
    EoCSetup,
    Setting,
    Solution,
    assemble,
    chi1,
    maps,
    q1_bound,
    setup,
    solve,
    validate,
    variance_map,
)

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "EoCSetup",
    "Setting",
    "Solution",
    "assemble",
    "chi1",
    "maps",
    "q1_bound",
    "setup",
    "solve",
    "validate",
    "variance_map",
]

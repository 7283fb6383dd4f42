"""Private helper shared by EoCKernel and EoCBias: the theory inputs and their EoC solution."""

from kerasparse import eoc

THEORY_KEYS = ("activation", "sparsity", "q_star", "v_prime", "tau", "m", "alpha", "eps")


def solve(owner, activation, sparsity, q_star, v_prime, **params):
    """Run :func:`kerasparse.eoc.setup`; returns (setup, theory dict for get_config)."""
    if not isinstance(activation, str):
        raise ValueError(
            f"{owner}: activation must be the name of a built-in activation "
            f"({', '.join(eoc.ACTIVATIONS)}) so the initializer can be saved. "
            f"Received: activation={activation!r}"
        )
    params = {k: v for k, v in params.items() if v is not None}
    try:
        setup = eoc.setup(activation, sparsity, q_star, v_prime, **params)
    except ValueError as exc:
        raise ValueError(f"{owner}: {exc}") from None
    theory = {
        "activation": setup.activation,
        "sparsity": sparsity,
        "q_star": setup.q_star,
        "v_prime": v_prime,
        **params,
    }
    return setup, theory

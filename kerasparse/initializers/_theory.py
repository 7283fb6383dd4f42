"""Private helper shared by EoCKernel and EoCBias: their solved setting and its checks."""

from kerasparse import eoc


def setup_from_inputs(owner, activation, sparsity, q_star, v_prime, **params):
    """:func:`kerasparse.eoc.setup` of the theory inputs (cached: a model whose initializers
    share a setting solves it once); errors name ``owner``."""
    if not isinstance(activation, str):
        raise ValueError(
            f"{owner}: activation must be the name of a built-in activation "
            f"({', '.join(eoc.ACTIVATIONS)}) so the initializer can be saved. "
            f"Received: activation={activation!r}"
        )
    params = {k: v for k, v in params.items() if v is not None}
    try:
        return eoc.setup(activation, sparsity, q_star, v_prime, **params)
    except ValueError as exc:
        raise ValueError(f"{owner}: {exc}") from None


def check_setup(owner, setup):
    """``setup`` must be an :class:`~kerasparse.eoc.EoCSetup` of a named activation (its
    inputs are the initializer's config, so a ``.keras`` file can rebuild it)."""
    if not isinstance(setup, eoc.EoCSetup) or setup.setting is None:
        raise ValueError(
            f"{owner}: setup must be the result of kerasparse.eoc.setup(...). "
            f"Received: setup={setup!r}"
        )
    if not setup.setting.builtin:
        raise ValueError(
            f"{owner}: the setup needs a named activation ({', '.join(eoc.ACTIVATIONS)}) so "
            f"the initializer can be saved. Received: activation={setup.activation!r}"
        )
    return setup

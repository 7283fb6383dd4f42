import keras

from kerasparse.initializers import _theory


@keras.saving.register_keras_serializable(package="kerasparse")
class EoCKernel(keras.initializers.VarianceScaling):
    """Edge-of-chaos kernel initializer: W ~ N(0, sigma_w^2 / fan_in).

    sigma_w^2 comes from :func:`kerasparse.eoc.setup` (chi_1(q*) = 1, Dent & Tanner 2026
    section 2). fan_in follows Keras: the first dimension of a Dense kernel (fan_in, fan_out),
    kh * kw * c_in for a Conv2D kernel (kh, kw, c_in, c_out). It is
    ``VarianceScaling(scale=sigma_w2, mode="fan_in", distribution="untruncated_normal")``
    whose config keeps the theory inputs rather than the number; building one from them
    (or from that config, when a ``.keras`` file is loaded) solves the setting through
    ``eoc.setup``'s cache, so many initializers of one setting solve it once. From an
    already solved setting, use :meth:`from_setup` (or ``kerasparse.eoc_keras``).

    Args:
        activation: a built-in name (``"crelu"``, ``"cst"``, ``"relu"``, ...).
        sparsity: target fraction of zeros s in (0, 1) (or give ``tau``).
        q_star: fixed-point variance q* > 0.
        v_prime: target V'(q*) (or give ``m``) for clipped activations.
        tau, m, alpha, eps: fixed activation parameters, where not solved for.
        seed: int, ``keras.random.SeedGenerator`` or None (as Keras' random initializers).
            An int seed gives the same tensor at every call: use a different seed per layer.

    Example:
        >>> init = EoCKernel("crelu", sparsity=0.85, q_star=3.0, v_prime=0.7, seed=1)
        >>> init.sigma_w2  # 7.3348...
        >>> init = EoCKernel.from_setup(eoc.setup("crelu", sparsity=0.85, q_star=3.0,
        ...                                       v_prime=0.7), seed=1)   # the same
    """

    def __init__(
        self,
        activation="relu",
        sparsity=None,
        q_star=1.0,
        v_prime=None,
        tau=None,
        m=None,
        alpha=None,
        eps=None,
        seed=None,
    ):
        setup = _theory.setup_from_inputs(
            "EoCKernel", activation, sparsity, q_star, v_prime, tau=tau, m=m, alpha=alpha, eps=eps
        )
        self._init_from_setup(setup, seed)

    @classmethod
    def from_setup(cls, setup, seed=None):
        """The initializer of a solved :class:`~kerasparse.eoc.EoCSetup` (no solving)."""
        init = cls.__new__(cls)
        init._init_from_setup(_theory.check_setup(cls.__name__, setup), seed)
        return init

    def _init_from_setup(self, setup, seed):
        super().__init__(
            scale=setup.sigma_w2, mode="fan_in", distribution="untruncated_normal", seed=seed
        )
        self.setup = setup

    @property
    def sigma_w2(self):
        return self.setup.sigma_w2

    def get_config(self):
        return {**self.setup.setting.inputs(), "seed": super().get_config()["seed"]}

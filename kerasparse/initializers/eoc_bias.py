import math

import keras

from kerasparse.initializers import _theory


@keras.saving.register_keras_serializable(package="kerasparse")
class EoCBias(keras.initializers.RandomNormal):
    """Edge-of-chaos bias initializer: b ~ N(0, sigma_b^2).

    sigma_b^2 comes from :func:`kerasparse.eoc.setup` (V(q*) = q*, Dent & Tanner 2026
    section 2); it is 0 for ReLU, so the bias is then zero. A ``RandomNormal`` whose config
    keeps the theory inputs rather than the number (solved through ``eoc.setup``'s cache).
    From an already solved setting, use :meth:`from_setup` (or ``kerasparse.eoc_keras``).

    Args: as :class:`~kerasparse.initializers.EoCKernel`.

    Example:
        >>> init = EoCBias("crelu", sparsity=0.85, q_star=3.0, v_prime=0.7, seed=2)
        >>> init.sigma_b2  # 1.7860...
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
            "EoCBias", activation, sparsity, q_star, v_prime, tau=tau, m=m, alpha=alpha, eps=eps
        )
        self._init_from_setup(setup, seed)

    @classmethod
    def from_setup(cls, setup, seed=None):
        """The initializer of a solved :class:`~kerasparse.eoc.EoCSetup` (no solving)."""
        init = cls.__new__(cls)
        init._init_from_setup(_theory.check_setup(cls.__name__, setup), seed)
        return init

    def _init_from_setup(self, setup, seed):
        super().__init__(mean=0.0, stddev=math.sqrt(setup.sigma_b2), seed=seed)
        self.setup = setup

    @property
    def sigma_b2(self):
        return self.setup.sigma_b2

    def get_config(self):
        return {**self.setup.setting.inputs(), "seed": super().get_config()["seed"]}

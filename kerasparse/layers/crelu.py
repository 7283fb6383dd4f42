import keras

from kerasparse.validation import check_number
from kerasparse.layers._elementwise import ElementwiseActivation


@keras.saving.register_keras_serializable(package="kerasparse")
class CReLU(ElementwiseActivation):
    """Clipped shifted ReLU, CReLU_{tau,m} (Price et al. 2024; Dent & Tanner 2026 eq. (1)).

        CReLU(x) = 0          if x < tau
                   x - tau    if tau <= x <= tau + m
                   m          if x > tau + m

    A fraction Phi(tau / sqrt(q)) of N(0, q) pre-activations is set to zero.

    Args:
        tau: threshold, >= 0.
        m: clipping magnitude, > 0.
    """

    function_name = "crelu"
    param_names = ("tau", "m")

    def __init__(self, tau, m, **kwargs):
        super().__init__(**kwargs)
        self.tau = check_number("CReLU", "tau", tau, low=0.0)
        self.m = check_number("CReLU", "m", m, low=0.0, low_open=True)

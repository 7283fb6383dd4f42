import keras

from kerasparse.validation import check_number
from kerasparse.layers._elementwise import ElementwiseActivation


@keras.saving.register_keras_serializable(package="kerasparse")
class CST(ElementwiseActivation):
    """Clipped soft threshold, CST_{tau,m} (Price et al. 2024; Dent & Tanner 2026 eq. (34)).

        CST(x) = 0                   if |x| < tau
                 x - sign(x) tau     if tau <= |x| <= tau + m
                 sign(x) m           if |x| > tau + m

    The odd counterpart of CReLU: a fraction erf(tau / sqrt(2 q)) of N(0, q) inputs is zeroed.

    Args:
        tau: threshold, >= 0.
        m: clipping magnitude, > 0.
    """

    function_name = "cst"
    param_names = ("tau", "m")

    def __init__(self, tau, m, **kwargs):
        super().__init__(**kwargs)
        self.tau = check_number("CST", "tau", tau, low=0.0)
        self.m = check_number("CST", "m", m, low=0.0, low_open=True)

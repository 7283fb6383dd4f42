import keras

from kerasparse.validation import check_number
from kerasparse.layers._elementwise import ElementwiseActivation


@keras.saving.register_keras_serializable(package="kerasparse")
class CHardShrink(ElementwiseActivation):
    """Clipped HardShrink_{tau,alpha,eps,m} (Dent & Tanner 2026, appendix D, eq. (38)).

        CHardShrink(x) = 0                              if x < tau - eps
                         alpha (x - tau + eps)          if tau - eps <= x <= tau + eps
                         x + 2 alpha eps - tau - eps    if tau + eps < x < m
                         m + 2 alpha eps - tau - eps    if x > m

    Here m is the clipping point on the input axis (not the output magnitude), m > tau + eps.

    Args:
        tau: threshold, >= 0.
        alpha: ramp slope, > 0.
        eps: ramp half-width, > 0.
        m: clipping point, > tau + eps.
    """

    function_name = "chard_shrink"
    param_names = ("tau", "alpha", "eps", "m")

    def __init__(self, tau, alpha, eps, m, **kwargs):
        super().__init__(**kwargs)
        self.tau = check_number("CHardShrink", "tau", tau, low=0.0)
        self.alpha = check_number("CHardShrink", "alpha", alpha, low=0.0, low_open=True)
        self.eps = check_number("CHardShrink", "eps", eps, low=0.0, low_open=True)
        self.m = check_number("CHardShrink", "m", m, low=self.tau + self.eps, low_open=True)

import keras

from kerasparse.validation import check_number
from kerasparse.layers._elementwise import ElementwiseActivation


@keras.saving.register_keras_serializable(package="kerasparse")
class HardShrink(ElementwiseActivation):
    """HardShrink_{tau,alpha,eps} (Dent & Tanner 2026, appendix D, eq. (37)).

        HardShrink(x) = 0                              if x < tau - eps
                        alpha (x - tau + eps)          if tau - eps <= x <= tau + eps
                        x + 2 alpha eps - tau - eps    if x > tau + eps

    A steep ramp of slope alpha over [tau - eps, tau + eps] approximating a hard threshold
    at tau, then slope 1 (one-sided, as printed in the paper).

    Args:
        tau: threshold, >= 0.
        alpha: ramp slope, > 0 (paper example: 10).
        eps: ramp half-width, > 0 (paper example: 0.01).
    """

    function_name = "hard_shrink"
    param_names = ("tau", "alpha", "eps")

    def __init__(self, tau, alpha, eps, **kwargs):
        super().__init__(**kwargs)
        self.tau = check_number("HardShrink", "tau", tau, low=0.0)
        self.alpha = check_number("HardShrink", "alpha", alpha, low=0.0, low_open=True)
        self.eps = check_number("HardShrink", "eps", eps, low=0.0, low_open=True)

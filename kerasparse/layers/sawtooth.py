import keras

from kerasparse.validation import check_number
from kerasparse.layers._elementwise import ElementwiseActivation


@keras.saving.register_keras_serializable(package="kerasparse")
class Sawtooth(ElementwiseActivation):
    """Sawtooth_{tau,m} (Dent & Tanner 2026, appendix D, eq. (39)).

        Sawtooth(x) = 0                                 if |x - tau| > m
                      -sign(x - tau) (x - tau) + m      if |x - tau| <= m

    i.e. a tent of height m centred at tau, zero outside [tau - m, tau + m].

    Args:
        tau: centre, >= 0.
        m: half-width and height, > 0.
    """

    function_name = "sawtooth"
    param_names = ("tau", "m")

    def __init__(self, tau, m, **kwargs):
        super().__init__(**kwargs)
        self.tau = check_number("Sawtooth", "tau", tau, low=0.0)
        self.m = check_number("Sawtooth", "m", m, low=0.0, low_open=True)

import keras

from kerasparse import presets
from kerasparse.models._common import PlainEoCNet


@keras.saving.register_keras_serializable(package="kerasparse")
class DeepMLP(PlainEoCNet):
    """A deep fully connected net at the edge of chaos (Dent & Tanner 2026, section 3).

    ``Flatten`` -> ``depth`` hidden ``Dense(width)`` + activation layers -> ``Dense``
    logits. No skip connections, no normalisation. Hidden layers after the first are
    initialised from ``kerasparse.eoc.setup(activation, sparsity, q_star, v_prime)``:
    kernel N(0, sigma_w^2 / fan_in), bias N(0, sigma_b^2), so the pre-activation variance
    sits at the fixed point q*. The first layer has kernel N(0, 1/fan_in) and zero bias: the
    data are scaled to per-example variance q* (``kerasparse.data.load(..., q_star=...)``),
    and this layer preserves it (Dent & Tanner section 3). The logits layer uses the EoC
    kernel and bias initializers too.

    The paper's net is ``depth=100, width=300`` with CReLU_{tau,m} on MNIST (preset
    ``mlp100x300``).

    Args:
        depth: number of hidden (activated) layers.
        width: units per hidden layer.
        activation: ``"crelu"`` (default), ``"cst"``, ``"relu"``, ... (anything
            ``kerasparse.eoc.setup`` accepts).
        sparsity: the fraction s of zero activations at the fixed point (e.g. 0.85; ignored
            by ``"relu"``: pass ``None``).
        q_star: the fixed-point variance q* (Dent & Tanner: 1, 2 or 3).
        v_prime: the variance-map slope V'(q*) that fixes the clipping m (paper: 0.7).
        activation_params: extra parameters for ``eoc.setup`` (e.g. ``{"m": 2.0}``).
        num_classes: number of logits.
        input_shape: the data's shape without the batch axis (flattened inside).
        name: the model's name.
    """

    width_arg = "width"
    input_name = "inputs"

    def __init__(
        self,
        depth=100,
        width=300,
        activation="crelu",
        sparsity=0.85,
        q_star=3.0,
        v_prime=0.7,
        activation_params=None,
        num_classes=10,
        input_shape=(28, 28, 1),
        name="deep_mlp",
        **kwargs,
    ):
        super().__init__(
            depth, width, activation, sparsity, q_star, v_prime, activation_params,
            num_classes, input_shape, name, **kwargs,
        )

    @staticmethod
    def count_parameters(**arguments):
        """The number of trainable weights these arguments give, without building the model
        (the closed form in :mod:`kerasparse.presets`, used by ``kerasparse models``; tested
        against the built model). Not counted: BatchNorm's moving statistics and the sites'
        keep-ratio scalars."""
        return presets.BUILDERS["DeepMLP"].count(**arguments)

    def _stem(self, inputs):
        return keras.layers.Flatten(name="flatten")(inputs)

    def _hidden(self, width, kernel_initializer, bias_initializer, index):
        return keras.layers.Dense(
            width,
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            name=f"dense{index}",
        )

    def _head(self, x):
        return x

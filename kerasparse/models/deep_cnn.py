import keras

from kerasparse import presets
from kerasparse.models._common import PlainEoCNet


@keras.saving.register_keras_serializable(package="kerasparse")
class DeepCNN(PlainEoCNet):
    """A deep plain CNN at the edge of chaos (Dent & Tanner 2026, section 3).

    ``depth`` convolutions (3x3, stride 1, ``same`` padding, ``channels`` filters, with
    bias), each followed by the activation layer; then global average pooling and a
    ``Dense`` logits layer (the reduction to classes, so the spatial size never shrinks and
    every layer sees the same variance map). No skip connections, no normalisation.
    Initialisation as in :class:`DeepMLP`: the first convolution N(0, 1/fan_in) with zero
    bias (it preserves the per-example input variance q*), the others and the logits layer
    from ``kerasparse.eoc.setup`` (kernel N(0, sigma_w^2/fan_in), fan_in = 9 * channels,
    bias N(0, sigma_b^2)).

    The paper's net is ``depth=50, channels=300`` with CReLU_{tau,m} on CIFAR-10 (preset
    ``cnn50x300``).

    Args:
        depth: number of convolution + activation layers.
        channels: filters per convolution.
        activation, sparsity, q_star, v_prime, activation_params: as in :class:`DeepMLP`.
        num_classes: number of logits.
        input_shape: ``(height, width, channels)`` of the data.
        name: the model's name.
    """

    width_arg = "channels"
    input_rank = 3
    input_name = "images"

    def __init__(
        self,
        depth=50,
        channels=300,
        activation="crelu",
        sparsity=0.85,
        q_star=3.0,
        v_prime=0.7,
        activation_params=None,
        num_classes=10,
        input_shape=(32, 32, 3),
        name="deep_cnn",
        **kwargs,
    ):
        super().__init__(
            depth, channels, activation, sparsity, q_star, v_prime, activation_params,
            num_classes, input_shape, name, **kwargs,
        )

    @staticmethod
    def count_parameters(**arguments):
        """The number of trainable weights these arguments give, without building the model
        (the closed form in :mod:`kerasparse.presets`, used by ``kerasparse models``; tested
        against the built model). Not counted: BatchNorm's moving statistics and the sites'
        keep-ratio scalars."""
        return presets.BUILDERS["DeepCNN"].count(**arguments)

    def _stem(self, inputs):
        return inputs

    def _hidden(self, channels, kernel_initializer, bias_initializer, index):
        return keras.layers.Conv2D(
            channels,
            3,
            padding="same",
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            name=f"conv{index}",
        )

    def _head(self, x):
        return keras.layers.GlobalAveragePooling2D(name="pool")(x)

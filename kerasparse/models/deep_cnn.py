import keras

from kerasparse.models._common import (
    check_input_shape,
    check_positive_int,
    eoc_setup,
    first_layer_initializers,
)


@keras.saving.register_keras_serializable(package="kerasparse")
class DeepCNN(keras.Model):
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
        owner = "DeepCNN"
        depth = check_positive_int(owner, "depth", depth)
        channels = check_positive_int(owner, "channels", channels)
        num_classes = check_positive_int(owner, "num_classes", num_classes)
        input_shape = check_input_shape(owner, input_shape, rank=3)
        activation_params = dict(activation_params or {})
        setup = eoc_setup(owner, activation, sparsity, q_star, v_prime, activation_params)
        first_kernel, first_bias = first_layer_initializers()

        inputs = keras.Input(shape=input_shape, name="images")
        x = inputs
        for i in range(1, depth + 1):
            x = keras.layers.Conv2D(
                channels,
                3,
                padding="same",
                kernel_initializer=first_kernel if i == 1 else setup.kernel_initializer(),
                bias_initializer=first_bias if i == 1 else setup.bias_initializer(),
                name=f"conv{i}",
            )(x)
            x = setup.activation_layer(name=f"act{i}")(x)
        x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
        outputs = keras.layers.Dense(
            num_classes,
            kernel_initializer=setup.kernel_initializer(),
            bias_initializer=setup.bias_initializer(),
            name="logits",
        )(x)
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)

        self.depth = depth
        self.channels = channels
        self.activation = activation
        self.sparsity = sparsity
        self.q_star = float(q_star)
        self.v_prime = v_prime
        self.activation_params = activation_params
        self.num_classes = num_classes
        self.data_input_shape = input_shape
        self.eoc = setup

    @staticmethod
    def count_parameters(depth=50, channels=300, num_classes=10, input_shape=(32, 32, 3),
                         **_ignored):
        """The number of weights these arguments give, without building the model."""
        c_in = input_shape[-1]
        first = (9 * c_in + 1) * channels
        return first + (depth - 1) * (9 * channels + 1) * channels + (channels + 1) * num_classes

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "depth": self.depth,
            "channels": self.channels,
            "activation": self.activation,
            "sparsity": self.sparsity,
            "q_star": self.q_star,
            "v_prime": self.v_prime,
            "activation_params": dict(self.activation_params),
            "num_classes": self.num_classes,
            "input_shape": list(self.data_input_shape),
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

import keras

from kerasparse.models._common import (
    check_input_shape,
    check_positive_int,
    eoc_setup,
    first_layer_initializers,
)


@keras.saving.register_keras_serializable(package="kerasparse")
class DeepMLP(keras.Model):
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
        owner = "DeepMLP"
        depth = check_positive_int(owner, "depth", depth)
        width = check_positive_int(owner, "width", width)
        num_classes = check_positive_int(owner, "num_classes", num_classes)
        input_shape = check_input_shape(owner, input_shape)
        activation_params = dict(activation_params or {})
        setup = eoc_setup(owner, activation, sparsity, q_star, v_prime, activation_params)
        first_kernel, first_bias = first_layer_initializers()

        inputs = keras.Input(shape=input_shape, name="inputs")
        x = keras.layers.Flatten(name="flatten")(inputs)
        for i in range(1, depth + 1):
            x = keras.layers.Dense(
                width,
                kernel_initializer=first_kernel if i == 1 else setup.kernel_initializer(),
                bias_initializer=first_bias if i == 1 else setup.bias_initializer(),
                name=f"dense{i}",
            )(x)
            x = setup.activation_layer(name=f"act{i}")(x)
        outputs = keras.layers.Dense(
            num_classes,
            kernel_initializer=setup.kernel_initializer(),
            bias_initializer=setup.bias_initializer(),
            name="logits",
        )(x)
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)

        self.depth = depth
        self.width = width
        self.activation = activation
        self.sparsity = sparsity
        self.q_star = float(q_star)
        self.v_prime = v_prime
        self.activation_params = activation_params
        self.num_classes = num_classes
        self.data_input_shape = input_shape
        self.eoc = setup

    @staticmethod
    def count_parameters(depth=100, width=300, num_classes=10, input_shape=(28, 28, 1),
                         **_ignored):
        """The number of weights these arguments give, without building the model."""
        n_in = 1
        for d in input_shape:
            n_in *= d
        return (n_in + 1) * width + (depth - 1) * (width + 1) * width + (width + 1) * num_classes

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "depth": self.depth,
            "width": self.width,
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


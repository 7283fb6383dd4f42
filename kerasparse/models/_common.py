"""Helpers shared by the model builders (input shapes, activation sites, the EoC set-up)."""

import keras

from kerasparse import activations as ksactivations
from kerasparse import eoc, eoc_keras
from kerasparse import layers as kslayers
from kerasparse.validation import check_number, check_positive_int


def check_input_shape(owner, input_shape, rank=None):
    """A tuple of positive ints (no batch axis); ``rank`` if given is its required length."""
    try:
        shape = tuple(int(d) for d in input_shape)
        ok = all(d >= 1 for d in shape) and len(shape) >= 1
        ok = ok and all(float(d) == float(o) for d, o in zip(shape, input_shape))
    except (TypeError, ValueError):
        ok = False
    if ok and rank is not None:
        ok = len(shape) == rank
    if not ok:
        what = f"{rank} positive integers (height, width, channels)" if rank == 3 else (
            "a tuple of positive integers"
        )
        raise ValueError(
            f"{owner}: input_shape must be {what}, without the batch axis. "
            f"Received: input_shape={input_shape!r}"
        )
    return shape


def serialize_initializer(init):
    """A JSON-able form of an initializer (a name stays a name)."""
    if isinstance(init, (str, dict)):
        keras.initializers.get(init)  # raises a clear ValueError if unknown
        return init
    return keras.initializers.serialize(keras.initializers.get(init))


def activation_layer(activation, params, owner, name=None):
    """The nonlinearity as a layer: a kerasparse activation (needs ``params``) or Keras'."""
    if not isinstance(activation, str):
        raise ValueError(
            f"{owner}: activation must be a name such as 'relu', 'crelu' or 'cst'. "
            f"Received: activation={activation!r}"
        )
    key = ksactivations.canonical_name(activation)
    if key in kslayers.ACTIVATION_LAYERS:
        cls = kslayers.ACTIVATION_LAYERS[key]
        missing = [p for p in cls.param_names if p not in params]
        extra = [p for p in params if p not in cls.param_names]
        if missing or extra:
            raise ValueError(
                f"{owner}: activation {key!r} takes activation_params "
                f"{', '.join(cls.param_names)}. Received: activation_params={params!r}"
            )
        return cls(**params, name=name)
    if params:
        raise ValueError(
            f"{owner}: activation {activation!r} takes no activation_params. "
            f"Received: activation_params={params!r}"
        )
    ksactivations.get_activation(activation)  # a clear ValueError if unknown
    return keras.layers.Activation(key, name=name)


def activation_site(activation, params, topk, keep_ratio, mode, channel_axis, owner):
    """A factory ``site(name) -> layer`` for the activation sites of a model.

    ``topk=True``: ``SparseActivation(phi, keep_ratio, mode, axis)``; ``False``: ``phi`` alone.
    The arguments are checked once, here, so a bad value fails before any layer is built.
    """
    activation_layer(activation, params, owner)
    if topk:
        kslayers.SparseActivation("relu", keep_ratio=keep_ratio, mode=mode, axis=channel_axis)

    def site(name):
        if not topk:
            return activation_layer(activation, params, owner, name=name)
        key = ksactivations.canonical_name(activation)
        phi = key if key not in kslayers.ACTIVATION_LAYERS else activation_layer(
            activation, params, owner, name=f"{name}_phi"
        )
        return kslayers.SparseActivation(
            phi, keep_ratio=keep_ratio, mode=mode, axis=channel_axis, name=name
        )

    return site


def first_layer_initializers():
    """Kernel N(0, 1/fan_in) and zero bias: a layer that preserves the input variance q*.

    Dent & Tanner 2026, section 3: "Each data input is normalized such that it has mean
    zero and variance q*, the initialisation of the first layer is chosen to preserve this"
    — with per-example variance q* inputs, the first pre-activations have variance q*.
    """
    kernel = keras.initializers.VarianceScaling(
        scale=1.0, mode="fan_in", distribution="untruncated_normal"
    )
    return kernel, keras.initializers.Zeros()


def eoc_setup(owner, activation, sparsity, q_star, v_prime, activation_params):
    """The model's one solved :class:`~kerasparse.eoc.EoCSetup` (``kerasparse.eoc.setup``
    with the model's arguments); build its layers with :mod:`kerasparse.eoc_keras`."""
    check_number(owner, "q_star", q_star, low=0.0, low_open=True)
    return eoc.setup(
        activation, sparsity=sparsity, q_star=q_star, v_prime=v_prime, **activation_params
    )


class PlainEoCNet(keras.Model):
    """What :class:`~kerasparse.models.DeepMLP` and :class:`~kerasparse.models.DeepCNN`
    share: the argument checks, the EoC set-up (solved once; every activation layer and EoC
    initializer is built from it by :mod:`kerasparse.eoc_keras`), ``depth`` hidden layers each
    followed by the activation (the first variance-preserving, :func:`first_layer_initializers`;
    the others from the set-up), the EoC-initialised ``Dense`` logits layer, the attributes and the
    config (== the constructor arguments).

    A subclass sets ``width_arg`` (the name of its width argument), ``input_rank`` (None:
    any) and ``input_name``, and defines ``_stem(inputs)``, ``_hidden(width,
    kernel_initializer, bias_initializer, index)`` (the i-th hidden layer, 1-based) and
    ``_head(x)``.
    """

    width_arg = "width"
    input_rank = None
    input_name = "inputs"

    def __init__(self, depth, width, activation, sparsity, q_star, v_prime, activation_params,
                 num_classes, input_shape, name, **kwargs):
        owner = type(self).__name__
        depth = check_positive_int(owner, "depth", depth)
        width = check_positive_int(owner, self.width_arg, width)
        num_classes = check_positive_int(owner, "num_classes", num_classes)
        input_shape = check_input_shape(owner, input_shape, rank=self.input_rank)
        activation_params = dict(activation_params or {})
        setup = eoc_setup(owner, activation, sparsity, q_star, v_prime, activation_params)
        first_kernel, first_bias = first_layer_initializers()

        inputs = keras.Input(shape=input_shape, name=self.input_name)
        x = self._stem(inputs)
        for i in range(1, depth + 1):
            x = self._hidden(
                width,
                first_kernel if i == 1 else eoc_keras.kernel_initializer(setup),
                first_bias if i == 1 else eoc_keras.bias_initializer(setup),
                i,
            )(x)
            x = eoc_keras.activation_layer(setup, name=f"act{i}")(x)
        x = self._head(x)
        outputs = keras.layers.Dense(
            num_classes,
            kernel_initializer=eoc_keras.kernel_initializer(setup),
            bias_initializer=eoc_keras.bias_initializer(setup),
            name="logits",
        )(x)
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)

        self.depth = depth
        setattr(self, self.width_arg, width)
        self.activation = activation
        self.sparsity = sparsity
        self.q_star = float(q_star)
        self.v_prime = v_prime
        self.activation_params = activation_params
        self.num_classes = num_classes
        self.data_input_shape = input_shape
        self.eoc = setup

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "depth": self.depth,
            self.width_arg: getattr(self, self.width_arg),
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

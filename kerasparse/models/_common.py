"""Helpers shared by the model builders (argument checks, activation sites, initializers)."""

import numbers

import keras

from kerasparse import activations as ksactivations
from kerasparse import layers as kslayers
from kerasparse.layers._checks import check_number


def check_positive_int(owner, name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(
            f"{owner}: {name} must be a positive integer. Received: {name}={value!r}"
        )
    return int(value)


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
    """``kerasparse.eoc.setup(...)`` with the model's arguments (imported lazily)."""
    from kerasparse import eoc

    check_number(owner, "q_star", q_star, low=0.0, low_open=True)
    return eoc.setup(
        activation, sparsity=sparsity, q_star=q_star, v_prime=v_prime, **activation_params
    )


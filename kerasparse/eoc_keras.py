"""The Keras side of one solved edge-of-chaos setting: its activation layer and initializers.

:mod:`kerasparse.eoc` is pure NumPy/SciPy and returns numbers (an :class:`~kerasparse.eoc.EoCSetup`);
this module turns one such setup into the Keras objects of a layer, without solving again::

    from kerasparse import eoc, eoc_keras

    s = eoc.setup("crelu", sparsity=0.85, q_star=3, v_prime=0.7)
    x = keras.layers.Dense(300, kernel_initializer=eoc_keras.kernel_initializer(s, seed=i),
                           bias_initializer=eoc_keras.bias_initializer(s, seed=1000 + i))(x)
    x = eoc_keras.activation_layer(s)(x)          # CReLU(tau, m)
"""

import math

import keras

from kerasparse import eoc
from kerasparse import layers as kslayers
from kerasparse.initializers import EoCBias, EoCKernel


def activation_layer(setup, **kwargs):
    """The activation layer of ``setup`` with its solved parameters, e.g. ``CReLU(tau, m)``.

    ReLU is Keras' ``ReLU``; the unclipped shifted ReLU and soft threshold are ``CReLU`` /
    ``CST`` with m = inf. ``kwargs`` (``name=...``) go to the layer.
    """
    _check(setup, "activation_layer")
    if setup.spec.layer is None:
        raise ValueError(
            f"{setup.activation} is a custom activation with no kerasparse layer; wrap your "
            f"function in a Keras layer yourself. Received: activation={setup.activation!r}"
        )
    if setup.spec.layer == "relu":
        return keras.layers.ReLU(**kwargs)
    params = setup.params
    if setup.spec.layer in ("crelu", "cst") and "m" not in params:
        params["m"] = math.inf
    return kslayers.get(setup.spec.layer, **params, **kwargs)


def kernel_initializer(setup, seed=None):
    """``EoCKernel``: N(0, sigma_w^2 / fan_in), fan_in = kh * kw * c_in for convolutions."""
    return EoCKernel.from_setup(_check(setup, "kernel_initializer"), seed=seed)


def bias_initializer(setup, seed=None):
    """``EoCBias``: N(0, sigma_b^2)."""
    return EoCBias.from_setup(_check(setup, "bias_initializer"), seed=seed)


def _check(setup, what):
    if not isinstance(setup, eoc.EoCSetup):
        raise ValueError(
            f"eoc_keras.{what}: setup must be the result of kerasparse.eoc.setup(...). "
            f"Received: setup={setup!r}"
        )
    return setup


__all__ = ["activation_layer", "bias_initializer", "kernel_initializer"]

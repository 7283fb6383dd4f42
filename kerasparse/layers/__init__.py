"""kerasparse layers: sparse activation sites, sparsifying activations, RMSNorm2D."""

import keras

from kerasparse import activations as _activations
from kerasparse.layers.chard_shrink import CHardShrink
from kerasparse.layers.crelu import CReLU
from kerasparse.layers.cst import CST
from kerasparse.layers.global_top_k import GlobalTopK
from kerasparse.layers.hard_shrink import HardShrink
from kerasparse.layers.rms_norm_2d import RMSNorm2D
from kerasparse.layers.sawtooth import Sawtooth
from kerasparse.layers.sparse_activation import SparseActivation

ACTIVATION_LAYERS = {
    "crelu": CReLU,
    "cst": CST,
    "hard_shrink": HardShrink,
    "chard_shrink": CHardShrink,
    "sawtooth": Sawtooth,
}


def get(identifier, **params):
    """An activation layer by name: ``get("crelu", tau=1.0, m=2.0)`` -> ``CReLU(1.0, 2.0)``.

    kerasparse names take their parameters as keyword arguments; any other name is looked up
    as a Keras activation and returned as ``keras.layers.Activation``.
    """
    key = _activations.canonical_name(identifier)
    if key in ACTIVATION_LAYERS:
        return ACTIVATION_LAYERS[key](**params)
    if params:
        raise ValueError(
            f"Activation {identifier!r} takes no parameters. Received: {params}"
        )
    _activations.get_activation(identifier)  # raises a clear ValueError if unknown
    return keras.layers.Activation(key)


__all__ = [
    "CHardShrink",
    "CReLU",
    "CST",
    "GlobalTopK",
    "HardShrink",
    "RMSNorm2D",
    "Sawtooth",
    "SparseActivation",
    "get",
]

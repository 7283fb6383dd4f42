"""Finding the layers the callbacks drive (top-k sites) and measure (hidden activations)."""

import keras

from kerasparse import layers as kslayers
from kerasparse.layers import GlobalTopK
from kerasparse.validation import check_names

# Activation layers whose outputs SparsityMonitor measures, besides the GlobalTopK sites:
# kerasparse's sparsifying activations and Keras' ReLU / Activation layers.
ACTIVATION_LAYER_TYPES = (
    *kslayers.ACTIVATION_LAYERS.values(),
    keras.layers.ReLU,
    keras.layers.Activation,
)


def _all_layers(owner, model):
    if not isinstance(model, keras.layers.Layer):
        raise ValueError(
            f"{owner}: model must be a keras Model or Layer. Received: model={model!r}"
        )
    # Keras 3 has no public recursive layer walk (`Model.layers` is top-level only and custom
    # layers expose their sublayers only through tracking), so use the tracker's own walk.
    return list(model._flatten_layers(include_self=True, recursive=True))


def _select(owner, found, names, what):
    if names is None:
        return found
    by_name = {}
    for layer in found:
        by_name.setdefault(layer.name, layer)
    missing = [n for n in names if n not in by_name]
    if missing:
        raise ValueError(
            f"{owner}: no {what} named {', '.join(map(repr, missing))}; "
            f"available: {', '.join(map(repr, by_name))}. Received: names={list(names)!r}"
        )
    return [by_name[n] for n in names]


def find_topk_layers(model, names=None):
    """Every :class:`~kerasparse.layers.GlobalTopK` layer (``SparseActivation`` included) of
    ``model``, found recursively through nested layers and models.

    Works for functional, sequential and subclassed models (built or not: the layers a model
    creates in ``__init__`` are tracked). Layers are returned once each, in tracking order.

    Args:
        model: a ``keras.Model`` or ``keras.layers.Layer``.
        names: optional layer name or list of names; only those layers are returned (in the
            given order).

    Raises:
        ValueError: if the model has no GlobalTopK layer, or a name is not one of them.
    """
    owner = "find_topk_layers"
    layers = _all_layers(owner, model)
    names = check_names(owner, "names", names)
    found = [layer for layer in layers if isinstance(layer, GlobalTopK)]
    if not found:
        raise ValueError(
            f"{owner}: the model has no GlobalTopK or SparseActivation layer to control or "
            f"measure. Received: model={model.name!r}"
        )
    return _select(owner, found, names, "GlobalTopK layer")


def find_activation_layers(model, names=None):
    """The layers whose outputs are the model's hidden activations, as SparsityMonitor
    measures them, found recursively, once each, in tracking order:

    - every :class:`~kerasparse.layers.GlobalTopK` (``SparseActivation`` included): its
      output is the activation after top-k;
    - every activation layer that is not inside one of those: kerasparse's ``CReLU``,
      ``CST``, ``HardShrink``, ``CHardShrink``, ``Sawtooth`` and Keras' ``ReLU`` and
      ``Activation`` layers. (The activation a ``SparseActivation`` applies before its top-k
      is not counted separately, so a WideResNet measures exactly its 25 sites.)

    An activation given as a layer argument (``Dense(..., activation="relu")``) is not a layer
    of its own and is not found; pass ``names`` to measure only some layers.

    Raises:
        ValueError: if the model has none of these layers, or a name is not one of them.
    """
    owner = "find_activation_layers"
    layers = _all_layers(owner, model)
    names = check_names(owner, "names", names)
    inside_sites = {
        id(inner)
        for layer in layers if isinstance(layer, GlobalTopK)
        for inner in layer._flatten_layers(include_self=False, recursive=True)
    }
    found = [
        layer for layer in layers
        if isinstance(layer, GlobalTopK)
        or (isinstance(layer, ACTIVATION_LAYER_TYPES) and id(layer) not in inside_sites)
    ]
    if not found:
        raise ValueError(
            f"{owner}: the model has no GlobalTopK or SparseActivation layer and no activation "
            "layer (CReLU, CST, HardShrink, CHardShrink, Sawtooth, keras ReLU or Activation) "
            f"to measure. Received: model={model.name!r}"
        )
    return _select(owner, found, names, "GlobalTopK or activation layer")


def unique_names(layers):
    """Layer names, suffixed with #2, #3 ... where nested models reuse a name."""
    seen, names = {}, []
    for layer in layers:
        seen[layer.name] = seen.get(layer.name, 0) + 1
        names.append(layer.name if seen[layer.name] == 1 else f"{layer.name}#{seen[layer.name]}")
    return names

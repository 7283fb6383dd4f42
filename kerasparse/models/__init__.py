"""kerasparse models: Wang 2026's Wide ResNet and Dent & Tanner 2026's deep EoC nets.

``get_model("wrn28-4")`` builds a registered preset (``MODELS``; ``kerasparse models`` lists
them); the builders are functional ``keras.Model`` subclasses whose config is their
constructor's arguments. ``PackedDeepMLP`` / ``PackedDeepCNN`` hold N independent members of
``DeepMLP`` / ``DeepCNN`` (each its own EoC setting and weights) in one model, to train a grid
of small nets as one program (docs/models.md).
"""

from kerasparse.models._registry import MODELS, ModelSpec, get_model, model_spec
from kerasparse.models.deep_cnn import DeepCNN
from kerasparse.models.deep_mlp import DeepMLP
from kerasparse.models.packed_cnn import PackedDeepCNN
from kerasparse.models.packed_mlp import PackedDeepMLP
from kerasparse.models.wide_resnet import WideResNet

__all__ = [
    "DeepCNN",
    "DeepMLP",
    "MODELS",
    "ModelSpec",
    "PackedDeepCNN",
    "PackedDeepMLP",
    "WideResNet",
    "get_model",
    "model_spec",
]

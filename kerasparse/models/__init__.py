"""kerasparse models: Wang 2026's Wide ResNet and Dent & Tanner 2026's deep EoC nets.

``get_model("wrn28-4")`` builds a registered preset (``MODELS``; ``kerasparse models`` lists
them); the builders are functional ``keras.Model`` subclasses whose config is their
constructor's arguments.
"""

from kerasparse.models._registry import MODELS, ModelSpec, get_model, model_spec
from kerasparse.models.deep_cnn import DeepCNN
from kerasparse.models.deep_mlp import DeepMLP
from kerasparse.models.wide_resnet import WideResNet

__all__ = ["DeepCNN", "DeepMLP", "MODELS", "ModelSpec", "WideResNet", "get_model", "model_spec"]

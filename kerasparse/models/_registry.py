"""The model name registry: ``MODELS`` and ``get_model``."""

import dataclasses
from kerasparse.config import suggest


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A registered model: ``builder(**defaults, **overrides)`` builds it.

    ``builder`` is a name of :mod:`kerasparse.models` (resolved lazily so that listing the
    registry does not import Keras). ``takes_q_star`` marks the edge-of-chaos nets whose data
    must be scaled to per-example variance q* (``kerasparse.data.load(..., q_star=...)``).
    """

    builder: str
    defaults: dict
    description: str
    takes_q_star: bool = False

    def builder_class(self):
        from kerasparse import models

        return getattr(models, self.builder)

    def arguments(self, **overrides):
        """Every argument the builder is called with: its signature's defaults, the preset's
        ``defaults``, then ``overrides`` (what :func:`get_model` passes, made explicit)."""
        import inspect

        params = inspect.signature(self.builder_class().__init__).parameters
        defaults = {name: p.default for name, p in params.items()
                    if p.default is not inspect.Parameter.empty}
        return {**defaults, **self.defaults, **overrides}

    def parameter_count(self, **overrides):
        """The number of weights, from the builder's closed form (nothing is built)."""
        return self.builder_class().count_parameters(**{**self.defaults, **overrides})


_WRN = "WideResNet"
_EOC = {"activation": "crelu", "sparsity": 0.85, "q_star": 3.0, "v_prime": 0.7}

MODELS = {
    "wrn28-4": ModelSpec(
        _WRN,
        {"depth": 28, "width": 4},
        "WRN-28-4, RMSNorm, ReLU + global top-k at 25 sites (Wang 2026): CIFAR-10",
    ),
    "wrn28-4-dense": ModelSpec(
        _WRN,
        {"depth": 28, "width": 4, "topk": False},
        "WRN-28-4, RMSNorm, plain ReLU: Wang 2026's dense baseline",
    ),
    "wrn16-4": ModelSpec(
        _WRN, {"depth": 16, "width": 4}, "WRN-16-4, RMSNorm, ReLU + global top-k"
    ),
    "wrn28-10": ModelSpec(
        _WRN, {"depth": 28, "width": 10}, "WRN-28-10, RMSNorm, ReLU + global top-k"
    ),
    "wrn16-1": ModelSpec(
        _WRN,
        {"depth": 16, "width": 1},
        "WRN-16-1, RMSNorm, ReLU + global top-k: small, for tests and the quick start",
    ),
    "mlp100x300": ModelSpec(
        "DeepMLP",
        {"depth": 100, "width": 300, **_EOC, "num_classes": 10, "input_shape": (28, 28, 1)},
        "100 x 300 MLP, CReLU at the edge of chaos (Dent & Tanner 2026): MNIST",
        takes_q_star=True,
    ),
    "cnn50x300": ModelSpec(
        "DeepCNN",
        {"depth": 50, "channels": 300, **_EOC, "num_classes": 10, "input_shape": (32, 32, 3)},
        "50-layer 300-channel plain CNN, CReLU at the edge of chaos (Dent & Tanner): CIFAR-10",
        takes_q_star=True,
    ),
}


def model_spec(name):
    """The :class:`ModelSpec` registered as ``name``; a ValueError suggesting the nearest."""
    if name not in MODELS:
        raise ValueError(
            f"Unknown model {name!r}; registered models: {', '.join(MODELS)}."
            f"{suggest(name, MODELS, cutoff=0.4)} "
            f"Received: name={name!r}"
        )
    return MODELS[name]


def get_model(name, **overrides):
    """Build the registered model ``name``; ``overrides`` replace its default arguments.

    ``get_model("wrn28-4", num_classes=100)``, ``get_model("mlp100x300", depth=20)``.
    """
    spec = model_spec(name)
    cls = spec.builder_class()
    return cls(**{**spec.defaults, **overrides})

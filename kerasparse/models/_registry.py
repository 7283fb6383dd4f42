"""The model name registry: ``MODELS`` and ``get_model``."""

from kerasparse.presets import MODELS, ModelSpec, suggest  # the one table of models (Keras-free)


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

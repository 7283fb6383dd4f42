"""The names kerasparse knows, one table of each: models, datasets, activations, controllers.

Plain data and the one rule that checks a name against them (:func:`check_name`), like timm's
``create_act.py``: the CLI, the config schema (:mod:`kerasparse.config`) and the builders
(:mod:`kerasparse.models`, :mod:`kerasparse.data`, :mod:`kerasparse.activations`,
:mod:`kerasparse.eoc`) take their names from here. Standard library only (no NumPy, no Keras),
so ``kerasparse models``, ``train --help`` and a config check start no backend. The closed-form
parameter counts live here for the same reason (the builders' ``count_parameters`` call them;
tests/test_presets_names.py checks them against Keras' ``count_params()``).
"""

import dataclasses
import difflib
from typing import Optional


class UnknownName(ValueError):
    """A name that is not in its table (reported to CLI users as a one-line usage error)."""


def suggest(name, allowed, cutoff=0.5):
    """`` Did you mean 'x'?`` for the closest allowed name, or an empty string. The one
    name-suggestion helper of kerasparse (config keys, CLI choices, models, datasets)."""
    close = difflib.get_close_matches(str(name), [str(a) for a in allowed], n=1, cutoff=cutoff)
    return f" Did you mean {close[0]!r}?" if close else ""


def check_name(kind, value, allowed, canonical=None):
    """``value`` if it names one of ``allowed`` (after ``canonical``, if given), else
    :class:`UnknownName`: ``unknown <kind> 'x'. Did you mean 'y'? Allowed: a, b, c``."""
    key = canonical(value) if canonical is not None and isinstance(value, str) else value
    if key in allowed:
        return value
    raise UnknownName(
        f"unknown {kind} {value!r}.{suggest(value, allowed)} Allowed: {', '.join(allowed)}"
    )


# ---------------------------------------------------------------------------------------------
# Activations

# kerasparse's own activations: kerasparse.activations' keras.ops functions and
# kerasparse.layers' activation layers, one of each per name.
ACTIVATIONS = ("crelu", "cst", "hard_shrink", "chard_shrink", "sawtooth")

# The activations the EoC solver knows (kerasparse.eoc.ACTIVATIONS, the same order).
EOC_ACTIVATIONS = ("relu", "crelu", "cst", "shifted_relu", "soft_threshold", "hard_shrink",
                   "chard_shrink", "sawtooth")

# Keras 3's activation names (keras.activations.get); kerasparse's own win where a name is in
# both (hard_shrink). tests/test_presets_names.py checks Keras accepts every one.
KERAS_ACTIVATIONS = (
    "celu", "elu", "exponential", "gelu", "glu", "hard_shrink", "hard_sigmoid", "hard_silu",
    "hard_swish", "hard_tanh", "leaky_relu", "linear", "log_sigmoid", "log_softmax", "mish",
    "relu", "relu6", "selu", "sigmoid", "silu", "soft_shrink", "softmax", "softplus", "softsign",
    "sparse_plus", "sparse_sigmoid", "sparsemax", "squareplus", "swish", "tanh", "tanh_shrink",
    "threshold",
)

ACTIVATION_ALIASES = {
    "hardshrink": "hard_shrink",
    "chardshrink": "chard_shrink",
    "shiftedrelu": "shifted_relu",
    "softthreshold": "soft_threshold",
    "st": "soft_threshold",
}


def canonical_activation(name):
    """Lower-case name with aliases resolved (``"HardShrink"`` -> ``"hard_shrink"``)."""
    key = str(name).lower().replace("-", "_")
    return ACTIVATION_ALIASES.get(key.replace("_", ""), ACTIVATION_ALIASES.get(key, key))


# ---------------------------------------------------------------------------------------------
# Model builders: the arguments a [model] table may give and the closed-form parameter counts


def _wrn_parameters(depth=28, width=4, num_classes=10, input_shape=(32, 32, 3), norm="rmsnorm",
                    **_ignored):
    per_norm = {"rmsnorm": 2, "batchnorm": 2, "none": 0}[norm]
    blocks = (depth - 4) // 6
    total = 9 * input_shape[-1] * 16
    c_in = 16
    for filters, stride in ((16 * width, 1), (32 * width, 2), (64 * width, 2)):
        for block in range(blocks):
            total += per_norm * c_in + 9 * c_in * filters
            total += per_norm * filters + 9 * filters * filters
            if c_in != filters or (block == 0 and stride != 1):
                total += c_in * filters  # 1x1 projection shortcut
            c_in = filters
    return total + per_norm * c_in + c_in * num_classes + num_classes


def _mlp_parameters(depth=100, width=300, num_classes=10, input_shape=(28, 28, 1), **_ignored):
    n_in = 1
    for d in input_shape:
        n_in *= d
    return (n_in + 1) * width + (depth - 1) * (width + 1) * width + (width + 1) * num_classes


def _cnn_parameters(depth=50, channels=300, num_classes=10, input_shape=(32, 32, 3), **_ignored):
    first = (9 * input_shape[-1] + 1) * channels
    return first + (depth - 1) * (9 * channels + 1) * channels + (channels + 1) * num_classes


@dataclasses.dataclass(frozen=True)
class Builder:
    """A model builder of :mod:`kerasparse.models`: the constructor arguments a ``[model]``
    table may give (the signature less what the run sets: ``num_classes`` and ``input_shape``
    from the data, ``data_format`` from the config, the Keras ``name``) and its closed-form
    trainable parameter count (nothing built). tests/test_presets_names.py checks both against
    the class."""

    arguments: tuple
    count: object


_EOC_ARGS = ("activation", "sparsity", "q_star", "v_prime", "activation_params")
BUILDERS = {
    "WideResNet": Builder(
        ("depth", "width", "norm", "activation", "activation_params", "topk", "keep_ratio",
         "topk_mode", "epsilon", "kernel_initializer"),
        _wrn_parameters,
    ),
    "DeepMLP": Builder(("depth", "width", *_EOC_ARGS), _mlp_parameters),
    "DeepCNN": Builder(("depth", "channels", *_EOC_ARGS), _cnn_parameters),
}


def builder_activations(builder):
    """The activation names ``builder`` accepts: the EoC nets take what the solver knows; the
    WRN kerasparse's activations and Keras'."""
    if builder == "WideResNet":
        return ACTIVATIONS + tuple(a for a in KERAS_ACTIVATIONS if a not in ACTIVATIONS)
    return EOC_ACTIVATIONS


# ---------------------------------------------------------------------------------------------
# Models


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A registered model: ``builder(**defaults, **overrides)`` builds it.

    ``builder`` is a name of :mod:`kerasparse.models` (a key of :data:`BUILDERS`). ``takes_q_star``
    marks the edge-of-chaos nets whose data must be scaled to per-example variance q*
    (``kerasparse.data.load(..., q_star=...)``).
    """

    builder: str
    defaults: dict
    description: str
    takes_q_star: bool = False

    def builder_class(self):
        from kerasparse import models  # imports Keras

        return getattr(models, self.builder)

    def arguments(self, **overrides):
        """Every argument the builder is called with: its signature's defaults, the preset's
        ``defaults``, then ``overrides`` (what ``get_model`` passes, made explicit)."""
        import inspect

        params = inspect.signature(self.builder_class().__init__).parameters
        defaults = {name: p.default for name, p in params.items()
                    if p.default is not inspect.Parameter.empty}
        return {**defaults, **self.defaults, **overrides}

    def parameter_count(self, **overrides):
        """The number of trainable weights, from the closed form (nothing is built)."""
        return BUILDERS[self.builder].count(**{**self.defaults, **overrides})


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


# ---------------------------------------------------------------------------------------------
# Datasets


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """A known dataset: its tfds name, shape, classes and input statistics.

    ``mean``/``std``: fixed per-channel statistics of [0, 1] pixels (``None``: computed from
    the training split). ``flip``: whether a horizontal flip keeps the label (not for digits
    or the embedded gratings, whose class is the orientation). The standard files it can be
    read from are ``kerasparse.data._files.LAYOUTS[name]``; whether Keras can download it,
    ``kerasparse.data._sources.DOWNLOADABLE``.
    """

    tfds_name: Optional[str]
    input_shape: tuple
    num_classes: int
    mean: Optional[tuple] = None
    std: Optional[tuple] = None
    flip: bool = True


DATASETS = {
    # kerasparse.data.embedded (its IMAGE_SHAPE and NUM_CLASSES are read from here).
    "embedded": DatasetInfo(None, (32, 32, 3), 10, flip=False),
    # Wang 2026, section 2.1: the channel statistics the paper normalises CIFAR-10 with.
    "cifar10": DatasetInfo("cifar10", (32, 32, 3), 10,
                           mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616)),
    "cifar100": DatasetInfo("cifar100", (32, 32, 3), 100),
    "mnist": DatasetInfo("mnist", (28, 28, 1), 10, flip=False),
    "fashion_mnist": DatasetInfo("fashion_mnist", (28, 28, 1), 10),
    "svhn_cropped": DatasetInfo("svhn_cropped", (32, 32, 3), 10, flip=False),
    # Dent & Tanner 2026, appendix H.2: the labelled val folder is the test split.
    "tiny_imagenet": DatasetInfo(None, (64, 64, 3), 200),
}


# ---------------------------------------------------------------------------------------------
# Keep-ratio controllers: name -> (class of kerasparse.callbacks, the arguments a [controller]
# table may give: the signature less backup_dir, which the run sets)

CONTROLLERS = {
    "none": (None, ()),
    "add": ("AdditiveKeepRatio",
            ("step", "smoothing", "drop", "monitor", "min_keep_ratio", "max_keep_ratio", "layers")),
    "mult": ("MultiplicativeKeepRatio",
             ("factor", "smoothing", "gap", "monitor", "min_keep_ratio", "max_keep_ratio",
              "layers")),
    "constant": ("ConstantKeepRatio", ("keep_ratio", "layers")),
}

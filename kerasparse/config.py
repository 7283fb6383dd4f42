"""Training configuration: one flat schema shared by presets, the CLI and sweeps.

A preset is a TOML file of ``key = value`` lines (keys from :data:`FIELDS`); command-line
values override it. Everything is validated up front, so a typo fails in the first second
with one line naming the key, the value and what is allowed, and nothing is written.
"""

import dataclasses
import json
import math
import numbers
import tomllib

from kerasparse import presets, step_options
from kerasparse.presets import suggest  # noqa: F401  (the one name-suggestion helper)

CONTROLLERS = tuple(presets.CONTROLLERS)  # none, add, mult, constant
PRECISIONS = ("float32", "mixed_bfloat16")
DEVICES = ("auto", "cpu", "gpu")
SCHEDULES = ("cosine", "constant")
OPTIMIZERS = ("sgd", "adam")
SPLITS = ("official", "pooled")  # kerasparse.data.SPLITS (not imported: this module is NumPy-free)

# The EMA factor of each feedback controller when `smoothing` is not given (Wang 2026).
SMOOTHING = {"add": 0.9, "mult": 0.5}


class ConfigError(ValueError):
    """An invalid configuration value (reported to CLI users as a one-line usage error)."""


def _num(low=None, high=None, low_open=False, high_open=False):
    def check(value):
        if low is not None and (value <= low if low_open else value < low):
            return False
        if high is not None and (value >= high if high_open else value > high):
            return False
        return True

    lo = "-inf" if low is None else (str(low) if isinstance(low, int) else f"{low:g}")
    hi = "inf" if high is None else (str(high) if isinstance(high, int) else f"{high:g}")
    text = ("(" if low_open or low is None else "[") + f"{lo}, {hi}" + (
        ")" if high_open or high is None else "]"
    )
    return check, f"a number in {text}"


# Upper bounds of the integer settings: each number must fit what it feeds (a 32-bit seed,
# the step counter of the schedule, array sizes) instead of overflowing deep in a backend.
MAX_SEED = 2**32 - 1  # NumPy's and the backends' seed range
MAX_EPOCHS = 1_000_000
MAX_COUNT = 2**31 - 1  # batch sizes, step counts, example counts, widths: int32


def _count(low=1, high=MAX_COUNT):
    return _num(low, high)


class _Choices(tuple):
    """A check ``(predicate, description)`` that also lists its allowed values (``choices``:
    the command line's choice types are made from them, kerasparse.cli._choices)."""


class _Names(tuple):
    """A name check: ``value`` must name an entry of one of kerasparse.presets' tables (the
    message is :func:`kerasparse.presets.check_name`'s: the value, a suggestion, the names)."""


def _names(kind, allowed, canonical=None):
    check = _Names(((lambda v: (canonical(v) if canonical else v) in allowed), ""))
    check.kind, check.allowed, check.canonical = kind, tuple(allowed), canonical
    return check


# Every activation some model takes (which model takes which: kerasparse.presets,
# checked in resolve()).
_ALL_ACTIVATIONS = tuple(dict.fromkeys(
    presets.builder_activations("WideResNet") + presets.EOC_ACTIVATIONS))


def _choice(options):
    check = _Choices(((lambda value: value in options), "one of " + ", ".join(options)))
    check.choices = tuple(options)
    return check


@dataclasses.dataclass(frozen=True)
class Field:
    type: type
    default: object
    check: object = None  # (predicate, description) or None
    help: str = ""
    optional: bool = False  # None allowed
    normalize: object = None  # applied to a value before its type check (or None)

    @property
    def choices(self):
        """The allowed values of a choice field, else None."""
        return getattr(self.check, "choices", None)


def _callbacks_ok(value):
    items = [item.strip() for item in value.split(",")]
    return all(m and f for m, _, f in (item.partition(":") for item in items if item)) and any(items)


# The recipe of Wang 2026 is the default: SGD 0.1, Nesterov 0.9, no weight decay, cosine
# decay over all epochs, batch 128, seed 3407, cross-entropy.
FIELDS = {
    "model": Field(str, "wrn28-4", _names("model", presets.MODELS),
                   "model name from the registry (kerasparse models)"),
    "dataset": Field(str, "cifar10", _names("dataset", presets.DATASETS),
                     "dataset name (embedded, cifar10, mnist, ...)"),
    "epochs": Field(int, 500, _count(1, MAX_EPOCHS), "number of epochs"),
    "batch_size": Field(int, 128, _count(), "batch size"),
    "lr": Field(float, 0.1, _num(0, low_open=True), "initial learning rate"),
    "optimizer": Field(str, "sgd", _choice(OPTIMIZERS), "optimizer"),
    "momentum": Field(float, 0.9, _num(0, 1, high_open=True), "SGD momentum"),
    "nesterov": Field(bool, True, help="Nesterov momentum"),
    "weight_decay": Field(float, 0.0, _num(0), "decoupled weight decay"),
    "schedule": Field(str, "cosine", _choice(SCHEDULES), "learning-rate schedule"),
    # Off by default: the paper's recipe starts at the full lr (docs/training.md, "Warm-up").
    "warmup_epochs": Field(
        float, 0.0, _num(0), "linear lr warm-up from 0 over this many epochs, then the "
        "schedule (0: off; must be below epochs)"
    ),
    "seed": Field(int, 3407, _count(0, MAX_SEED), "seed for Python, NumPy, the backend and data order"),
    "controller": Field(str, "none", _choice(CONTROLLERS), "keep-ratio controller"),
    "keep_ratio": Field(float, 1.0, _num(0, 1, low_open=True), "keep ratio r of the constant controller"),
    "step": Field(float, 0.01, _num(0, 1, low_open=True), "additive controller step"),
    "drop": Field(float, 0.01, _num(0, low_open=True), "additive controller reset drop"),
    "factor": Field(float, 0.98, _num(0, 1, low_open=True, high_open=True), "mult. factor"),
    "gap": Field(float, 0.2, _num(0, low_open=True), "multiplicative controller reset gap"),
    "smoothing": Field(
        float, None, _num(0, 1, high_open=True), "EMA factor of the monitored metric (default: add 0.9, mult 0.5)", True
    ),
    "min_keep_ratio": Field(float, 0.0, _num(0, 1), "lowest keep ratio of a controller"),
    "max_keep_ratio": Field(float, 1.0, _num(0, 1, low_open=True), "controller reset value"),
    "monitor": Field(str, "accuracy", help="log key the controllers smooth"),
    "activation": Field(
        str, None, _names("activation", _ALL_ACTIVATIONS, presets.canonical_activation),
        "activation of the sparse sites (which model takes which: kerasparse.presets)", True,
    ),
    "topk": Field(bool, True, help="GlobalTopK at the sparse sites (off: the plain activation)"),
    "norm": Field(str, None, help="WRN norm: rmsnorm, batchnorm, none", optional=True),
    "sparsity": Field(float, None, _num(0, 1, True, True), "EoC target sparsity s", True),
    "q_star": Field(float, None, _num(0, low_open=True), "EoC fixed-point variance q*", True),
    "v_prime": Field(float, None, _num(0, 1, True, True), "EoC target V'(q*)", True),
    "depth": Field(int, None, _count(), "model depth override", True),
    "width": Field(int, None, _count(), "model width override", True),
    "augment": Field(bool, False, help="random crop + flip (off: the paper's setting)"),
    "validation_split": Field(float, 0.0, _num(0, 1, high_open=True), "held-out fraction"),
    "split": Field(str, "official", _choice(SPLITS),
                   "official: the dataset's train/test sets; pooled: both pooled, 20% test, "
                   "validation_split (else 10%) of the rest validation (Dent & Tanner)"),
    "data_dir": Field(str, None, help="folder of the dataset's standard files (layout "
                      "detected) or a tensorflow-datasets data_dir", optional=True),
    "files_dir": Field(str, None, help="folder of standard distribution files (data_dir's "
                       "older name, files only)", optional=True),
    "train_examples": Field(int, None, _count(), "use only the first N training examples", True),
    "test_examples": Field(int, None, _count(), "evaluate on the first N test examples", True),
    "steps_per_epoch": Field(int, None, _count(), "cap on steps per epoch", True),
    "precision": Field(str, "float32", _choice(PRECISIONS), "dtype policy"),
    # The step's speed options (kerasparse.step_options): same results, another way to run.
    "data_format": Field(
        str, "auto", _choice(step_options.DATA_FORMATS),
        "image layout inside WRN models (auto: channels_first on torch)",
    ),
    "jit_compile": Field(
        str, "auto", _choice(step_options.JIT_COMPILE),
        "compile the step (XLA; torch.compile on torch); auto: Keras' choice",
        # TOML and --set give true/false as booleans.
        normalize=lambda v: str(v).lower() if isinstance(v, bool) else v,
    ),
    "steps_per_execution": Field(
        int, 1, _count(), "training steps per compiled call (jax, tensorflow)"
    ),
    "devices": Field(int, 1, _count(1, 65536), "data-parallel devices (jax, tensorflow)"),
    "device": Field(str, "auto", _choice(DEVICES),
                    "device kind: auto (a GPU if the backend sees one), cpu, gpu (required)"),
    "monitor_batch": Field(int, 256, _count(0), "SparsityMonitor batch (0: off)"),
    "checkpoint_every": Field(int, 1, _count(), "checkpoint every N epochs"),
    "keep_checkpoints": Field(int, 2, _count(0), "keep the N newest epoch checkpoints (0: all)"),
    "tensorboard": Field(bool, False, help="write TensorBoard scalars to <run>/tensorboard"),
    # A preset's [model] / [controller] tables (docs/training.md, "Presets"): the builder's and
    # the controller's other constructor arguments (those with a key of their own above are
    # moved there by resolve()). No command-line option of their own: --set model_args={...}.
    "model_args": Field(dict, None, help="other model constructor arguments ([model] table)",
                        optional=True),
    "controller_args": Field(dict, None, optional=True,
                             help="other controller constructor arguments ([controller] table)"),
    "callbacks": Field(
        str, None, (_callbacks_ok, "module:factory items separated by commas"),
        "the user's Keras callbacks: module:factory, comma-separated", optional=True,
    ),
}


def default_config():
    return {name: field.default for name, field in FIELDS.items()}


def _type_name(t):
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string",
            dict: "a table of constructor arguments"}[t]


def _coerce(name, value, field, source):
    if field.normalize is not None:
        value = field.normalize(value)
    if value is None:
        if field.optional or field.default is None:
            return None
        raise ConfigError(f"{source}: {name} cannot be empty. Received: {name}=None")
    t = field.type
    ok = False
    if t is bool:
        ok = isinstance(value, bool)
    elif t is int:
        ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    elif t is float:
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
        if ok:
            value = float(value)
            ok = math.isfinite(value)
    elif t is str:
        ok = isinstance(value, str)
    elif t is dict:
        ok = isinstance(value, dict) and all(isinstance(k, str) for k in value)
        try:  # config.json records it
            json.dumps(value)
        except (TypeError, ValueError):
            ok = False
        value = dict(value) if ok else value
    if not ok:
        raise ConfigError(
            f"{source}: {name} must be {_type_name(t)}. Received: {name}={value!r}"
        )
    if isinstance(field.check, _Names):
        try:
            presets.check_name(field.check.kind, value, field.check.allowed, field.check.canonical)
        except presets.UnknownName as exc:
            raise ConfigError(f"{source}: {exc}") from None
    elif field.check is not None:
        predicate, description = field.check
        if not predicate(value):
            raise ConfigError(
                f"{source}: {name} must be {description}. Received: {name}={value!r}"
            )
    return value


def validate(values, source="config"):
    """Check keys, types and ranges of ``values``; return the coerced dict (no defaults)."""
    out = {}
    for name, value in values.items():
        if name not in FIELDS:
            raise ConfigError(
                f"{source}: unknown key {name!r}.{suggest(name, FIELDS)} "
                f"Allowed keys: {', '.join(FIELDS)}"
            )
        out[name] = _coerce(name, value, FIELDS[name], source)
    return out


def load_toml(path):
    """Read and validate a preset file; errors name the file (and line, for syntax errors)."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"config path is a directory, not a TOML file: {path}") from None
    except tomllib.TOMLDecodeError as exc:  # message carries "(at line L, column C)"
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError as exc:  # tomllib decodes the bytes as UTF-8 first
        raise ConfigError(f"{path}: not a UTF-8 text file (byte {exc.object[exc.start]:#04x} at "
                          f"offset {exc.start}); a preset is UTF-8 TOML") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read ({exc.strerror or exc})") from None
    return validate(_from_tables(data, path), source=str(path))


# The tables a preset may have: [model] and [controller], each naming its entry with `name`
# (the config's `model` / `controller`) and giving the constructor's other arguments.
TABLES = {"model": "model_args", "controller": "controller_args"}
# The table keys that are config keys of their own (resolve() moves them there; `channels` is
# DeepCNN's `width`). Other keys stay in model_args / controller_args.
MODEL_KEYS = ("activation", "norm", "sparsity", "q_star", "v_prime", "depth", "width", "topk")
CONTROLLER_KEYS = ("step", "drop", "factor", "gap", "smoothing", "min_keep_ratio",
                   "max_keep_ratio", "monitor", "keep_ratio")


def _flat_key(table, key):
    if table == "model":
        key = "width" if key == "channels" else key
        return key if key in MODEL_KEYS else None
    return key if key in CONTROLLER_KEYS else None


def _from_tables(data, path):
    """A preset's [model] / [controller] tables as config keys: ``name`` -> ``model`` /
    ``controller``, the rest -> ``model_args`` / ``controller_args``."""
    out = {k: v for k, v in data.items() if not isinstance(v, dict)}
    for name, value in data.items():
        if not isinstance(value, dict):
            continue
        if name not in TABLES:
            raise ConfigError(
                f"{path}: unknown table [{name}].{suggest(name, TABLES)} Allowed tables: "
                f"{', '.join(f'[{t}]' for t in TABLES)}. Received: [{name}]"
            )
        args = dict(value)
        if "name" in args:
            out[name] = args.pop("name")
        for key in args:
            flat = _flat_key(name, key)
            if flat is not None and flat in out:
                raise ConfigError(
                    f"{path}: {flat} is given twice, as a key and in [{name}]; give it once. "
                    f"Received: {flat}={out[flat]!r}, [{name}] {key}={args[key]!r}"
                )
        out[TABLES[name]] = args
    return out


def parse_assignment(text):
    """``"key=value"`` -> (key, value) with the value read as a TOML scalar (bare strings ok)."""
    if "=" not in text:
        raise ConfigError(f"expected key=value. Received: {text!r}")
    key, raw = (part.strip() for part in text.split("=", 1))
    return key, parse_scalar(raw)


def parse_scalar(raw):
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw  # a bare word: a string


def resolve(preset=None, overrides=None, *, check_unread=True, inherited=None):
    """Defaults <- preset file <- overrides (already validated dicts); checks cross-field rules.

    ``check_unread=False`` skips `_check_unread_keys`: for a run's saved config.json
    (resume: a run recorded before that check existed stays resumable) and a sweep's base
    (its cells, which may set their own controllers and models, are each checked).
    ``inherited``: the keys that come from a preset, not from the user's command line
    (default: the preset file's keys that ``overrides`` does not set; a sweep, which passes
    its preset's values as overrides, names them)."""
    config = default_config()
    preset_values = load_toml(preset) if preset is not None else {}
    config.update(preset_values)
    given = validate(overrides, source="command line") if overrides else {}
    if inherited is None:
        inherited = set(preset_values) - set(given)
    config.update(given)
    _apply_tables(config, given)
    _check_model_keys(config)
    if config["min_keep_ratio"] > config["max_keep_ratio"]:
        raise ConfigError(
            "min_keep_ratio must not exceed max_keep_ratio. Received: "
            f"min_keep_ratio={config['min_keep_ratio']}, max_keep_ratio={config['max_keep_ratio']}"
        )
    if check_unread:
        _check_unread_keys(config, inherited)
    if config["warmup_epochs"] and config["warmup_epochs"] >= config["epochs"]:
        raise ConfigError(
            "warmup_epochs must be below epochs (the warm-up is followed by the schedule). "
            f"Received: warmup_epochs={config['warmup_epochs']:g}, epochs={config['epochs']}"
        )
    if config["batch_size"] % config["devices"]:
        raise ConfigError(
            "batch_size must be a multiple of devices (each device takes an equal share). "
            f"Received: batch_size={config['batch_size']}, devices={config['devices']}"
        )
    return config


def _apply_tables(config, given):
    """Check the [model] / [controller] tables' keys against the builder's and the controller's
    arguments (kerasparse.presets); move the keys that are config keys of their own there
    (a value given on the command line, ``given``, wins over the table's)."""
    spec = presets.MODELS[config["model"]]
    _, controller_args = presets.CONTROLLERS[config["controller"]]
    owners = {
        "model": (spec.builder, f"model {config['model']!r}",
                  presets.BUILDERS[spec.builder].arguments),
        "controller": (presets.CONTROLLERS[config["controller"]][0] or "no controller",
                       f"controller {config['controller']!r}", controller_args),
    }
    for table, field in TABLES.items():
        args = dict(config[field] or {})
        owner, what, allowed = owners[table]
        for key in args:
            if key not in allowed:
                takes = (f"Allowed keys: name, {', '.join(allowed)}" if allowed
                         else "It takes no arguments (only name)")
                raise ConfigError(
                    f"[{table}]: {owner} ({what}) has no argument {key!r}."
                    f"{suggest(key, allowed)} {takes}. Received: {key}={args[key]!r}"
                )
        for key in list(args):
            flat = _flat_key(table, key)
            if flat is not None:
                value = args.pop(key)
                if flat not in given:
                    config[flat] = _coerce(flat, value, FIELDS[flat], f"[{table}] {key}")
        config[field] = args or None


# Keys read by one optimizer only (``weight_decay`` is read by both).
SGD_KEYS = ("momentum", "nesterov")
# Model keys that not every builder takes: the WRN's norm, and switching its top-k off (the
# others, depth, width and the activation, are taken by every builder or checked in
# _check_model_keys).
BUILDER_ONLY_KEYS = ("norm", "topk")


def _check_unread_keys(config, inherited=()):
    """Every key set away from its default must be one the run reads, or config.json would
    record a setting the run never had: the controller's keys (`_check_controller_keys`),
    SGD's ``momentum`` and ``nesterov`` under Adam, a WRN's ``norm`` and ``topk`` on the
    MLP and CNN. One exception: SGD's keys that come from a preset (``inherited``) while
    the command line chose another optimizer go back to their defaults (unread, as in every
    Adam run's config), so that ``--optimizer adam``, or a grid over optimizers, runs on a
    preset written for plain SGD (momentum 0)."""
    _check_controller_keys(config)
    if config["optimizer"] != "sgd":
        for key in SGD_KEYS:
            if key in inherited and "optimizer" not in inherited:
                config[key] = FIELDS[key].default
            if config[key] != FIELDS[key].default:
                raise ConfigError(
                    f"{key} is read by the sgd optimizer only (--optimizer sgd); optimizer "
                    f"{config['optimizer']!r} would ignore it. Received: {key}="
                    f"{_shown(config[key])}, optimizer={config['optimizer']!r}"
                )
    spec = presets.MODELS[config["model"]]
    for key in BUILDER_ONLY_KEYS:
        if (config[key] == FIELDS[key].default
                or key in presets.BUILDERS[spec.builder].arguments):
            continue
        takers = [name for name, s_ in presets.MODELS.items()
                  if key in presets.BUILDERS[s_.builder].arguments]
        raise ConfigError(
            f"{key} applies to the WRN models only ({', '.join(takers)}); model "
            f"{config['model']!r} ({spec.builder}) would ignore it. Received: {key}="
            f"{_shown(config[key])}"
        )


def _shown(value):
    """A config value as a user writes it: true/false for booleans, repr otherwise."""
    return str(value).lower() if isinstance(value, bool) else repr(value)


def _check_controller_keys(config):
    """A controller key set away from its default must be one the chosen controller reads:
    otherwise config.json would record a value the run never used (``keep_ratio=0.3`` with
    controller none trains at r = 1; ``step`` means nothing to mult)."""
    name = config["controller"]
    for key in CONTROLLER_KEYS:
        if key in presets.CONTROLLERS[name][1] or config[key] == FIELDS[key].default:
            continue
        readers = [c for c, (_, args) in presets.CONTROLLERS.items() if key in args]
        raise ConfigError(
            f"{key} is read by the {' and '.join(readers)} controller"
            f"{'s' if len(readers) > 1 else ''} only (--controller {'|'.join(readers)}); "
            f"controller {name!r} would ignore it. Received: {key}={config[key]!r}, "
            f"controller={name!r}"
        )


def _check_model_keys(config):
    """The keys that depend on the model: the activation it takes, and sparsity, q*, V'(q*)
    for the edge-of-chaos nets only."""
    spec = presets.MODELS[config["model"]]
    if config["activation"] is not None:
        allowed = presets.builder_activations(spec.builder)
        if presets.canonical_activation(config["activation"]) not in allowed:
            raise ConfigError(
                f"model {config['model']!r} ({spec.builder}) takes activation "
                f"{', '.join(allowed)}.{suggest(config['activation'], allowed)} "
                f"Received: activation={config['activation']!r}"
            )
    if not spec.takes_q_star:  # sparsity, q*, V'(q*) define an edge-of-chaos net only
        eoc = [name for name, spec_ in presets.MODELS.items() if spec_.takes_q_star]
        for key in ("sparsity", "q_star", "v_prime"):
            if config[key] is not None:
                raise ConfigError(
                    f"{key} applies to the edge-of-chaos models only ({', '.join(eoc)}): "
                    f"their activation and initialisation are solved for (sparsity, v_prime, "
                    f"q_star); {config['model']!r} would ignore it (and q_star would rescale "
                    f"its data). Received: {key}={config[key]!r}")

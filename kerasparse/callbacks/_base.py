"""Machinery shared by the keep-ratio controllers (private).

A controller holds a small JSON-serialisable state::

    keep_ratio  the r it applies at the start of epoch ``epoch`` (the next epoch to run)
    e_prev      the smoothed monitored value after the last epoch (None before the first)
    best        the best smoothed value so far (None before the first epoch)
    resets      how many times r was reset to max_keep_ratio
    epoch       how many epochs have completed

It writes r into every controlled layer's ``keep_ratio`` variable at the *start* of each epoch
(``on_epoch_begin``), never at the end: during ``on_epoch_end`` of every callback the layers
still hold the r that was used for the epoch just ended, whatever the callbacks' order, so a
checkpoint written then (BackupAndRestore, ModelCheckpoint) and SparsityMonitor's measurement
agree with the ``keep_ratio`` logged for that epoch.
"""

import json
import math
import numbers
import os

import keras

from kerasparse.layers import GlobalTopK
from kerasparse.validation import check_number

STATE_KEYS = ("keep_ratio", "e_prev", "best", "resets", "epoch")


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
    if not isinstance(model, keras.layers.Layer):
        raise ValueError(
            f"find_topk_layers: model must be a keras Model or Layer. Received: model={model!r}"
        )
    names = check_layer_names("find_topk_layers", names)
    # Keras 3 has no public recursive layer walk (`Model.layers` is top-level only and custom
    # layers expose their sublayers only through tracking), so use the tracker's own walk.
    found = [
        layer
        for layer in model._flatten_layers(include_self=True, recursive=True)
        if isinstance(layer, GlobalTopK)
    ]
    if not found:
        raise ValueError(
            "find_topk_layers: the model has no GlobalTopK or SparseActivation layer to "
            f"control or measure. Received: model={model.name!r}"
        )
    if names is None:
        return found
    by_name = {}
    for layer in found:
        by_name.setdefault(layer.name, layer)
    missing = [n for n in names if n not in by_name]
    if missing:
        raise ValueError(
            f"find_topk_layers: no GlobalTopK layer named {', '.join(map(repr, missing))}; "
            f"available: {', '.join(map(repr, by_name))}. Received: names={list(names)!r}"
        )
    return [by_name[n] for n in names]


def check_layer_names(owner, names, arg="names"):
    """None, or a non-empty tuple of layer names (a single string is one name)."""
    if names is None:
        return None
    if isinstance(names, str):
        names = [names]
    ok = isinstance(names, (list, tuple)) and len(names) > 0
    ok = ok and all(isinstance(n, str) and n for n in names)
    if not ok:
        raise ValueError(
            f"{owner}: {arg} must be None or a non-empty list of layer names. "
            f"Received: {arg}={names!r}"
        )
    return tuple(names)


def check_monitor(owner, monitor):
    if not isinstance(monitor, str) or not monitor:
        raise ValueError(
            f"{owner}: monitor must be the name of a logged metric, e.g. 'accuracy'. "
            f"Received: monitor={monitor!r}"
        )
    return monitor


def check_backup_dir(owner, backup_dir):
    if backup_dir is None:
        return None
    if not isinstance(backup_dir, (str, os.PathLike)) or not os.fspath(backup_dir):
        raise ValueError(
            f"{owner}: backup_dir must be None or a directory path. "
            f"Received: backup_dir={backup_dir!r}"
        )
    return os.fspath(backup_dir)


def check_ratio_range(owner, min_keep_ratio, max_keep_ratio):
    lo = check_number(owner, "min_keep_ratio", min_keep_ratio, low=0.0, high=1.0)
    hi = check_number(owner, "max_keep_ratio", max_keep_ratio, low=0.0, high=1.0, low_open=True)
    if lo > hi:
        raise ValueError(
            f"{owner}: min_keep_ratio must not exceed max_keep_ratio. "
            f"Received: min_keep_ratio={min_keep_ratio!r}, max_keep_ratio={max_keep_ratio!r}"
        )
    return lo, hi


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


class KeepRatioController(keras.callbacks.Callback):
    """Base class: drives the ``keep_ratio`` variable of GlobalTopK layers epoch by epoch.

    Subclasses implement ``_next_state(state, logs)`` (the update at an epoch's end) and may
    override ``_keep_ratio_for_epoch(epoch)``. The base handles layers, logs, get_state /
    set_state and resuming (see ``on_epoch_begin``).
    """

    def __init__(self, *, max_keep_ratio=1.0, layers=None, backup_dir=None):
        super().__init__()
        owner = type(self).__name__
        self.max_keep_ratio = float(max_keep_ratio)
        self.layer_names = check_layer_names(owner, layers, arg="layers")
        self.backup_dir = check_backup_dir(owner, backup_dir)
        self.topk_layers = []
        self._state = self._initial_state()
        self._epoch_in_progress = None  # (epoch, r) applied by on_epoch_begin
        self._backup_states = None  # {completed epochs: state} mirrored to the backup file

    # ----- state -------------------------------------------------------------------------
    def _initial_state(self):
        return {
            "keep_ratio": self.max_keep_ratio,
            "e_prev": None,
            "best": None,
            "resets": 0,
            "epoch": 0,
        }

    @property
    def keep_ratio(self):
        """The keep ratio r the controller applies at the start of the next epoch."""
        return self._state["keep_ratio"]

    @property
    def resets(self):
        """How many times r has been reset to ``max_keep_ratio`` so far."""
        return self._state["resets"]

    @property
    def epoch(self):
        """How many epochs have completed (the index of the next epoch)."""
        return self._state["epoch"]

    def get_state(self):
        """The controller's state as a JSON-serialisable dict (a copy).

        Keys: ``keep_ratio`` (r for the next epoch), ``e_prev`` (smoothed monitored value
        after the last epoch, or None), ``best`` (best smoothed value, or None), ``resets``
        (int), ``epoch`` (completed epochs). Pass it to :meth:`set_state` to resume exactly.
        """
        return dict(self._state)

    def set_state(self, state):
        """Restore a state from :meth:`get_state` (missing keys take their initial values).

        The state takes effect at the next ``on_epoch_begin``; a ``fit`` that starts at epoch
        ``state["epoch"]`` (``initial_epoch``, or BackupAndRestore) continues from it.
        """
        owner = type(self).__name__
        if not isinstance(state, dict):
            raise ValueError(f"{owner}: state must be a dict. Received: state={state!r}")
        unknown = sorted(set(state) - set(STATE_KEYS))
        if unknown:
            raise ValueError(
                f"{owner}: unknown state keys {unknown}; allowed: {list(STATE_KEYS)}. "
                f"Received: state={state!r}"
            )
        merged = self._initial_state()
        merged.update(state)
        r = merged["keep_ratio"]
        if not _is_real(r) or not 0.0 <= r <= 1.0:
            raise ValueError(
                f"{owner}: state keep_ratio must be a number in [0, 1]. Received: keep_ratio={r!r}"
            )
        for key in ("e_prev", "best"):
            v = merged[key]
            if v is not None and not (_is_real(v) and math.isfinite(v)):
                raise ValueError(
                    f"{owner}: state {key} must be None or a finite number. Received: {key}={v!r}"
                )
        for key in ("resets", "epoch"):
            v = merged[key]
            if not isinstance(v, numbers.Integral) or isinstance(v, bool) or v < 0:
                raise ValueError(
                    f"{owner}: state {key} must be an integer >= 0. Received: {key}={v!r}"
                )
        merged["keep_ratio"] = float(r)
        merged["resets"], merged["epoch"] = int(merged["resets"]), int(merged["epoch"])
        for key in ("e_prev", "best"):
            if merged[key] is not None:
                merged[key] = float(merged[key])
        self._state = merged
        self._epoch_in_progress = None

    def _config(self):
        """Hyper-parameters recorded in the backup file (a resume must use the same ones)."""
        return {"max_keep_ratio": self.max_keep_ratio, "layers": self.layer_names}

    # ----- subclass hooks ----------------------------------------------------------------
    def _keep_ratio_for_epoch(self, epoch):
        return self._state["keep_ratio"]

    def _next_state(self, state, logs):
        """Return (new state, reset flag) from the state after an epoch and its logs."""
        raise NotImplementedError

    # ----- layers ------------------------------------------------------------------------
    def _find_layers(self):
        # Through `self.model` every time: on JAX this property syncs the training state.
        self.topk_layers = find_topk_layers(self.model, self.layer_names)

    def _apply(self, keep_ratio):
        model = self.model  # on JAX, syncs the model's variables before we assign
        if not self.topk_layers:
            self.topk_layers = find_topk_layers(model, self.layer_names)
        for layer in self.topk_layers:
            layer.keep_ratio.assign(keep_ratio)

    # ----- backup file -------------------------------------------------------------------
    @property
    def backup_path(self):
        """``<backup_dir>/<snake_case class name>_state.json`` (None without backup_dir)."""
        if self.backup_dir is None:
            return None
        name = "".join("_" + c.lower() if c.isupper() else c for c in type(self).__name__)
        return os.path.join(self.backup_dir, name.lstrip("_") + "_state.json")

    def _read_backup(self):
        path = self.backup_path
        if path is None or not os.path.exists(path):
            return {}
        with open(path) as f:
            saved = json.load(f)
        config = json.loads(json.dumps(self._config()))  # tuples -> lists, as saved
        if saved.get("config") != config:
            raise ValueError(
                f"{type(self).__name__}: the backup {path} was written by a controller with "
                f"other settings; resume with the same settings or delete the file. "
                f"Received: saved={saved.get('config')}, current={config}"
            )
        return {int(k): v for k, v in saved["states"].items()}

    def _write_backup(self):
        path = self.backup_path
        if path is None:
            return
        os.makedirs(self.backup_dir, exist_ok=True)
        payload = {
            "class": type(self).__name__,
            "config": self._config(),
            "states": {str(k): v for k, v in sorted(self._backup_states.items())},
        }
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(payload, f, indent=1)
        os.replace(tmp, path)  # atomic: an interruption never leaves a half-written file

    # ----- resume ------------------------------------------------------------------------
    def _resolve_start(self, epoch):
        """Pick the state to start epoch ``epoch`` from (the first epoch of a fit)."""
        if self._state["epoch"] == epoch:
            # A fresh controller at epoch 0, a continued fit, or a set_state() state.
            if self._backup_states is None:
                self._backup_states = {
                    k: v for k, v in self._read_backup().items() if k < epoch
                } if epoch else {}
            return
        if epoch == 0:
            self._state = self._initial_state()
            self._backup_states = {}
            return
        saved = self._read_backup()
        if epoch in saved:
            self.set_state(saved[epoch])
            self._backup_states = {k: v for k, v in saved.items() if k < epoch}
            return
        where = f" or in {self.backup_path}" if self.backup_dir else ""
        raise ValueError(
            f"{type(self).__name__}: fit starts at epoch {epoch} but the controller's state is "
            f"for epoch {self._state['epoch']} and no saved state for epoch {epoch} was found"
            f"{where}. To resume, pass backup_dir= (next to keras.callbacks.BackupAndRestore) "
            f"or call set_state() with the state saved after epoch {epoch}; to start afresh at "
            f"this epoch, call set_state({{'epoch': {epoch}}})."
        )

    # ----- callback hooks ----------------------------------------------------------------
    def on_train_begin(self, logs=None):
        self._find_layers()  # a clear error now if the model has no GlobalTopK layer
        self._epoch_in_progress = None
        self._backup_states = None

    def on_epoch_begin(self, epoch, logs=None):
        if self._state["epoch"] != epoch or self._backup_states is None:
            self._resolve_start(epoch)
        keep_ratio = self._keep_ratio_for_epoch(epoch)
        self._apply(keep_ratio)
        self._epoch_in_progress = (epoch, keep_ratio)

    def on_epoch_end(self, epoch, logs=None):
        if self._epoch_in_progress is None or self._epoch_in_progress[0] != epoch:
            self.on_epoch_begin(epoch)  # driven by hand without on_epoch_begin
        used = self._epoch_in_progress[1]
        state, reset = self._next_state(dict(self._state), logs if logs is not None else {})
        state["epoch"] = epoch + 1
        self._state = state
        self._epoch_in_progress = None
        if logs is not None:
            logs["keep_ratio"] = float(used)
            logs["keep_ratio_reset"] = int(reset)
        self._backup_states[epoch + 1] = dict(state)
        self._write_backup()


class SmoothedController(KeepRatioController):
    """Base of the feedback controllers: smooth the monitored metric, reset r on a drop."""

    def __init__(
        self,
        *,
        smoothing,
        monitor,
        min_keep_ratio,
        max_keep_ratio,
        layers,
        backup_dir,
    ):
        owner = type(self).__name__
        self.smoothing = check_number(owner, "smoothing", smoothing, low=0.0, high=1.0,
                                      high_open=True)
        self.monitor = check_monitor(owner, monitor)
        self.min_keep_ratio, max_keep_ratio = check_ratio_range(
            owner, min_keep_ratio, max_keep_ratio
        )
        super().__init__(max_keep_ratio=max_keep_ratio, layers=layers, backup_dir=backup_dir)

    def _config(self):
        config = super()._config()
        config.update(
            smoothing=self.smoothing, monitor=self.monitor, min_keep_ratio=self.min_keep_ratio
        )
        return config

    def _read_monitor(self, logs):
        owner = type(self).__name__
        if self.monitor not in logs:
            raise ValueError(
                f"{owner}: monitor {self.monitor!r} is not in the epoch's logs; available: "
                f"{', '.join(map(repr, logs)) or 'none'} (compile the model with "
                f"metrics=['accuracy'] or pass monitor=). Received: monitor={self.monitor!r}"
            )
        value = float(logs[self.monitor])
        if not math.isfinite(value):
            raise ValueError(
                f"{owner}: the monitored value must be finite. "
                f"Received: {self.monitor}={value!r}"
            )
        return value

    def _is_drop(self, e_prev, e, best):
        raise NotImplementedError

    def _compress(self, keep_ratio):
        raise NotImplementedError

    def _next_state(self, state, logs):
        a = self._read_monitor(logs)
        e_prev = state["e_prev"]
        e = a if e_prev is None else self.smoothing * e_prev + (1.0 - self.smoothing) * a
        best = e if state["best"] is None else max(state["best"], e)
        reset = self._is_drop(e_prev, e, best)
        if reset:
            state["keep_ratio"] = self.max_keep_ratio
            state["resets"] += 1
        else:
            state["keep_ratio"] = max(self._compress(state["keep_ratio"]), self.min_keep_ratio)
        state["e_prev"], state["best"] = e, best
        return state, reset

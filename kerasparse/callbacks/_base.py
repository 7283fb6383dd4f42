"""The keep-ratio controller base classes (private), in the shape of Keras' ReduceLROnPlateau.

- ``__init__`` validates every argument (one-line ``ValueError``) and sets the state;
- ``on_train_begin`` finds the controlled layers (a clear error for a model without any) and
  arms the per-fit start: the first ``on_epoch_begin`` of the fit picks the state to run from
  (:func:`kerasparse.callbacks._backup.start_state`: continue, start afresh at epoch 0, or
  load the backup file);
- the state is one immutable :class:`KeepRatioState` in ``self._state``, replaced at each
  epoch's end by ``_next_state`` (the subclass's rule);
- ``on_epoch_begin`` writes r into every controlled layer's ``keep_ratio`` variable, at the
  *start* of the epoch, never at the end: during ``on_epoch_end`` of every callback the layers
  still hold the r that was used for the epoch just ended, whatever the callbacks' order, so a
  checkpoint written then (BackupAndRestore, ModelCheckpoint) and SparsityMonitor's
  measurement agree with the ``keep_ratio`` logged for that epoch;
- ``on_epoch_end`` logs ``keep_ratio`` and ``keep_ratio_reset`` and records the state in the
  backup file (:mod:`kerasparse.callbacks._backup`) if there is one.
"""

import math

import keras

from kerasparse.callbacks._backup import StateBackup, start_state
from kerasparse.callbacks._sites import find_topk_layers
from kerasparse.callbacks._state import KeepRatioState
from kerasparse.validation import check_name, check_names, check_number, check_path


def check_ratio_range(owner, min_keep_ratio, max_keep_ratio):
    lo = check_number(owner, "min_keep_ratio", min_keep_ratio, low=0.0, high=1.0)
    hi = check_number(owner, "max_keep_ratio", max_keep_ratio, low=0.0, high=1.0, low_open=True)
    if lo > hi:
        raise ValueError(
            f"{owner}: min_keep_ratio must not exceed max_keep_ratio. "
            f"Received: min_keep_ratio={min_keep_ratio!r}, max_keep_ratio={max_keep_ratio!r}"
        )
    return lo, hi


class KeepRatioController(keras.callbacks.Callback):
    """Base class: drives the ``keep_ratio`` variable of GlobalTopK layers epoch by epoch.

    Subclasses validate their arguments in ``__init__`` (before calling this one, which
    takes an already checked ``max_keep_ratio``), implement ``_next_state(state, logs)`` ->
    ``(state, reset)`` and may override ``_keep_ratio_for_epoch(epoch, state)`` and
    ``_settings()`` (what a backup file must agree on).
    """

    def __init__(self, *, max_keep_ratio=1.0, layers=None, backup_dir=None):
        super().__init__()
        owner = type(self).__name__
        self.max_keep_ratio = float(max_keep_ratio)
        self.layer_names = check_names(owner, "layers", layers)
        self.backup_dir = check_path(owner, "backup_dir", backup_dir)
        self._backup = (
            None if self.backup_dir is None else StateBackup(self.backup_dir, owner, self._settings())
        )
        self.topk_layers = []
        self._state = self._initial_state()
        self._starting = True  # the next on_epoch_begin is the first of a fit

    # ----- state -------------------------------------------------------------------------
    def _initial_state(self):
        return KeepRatioState(keep_ratio=self.max_keep_ratio)

    @property
    def keep_ratio(self):
        """The keep ratio r the controller applies at the start of the next epoch."""
        return self._state.keep_ratio

    @property
    def resets(self):
        """How many times r has been reset to ``max_keep_ratio`` so far."""
        return self._state.resets

    @property
    def epoch(self):
        """How many epochs have completed (the index of the next epoch)."""
        return self._state.epoch

    @property
    def backup_path(self):
        """``<backup_dir>/<snake_case class name>_state.json`` (None without backup_dir)."""
        return None if self._backup is None else self._backup.path

    def get_state(self):
        """The controller's state as a JSON-serialisable dict (a copy).

        Keys: ``keep_ratio`` (r for the next epoch), ``e_prev`` (smoothed monitored value
        after the last epoch, or None), ``best`` (best smoothed value, or None), ``resets``
        (int), ``epoch`` (completed epochs). Pass it to :meth:`set_state` to resume exactly.
        """
        return self._state.to_dict()

    def set_state(self, state):
        """Restore a state from :meth:`get_state` (missing keys take their initial values).

        The state takes effect at the next ``on_epoch_begin``; a ``fit`` that starts at epoch
        ``state["epoch"]`` (``initial_epoch``, or BackupAndRestore) continues from it.
        """
        self._state = KeepRatioState.from_dict(type(self).__name__, state, self._initial_state())
        self._starting = True

    def _settings(self):
        """Hyper-parameters recorded in the backup file (a resume must use the same ones)."""
        return {"max_keep_ratio": self.max_keep_ratio, "layers": self.layer_names}

    # ----- subclass hooks ----------------------------------------------------------------
    def _keep_ratio_for_epoch(self, epoch, state):
        return state.keep_ratio

    def _next_state(self, state, logs):
        """Return (new state, reset flag) from the state after an epoch and its logs."""
        raise NotImplementedError

    # ----- layers ------------------------------------------------------------------------
    def _apply(self, keep_ratio):
        model = self.model  # through self.model every time: on JAX this syncs the state
        if not self.topk_layers:
            self.topk_layers = find_topk_layers(model, self.layer_names)
        for layer in self.topk_layers:
            layer.keep_ratio.assign(keep_ratio)

    # ----- callback hooks ----------------------------------------------------------------
    def on_train_begin(self, logs=None):
        self.topk_layers = find_topk_layers(self.model, self.layer_names)  # errors now
        self._starting = True

    def on_epoch_begin(self, epoch, logs=None):
        if self._starting:
            owner = type(self).__name__
            self._state = start_state(
                owner, self._state, epoch, self._initial_state(), self._backup
            )
            if self._backup is not None:
                self._backup.begin(epoch, self._state)
            self._starting = False
        keep_ratio = self._keep_ratio_for_epoch(epoch, self._state)
        self._state = self._state.replace(keep_ratio=keep_ratio)
        self._apply(keep_ratio)

    def on_epoch_end(self, epoch, logs=None):
        if self._starting:  # driven by hand without on_epoch_begin
            self.on_epoch_begin(epoch)
        used = self._state.keep_ratio
        state, reset = self._next_state(self._state, logs if logs is not None else {})
        self._state = state.replace(epoch=epoch + 1)
        if logs is not None:
            logs["keep_ratio"] = float(used)
            logs["keep_ratio_reset"] = int(reset)
        if self._backup is not None:
            self._backup.record(self._state)


class SmoothedController(KeepRatioController):
    """Base of the feedback controllers: smooth the monitored metric, reset r on a drop."""

    def __init__(self, *, smoothing, monitor, min_keep_ratio, max_keep_ratio, layers, backup_dir):
        owner = type(self).__name__
        self.smoothing = check_number(owner, "smoothing", smoothing, low=0.0, high=1.0,
                                      high_open=True)
        self.monitor = check_name(owner, "monitor", monitor,
                                  "the name of a logged metric, e.g. 'accuracy'")
        self.min_keep_ratio, max_keep_ratio = check_ratio_range(
            owner, min_keep_ratio, max_keep_ratio
        )
        super().__init__(max_keep_ratio=max_keep_ratio, layers=layers, backup_dir=backup_dir)

    def _settings(self):
        settings = super()._settings()
        settings.update(
            smoothing=self.smoothing, monitor=self.monitor, min_keep_ratio=self.min_keep_ratio
        )
        return settings

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
        e_prev = state.e_prev
        e = a if e_prev is None else self.smoothing * e_prev + (1.0 - self.smoothing) * a
        best = e if state.best is None else max(state.best, e)
        reset = self._is_drop(e_prev, e, best)
        if reset:
            keep_ratio, resets = self.max_keep_ratio, state.resets + 1
        else:
            keep_ratio = max(self._compress(state.keep_ratio), self.min_keep_ratio)
            resets = state.resets
        return state.replace(keep_ratio=keep_ratio, e_prev=e, best=best, resets=resets), reset

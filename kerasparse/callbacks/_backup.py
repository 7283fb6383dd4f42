"""A controller's backup file and the choice of the state a ``fit`` starts from.

Keras' ``BackupAndRestore`` restores the weights and the epoch, not the Python state inside
callbacks. A controller given the same ``backup_dir`` writes, after every epoch,
``<backup_dir>/<snake_case class name>_state.json``::

    {"class": "MultiplicativeKeepRatio",
     "config": {... the controller's settings ...},
     "states": {"1": {state after 1 epoch}, "2": {...}, ...}}

so a re-run ``fit`` that BackupAndRestore restarts at epoch n (or a ``fit(initial_epoch=n)``
from an older checkpoint) finds the state saved after n epochs. The file is rewritten with
kerasparse's one atomic-write helper: an interrupted write leaves the previous file whole.
"""

import json
import os

from kerasparse import _io
from kerasparse.callbacks._state import KeepRatioState


def _snake_case(name):
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


class StateBackup:
    """The backup file of one controller (``owner``: its class name; ``config``: the settings
    a resumed controller must share, as a JSON-able dict)."""

    def __init__(self, directory, owner, config):
        self.directory = directory
        self.owner = owner
        self.config = json.loads(json.dumps(config))  # tuples -> lists, as saved
        self.path = os.path.join(directory, f"{_snake_case(owner)}_state.json")
        self._states = {}  # {completed epochs: state dict}, mirrored to the file

    def read(self):
        """The saved states ``{completed epochs: KeepRatioState dict}`` ({} without a file)."""
        if not os.path.exists(self.path):
            return {}
        try:
            saved = _io.read_json(self.path)
            states = {int(k): v for k, v in saved["states"].items()}
            config = saved.get("config")
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(
                f"{self.owner}: the backup {self.path} is not a readable controller state file "
                f"({type(exc).__name__}: {exc}); delete it to start afresh. "
                f"Received: backup_dir={self.directory!r}"
            ) from None
        if config != self.config:
            raise ValueError(
                f"{self.owner}: the backup {self.path} was written by a controller with "
                f"other settings; resume with the same settings or delete the file. "
                f"Received: saved={config}, current={self.config}"
            )
        return states

    def begin(self, epoch, state):
        """A fit starts at ``epoch`` from ``state``: keep the saved states of the epochs before
        (a fresh run, at epoch 0, replaces the file)."""
        before = {k: v for k, v in self.read().items() if k < epoch} if epoch else {}
        self._states = {**before, epoch: state.to_dict()} if epoch else before

    def record(self, state):
        """Save ``state`` (after ``state.epoch`` completed epochs) and rewrite the file."""
        self._states[state.epoch] = state.to_dict()
        os.makedirs(self.directory, exist_ok=True)
        _io.atomic_write_json(
            self.path,
            {
                "class": self.owner,
                "config": self.config,
                "states": {str(k): v for k, v in sorted(self._states.items())},
            },
            indent=1,
        )


def start_state(owner, state, epoch, initial, backup=None):
    """The state the first epoch of a ``fit``, ``epoch``, runs from:

    1. ``state``, if it is for ``epoch`` (a fresh controller at epoch 0, a continued fit, a
       ``set_state()``);
    2. at epoch 0 otherwise, ``initial`` (a new fit from epoch 0 starts afresh);
    3. the state saved in ``backup`` after ``epoch`` epochs;
    4. otherwise a ``ValueError`` saying how to resume.
    """
    if state.epoch == epoch:
        return state
    if epoch == 0:
        return initial
    saved = backup.read().get(epoch) if backup is not None else None
    if saved is not None:
        return KeepRatioState.from_dict(owner, saved, initial)
    where = f" or in {backup.path}" if backup is not None else ""
    raise ValueError(
        f"{owner}: fit starts at epoch {epoch} but the controller's state is for epoch "
        f"{state.epoch} and no saved state for epoch {epoch} was found{where}. To resume, "
        f"pass backup_dir= (next to keras.callbacks.BackupAndRestore) or call set_state() "
        f"with the state saved after epoch {epoch}; to start afresh at this epoch, call "
        f"set_state({{'epoch': {epoch}}})."
    )

"""What a run directory records, in one object: the history rows, the checkpoints, the best
weights and summary.json (the files are described in :mod:`kerasparse.train`).

:class:`RunRecord` is the run's state that outlives an epoch: ``history`` (one row per
finished epoch), the newest checkpoint, the wall time of earlier (resumed) segments. Its
inputs are constructor arguments; what changes during training goes through
:meth:`RunRecord.add_epoch` (called by the runner's Recorder callback) and
:meth:`RunRecord.load_checkpoint` (on resume). ``kerasparse train`` and the cells of a packed
run (:mod:`kerasparse.packed`) write their files through it.
"""

import datetime
import math
import os
import platform
import random
import subprocess
import sys
import time

import numpy as np

import kerasparse
from kerasparse import checkpoint, interrupts, rundir

CHECKPOINTS = checkpoint.CHECKPOINTS


class CheckpointWriteError(Exception):
    """A checkpoint (or history.csv) could not be written (a full disk, an I/O error); the
    previous checkpoint is intact. A fault, not a usage error (exit code 1)."""


class RunRecord:
    """The record of the run in ``out``.

    Args:
        out: the run directory.
        config: the resolved config (``epochs``, ``checkpoint_every``, ``keep_checkpoints``,
            ``monitor_batch``, ``seed`` are read; all of it goes to summary.json).
        backend: the Keras backend's name (summary.json).
        steps: steps per epoch.
        controller: the keep-ratio controller whose state the checkpoints carry, or None.
        best_monitor: the history key ``best.weights.h5`` is chosen by (``val_accuracy``
            with a validation split, else ``test_accuracy``); None: no best weights.
        data_record: summary.json's ``data`` (the split the numbers come from).
        device_names: the data-parallel devices (``--devices N``), else None.
        device_kind: ``"cpu"`` or ``"gpu: <name>"`` (:mod:`kerasparse.devices`).
        step_options: how the step ran (resolved data format, jit, ...).
    """

    def __init__(self, out, config, backend, *, steps=None, controller=None, best_monitor=None,
                 data_record=None, device_names=None, device_kind=None, step_options=None,
                 started=None):
        self.out = out
        self.config = config
        self.backend = backend
        self.steps = steps
        self.controller = controller
        self.best_monitor = best_monitor
        self.data_record = data_record
        self.device_names = device_names
        self.device_kind = device_kind
        self.step_options = step_options
        self.started = time.time() if started is None else started
        self.history = []
        self.wall_before = 0.0  # wall time of earlier (resumed) segments
        self.last_checkpoint = None  # epoch of the newest valid checkpoint, if any
        self.last_checkpoint_file = None
        self.diverged = None  # {"epoch", "step", "loss"} once the loss was not finite

    def is_best(self, row):
        """True if ``row`` (the newest history row) beats every earlier row on
        ``best_monitor`` (the first epoch wins a tie)."""
        key = self.best_monitor
        value = row.get(key) if key else None
        if not isinstance(value, float) or not math.isfinite(value):
            return False
        earlier = [r.get(key) for r in self.history if r is not row]
        return all(not isinstance(v, float) or v < value for v in earlier)

    def best(self):
        """{"file", "epoch", "monitor", "value"} of best.weights.h5, or None."""
        key, best = self.best_monitor, None
        for row in self.history:
            value = row.get(key) if key else None
            if isinstance(value, float) and math.isfinite(value) and (
                    best is None or value > best["value"]):
                best = {"file": checkpoint.BEST, "epoch": row["epoch"], "monitor": key,
                        "value": value}
        return best

    def recorded(self, epoch):
        """The history row of ``epoch`` (1-based) if it is the newest recorded, else None."""
        if self.history and self.history[-1]["epoch"] == epoch:
            return self.history[-1]
        return None

    # -- files
    def path(self, *parts):
        return os.path.join(self.out, *parts)

    def add_epoch(self, model, row):
        """Record a finished epoch: append ``row`` (its ``epoch`` 1-based) to the history,
        then write best.weights.h5 (if it is the best), the checkpoint (when due: every
        ``checkpoint_every`` epochs, the last epoch, or after a stop signal) and history.csv.

        In that order: a failed checkpoint write leaves history.csv at the previous
        checkpoint, never a row ahead of it, and a resume replays (and so rewrites) any
        best.weights.h5 written after it. A write that fails removes the row again and raises
        :class:`CheckpointWriteError` (one line: what, where, the intact checkpoint)."""
        epoch = row["epoch"]
        self.history.append(row)
        due = (epoch % self.config["checkpoint_every"] == 0
               or epoch == self.config["epochs"] or interrupts.STOP.signum is not None)
        what = "best checkpoint"
        try:
            if self.is_best(row):
                checkpoint.write_weights(model, self.path(checkpoint.BEST),
                                         include_optimizer=False)
            what = "checkpoint"
            if due:
                self.save_checkpoint(model, epoch)
            what = "history.csv"
            self.write_history()
        except OSError as exc:
            self.history.pop()
            kept = self.last_checkpoint
            where = ("no earlier checkpoint exists" if kept is None else
                     f"the checkpoint of epoch {kept} is intact")
            raise CheckpointWriteError(
                f"cannot write the {what}"
                f" of epoch {epoch} in {self.out} ({exc.strerror or exc}); {where}; "
                f"free some space and resume with: kerasparse train --resume {self.out}"
            ) from None

    def write_history(self):
        from kerasparse import history as ks_history

        rundir.atomic_write_text(self.path("history.csv"), ks_history.csv_text(self.history))

    def save_checkpoint(self, model, epoch):
        """Weights (Keras' .weights.h5, model and optimizer) and state (json, with the
        variables' manifest), then flip latest.json atomically, then prune old epochs."""
        folder = self.path(CHECKPOINTS)
        os.makedirs(folder, exist_ok=True)
        name = checkpoint.weights_name(epoch)
        checkpoint.write_weights(model, os.path.join(folder, name),
                                 fault=lambda: interrupts.maybe_fault("diskfull", epoch))
        interrupts.maybe_fault("checkpoint", epoch)
        state = {
            "epoch": epoch,
            "controller": None if self.controller is None else self.controller.get_state(),
            "history": self.history,
            "wall_time_s": self.wall_before + (time.time() - self.started),
            "python_random": jsonable(random.getstate()),
            "numpy_random": jsonable(np.random.get_state()),
            "variables": checkpoint.manifest(model),
        }
        state_name = checkpoint.stem(epoch) + ".json"
        rundir.atomic_write_json(os.path.join(folder, state_name), state)
        rundir.atomic_write_json(os.path.join(folder, "latest.json"),
                                 {"epoch": epoch, "weights": name, "state": state_name})
        self.last_checkpoint = epoch
        self.last_checkpoint_file = os.path.join(folder, name)
        checkpoint.prune(folder, epoch, self.config["keep_checkpoints"])

    def load_checkpoint(self, model):
        """Restore from latest.json; returns the number of finished epochs (0 if none).

        Everything is read and checked (pointer, weights file, the variables by key, state)
        before the first variable is assigned; a damaged or mismatched file raises
        RunDirError naming it (and, for a mismatch, the first variable that differs).
        """
        latest = self.path(CHECKPOINTS, "latest.json")
        if not os.path.exists(latest):
            return 0
        pointer = rundir.read_json_object(latest)
        epoch, weights, state_name = (pointer.get(k) for k in ("epoch", "weights", "state"))
        if not (isinstance(epoch, int) and not isinstance(epoch, bool)
                and 1 <= epoch <= self.config["epochs"]):
            raise rundir.RunDirError(
                f"{latest} is damaged: 'epoch' must be an integer in [1, "
                f"{self.config['epochs']}]. Received: epoch={epoch!r}")
        for key, name in (("weights", weights), ("state", state_name)):
            if not isinstance(name, str) or not name or os.path.basename(name) != name:
                raise rundir.RunDirError(
                    f"{latest} is damaged: {key!r} must name a file in {CHECKPOINTS}/. "
                    f"Received: {key}={name!r}")
        weights_path = self.path(CHECKPOINTS, weights)
        legacy = weights.endswith(checkpoint.LEGACY_SUFFIX)
        if not (legacy or weights.endswith(checkpoint.WEIGHTS_SUFFIX)):
            raise rundir.RunDirError(
                f"{latest} is damaged: 'weights' must name a {checkpoint.WEIGHTS_SUFFIX} "
                f"(or older {checkpoint.LEGACY_SUFFIX}) file. Received: weights={weights!r}")
        if not os.path.isfile(weights_path):
            raise rundir.RunDirError(f"{weights_path} is missing ({latest} points to it)")
        if legacy:
            arrays = checkpoint.read_legacy(weights_path)
            checkpoint.check_legacy(arrays, model, weights_path)
        else:
            stored = checkpoint.check_weights_file(weights_path)  # its number of arrays
        state_path = self.path(CHECKPOINTS, state_name)
        state = rundir.read_json_object(state_path)
        try:
            if not legacy:
                checkpoint.check_manifest(state["variables"], model, weights_path)
                if stored != len(state["variables"]):
                    raise rundir.RunDirError(
                        f"checkpoint {weights_path} is damaged (it holds {stored} arrays, "
                        f"{state_path} lists {len(state['variables'])} variables)")
            history = state["history"]
            if not (isinstance(history, list) and len(history) == epoch
                    and all(isinstance(row, dict) for row in history)):
                raise ValueError(f"'history' must be a list of {epoch} epoch rows")
            wall_before = float(state.get("wall_time_s", 0.0))
            python_random = _python_rng(state["python_random"])
            numpy_random = tuple(state["numpy_random"])
            random.Random().setstate(python_random)
            np.random.RandomState().set_state(numpy_random)
            if self.controller is not None and state.get("controller") is not None:
                self.controller.set_state(state["controller"])
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            detail = f"no {exc} entry" if isinstance(exc, KeyError) else str(exc)
            raise rundir.RunDirError(f"{state_path} is damaged ({detail})") from None
        if legacy:
            # Written by kerasparse before checkpoints were keyed by variable path, or by a
            # train-pack member: the arrays are in variable order (count and shapes checked).
            print(f"note: {weights_path} is an older index-ordered checkpoint; its variables "
                  "are matched by position (the next checkpoint is a .weights.h5)")
            for v, a in zip(checkpoint.all_variables(model), arrays):
                v.assign(a)
        else:
            checkpoint.load_weights(model, weights_path)
        self.history = history
        self.wall_before = wall_before
        random.setstate(python_random)
        np.random.set_state(numpy_random)
        self.last_checkpoint = epoch
        self.last_checkpoint_file = weights_path
        return epoch

    # -- summary

    # -- summary
    def summary(self, status):
        """summary.json of the run ended with ``status`` (completed, interrupted, diverged)."""
        best = None
        for row in self.history:
            acc = row.get("test_accuracy")
            if isinstance(acc, float) and (best is None or acc > best["test_accuracy"]):
                best = {"test_accuracy": acc, "epoch": row["epoch"]}
        final = self.history[-1] if self.history else {}
        return {
            "status": status,
            "epochs_done": len(self.history),
            "epochs": self.config["epochs"],
            "steps_per_epoch": self.steps,
            "best_test_accuracy": None if best is None else best["test_accuracy"],
            "best_epoch": None if best is None else best["epoch"],
            "best_checkpoint": self.best(),  # best.weights.h5: epoch, monitor, value
            "final": final,
            "measured_sparsity": measured_sparsity(final, self.config["monitor_batch"]),
            "diverged": _diverged_record(self.diverged),
            "wall_time_s": round(self.wall_before + time.time() - self.started, 3),
            "backend": self.backend,
            "seed": self.config["seed"],
            "devices": self.device_names,  # data-parallel devices (--devices N), else None
            "device": self.device_kind,  # "cpu" or "gpu: <name>" (kerasparse.devices)
            "step": self.step_options,  # how the step ran (resolved data format, jit, ...)
            "versions": versions(self.backend),
            "git_commit": git_commit(),
            "host": platform.node(),
            "finished": datetime.datetime.now().isoformat(timespec="seconds"),
            "data": self.data_record,
            "config": self.config,
        }


def measured_sparsity(row, examples):
    """Dent & Tanner's "observed sparsity" of a run for summary.json: the fraction of zero
    hidden activations, overall and per layer, from a history row's ``nz`` / ``nz/<layer>``
    (kerasparse.callbacks.SparsityMonitor; any activation: top-k sites, CReLU, CST, the
    shrink family, ReLU), ``{"overall": 1 - nz, "layers": {name: 1 - nz/name}, "epoch": e,
    "examples": n}``; None when the run measured nothing (``monitor_batch = 0``, no
    activation layers, no epoch finished)."""
    nz = row.get("nz")
    if not isinstance(nz, float):
        return None
    return {
        "overall": 1.0 - nz,
        "layers": {key[3:]: 1.0 - value for key, value in row.items()
                   if key.startswith("nz/") and isinstance(value, float)},
        "epoch": row.get("epoch"),
        "examples": examples,
    }


def _diverged_record(diverged):
    """The divergence record for summary.json: a non-finite loss is written as null (strict
    JSON has no NaN) with ``loss_non_finite`` saying which value it was."""
    if diverged is None:
        return None
    loss = diverged["loss"]
    if math.isfinite(loss):
        return dict(diverged)
    return {**diverged, "loss": None, "loss_non_finite": str(loss)}



def versions(backend):
    out = {"kerasparse": kerasparse.__version__, "python": platform.python_version()}
    import keras

    out["keras"] = keras.__version__
    out["numpy"] = np.__version__
    module = {"jax": "jax", "torch": "torch", "tensorflow": "tensorflow"}[backend]
    out[module] = __import__(module).__version__
    if backend != "tensorflow" and "tensorflow" in sys.modules:
        out["tensorflow"] = sys.modules["tensorflow"].__version__
    return out


def git_commit():
    """The commit of the kerasparse source tree, if it is a git checkout (else None)."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        result = subprocess.run(
            ["git", "-C", here, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None
    dirty = subprocess.run(
        ["git", "-C", here, "status", "--porcelain", "--untracked-files=no"],
        capture_output=True, text=True, timeout=5,
    ).stdout.strip()
    return result.stdout.strip() + ("-dirty" if dirty else "")


def jsonable(value):
    """``value`` (an RNG state: tuples, arrays) as JSON lists."""
    if isinstance(value, tuple | list):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _python_rng(value):
    version, internal, gauss = value
    return version, tuple(internal), gauss

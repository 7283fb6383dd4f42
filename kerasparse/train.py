"""The training application behind ``kerasparse train``: one run in one directory.

What a run directory holds (see docs/training.md):

- ``config.json``   the resolved configuration (written first; ``--resume`` reads it back)
- ``history.csv``   one row per finished epoch (loss, accuracy, test/val metrics, lr,
                    keep_ratio, keep_ratio_reset, resets, nz, nz/<site>, time)
- ``summary.json``  status, best test accuracy and its epoch, final metrics, wall time,
                    backend, versions, seed, git commit
- ``checkpoints/``  ``epoch-NNNN.weights.h5`` (every model and optimizer variable, Keras'
                    weights format) and ``epoch-NNNN.json`` (controller state, history, RNG
                    state, the variables' manifest), made current by an atomic rewrite of
                    ``latest.json`` (:mod:`kerasparse.checkpoint`)
- ``best.weights.h5`` the model's weights at its best epoch (validation accuracy, else test)
- ``tensorboard/``  TensorBoard event files (``--tensorboard``)
- ``model.keras``   the final model; ``training.png`` the plots

Exact resume: the data order of epoch e is a pure function of (seed, e) (a stateless shuffle,
:meth:`kerasparse.data.DatasetBundle.train_epochs`),
weights and optimizer slots (with the step counter, hence the cosine schedule position) come
back bit for bit, and the controller state is restored, so a resumed run replays the
uninterrupted one. A run killed mid-epoch restarts that epoch from its beginning.

Keras is imported lazily: call ``kerasparse.cli._app.use_backend`` (or set KERAS_BACKEND)
before :func:`run`.
"""

import contextlib
import datetime
import errno
import math
import os
import platform
import random
import signal
import subprocess
import sys
import threading
import time
import numpy as np

import kerasparse
from kerasparse import checkpoint, rundir, step_options
from kerasparse.config import SMOOTHING, ConfigError, resolve

CHECKPOINTS = checkpoint.CHECKPOINTS
TENSORBOARD = "tensorboard"  # the event files' folder in a run directory (--tensorboard)

# Guard and Progress look at the loss every CHECK_EVERY steps (and at each epoch's end), never
# after every batch: on an accelerator a per-batch read would wait for each step to finish.
CHECK_EVERY = 50

# Fault injection for the resume tests (docs/training.md): KERASPARSE_FAULT="batch:E:S" kills
# the process with SIGKILL after step S of epoch E (1-based); "checkpoint:E" kills it while
# writing the checkpoint of epoch E (after the weights file, before latest.json moves);
# "sigint:E:S" / "sigterm:E:S" send the process SIGINT / SIGTERM as step S of epoch E begins;
# "diskfull:E" makes the write of epoch E's weights file fail with ENOSPC (a full disk).
_FAULT = os.environ.get("KERASPARSE_FAULT", "")
_FAULT_SIGNALS = {"batch": signal.SIGKILL, "checkpoint": signal.SIGKILL,
                  "sigint": signal.SIGINT, "sigterm": signal.SIGTERM}


def _maybe_fault(kind, *where):
    if _FAULT and _FAULT == ":".join([kind, *map(str, where)]):
        sys.stdout.flush()
        if kind == "diskfull":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        os.kill(os.getpid(), _FAULT_SIGNALS.get(kind, signal.SIGKILL))


class Diverged(Exception):
    pass


class Interrupted(Exception):
    """SIGINT / SIGTERM before training started: nothing was trained (``signum`` says which)."""

    def __init__(self, message, signum):
        super().__init__(message)
        self.signum = signum


class CheckpointWriteError(Exception):
    """A checkpoint (or history.csv) could not be written (a full disk, an I/O error); the
    previous checkpoint is intact. A fault, not a usage error (exit code 1)."""


# ---------------------------------------------------------------------------------------------
# Ctrl-C and SIGTERM (docs/training.md, "Ctrl-C"): the first signal only sets STOP; the run
# stops at the end of the current batch, an epoch cut short is never recorded or
# checkpointed, and the run keeps the last finished epoch's checkpoint (status "interrupted",
# resumable exactly). A second signal aborts at once (KeyboardInterrupt).

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class STOP:
    signum = None  # the first SIGINT / SIGTERM received under stop_on_signals(), else None


def _on_signal(signum, frame):
    if STOP.signum is not None:
        raise KeyboardInterrupt
    STOP.signum = signum
    # os.write, not print: a print interrupted by the handler would re-enter the stream.
    with contextlib.suppress(OSError):
        os.write(2, f"\nInterrupted ({signal.Signals(signum).name}): stopping at the last "
                    "finished epoch's "
                    "checkpoint (send it again to abort now)\n".encode())


@contextlib.contextmanager
def stop_on_signals():
    """SIGINT and SIGTERM set :class:`STOP` instead of raising, for the life of the block
    (nested blocks share the outer one's state; outside the main thread it does nothing)."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is _on_signal):
        yield
        return
    STOP.signum = None
    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    for s in STOP_SIGNALS:
        signal.signal(s, _on_signal)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _raise_if_stopped(where):
    if STOP.signum is not None:
        raise Interrupted(
            f"interrupted ({signal.Signals(STOP.signum).name}) {where}", STOP.signum
        )


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


# ---------------------------------------------------------------------------------------------
# Building blocks


def build_data(config):
    """The :class:`kerasparse.data.DatasetBundle` of ``config`` (its dataset, batch size,
    split, q* scaling, seed and example cap), as every run loads it."""
    from kerasparse import data as ks_data

    return ks_data.load(
        config["dataset"],
        batch_size=config["batch_size"],
        data_dir=config["data_dir"],
        files_dir=config["files_dir"],
        augment=config["augment"],
        validation_split=config["validation_split"],
        q_star=data_q_star(config),
        seed=config["seed"],
        max_train_examples=config["train_examples"],
        split=config["split"],
    )


# The config keys that are model arguments (``width`` is DeepCNN's ``channels``).
MODEL_KEYS = ("activation", "norm", "sparsity", "q_star", "v_prime", "depth", "width")


def resolved_config(config):
    """``config`` with the defaults a run actually uses written in (what config.json and
    summary.json record): the model's ``activation``, ``norm``, ``depth``, ``width`` and, for
    the edge-of-chaos nets, ``sparsity``, ``q_star``, ``v_prime`` (its registry preset, else its
    builder's default), and a feedback controller's ``smoothing``. A key the model does not
    take (``norm`` of an MLP) or the controller does not use stays None. Building from the
    result gives the same model and controller as building from ``config``."""
    from kerasparse import models

    out = dict(config)
    spec = models.model_spec(config["model"])
    arguments = spec.arguments(**(config.get("model_args") or {}))
    for key in MODEL_KEYS:
        name = "channels" if key == "width" and spec.builder == "DeepCNN" else key
        if out[key] is None and arguments.get(name) is not None:
            if key in ("sparsity", "q_star", "v_prime") and not spec.takes_q_star:
                continue
            out[key] = arguments[name]
    if out["smoothing"] is None and out["controller"] in SMOOTHING:
        out["smoothing"] = SMOOTHING[out["controller"]]
    return out


def build_model(config, data):
    import keras

    from kerasparse import models

    # The [model] table's arguments (config.resolve moved those with a key of their own to
    # that key), then the config's keys, then what the data sets.
    overrides = dict(config.get("model_args") or {})
    overrides.update(num_classes=data.num_classes, input_shape=tuple(data.input_shape))
    for key in MODEL_KEYS:
        if config[key] is not None:
            overrides[key] = config[key]
    if "width" in overrides and models.model_spec(config["model"]).builder == "DeepCNN":
        overrides["channels"] = overrides.pop("width")  # DeepCNN calls its width channels
    if not config["topk"]:
        overrides["topk"] = False
    backend = keras.backend.backend()
    layout = step_options.data_format(config["data_format"], backend)
    if models.model_spec(config["model"]).builder == "WideResNet":
        step_options.check_layout(backend, layout, config["jit_compile"])
        overrides["data_format"] = layout
    elif config["data_format"] == "channels_first":
        raise ValueError(
            f"data_format applies to the WRN models only; {config['model']!r} runs "
            "channels_last. Received: data_format='channels_first'"
        )
    return models.get_model(config["model"], **overrides)


def compile_model(model, config, steps_per_epoch):
    """``model.compile`` as every run does it: SGD/AdamW with the schedule, cross-entropy from
    logits, accuracy, and the step's speed options (jit_compile, steps_per_execution)."""
    import keras

    model.compile(
        optimizer=build_optimizer(config, steps_per_epoch),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        **step_options.compile_kwargs(
            keras.backend.backend(), config["jit_compile"], config["steps_per_execution"]
        ),
    )
    return model


def data_q_star(config):
    """The input variance q* for the data: the config's, else the model's default where the
    model is an edge-of-chaos net (its registry entry ``takes_q_star``), else None."""
    from kerasparse import models

    if config["q_star"] is not None:  # a [model] table's q_star is here too (config.resolve)
        return config["q_star"]
    spec = models.MODELS.get(config["model"])
    return spec.defaults.get("q_star") if spec is not None and spec.takes_q_star else None


def build_optimizer(config, steps_per_epoch):
    import keras

    lr = config["lr"]
    total = max(1, config["epochs"] * steps_per_epoch)
    warmup = warmup_steps(config, steps_per_epoch)
    if warmup:
        # Keras' CosineDecay does the warm-up itself: lr * s / W for steps s < W (from 0),
        # then the cosine over the remaining steps; alpha=1 keeps the constant schedule flat.
        lr = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=0.0,
            decay_steps=max(1, total - warmup),
            alpha=1.0 if config["schedule"] == "constant" else 0.0,
            warmup_target=config["lr"],
            warmup_steps=warmup,
        )
    elif config["schedule"] == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=config["lr"], decay_steps=total
        )
    if config["optimizer"] == "adam":
        return keras.optimizers.AdamW(learning_rate=lr, weight_decay=config["weight_decay"])
    return keras.optimizers.SGD(
        learning_rate=lr,
        momentum=config["momentum"],
        nesterov=config["nesterov"],
        weight_decay=config["weight_decay"] or None,
    )


def warmup_steps(config, steps_per_epoch):
    """The warm-up's length in steps: ``round(warmup_epochs * steps_per_epoch)``, at least 1
    when a warm-up is asked for; 0 without one."""
    epochs = config.get("warmup_epochs") or 0.0
    return max(1, round(epochs * steps_per_epoch)) if epochs > 0 else 0


def build_controller(config):
    from kerasparse import callbacks

    name = config["controller"]
    common = dict(
        monitor=config["monitor"],
        min_keep_ratio=config["min_keep_ratio"],
        max_keep_ratio=config["max_keep_ratio"],
    )
    extra = config.get("controller_args") or {}  # the [controller] table's other arguments
    if name == "add":
        smoothing = SMOOTHING[name] if config["smoothing"] is None else config["smoothing"]
        return callbacks.AdditiveKeepRatio(
            step=config["step"], smoothing=smoothing, drop=config["drop"], **common, **extra
        )
    if name == "mult":
        smoothing = SMOOTHING[name] if config["smoothing"] is None else config["smoothing"]
        return callbacks.MultiplicativeKeepRatio(
            factor=config["factor"], smoothing=smoothing, gap=config["gap"], **common, **extra
        )
    if name == "constant":
        return callbacks.ConstantKeepRatio(config["keep_ratio"], **extra)
    return None


# ---------------------------------------------------------------------------------------------
# Callbacks owned by the runner


def _make_runner_callbacks(run):
    import keras

    from kerasparse import history as ks_history

    class TestEvaluator(keras.callbacks.Callback):
        """Evaluates the test split at each epoch end: ``test_loss``, ``test_accuracy``."""

        def on_epoch_end(self, epoch, logs=None):
            if logs is None or run.test_ds is None or run.cut_short():
                return
            result = self.model.evaluate(run.test_ds, verbose=0, return_dict=True)
            for key, value in result.items():
                logs[f"test_{key}"] = float(value)

    class Guard(keras.callbacks.Callback):
        """Stops on a non-finite loss (divergence) or on SIGINT.

        No per-batch read of a device value: the loss is checked every ``CHECK_EVERY`` steps
        and on the epoch's mean at its end (a non-finite batch loss makes the mean
        non-finite), so a divergence stops the run in the epoch where it happens, before
        that epoch is recorded or checkpointed. SIGINT is a host flag, looked at after every
        batch. ``async_safe``: Keras may run the batch hooks in its callback thread, so the
        training loop never waits for them (jax, torch; TensorFlow reads its logs on the
        host after every execution whatever the callbacks do: see --steps-per-execution).
        """

        async_safe = True

        def on_epoch_begin(self, epoch, logs=None):
            run.epoch = epoch
            run.epoch_steps = 0

        def on_train_batch_begin(self, batch, logs=None):
            # stop_training is set here, in the training loop's thread, never from the batch
            # end hooks: on jax those run in Keras' callback thread, and a stop set from there
            # races with the loop (a donated state buffer read after the break). The step
            # that starts now still runs; the epoch is cut short all the same.
            for kind in ("sigint", "sigterm"):  # test hook: the signal as step S begins
                _maybe_fault(kind, run.epoch + 1, int(batch) + 1)
            if STOP.signum is not None or run.diverged:
                self.model.stop_training = True

        def on_train_batch_end(self, batch, logs=None):
            step = int(batch) + 1
            run.epoch_steps = step
            if step % CHECK_EVERY == 0:
                self._check(logs, step)
            _maybe_fault("batch", run.epoch + 1, step)
            run.steps_done += 1

        def on_epoch_end(self, epoch, logs=None):
            self._check(logs, run.steps)
            if run.diverged:
                self._model.stop_training = True  # on_epoch_end runs in the loop's thread

        def _check(self, logs, step):
            loss = None if logs is None else logs.get("loss")
            if run.diverged or loss is None or math.isfinite(float(loss)):
                return
            # step: where the non-finite loss was seen (checked every CHECK_EVERY steps and
            # at the epoch's end), not necessarily the first bad step.
            run.diverged = {"epoch": run.epoch + 1, "step": step, "loss": float(loss)}

    class Recorder(keras.callbacks.Callback):
        """Appends the epoch's logs to history.csv and writes the epoch checkpoint."""

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()
            self._lr = ks_history.learning_rate(self.model.optimizer)  # the epoch's first step

        def on_epoch_end(self, epoch, logs=None):
            if run.diverged or logs is None:
                return  # never record or checkpoint a garbage epoch
            if run.cut_short():
                return  # an epoch cut short by a signal is not done: never recorded
            row = {"epoch": epoch + 1}
            row.update({k: _scalar(v) for k, v in logs.items()})
            row["lr"] = self._lr
            row["epoch_time_s"] = round(time.perf_counter() - self._start, 4)
            if run.controller is not None:
                row["resets"] = run.controller.resets
            run.history.append(row)
            # The best checkpoint, the checkpoint, then history.csv: a failed checkpoint write
            # leaves history.csv at the previous checkpoint, never a row ahead of it, and a
            # resume replays (and so rewrites) any best.weights.h5 written after it. A stop
            # signal forces a checkpoint (with checkpoint_every > 1 the stop point gets one).
            due = ((epoch + 1) % run.config["checkpoint_every"] == 0
                   or epoch + 1 == run.config["epochs"] or STOP.signum is not None)
            what = "best checkpoint"
            try:
                if run.is_best(row):
                    checkpoint.write_weights(self.model, run.path(checkpoint.BEST),
                                             include_optimizer=False)
                what = "checkpoint"
                if due:
                    run.save_checkpoint(self.model, epoch + 1)
                what = "history.csv"
                run.write_history()
            except OSError as exc:
                run.history.pop()
                kept = run.last_checkpoint
                where = ("no earlier checkpoint exists" if kept is None else
                         f"the checkpoint of epoch {kept} is intact")
                raise CheckpointWriteError(
                    f"cannot write the {what}"
                    f" of epoch {epoch + 1} in {run.out} ({exc.strerror or exc}); {where}; "
                    f"free some space and resume with: kerasparse train --resume {run.out}"
                ) from None

    class Progress(keras.callbacks.Callback):
        """A compact rich progress bar per epoch and one line per finished epoch (the Keras
        bar would print every per-site nz/<name> key). Async-safe, as Guard."""

        async_safe = True

        def on_train_begin(self, logs=None):
            self._bar = epoch_progress_bar()
            self._bar.start()

        def on_epoch_begin(self, epoch, logs=None):
            self._task = self._bar.add_task(
                "", total=run.steps, epoch=f"{epoch + 1}/{run.config['epochs']}", metrics=""
            )
            self._start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            # The bar advances every batch (no device value read); the loss text is
            # refreshed every CHECK_EVERY steps only.
            text = None
            if logs and "loss" in logs and (int(batch) + 1) % CHECK_EVERY == 0:
                text = f"loss {float(logs['loss']):.4f}"
                if "accuracy" in logs:
                    text += f"  acc {float(logs['accuracy']):.4f}"
            if text is None:
                self._bar.update(self._task, advance=1)
            else:
                self._bar.update(self._task, advance=1, metrics=text)

        def on_epoch_end(self, epoch, logs=None):
            self._bar.remove_task(self._task)
            logs = logs or {}
            parts = [f"epoch {epoch + 1}/{run.config['epochs']}"]
            for key, label in (("loss", "loss"), ("accuracy", "acc"), ("val_accuracy", "val acc"),
                               ("test_accuracy", "test acc"), ("keep_ratio", "r"), ("nz", "nz")):
                if key in logs:
                    parts.append(f"{label} {float(logs[key]):.4f}")
            if logs.get("keep_ratio_reset"):
                parts.append("reset")
            parts.append(f"{time.perf_counter() - self._start:.1f}s")
            self._bar.console.print("  ".join(parts), highlight=False)

        def on_train_end(self, logs=None):
            self._bar.stop()

    return TestEvaluator(), Guard(), Recorder(), Progress()


def _recorded_epochs_only(callback, run):
    """``callback`` whose on_epoch_end sees only the epochs the Recorder kept (not one cut
    short by a signal or diverged): TensorBoard then holds the same epochs as history.csv."""
    inner_end = callback.on_epoch_end

    def on_epoch_end(epoch, logs=None):
        if run.history and run.history[-1]["epoch"] == epoch + 1:
            row = {k: v for k, v in run.history[-1].items() if k != "epoch"}
            inner_end(epoch, {**row, **(logs or {})})

    callback.on_epoch_end = on_epoch_end
    return callback


def epoch_progress_bar():
    """The rich bar of one epoch (epoch, bar, steps done, time, a metrics text field): the
    same for ``kerasparse train`` and packed training."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
    from rich.progress import TimeElapsedColumn

    return Progress(
        TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TextColumn("{task.fields[metrics]}"), transient=True,
    )


def _scalar(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


# ---------------------------------------------------------------------------------------------
# The run


class Run:
    def __init__(self, out, config, backend):
        self.out = out
        self.config = config
        self.backend = backend
        self.history = []
        self.controller = None
        self.test_ds = None
        self.diverged = None
        self.epoch = 0
        self.epoch_steps = 0  # steps finished in the current epoch
        self.last_checkpoint = None  # epoch of the newest valid checkpoint, if any
        self.steps_done = 0  # training steps finished in this process
        self.started = time.time()
        self.wall_before = 0.0  # wall time of earlier (resumed) segments
        self.device_names = None
        self.device_kind = None
        self.step_options = None
        self.best_monitor = None  # the key best.weights.h5 is chosen by (val/test accuracy)
        self.last_checkpoint_file = None

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

    def cut_short(self):
        """True at the end of an epoch that a stop signal cut short (not all its steps)."""
        return STOP.signum is not None and self.epoch_steps < self.steps

    # -- files
    def path(self, *parts):
        return os.path.join(self.out, *parts)

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
                                 fault=lambda: _maybe_fault("diskfull", epoch))
        _maybe_fault("checkpoint", epoch)
        state = {
            "epoch": epoch,
            "controller": None if self.controller is None else self.controller.get_state(),
            "history": self.history,
            "wall_time_s": self.wall_before + (time.time() - self.started),
            "python_random": _jsonable(random.getstate()),
            "numpy_random": _jsonable(np.random.get_state()),
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
    def summary(self, status):
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
            "steps_per_epoch": getattr(self, "steps", None),
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
            "data": getattr(self, "data_record", None),
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


def _remove_fresh_run(out):
    """Empty (and remove, if it empties) the directory of a fresh run that never finished a
    step: it holds only what this process wrote (rundir.prepare found it empty or emptied
    it)."""
    import shutil

    for name in os.listdir(out):
        path = os.path.join(out, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    with contextlib.suppress(OSError):
        os.rmdir(out)


def _all_variables(model):  # the order of the legacy .npz checkpoints (kerasparse.packed)
    return checkpoint.all_variables(model)


def _jsonable(value):
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _python_rng(value):
    version, internal, gauss = value
    return version, tuple(internal), gauss


def run(out, config=None, backend=None, *, resume=False, overwrite=False, verbose=1,
        callbacks=None):
    """Train according to ``config`` (a resolved dict) into ``out``; returns summary.json.

    ``resume=True`` continues ``out`` from its latest checkpoint with its saved config.
    ``callbacks``: the caller's own Keras callbacks (logging to MLflow, W&B, ...), run after
    the runner's, so their ``logs`` hold the epoch's test metrics, keep ratio and nz (the
    config's ``callbacks`` entry, ``--callback module:factory``, adds more).
    Bad input (config, data source, model arguments) raises before anything is written.
    """
    with stop_on_signals():
        if resume:
            rundir.check(out, resume=True)
            config = saved_config(out)
        else:
            if config is None:
                raise ConfigError("no configuration given")
            rundir.check(out, overwrite=overwrite)
        return _run(out, config, resume, overwrite, verbose, list(callbacks or []))


def user_callbacks(spec, out, config):
    """The callbacks of the config's ``callbacks`` entry: ``"module:factory"`` items
    separated by commas. Each factory (a callable: a Callback class, a function) is called
    with no arguments, or with ``run_dir=`` / ``config=`` where its signature takes them,
    and returns a ``keras.callbacks.Callback`` or a list of them. A module that cannot be
    imported, a missing factory or a wrong return value raise ConfigError (one line)."""
    import importlib
    import inspect

    import keras

    made = []
    for item in (spec or "").split(","):
        item = item.strip()
        if not item:
            continue
        module_name, _, name = item.partition(":")
        if not module_name or not name:
            raise ConfigError(f"callbacks: expected module:factory. Received: {item!r}")
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # the user's module: any error on import is theirs
            raise ConfigError(
                f"callbacks: cannot import module {module_name!r} ({_first_line(exc)}). "
                f"Received: {item!r}") from None
        factory = module
        for part in name.split("."):
            factory = getattr(factory, part, None)
        if not callable(factory):
            raise ConfigError(
                f"callbacks: module {module_name!r} has no callable {name!r}. Received: "
                f"{item!r}")
        try:
            params = inspect.signature(factory).parameters
        except (TypeError, ValueError):
            params = {}
        kwargs = {k: v for k, v in (("run_dir", out), ("config", config)) if k in params}
        try:
            result = factory(**kwargs)
        except Exception as exc:
            raise ConfigError(
                f"callbacks: {item} raised {type(exc).__name__} ({_first_line(exc)})"
            ) from None
        result = list(result) if isinstance(result, (list, tuple)) else [result]
        for cb in result:
            if not isinstance(cb, keras.callbacks.Callback):
                raise ConfigError(
                    f"callbacks: {item} must return a keras.callbacks.Callback (or a list "
                    f"of them). Received: {type(cb).__name__}")
        made += result
    return made


def _first_line(exc):
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def extend_run(out, epochs):
    """Make run directory ``out`` train to ``epochs`` epochs in all (``--resume DIR --epochs
    N``): config.json's ``epochs`` is raised to N, under the run's lock, and the next
    :func:`run` with ``resume=True`` continues from the latest checkpoint to epoch N, a finished
    run included. The cosine schedule is rebuilt over the new total (its decay runs over N
    epochs' steps from the restored step count, so the rate rises back to that point of the
    longer curve: docs/training.md). N below the run's epochs raises ConfigError (a run is
    extended, never shortened); N equal to them changes nothing."""
    from kerasparse import config as ks_config

    rundir.check(out, resume=True)
    epochs = ks_config.validate({"epochs": epochs}, source="--epochs")["epochs"]
    config = saved_config(out)
    if epochs < config["epochs"]:
        raise ConfigError(
            f"--epochs must be at least the run's {config['epochs']} epochs: a resumed run "
            f"is extended, never shortened. Received: epochs={epochs}")
    if epochs > config["epochs"]:
        with rundir.RunLock(out):  # never under a process that is training it
            path = os.path.join(out, "config.json")
            saved = rundir.read_json_object(path)
            rundir.atomic_write_json(path, {**saved, "epochs": epochs})
    return config["epochs"]


def saved_config(out):
    """The resolved config of run directory ``out`` from its config.json; a damaged file or
    value raises RunDirError / ConfigError naming the file."""
    from kerasparse import config as ks_config

    path = os.path.join(out, "config.json")
    saved = {k: v for k, v in rundir.read_json_object(path).items() if k != "backend"}
    try:
        return resolve(overrides=ks_config.validate(saved, source=path))
    except ConfigError as exc:
        message = str(exc)
        if not message.startswith(path):
            message = f"{path}: {message.removeprefix('command line: ')}"
        raise ConfigError(message) from None


def _run(out, config, resume, overwrite, verbose, callbacks):
    from kerasparse import distribution

    with contextlib.ExitStack() as stack:
        # Model, optimizer and training all inside the distribution scope (--devices N).
        try:
            device_names = stack.enter_context(distribution.data_parallel(config["devices"]))
        except ValueError as exc:
            raise ConfigError(str(exc).splitlines()[0]) from None
        if config["tensorboard"]:
            from kerasparse.callbacks import tensorboard_scalars

            try:
                tensorboard_scalars.check_available()
            except tensorboard_scalars.MissingTensorBoard as exc:
                raise ConfigError(str(exc)) from None
        setup = _setup(config)  # loads data and builds the model: fails early, writes nothing
        # The user's callbacks once the model is built (seeded first: a factory that draws
        # random numbers cannot change the initial weights).
        callbacks = callbacks + user_callbacks(config["callbacks"], out, config)
        _raise_if_stopped("during start-up; nothing was trained or written")
        if not resume:
            rundir.prepare(out, overwrite=overwrite)
        with rundir.RunLock(out):
            return _run_locked(out, config, setup, resume, verbose, device_names, callbacks)


def _setup(config):
    """Data, model and controller for ``config``; errors become ConfigError (usage errors)."""
    import keras

    from kerasparse import data as ks_data

    keras.utils.set_random_seed(config["seed"])
    keras.mixed_precision.set_dtype_policy(config["precision"])
    try:
        data = build_data(config)
        if config["controller"] in ("add", "mult"):
            # The controller reads its monitor at each epoch's end, before the test evaluation
            # and the sparsity monitor: only the training metrics (and the validation ones, with
            # a validation split) are logged by then. Checked here, before anything is written.
            has_val = data.val is not None
            logged = ["accuracy", "loss"] + (["val_accuracy", "val_loss"] if has_val else [])
            if config["monitor"] not in logged:
                raise ValueError(
                    f"monitor must be a metric logged before the controller reads it: "
                    f"{', '.join(logged)}"
                    + ("" if has_val else " (val_* need validation_split > 0)")
                    + f". Received: monitor={config['monitor']!r}")
        model = build_model(config, data)
        controller = build_controller(config)
        if controller is not None:
            from kerasparse.layers import GlobalTopK

            if not any(isinstance(layer, GlobalTopK) for layer in model._flatten_layers()):
                raise ValueError(
                    f"controller {config['controller']!r} moves the keep ratio of GlobalTopK "
                    f"sites, and model {config['model']!r} has none; use controller 'none'. "
                    f"Received: controller={config['controller']!r}"
                )
    except (ValueError, FileNotFoundError, ks_data.MissingDependencyError) as exc:
        raise ConfigError(str(exc).splitlines()[0]) from None
    return data, model, controller


def _run_locked(out, config, setup, resume, verbose, device_names=None, user_cbs=()):
    import keras

    from kerasparse import callbacks as ks_callbacks

    data, model, controller = setup
    backend = keras.backend.backend()
    config = resolved_config(config)  # the values the run uses, defaults included
    if resume:
        summary_path = os.path.join(out, "summary.json")
        previous = rundir.read_json_object(summary_path) if os.path.exists(summary_path) else {}
        if (previous.get("status") == "completed"
                and previous.get("epochs_done", 0) >= config["epochs"]):  # not extended
            if verbose:
                print(f"{out}: already completed; nothing to resume")
            return previous
    else:
        rundir.atomic_write_json(os.path.join(out, "config.json"), {**config, "backend": backend})

    steps = data.steps_per_epoch(config["steps_per_epoch"])

    compile_model(model, config, steps)
    model.optimizer.build(model.trainable_variables)

    state = Run(out, config, backend)
    state.device_names = device_names
    state.step_options = {
        "data_format": getattr(model, "data_format", None),
        "jit_compile": bool(model.jit_compile),
        "steps_per_execution": config["steps_per_execution"],
        "precision": config["precision"],
    }
    state.steps = steps
    state.controller = controller
    state.best_monitor = "val_accuracy" if data.val is not None else "test_accuracy"
    state.test_ds = data.test
    if config["test_examples"] is not None:
        state.test_ds = data.test.head(config["test_examples"])
    # The data the numbers come from: val_* metrics are the validation part, test_* the test
    # part (its first test_examples where that is set).
    state.data_record = {**data.split_record(),
                         "test_evaluated": min(data.num_test, config["test_examples"] or
                                               data.num_test)}
    from kerasparse import devices

    state.device_kind = devices.describe(backend, len(device_names or []) or 1)
    start = state.load_checkpoint(model) if resume else 0
    if resume and verbose:
        print(f"resuming {out} after epoch {start}")

    cbs = []
    if state.controller is not None:
        cbs.append(state.controller)
    try:
        has_sites = bool(ks_callbacks.find_activation_layers(model))
    except ValueError:  # a model without top-k sites or activation layers
        has_sites = False
    if config["monitor_batch"] and has_sites:
        x_mon, _ = data.sample(config["monitor_batch"])
        cbs.append(ks_callbacks.SparsityMonitor(x_mon))
    test_eval, guard, recorder, progress = _make_runner_callbacks(state)
    # Order matters: the controller and the monitor write keep_ratio / nz into the logs,
    # TestEvaluator the test metrics, Guard stops a diverged or interrupted epoch, Recorder
    # keeps the epoch (history, checkpoints); what follows sees the complete logs.
    cbs += [test_eval, guard, recorder]
    if config["tensorboard"]:
        cbs.append(_recorded_epochs_only(
            ks_callbacks.TensorBoardScalars(os.path.join(out, TENSORBOARD)), state))
    cbs += list(user_cbs) + ([progress] if verbose else [])

    status = "completed"
    if STOP.signum is not None:  # a signal during start-up: nothing trained in this process
        if not resume:
            _remove_fresh_run(out)
        _raise_if_stopped("during start-up; nothing was trained" + (
            "" if resume else " or kept"))
    if start < config["epochs"]:
        # Epoch e's batches are a pure function of (seed, e): a resumed run replays them.
        train_ds = data.train_epochs(config["epochs"], initial_epoch=start, steps_per_epoch=steps)
        val = data.val
        try:
            model.fit(
                train_ds,
                epochs=config["epochs"],
                initial_epoch=start,
                steps_per_epoch=steps,
                validation_data=val,
                callbacks=cbs,
                shuffle=False,  # the epoch-indexed pipeline already shuffles
                verbose=0,
            )
        except Exception as exc:
            # An error before the first step finished, with compilation on, is the compiler's
            # (dynamo/inductor, XLA): one line saying how to turn it off, not a stack trace.
            if not model.jit_compile or state.steps_done or isinstance(exc, KeyboardInterrupt):
                raise
            if not resume and not state.history:
                _remove_fresh_run(out)  # nothing was trained: leave nothing behind
            raise step_options.CompileFailed(
                step_options.compile_failure_message(exc, backend)
            ) from exc
    if state.diverged:
        status = "diverged"
        kept = state.last_checkpoint
        where = ("no epoch finished, so there is no checkpoint" if kept is None else
                 f"the last good checkpoint, {state.last_checkpoint_file} "
                 f"(epoch {kept}), is kept")
        print(
            f"Diverged: non-finite loss ({state.diverged['loss']}) at epoch "
            f"{state.diverged['epoch']}, step {state.diverged['step']}; {where}"
        )
    elif len(state.history) < config["epochs"]:
        status = "interrupted"
        why = "" if STOP.signum is None else f" ({signal.Signals(STOP.signum).name})"
        print(
            f"Stopped{why} after epoch {len(state.history)} of {config['epochs']} (an epoch "
            f"cut short is not recorded); resume with: kerasparse train --resume {out}"
        )
    if status == "completed":
        model.save(os.path.join(out, "model.keras"))
    summary = state.summary(status)
    rundir.atomic_write_json(os.path.join(out, "summary.json"), summary)
    if state.history:
        from kerasparse import report

        report.plot_run(out)
    return summary

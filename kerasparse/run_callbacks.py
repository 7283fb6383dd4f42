"""The callbacks ``kerasparse train`` adds to ``model.fit`` itself, and their order.

- :class:`TestEvaluator` logs ``test_loss`` / ``test_accuracy`` at each epoch's end;
- :class:`Guard` stops a run whose loss is not finite (divergence) or that got a stop signal,
  and knows whether the epoch that ends was cut short;
- :class:`Recorder` hands each finished epoch to the :class:`~kerasparse.run_record.RunRecord`
  (best weights, checkpoint, history.csv);
- :class:`Progress` draws the progress bar and prints one line per epoch.

They are one private module rather than one module each (Keras' rule for public classes):
they are not a user's callbacks (those are :mod:`kerasparse.callbacks`), they only make sense
together, in the order :func:`runner_callbacks` puts them, and :class:`TestEvaluator` and
:class:`Recorder` take the :class:`Guard` as a constructor argument. Everything else they use is
a constructor argument too; no state is shared through a module or a bag of attributes.
"""

import math
import time

import keras

from kerasparse import interrupts

# Guard and Progress look at the loss every CHECK_EVERY steps (and at each epoch's end), never
# after every batch: on an accelerator a per-batch read would wait for each step to finish.
CHECK_EVERY = 50


def runner_callbacks(record, *, test_ds, controller=None, sparsity_monitor=None,
                     tensorboard=None, user_callbacks=(), verbose=1):
    """The callbacks of a run, in the one order that is right; returns ``(guard, callbacks)``.

    Keras calls each hook on the callbacks in list order, and each one reads what the earlier
    ones wrote into the epoch's ``logs``:

    1. the keep-ratio ``controller`` reads its monitor (training / validation metrics only) and
       writes ``keep_ratio``; the ``sparsity_monitor`` then writes ``nz`` and ``nz/<site>`` at
       the ratio the next epoch trains with;
    2. :class:`TestEvaluator` adds the test metrics (skipped for an epoch cut short);
    3. :class:`Guard` checks the epoch's loss; a diverged or cut-short epoch is never recorded;
    4. :class:`Recorder` keeps the complete row (history.csv, checkpoint, best weights): it
       must follow 1-3;
    5. ``tensorboard`` (only the epochs the Recorder kept) and the ``user_callbacks`` see the
       complete logs; :class:`Progress` prints them last.
    """
    guard = Guard(record.steps)
    callbacks = [cb for cb in (controller, sparsity_monitor) if cb is not None]
    callbacks += [TestEvaluator(test_ds, guard), guard, Recorder(record, guard)]
    if tensorboard is not None:
        callbacks.append(recorded_epochs_only(tensorboard, record))
    callbacks += list(user_callbacks)
    if verbose:
        callbacks.append(Progress(record.config["epochs"], record.steps))
    return guard, callbacks


class Guard(keras.callbacks.Callback):
    """Stops on a non-finite loss (divergence) or on a stop signal (SIGINT, SIGTERM).

    No per-batch read of a device value: the loss is checked every ``CHECK_EVERY`` steps and
    on the epoch's mean at its end (a non-finite batch loss makes the mean non-finite), so a
    divergence stops the run in the epoch where it happens, before that epoch is recorded or
    checkpointed. The stop signal is a host flag, looked at before every batch. ``async_safe``:
    Keras may run the batch hooks in its callback thread, so the training loop never waits for
    them (jax, torch; TensorFlow reads its logs on the host after every execution whatever the
    callbacks do: see --steps-per-execution).

    Args:
        steps: steps per epoch (an epoch that ends with fewer was cut short).

    Attributes: ``diverged`` ({"epoch", "step", "loss"} once the loss was not finite, else
    None), ``steps_done`` (training steps finished in this process).
    """

    async_safe = True

    def __init__(self, steps):
        super().__init__()
        self.steps = steps
        self.diverged = None
        self.steps_done = 0
        self.epoch = 0
        self.epoch_steps = 0  # steps finished in the current epoch

    def cut_short(self):
        """True at the end of an epoch that a stop signal cut short (not all its steps)."""
        return interrupts.STOP.signum is not None and self.epoch_steps < self.steps

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self.epoch_steps = 0

    def on_train_batch_begin(self, batch, logs=None):
        # stop_training is set here, in the training loop's thread, never from the batch end
        # hooks: on jax those run in Keras' callback thread, and a stop set from there races
        # with the loop (a donated state buffer read after the break). The step that starts
        # now still runs; the epoch is cut short all the same.
        for kind in ("sigint", "sigterm"):  # test hook: the signal as step S begins
            interrupts.maybe_fault(kind, self.epoch + 1, int(batch) + 1)
        if interrupts.STOP.signum is not None or self.diverged:
            self.model.stop_training = True

    def on_train_batch_end(self, batch, logs=None):
        step = int(batch) + 1
        self.epoch_steps = step
        if step % CHECK_EVERY == 0:
            self._check(logs, step)
        interrupts.maybe_fault("batch", self.epoch + 1, step)
        self.steps_done += 1

    def on_epoch_end(self, epoch, logs=None):
        self._check(logs, self.steps)
        if self.diverged:
            self._model.stop_training = True  # on_epoch_end runs in the loop's thread

    def _check(self, logs, step):
        loss = None if logs is None else logs.get("loss")
        if self.diverged or loss is None or math.isfinite(float(loss)):
            return
        # step: where the non-finite loss was seen (checked every CHECK_EVERY steps and at
        # the epoch's end), not necessarily the first bad step.
        self.diverged = {"epoch": self.epoch + 1, "step": step, "loss": float(loss)}


class TestEvaluator(keras.callbacks.Callback):
    """Evaluates ``test_ds`` at each epoch's end into ``test_loss``, ``test_accuracy`` (not
    for an epoch that ``guard`` says was cut short; nothing when ``test_ds`` is None)."""

    def __init__(self, test_ds, guard):
        super().__init__()
        self.test_ds = test_ds
        self.guard = guard

    def on_epoch_end(self, epoch, logs=None):
        if logs is None or self.test_ds is None or self.guard.cut_short():
            return
        result = self.model.evaluate(self.test_ds, verbose=0, return_dict=True)
        for key, value in result.items():
            logs[f"test_{key}"] = float(value)


class Recorder(keras.callbacks.Callback):
    """Hands each finished epoch's row (its logs, the learning rate of its first step, its
    time, the controller's resets) to ``record`` (:meth:`RunRecord.add_epoch`: best weights,
    checkpoint, history.csv). An epoch ``guard`` saw diverge or cut short is never recorded."""

    def __init__(self, record, guard):
        super().__init__()
        self.record = record
        self.guard = guard

    def on_epoch_begin(self, epoch, logs=None):
        from kerasparse import history as ks_history

        self._start = time.perf_counter()
        self._lr = ks_history.learning_rate(self.model.optimizer)  # the epoch's first step

    def on_epoch_end(self, epoch, logs=None):
        if self.guard.diverged or logs is None:
            return  # never record or checkpoint a garbage epoch
        if self.guard.cut_short():
            return  # an epoch cut short by a signal is not done: never recorded
        row = {"epoch": epoch + 1}
        row.update({k: _scalar(v) for k, v in logs.items()})
        row["lr"] = self._lr
        row["epoch_time_s"] = round(time.perf_counter() - self._start, 4)
        if self.record.controller is not None:
            row["resets"] = self.record.controller.resets
        self.record.add_epoch(self.model, row)


class Progress(keras.callbacks.Callback):
    """A compact rich progress bar per epoch and one line per finished epoch (the Keras bar
    would print every per-site nz/<name> key). Async-safe, as :class:`Guard`.

    Args:
        epochs: the run's epochs in all; steps: steps per epoch.
    """

    async_safe = True

    def __init__(self, epochs, steps):
        super().__init__()
        self.epochs = epochs
        self.steps = steps

    def on_train_begin(self, logs=None):
        self._bar = epoch_progress_bar()
        self._bar.start()

    def on_epoch_begin(self, epoch, logs=None):
        self._task = self._bar.add_task(
            "", total=self.steps, epoch=f"{epoch + 1}/{self.epochs}", metrics=""
        )
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        # The bar advances every batch (no device value read); the loss text is refreshed
        # every CHECK_EVERY steps only.
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
        parts = [f"epoch {epoch + 1}/{self.epochs}"]
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


def recorded_epochs_only(callback, record):
    """``callback`` whose on_epoch_end sees only the epochs ``record`` kept (not one cut
    short by a signal or diverged), with the recorded row merged into its logs: TensorBoard
    then holds the same epochs as history.csv."""
    inner_end = callback.on_epoch_end

    def on_epoch_end(epoch, logs=None):
        row = record.recorded(epoch + 1)
        if row is not None:
            row = {k: v for k, v in row.items() if k != "epoch"}
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

"""TensorBoardScalars: every scalar of an epoch's logs (and the learning rate) as TensorBoard
scalars, on every backend."""

import math
import os
import socket
import time

import keras


class MissingTensorBoard(ImportError):
    """The ``tensorboard`` package is not installed."""


def check_available():
    """Raise :class:`MissingTensorBoard` (one line saying what to install) unless the
    ``tensorboard`` package can be imported; imports nothing else."""
    try:
        import tensorboard  # noqa: F401  (a light package module; the writer imports more)
    except ImportError:
        raise MissingTensorBoard(
            "TensorBoard logging needs the tensorboard package, which is not installed: "
            "pip install tensorboard (or pip install 'kerasparse[tensorboard]')") from None


class _EventFile:
    """One TensorBoard event file written with the ``tensorboard`` package's record framing
    and protos. Written here rather than through ``tensorboard``'s EventFileWriter (or
    torch.utils.tensorboard, or tf.summary): those import TensorFlow whenever it is
    installed (for tf.io.gfile), which a jax or torch run must not pay for; the file format
    itself is three lines (a version event, then one event per write)."""

    def __init__(self, log_dir):
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.summary.writer.record_writer import RecordWriter

        self._event_pb2, self._summary_pb2 = event_pb2, summary_pb2
        os.makedirs(log_dir, exist_ok=True)
        name = f"events.out.tfevents.{time.time():.6f}.{socket.gethostname()}.{os.getpid()}"
        self._file = open(os.path.join(log_dir, name), "wb")
        self._writer = RecordWriter(self._file)
        self._write(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))

    def _write(self, event):
        self._writer.write(event.SerializeToString())

    def scalars(self, values, step):
        value = self._summary_pb2.Summary.Value
        summary = self._summary_pb2.Summary(
            value=[value(tag=tag, simple_value=v) for tag, v in values.items()])
        self._write(self._event_pb2.Event(wall_time=time.time(), step=step, summary=summary))
        self._file.flush()

    def close(self):
        if not self._file.closed:
            self._file.close()


class TensorBoardScalars(keras.callbacks.Callback):
    """Writes the epoch's scalar logs to TensorBoard event files in ``log_dir`` at each
    epoch end, with step = epoch number (1-based, as in history.csv).

    Everything numeric in ``logs`` is written (loss, accuracy, val_* / test_* metrics,
    keep_ratio, keep_ratio_reset, nz, nz/<site>, ...) plus ``lr``, the optimizer's learning
    rate, when the logs do not hold it. Place it after the callbacks whose keys it should
    see (controllers, SparsityMonitor). Unlike ``keras.callbacks.TensorBoard`` it needs the
    ``tensorboard`` package only, not TensorFlow, so it works on jax and torch too.

    Args:
        log_dir: folder for the event files (created).
    """

    def __init__(self, log_dir):
        super().__init__()
        if not isinstance(log_dir, (str, os.PathLike)) or not str(log_dir):
            raise ValueError(
                f"TensorBoardScalars: log_dir must be a folder path. Received: "
                f"log_dir={log_dir!r}")
        check_available()
        self.log_dir = os.fspath(log_dir)
        self._events = None

    def on_train_begin(self, logs=None):
        if self._events is None:
            self._events = _EventFile(self.log_dir)

    def on_epoch_end(self, epoch, logs=None):
        values = {}
        for key, value in (logs or {}).items():
            try:
                value = float(value)
            except (TypeError, ValueError):
                continue
            if math.isfinite(value):
                values[key] = value
        if "lr" not in values and "learning_rate" not in values:
            optimizer = getattr(self.model, "optimizer", None)
            if optimizer is not None:
                values["lr"] = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
        if self._events is None:
            self._events = _EventFile(self.log_dir)
        self._events.scalars(values, step=epoch + 1)

    def on_train_end(self, logs=None):
        if self._events is not None:
            self._events.close()
            self._events = None

    def get_config(self):
        return {"log_dir": self.log_dir}

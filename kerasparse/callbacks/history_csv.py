"""HistoryCSV: ``history.csv`` written by a plain ``model.fit`` as ``kerasparse train`` writes it."""

import time

import keras

from kerasparse import history
from kerasparse._io import atomic_write_text


class HistoryCSV(keras.callbacks.Callback):
    """Writes one row per finished epoch to ``filename``, in the format of a ``kerasparse
    train`` run directory (:mod:`kerasparse.history`): ``epoch`` counted from 1, the epoch's
    logs, the test metrics as ``test_*``, ``lr`` (the rate of the epoch's first step) and
    ``epoch_time_s``; floats as the shortest text of their float32 value. The file is
    rewritten whole, atomically, after every epoch (Keras' CSVLogger counts epochs from 0,
    calls test data given as ``validation_data`` ``val_*`` and prints float noise).

    Put it after the callbacks that write into the logs (keep-ratio controllers,
    SparsityMonitor): it records what they logged.

    Args:
        filename: the CSV file to write.
        test_data: optional test split (a dataset or ``(x, y)``) evaluated at each epoch's
            end; its metrics are added to the logs as ``test_<name>`` (so ``History`` and
            later callbacks see them), as ``kerasparse train`` does.
    """

    def __init__(self, filename, test_data=None):
        super().__init__()
        self.filename = str(filename)
        self.test_data = test_data
        self.rows = []

    def on_train_begin(self, logs=None):
        self.rows = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        self._lr = history.learning_rate(self.model.optimizer)

    def on_epoch_end(self, epoch, logs=None):
        logs = {} if logs is None else logs
        if self.test_data is not None:
            data = self.test_data
            x, y = data if isinstance(data, tuple) else (data, None)
            result = self.model.evaluate(x, y, verbose=0, return_dict=True)
            for key, value in result.items():
                logs[f"test_{key}"] = float(value)
        row = {"epoch": epoch + 1, **logs, "lr": self._lr,
               "epoch_time_s": round(time.perf_counter() - self._start, 4)}
        self.rows.append(row)
        atomic_write_text(self.filename, history.csv_text(self.rows))

"""``history.csv``: one row per finished epoch, the one format of every kerasparse run
(``kerasparse train``, packed cells, the ``apps/`` scripts through
:class:`kerasparse.callbacks.HistoryCSV`).

- ``epoch`` counts from 1 (the epoch just finished), as ``kerasparse train`` prints it;
- test metrics are ``test_*`` (the test split evaluated at the epoch's end), ``val_*`` are a
  validation split's;
- ``lr`` is the learning rate of the epoch's first step (read as the epoch begins: with a
  cosine schedule the rate then falls step by step through the epoch);
- every float is written as the shortest decimal that reads back as the same float32
  (``str(numpy.float32(v))``: ``0.3``, not ``0.30000000000000004``). The metrics, the
  learning rate and the keep ratio are float32 values in the model, so nothing is lost:
  ``numpy.float32(float(cell))`` is the value the run computed. Integers are written as
  integers.
"""

import csv
import io
import numbers

import numpy as np


def format_value(value):
    """One ``history.csv`` cell (see the module docstring); strings pass through."""
    if isinstance(value, bool | np.bool_):
        return str(int(value))
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real) or (isinstance(value, np.ndarray) and value.ndim == 0):
        return str(np.float32(value))
    return value


def csv_text(rows):
    """The text of ``history.csv`` for ``rows`` (dicts; columns in order of appearance)."""
    keys = []
    for row in rows:
        keys.extend(k for k in row if k not in keys)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, restval="")
    writer.writeheader()
    writer.writerows({k: format_value(v) for k, v in row.items()} for row in rows)
    return buf.getvalue()


def learning_rate(optimizer):
    """The rate ``optimizer`` applies at its next step (its schedule at ``iterations``), as a
    float; read it in ``on_epoch_begin`` for the rate of the epoch's first step."""
    import keras

    # Through convert_to_tensor: a MirroredVariable (tf.distribute) is not an array.
    return float(keras.ops.convert_to_numpy(keras.ops.convert_to_tensor(optimizer.learning_rate)))

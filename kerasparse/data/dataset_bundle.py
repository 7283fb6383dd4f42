import dataclasses
from typing import Any, Callable, Optional

import numpy as np


@dataclasses.dataclass
class DatasetBundle:
    """What :func:`kerasparse.data.load` returns.

    Attributes:
        name: the dataset's name.
        train, val, test: batched ``tf.data.Dataset``s of ``(images, labels)``: float32
            normalised NHWC images, int32 labels. ``val`` is ``None`` without a validation
            split. ``train`` reshuffles every epoch.
        num_classes: number of classes.
        input_shape: ``(height, width, channels)`` of one example.
        num_train, num_val, num_test: examples in each split.
        normalization: how inputs were scaled, e.g. ``{"kind": "channel", "mean": [...],
            "std": [...]}`` or ``{"kind": "per_example", "q_star": 3.0}``.
        source: where the data came from (``"generated"``, ``"tfds"``, ``"files:<dir>"``).
    """

    name: str
    train: Any
    val: Optional[Any]
    test: Any
    num_classes: int
    input_shape: tuple
    num_train: int
    num_val: int
    num_test: int
    normalization: dict
    source: str
    _x_train: np.ndarray = dataclasses.field(repr=False, default=None)
    _y_train: np.ndarray = dataclasses.field(repr=False, default=None)
    _normalize: Callable = dataclasses.field(repr=False, default=None)

    def sample(self, n, seed=0):
        """``n`` training examples (without augmentation) as numpy ``(x, y)``.

        Normalised exactly as the pipelines' inputs; for a SparsityMonitor or a quick
        statistics check. Deterministic given ``seed``.
        """
        n = int(n)
        if n < 1:
            raise ValueError(f"sample: n must be a positive integer. Received: n={n}")
        n = min(n, len(self._x_train))
        idx = np.sort(np.random.default_rng(seed).choice(len(self._x_train), n, replace=False))
        x = np.asarray(self._normalize(self._x_train[idx]))
        return x, self._y_train[idx].copy()

    def train_arrays(self):
        """All training examples as numpy ``(x, y)``, normalised like the pipelines' inputs
        and without augmentation, in their stored order. ``kerasparse train`` builds its own
        epoch-indexed pipeline from these so that a resumed run replays the same batches."""
        return np.asarray(self._normalize(self._x_train)), self._y_train.copy()

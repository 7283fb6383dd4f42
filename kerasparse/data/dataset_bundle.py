import dataclasses
from typing import Any, Optional

import numpy as np


@dataclasses.dataclass
class DatasetBundle:
    """What :func:`kerasparse.data.load` returns.

    Attributes:
        name: the dataset's name.
        train, val, test: ``keras.utils.PyDataset``s of ``(images, labels)`` batches: float32
            normalised NHWC images (NumPy), int32 labels; ``fit``/``evaluate`` take them on
            every backend. ``val`` is ``None`` without a validation split. ``train`` is one
            pass per ``fit`` epoch, pass p ordered (and augmented) like epoch p of
            :meth:`train_epochs`; ``val``/``test`` keep the stored order and have
            ``head(n)`` (the first n examples) and ``arrays()``.
        num_classes: number of classes.
        input_shape: ``(height, width, channels)`` of one example.
        num_train, num_val, num_test: examples in each split.
        normalization: how inputs were scaled, e.g. ``{"kind": "channel", "mean": [...],
            "std": [...]}`` or ``{"kind": "per_example", "q_star": 3.0}``.
        source: where the data came from (``"generated"``, ``"files:<dir>"``,
            ``"keras.datasets.<name>"``, ``"keras.utils.get_file:<dir>"``, ``"tfds[:<dir>]"``).
        split: ``"official"`` or ``"pooled"`` (docs/data.md, "Splits").
        batch_size, seed, augment: as given to :func:`kerasparse.data.load`.
        pipeline: the :class:`kerasparse.data.pipeline.Pipeline` (order, augmentation and
            normalisation functions).

    For runs that must be replayable epoch by epoch (resume after a crash, a step cap, or two
    programs that must see the same batches) use :meth:`train_epochs`, which ``kerasparse
    train`` and the ``apps/`` scripts use.
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
    split: str = "official"
    batch_size: int = 128
    seed: int = 3407
    augment: bool = False
    pipeline: Any = dataclasses.field(repr=False, default=None)
    prefetch: int = dataclasses.field(repr=False, default=2)
    _x_train: np.ndarray = dataclasses.field(repr=False, default=None)
    _y_train: np.ndarray = dataclasses.field(repr=False, default=None)

    def split_record(self):
        """What the run record says about the data: split, sizes and source."""
        return {"split": self.split, "num_train": self.num_train, "num_val": self.num_val,
                "num_test": self.num_test, "source": self.source}

    def steps_per_epoch(self, limit=None):
        """Batches in one epoch of :meth:`train_epochs`: ``ceil(num_train / batch_size)``,
        or ``limit`` if that is smaller (a cap for short runs)."""
        steps = -(-self.num_train // self.batch_size)
        if limit is not None:
            if int(limit) < 1:
                raise ValueError(f"limit must be a positive integer. Received: limit={limit!r}")
            steps = min(steps, int(limit))
        return steps

    def train_epochs(self, epochs, initial_epoch=0, steps_per_epoch=None):
        """The training batches of epochs ``[initial_epoch, epochs)`` as one sequence (a
        ``keras.utils.PyDataset``), for::

            model.fit(ds, epochs=epochs, initial_epoch=initial_epoch, shuffle=False,
                      steps_per_epoch=bundle.steps_per_epoch(steps_per_epoch))

        Epoch e's order is a permutation seeded by ``(seed, e)`` and, with ``augment=True``,
        its example at position i is augmented with draws seeded by ``(seed, e)`` at index i,
        so a run resumed at epoch e sees exactly the batches the uninterrupted run saw, and
        every program that trains with the same seed and batch size sees the same data in the
        same order, on every backend. ``steps_per_epoch`` caps each epoch at that many
        batches (each epoch still starts at its own order).
        """
        from kerasparse.data.pipeline import EpochBatches

        epochs, initial_epoch = int(epochs), int(initial_epoch)
        if not 0 <= initial_epoch < epochs:
            raise ValueError(
                "train_epochs needs 0 <= initial_epoch < epochs. "
                f"Received: initial_epoch={initial_epoch}, epochs={epochs}"
            )
        return EpochBatches(self._x_train, self._y_train, self.batch_size, self.pipeline,
                            initial_epoch, epochs, self.steps_per_epoch(steps_per_epoch),
                            self.prefetch)

    def normalize(self, images):
        """uint8 NHWC images -> float32, scaled exactly as the pipeline's inputs."""
        return self.pipeline.normalize(images)

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
        return self.normalize(self._x_train[idx]), self._y_train[idx].copy()

    def train_arrays(self):
        """All training examples as numpy ``(x, y)``, normalised like the pipelines' inputs
        and without augmentation, in their stored order."""
        return self.normalize(self._x_train), self._y_train.copy()

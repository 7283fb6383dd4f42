"""The NumPy input pipeline: batches of in-memory arrays for ``model.fit`` on every backend.

A dataset lives in memory as uint8 NHWC images and int32 labels. Batches are made on the fly
by pure functions of their position, so that any batch of any epoch can be produced on its
own (exact resume, two programs seeing the same batches, any backend seeing the same data):

- epoch ``e``'s order is :meth:`Pipeline.epoch_order` ``(seed, e)``: a permutation from the
  raw 64-bit stream of NumPy's PCG64 seeded by ``SeedSequence([seed, e, 0])`` (the
  permutation that sorts the stream, stable sort);
- with augmentation, the example at position ``i`` of epoch ``e`` is zero-padded by
  ``pad`` pixels, cropped back at offset ``(dy, dx)`` and, where the dataset allows it,
  flipped left-right, with ``(dy, dx, flip)`` read from element ``i`` of the stream seeded by
  ``SeedSequence([seed, e, 1])`` (:meth:`Pipeline.epoch_augmentation`);
- normalisation (per channel, or per example to variance q*) comes last, in float32.

Only the raw PCG64 stream and SeedSequence are used (NumPy keeps both fixed across versions,
unlike ``Generator`` methods), so the batches do not change with the NumPy version either.

The batch containers are :class:`keras.utils.PyDataset` subclasses, which Keras feeds to
``fit`` on jax, torch and tensorflow alike; nothing here imports TensorFlow. Hand-written
rather than ``tf.data`` (TensorFlow on every backend) or grain (another dependency) because the
whole pipeline is a few vectorised NumPy operations on arrays already in memory
(docs/data.md, "Decision").
"""

import concurrent.futures
import os
import threading

import keras
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

PAD = 4  # random-crop padding in pixels (the usual CIFAR augmentation)
_ORDER_STREAM, _AUGMENT_STREAM = 0, 1


def _raw_stream(seed, epoch, stream, n):
    """``n`` raw uint64 draws of PCG64 seeded by ``SeedSequence([seed, epoch, stream])``."""
    bit_generator = np.random.PCG64(np.random.SeedSequence([int(seed), int(epoch), stream]))
    return bit_generator.random_raw(int(n))


class Pipeline:
    """The pure functions of one loaded dataset: order, augmentation, normalisation.

    Args:
        normalization: ``{"kind": "channel", "mean": [...], "std": [...]}`` (per-channel
            statistics of [0, 1] pixels) or ``{"kind": "per_example", "q_star": q}``.
        input_shape: ``(H, W, C)`` of one example.
        seed: the data seed (order and augmentation).
        augment: random crop after zero padding (+ flip where ``flip``).
        flip: whether a horizontal flip keeps the label.
        pad: crop padding in pixels.
    """

    def __init__(self, normalization, input_shape, seed, augment=False, flip=True, pad=PAD):
        self.normalization = normalization
        self.input_shape = tuple(int(d) for d in input_shape)
        self.seed = int(seed)
        self.augment = bool(augment)
        self.flip = bool(flip)
        self.pad = int(pad)
        h, w, c = self.input_shape
        if normalization["kind"] == "channel":
            # Per channel: x/255 -> (x/255 - mean)/std = x*scale + offset. Tiled along a whole
            # image row (W*C values) so that NumPy's inner loop is a row, not 3 channels
            # (measured 9x faster for 32x32x3 batches).
            mean = np.asarray(normalization["mean"], np.float64)
            std = np.asarray(normalization["std"], np.float64)
            self._scale = np.tile(1.0 / (255.0 * std), w).astype(np.float32)
            self._offset = np.tile(-mean / std, w).astype(np.float32)
        # Byte positions of a left-right flipped image row (pixels reversed, channels kept).
        self._flip_row = ((w - 1 - np.arange(w))[:, None] * c + np.arange(c)).reshape(-1)
        self._cache = {}
        self._lock = threading.Lock()

    # -- per-epoch randomness (cached: a batch needs its epoch's order)
    def _cached(self, key, make):
        with self._lock:
            value = self._cache.get(key)
        if value is None:
            value = make()
            with self._lock:
                if len(self._cache) > 8:  # a few epochs at a time (prefetch spans two)
                    self._cache.clear()
                self._cache[key] = value
        return value

    def epoch_order(self, epoch, n):
        """The order of epoch ``epoch`` over ``n`` examples (int64 indices)."""
        return self._cached(
            ("order", int(epoch), int(n)),
            lambda: np.argsort(_raw_stream(self.seed, epoch, _ORDER_STREAM, n), kind="stable"),
        )

    def epoch_augmentation(self, epoch, n):
        """``(dy, dx, flip)`` for positions ``0..n-1`` of epoch ``epoch``: crop offsets in
        ``[0, 2*pad]`` and flip flags (all False where the dataset is not flipped)."""

        def make():
            raw = _raw_stream(self.seed, epoch, _AUGMENT_STREAM, n)
            span = np.uint64(2 * self.pad + 1)
            dy = (raw % span).astype(np.intp)
            dx = ((raw // span) % span).astype(np.intp)
            flip = ((raw // (span * span)) % np.uint64(2)).astype(bool) & self.flip
            return dy, dx, flip

        return self._cached(("augment", int(epoch), int(n)), make)

    # -- batch functions
    def crop_flip(self, images, dy, dx, flip):
        """Zero-pad ``images`` (uint8, NHWC) by ``pad``, crop each back at ``(dy, dx)``,
        then flip those marked in ``flip`` left-right. Vectorised over the batch: the flips
        are one byte gather of the flipped rows, the crops one gather over a sliding-window
        view of the padded batch (flipping before the crop is the same as after it, with
        the horizontal offset mirrored: ``2*pad - dx``)."""
        n, h, w, c = images.shape
        p = self.pad
        padded = np.zeros((n, h + 2 * p, w + 2 * p, c), np.uint8)
        padded[:, p:p + h, p:p + w] = images
        flipped = np.flatnonzero(flip)
        if len(flipped):
            rows = images[flipped].reshape(len(flipped), h, w * c)
            padded[flipped, p:p + h, p:p + w] = np.take(rows, self._flip_row, axis=2).reshape(
                len(flipped), h, w, c
            )
        windows = np.moveaxis(sliding_window_view(padded, (h, w), axis=(1, 2)), 3, -1)
        return windows[np.arange(n), dy, np.where(flip, 2 * p - dx, dx)]

    def normalize(self, images):
        """uint8 NHWC images -> float32 normalised images (a new array)."""
        images = np.asarray(images)
        out = images.astype(np.float32)
        if self.normalization["kind"] == "channel":
            rows = out.reshape(-1, self._scale.size)
            rows *= self._scale
            rows += self._offset
            return out
        # Per example, over all pixels and channels: mean 0, variance q*.
        flat = out.reshape(len(out), -1)
        flat /= 255.0
        mean = flat.mean(axis=1, keepdims=True, dtype=np.float64)
        var = np.square(flat - mean.astype(np.float32)).mean(axis=1, keepdims=True,
                                                             dtype=np.float64)
        scale = np.sqrt(self.normalization["q_star"]) / np.sqrt(var + 1e-12)
        flat -= mean.astype(np.float32)
        flat *= scale.astype(np.float32)
        return out

    def train_batch(self, images, labels, epoch, start, stop):
        """Positions ``[start, stop)`` of epoch ``epoch``: ``(float32 images, int32 labels)``."""
        n = len(images)
        idx = self.epoch_order(epoch, n)[start:stop]
        x = images[idx]
        if self.augment:
            dy, dx, flip = self.epoch_augmentation(epoch, n)
            x = self.crop_flip(x, dy[start:stop], dx[start:stop], flip[start:stop])
        return self.normalize(x), labels[idx]


# --- prefetching ------------------------------------------------------------------------------

_POOL = None
_POOL_LOCK = threading.Lock()


def _forget_pool():
    # A forked child has none of the parent's threads: a new pool is made on first use.
    global _POOL, _POOL_LOCK
    _POOL, _POOL_LOCK = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_pool)


def _pool():
    """One process-wide thread pool for prefetching (NumPy releases the GIL in its copies and
    arithmetic, so batches are made while the accelerator runs the previous step)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            workers = int(os.environ.get("KERASPARSE_DATA_THREADS", min(4, os.cpu_count() or 1)))
            _POOL = concurrent.futures.ThreadPoolExecutor(
                max_workers=max(1, workers), thread_name_prefix="kerasparse-data"
            )
    return _POOL


class _Batches(keras.utils.PyDataset):
    """Base: ``len(self)`` batches made by the pure ``self._make(index)``, with the next
    ``prefetch`` batches made ahead in background threads (the result does not depend on it)."""

    def __init__(self, prefetch=2):
        super().__init__()
        self.prefetch = int(prefetch)
        self._futures = {}
        self._futures_lock = threading.Lock()

    def __len__(self):
        return self.num_batches

    def _make(self, index):
        raise NotImplementedError

    def __getitem__(self, index):
        index = int(index)
        if not 0 <= index < len(self):
            raise IndexError(f"batch index out of range: {index} (there are {len(self)})")
        if self.prefetch <= 0:
            return self._make(index)
        with self._futures_lock:
            future = self._futures.pop(index, None)
            for old in [k for k in self._futures if k < index]:
                self._futures.pop(old).cancel()
            for ahead in range(index + 1, min(index + 1 + self.prefetch, len(self))):
                if ahead not in self._futures:
                    self._futures[ahead] = _pool().submit(self._make, ahead)
        return future.result() if future is not None else self._make(index)


class ArrayBatches(_Batches):
    """Batches of arrays in their stored order (validation and test sets), normalised.

    ``head(n)``: the same over the first ``n`` examples only.
    """

    def __init__(self, images, labels, batch_size, pipeline, prefetch=2):
        super().__init__(prefetch)
        self.images, self.labels = images, labels
        self.batch_size = int(batch_size)
        self.pipeline = pipeline

    @property
    def num_examples(self):
        return len(self.images)

    @property
    def num_batches(self):
        return -(-len(self.images) // self.batch_size)

    def _make(self, index):
        sl = slice(index * self.batch_size, (index + 1) * self.batch_size)
        return self.pipeline.normalize(self.images[sl]), self.labels[sl].copy()

    def head(self, n):
        """The first ``n`` examples (all of them if there are fewer), same batch size."""
        n = int(n)
        if n < 1:
            raise ValueError(f"head: n must be a positive integer. Received: n={n}")
        return ArrayBatches(self.images[:n], self.labels[:n], self.batch_size, self.pipeline,
                            self.prefetch)

    def arrays(self):
        """All examples as ``(float32 normalised images, int32 labels)``."""
        return self.pipeline.normalize(self.images), self.labels.copy()


class EpochBatches(_Batches):
    """The training batches of epochs ``[first_epoch, last_epoch)`` as ONE sequence of
    ``(last_epoch - first_epoch) * steps_per_epoch`` batches: batch ``j`` is batch
    ``j % steps_per_epoch`` of epoch ``first_epoch + j // steps_per_epoch``, made by
    :meth:`Pipeline.train_batch` (a pure function of ``(seed, epoch, position)``).

    ``fit`` must take it with ``steps_per_epoch=steps_per_epoch``: Keras then reads the
    sequence straight through, ``steps_per_epoch`` batches per epoch, so each epoch of
    ``fit`` gets exactly its own epoch's batches, whatever ``initial_epoch`` and the cap.
    Keras' own ``shuffle`` must stay off (it would mix epochs): reading a batch out of order
    raises a ``ValueError`` saying so.
    """

    def __init__(self, images, labels, batch_size, pipeline, first_epoch, last_epoch,
                 steps_per_epoch, prefetch=2):
        super().__init__(prefetch)
        self.images, self.labels = images, labels
        self.batch_size = int(batch_size)
        self.pipeline = pipeline
        self.first_epoch, self.last_epoch = int(first_epoch), int(last_epoch)
        self.steps_per_epoch = int(steps_per_epoch)
        self._last_read = None

    @property
    def num_batches(self):
        return (self.last_epoch - self.first_epoch) * self.steps_per_epoch

    def position(self, index):
        """``(epoch, step)`` of batch ``index`` of the sequence."""
        epoch, step = divmod(int(index), self.steps_per_epoch)
        return self.first_epoch + epoch, step

    def _make(self, index):
        epoch, step = self.position(index)
        start = step * self.batch_size
        stop = min(start + self.batch_size, len(self.images))
        return self.pipeline.train_batch(self.images, self.labels, epoch, start, stop)

    def __getitem__(self, index):
        index = int(index)
        last = self._last_read
        # Reads go 0, 1, 2, ... (Keras may restart at 0, e.g. for its first look at the
        # data). Anything else means fit shuffled the batch order: epochs would be mixed.
        if last is not None and index not in (0, last, last + 1):
            raise ValueError(
                "train_epochs(...) batches were read out of order (batch "
                f"{index} after {last}): pass shuffle=False to model.fit (the batches are "
                "already a per-epoch shuffle of (seed, epoch)); the order across epochs "
                "depends on it"
            )
        self._last_read = index
        return super().__getitem__(index)


class TrainBatches(_Batches):
    """``bundle.train``: one pass over the training set per ``fit`` epoch; pass ``p`` is
    epoch ``p`` of :class:`EpochBatches` (order and augmentation of ``(seed, p)``), the first
    pass being epoch 0. A new pass starts at the end of a ``fit`` epoch once every batch of
    the current pass has been read (so Keras' ``shuffle=True``, which only permutes the batch
    order of a pass, its look-ahead reads and a ``steps_per_epoch`` below one pass keep each
    pass whole). For exact resume (``initial_epoch``) use ``train_epochs``.
    """

    def __init__(self, images, labels, batch_size, pipeline, prefetch=2):
        super().__init__(prefetch)
        self.images, self.labels = images, labels
        self.batch_size = int(batch_size)
        self.pipeline = pipeline
        self.epoch = 0
        self._read = set()
        self._in_epoch = False

    @property
    def num_batches(self):
        return -(-len(self.images) // self.batch_size)

    def _make(self, key):
        epoch, index = key
        start = index * self.batch_size
        stop = min(start + self.batch_size, len(self.images))
        return self.pipeline.train_batch(self.images, self.labels, epoch, start, stop)

    def __getitem__(self, index):
        index = int(index)
        if not 0 <= index < len(self):
            raise IndexError(f"batch index out of range: {index} (there are {len(self)})")
        if self._in_epoch:
            self._read.add(index)
        # Prefetch is keyed by (pass, index): no look-ahead across a pass boundary.
        key = (self.epoch, index)
        if self.prefetch <= 0:
            return self._make(key)
        with self._futures_lock:
            future = self._futures.pop(key, None)
            for ahead in range(index + 1, min(index + 1 + self.prefetch, len(self))):
                if (self.epoch, ahead) not in self._futures:
                    self._futures[(self.epoch, ahead)] = _pool().submit(
                        self._make, (self.epoch, ahead))
        return future.result() if future is not None else self._make(key)

    def on_epoch_begin(self):
        self._in_epoch = True

    def on_epoch_end(self):
        self._in_epoch = False
        if len(self._read) >= len(self):
            self.epoch += 1
            self._read = set()
            with self._futures_lock:
                for future in self._futures.values():
                    future.cancel()
                self._futures = {}

    def __iter__(self):
        """A Python loop over the dataset reads one whole pass, then the next starts."""
        self.on_epoch_begin()
        try:
            for index in range(len(self)):
                yield self[index]
        finally:
            self.on_epoch_end()

"""``kerasparse.data.load``: arrays from tfds, user files or the generator, then tf.data."""

import dataclasses
import os
from typing import Callable, Optional

import numpy as np

from kerasparse.config import suggest
from kerasparse.data import _files, embedded
from kerasparse.data.dataset_bundle import DatasetBundle


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """A known dataset: its tfds name, files reader, shape, classes and input statistics.

    ``mean``/``std``: fixed per-channel statistics of [0, 1] pixels (``None``: computed from
    the training split). ``flip``: whether a horizontal flip keeps the label (not for digits
    or the embedded gratings, whose class is the orientation).
    """

    tfds_name: Optional[str]
    files_reader: Optional[Callable]
    input_shape: tuple
    num_classes: int
    mean: Optional[tuple] = None
    std: Optional[tuple] = None
    flip: bool = True


DATASETS = {
    "embedded": DatasetInfo(None, None, embedded.IMAGE_SHAPE, embedded.NUM_CLASSES, flip=False),
    # Wang 2026, section 2.1: the channel statistics the paper normalises CIFAR-10 with.
    "cifar10": DatasetInfo(
        "cifar10", _files.load_cifar10, (32, 32, 3), 10,
        mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616),
    ),
    "cifar100": DatasetInfo("cifar100", _files.load_cifar100, (32, 32, 3), 100),
    "mnist": DatasetInfo(
        "mnist", lambda d: _files.load_idx(d, "MNIST"), (28, 28, 1), 10, flip=False
    ),
    "fashion_mnist": DatasetInfo(
        "fashion_mnist", lambda d: _files.load_idx(d, "FashionMNIST"), (28, 28, 1), 10
    ),
    "svhn_cropped": DatasetInfo("svhn_cropped", _files.load_svhn, (32, 32, 3), 10, flip=False),
}

_PAD = 4  # random-crop padding (pixels), as the usual CIFAR augmentation


def _tf():
    try:
        import tensorflow as tf
    except ImportError:
        raise ImportError(
            "kerasparse.data builds tf.data pipelines (on every Keras backend) and needs "
            "TensorFlow: pip install tensorflow-cpu (CPU only) or pip install "
            "'kerasparse[tensorflow]'"
        ) from None
    return tf


def _check_name(name):
    if name not in DATASETS:
        raise ValueError(
            f"Unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}."
            f"{suggest(name, DATASETS, cutoff=0.4)} "
            f"Received: name={name!r}"
        )
    return DATASETS[name]


def _tfds_arrays(info, data_dir):
    """Both splits of a tfds dataset as uint8/int32 numpy arrays."""
    import tensorflow_datasets as tfds

    try:
        splits = tfds.load(
            info.tfds_name, split=["train", "test"], data_dir=data_dir, as_supervised=True
        )
    except Exception as exc:  # tfds raises many types (download, missing files, ...)
        raise ValueError(
            f"tensorflow-datasets could not load {info.tfds_name!r} (offline, or not prepared "
            f"in data_dir): {type(exc).__name__}: {str(exc).splitlines()[0][:200]}. Pass "
            f"files_dir= a folder of the standard distribution files, or data_dir= a tfds "
            f"folder where it is prepared. Received: data_dir={data_dir!r}"
        ) from None
    arrays = []
    for ds in splits:
        xs, ys = [], []
        # ds.batch, not tfds.load(batch_size=-1): the latter aborts under mock_data.
        for x, y in tfds.as_numpy(ds.batch(10000)):
            xs.append(np.asarray(x, dtype=np.uint8))
            ys.append(np.asarray(y, dtype=np.int32))
        arrays.append((np.concatenate(xs), np.concatenate(ys)))
    return tuple(arrays)


def load_arrays(name, data_dir=None, files_dir=None):
    """``((x_train, y_train), (x_test, y_test))`` as uint8 NHWC images and int32 labels,
    plus a description of the source.

    ``files_dir`` wins over tfds; ``embedded`` is generated and takes neither.
    """
    info = _check_name(name)
    if name == "embedded":
        if files_dir is not None:
            raise ValueError(
                "The embedded dataset is generated and reads no files. "
                f"Received: files_dir={files_dir!r}"
            )
        return embedded.load_arrays(), "generated"
    if files_dir is not None:
        files_dir = os.fspath(files_dir)
        if not os.path.isdir(files_dir):
            raise ValueError(f"files_dir is not a folder. Received: files_dir={files_dir!r}")
        return info.files_reader(files_dir), f"files:{files_dir}"
    return _tfds_arrays(info, data_dir), "tfds"


def _normalizer(tf, kind, mean=None, std=None, q_star=None):
    """uint8 images -> float32 normalised images (works on one image or a batch)."""
    if kind == "per_example":
        scale = float(np.sqrt(q_star))

        def normalize(x):
            x = tf.cast(x, tf.float32) / 255.0
            axes = list(range(len(x.shape) - 3, len(x.shape)))  # an example's H, W, C
            mu = tf.reduce_mean(x, axis=axes, keepdims=True)
            var = tf.reduce_mean(tf.square(x - mu), axis=axes, keepdims=True)
            return (x - mu) * tf.math.rsqrt(var + 1e-12) * scale

        return normalize
    mean = tf.constant(mean, tf.float32)
    std = tf.constant(std, tf.float32)

    def normalize(x):
        return (tf.cast(x, tf.float32) / 255.0 - mean) / std

    return normalize


def _channel_stats(x):
    """Per-channel mean and std of [0, 1] pixels (float64 accumulation)."""
    mean = x.mean(axis=(0, 1, 2), dtype=np.float64) / 255.0
    sq = np.mean(np.square(x, dtype=np.float64), axis=(0, 1, 2)) / 255.0**2
    return tuple(float(m) for m in mean), tuple(float(s) for s in np.sqrt(sq - mean**2))


def load(
    name="embedded",
    batch_size=128,
    data_dir=None,
    files_dir=None,
    augment=False,
    validation_split=0.0,
    q_star=None,
    seed=3407,
    max_train_examples=None,
):
    """Load a dataset as batched ``tf.data`` pipelines (they feed ``fit`` on every backend).

    Args:
        name: ``"embedded"`` (generated, no download), ``"cifar10"``, ``"cifar100"``,
            ``"mnist"``, ``"fashion_mnist"`` or ``"svhn_cropped"``.
        batch_size: examples per batch (paper: 128).
        data_dir: tensorflow-datasets' ``data_dir``.
        files_dir: a folder of the standard distribution files (MNIST idx ``.gz``, CIFAR
            python batches, SVHN ``.mat``), used instead of tfds (offline nodes).
        augment: random crop (4-pixel zero padding) + horizontal flip (flip only where it
            keeps the label) on the training split. Off by default (Wang 2026 uses none).
        validation_split: fraction of the training split held out (seeded), in [0, 1).
        q_star: if given, each example is scaled to mean 0 and variance ``q_star`` over its
            pixels (Dent & Tanner 2026, section 3) instead of channel normalisation.
        seed: shuffling and validation-split seed (paper: 3407).
        max_train_examples: keep only this many training examples (after the split).

    Returns:
        A :class:`DatasetBundle`.
    """
    info = _check_name(name)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or (
        batch_size < 1
    ):
        raise ValueError(
            f"batch_size must be a positive integer. Received: batch_size={batch_size!r}"
        )
    if not 0.0 <= float(validation_split) < 1.0:
        raise ValueError(
            "validation_split must be in [0, 1). "
            f"Received: validation_split={validation_split!r}"
        )
    if q_star is not None and not float(q_star) > 0.0:
        raise ValueError(f"q_star must be a positive number. Received: q_star={q_star!r}")
    if max_train_examples is not None and int(max_train_examples) < 1:
        raise ValueError(
            "max_train_examples must be a positive integer. "
            f"Received: max_train_examples={max_train_examples!r}"
        )
    tf = _tf()
    ((x_train, y_train), (x_test, y_test)), source = load_arrays(name, data_dir, files_dir)

    rng = np.random.default_rng(seed)
    x_val = y_val = None
    num_val = int(round(float(validation_split) * len(x_train)))
    if validation_split > 0 and num_val == 0:
        num_val = 1
    if num_val:
        order = rng.permutation(len(x_train))
        val_idx, train_idx = np.sort(order[:num_val]), np.sort(order[num_val:])
        x_val, y_val = x_train[val_idx], y_train[val_idx]
        x_train, y_train = x_train[train_idx], y_train[train_idx]
    if max_train_examples is not None:
        x_train, y_train = x_train[: int(max_train_examples)], y_train[: int(max_train_examples)]

    if q_star is not None:
        normalization = {"kind": "per_example", "q_star": float(q_star)}
    else:
        mean, std = (info.mean, info.std) if info.mean is not None else _channel_stats(x_train)
        normalization = {"kind": "channel", "mean": list(mean), "std": list(std)}
    normalize = _normalizer(tf, **normalization)

    augment_example = _augmenter(tf, x_train.shape[1:], info.flip)

    def pipeline(x, y, training):
        ds = tf.data.Dataset.from_tensor_slices((x, y))
        if training:
            ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
            if augment:
                # Per-example seeds for stateless ops, new ones every epoch (random ops
                # with op-level seeds would repeat the same augmentation each epoch).
                seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
                ds = tf.data.Dataset.zip((ds, seeds.batch(2))).map(
                    lambda example, s: (augment_example(example[0], s), example[1]),
                    num_parallel_calls=tf.data.AUTOTUNE,
                )
        ds = ds.batch(batch_size).map(
            lambda xb, yb: (normalize(xb), yb), num_parallel_calls=tf.data.AUTOTUNE
        )
        return ds.prefetch(tf.data.AUTOTUNE)

    def train_epochs(first_epoch, last_epoch, steps_per_epoch):
        """Epochs [first_epoch, last_epoch): epoch e's order is a stateless shuffle seeded
        by (seed, e) and example i of it is augmented with seed (seed, e, i), so any epoch
        can be replayed exactly (e.g. after a restart) without replaying the ones before."""
        n = len(x_train)
        images, labels = tf.constant(x_train), tf.constant(y_train)
        base = tf.constant(seed, tf.int64)

        def one_epoch(epoch):
            order = tf.random.experimental.stateless_shuffle(
                tf.range(n, dtype=tf.int64), seed=tf.stack([base, epoch])
            )
            ds = tf.data.Dataset.from_tensor_slices(order).enumerate()
            if augment:
                ds = ds.map(
                    lambda i, idx: (
                        augment_example(
                            tf.gather(images, idx),
                            tf.random.experimental.stateless_fold_in(
                                tf.stack([base, epoch]), i
                            ),
                        ),
                        tf.gather(labels, idx),
                    ),
                    num_parallel_calls=tf.data.AUTOTUNE,
                    deterministic=True,
                )
                ds = ds.batch(batch_size)
            else:
                ds = ds.batch(batch_size).map(
                    lambda _, idx: (tf.gather(images, idx), tf.gather(labels, idx))
                )
            return ds.take(steps_per_epoch)

        ds = tf.data.Dataset.range(first_epoch, last_epoch).flat_map(one_epoch)
        ds = ds.map(lambda xb, yb: (normalize(xb), yb), num_parallel_calls=tf.data.AUTOTUNE)
        return ds.prefetch(tf.data.AUTOTUNE)

    return DatasetBundle(
        name=name,
        train=pipeline(x_train, y_train, True),
        val=pipeline(x_val, y_val, False) if num_val else None,
        test=pipeline(x_test, y_test, False),
        num_classes=info.num_classes,
        input_shape=tuple(int(d) for d in x_train.shape[1:]),
        num_train=len(x_train),
        num_val=num_val,
        num_test=len(x_test),
        normalization=normalization,
        source=source,
        _x_train=x_train,
        _y_train=y_train,
        batch_size=int(batch_size),
        seed=int(seed),
        augment=bool(augment),
        _normalize=lambda x: normalize(x).numpy(),
        _train_epochs=train_epochs,
    )


def _augmenter(tf, shape, flip):
    """Random crop after zero padding by ``_PAD`` pixels, then (optionally) a random flip, of
    one raw image, given a stateless seed (shape (2,)). Both training pipelines use it."""

    def augment(image, seed):
        image = tf.pad(image, [[_PAD, _PAD], [_PAD, _PAD], [0, 0]])
        image = tf.image.stateless_random_crop(image, shape, seed=seed)
        if flip:
            image = tf.image.stateless_random_flip_left_right(image, seed=seed[::-1])
        return image

    return augment

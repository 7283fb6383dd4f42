"""``kerasparse.data.load``: arrays from files, Keras downloads, tfds or the generator, kept in
memory and fed to ``fit`` by the NumPy pipeline (:mod:`kerasparse.data.pipeline`)."""

import os

import numpy as np

from kerasparse import presets
from kerasparse.data import _files, _sources, embedded
from kerasparse.data._sources import MissingDependencyError
from kerasparse.data.dataset_bundle import DatasetBundle
from kerasparse.data.pipeline import ArrayBatches, Pipeline, TrainBatches
from kerasparse.presets import DatasetInfo, suggest


# The known datasets: the one table of names, in kerasparse.presets (NumPy-free).
DATASETS = presets.DATASETS

SOURCES = ("auto", "files", "keras", "tfds")

# How the examples are divided (docs/data.md, "Splits"). "official": the dataset's own train and
# test sets. "pooled": Dent & Tanner 2026, section 3: "The data is split with 20% retained for
# testing, and 10% of the training data retained for validation": train and test pooled, 20%
# held out as test, then a fraction of the rest (validation_split, else 10%) as validation.
SPLITS = ("official", "pooled")
POOLED_TEST_FRACTION = 0.2
POOLED_VALIDATION_FRACTION = 0.1
_SPLIT_STREAM = 2  # the pipeline's streams 0 and 1 are the epoch order and augmentation


def _check_name(name):
    if name not in DATASETS:
        raise ValueError(
            f"Unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}."
            f"{suggest(name, DATASETS, cutoff=0.4)} "
            f"Received: name={name!r}"
        )
    return DATASETS[name]


def _folder(argument, value):
    value = os.path.expanduser(os.fspath(value))
    if not os.path.isdir(value):
        raise ValueError(f"{argument} is not a folder. Received: {argument}={value!r}")
    return value


def load_arrays(name, data_dir=None, files_dir=None, source="auto", cache_dir=None):
    """``((x_train, y_train), (x_test, y_test))`` as uint8 NHWC images and int32 labels,
    and a description of where they came from.

    ``source="auto"`` (docs/data.md, "Sources"): ``embedded`` is generated; ``files_dir`` is a
    folder of the standard files; ``data_dir`` is a folder of the standard files (any known
    layout, detected) or a tensorflow-datasets ``data_dir`` where the dataset is prepared;
    without either, Keras downloads it (cached in ``~/.keras/datasets``), or tfds does where
    Keras cannot (SVHN). ``"files"``, ``"keras"`` or ``"tfds"`` ask for one source.
    """
    info = _check_name(name)
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}. Received: "
                         f"source={source!r}")
    if name == "embedded":
        given = {k: v for k, v in (("files_dir", files_dir), ("data_dir", data_dir)) if v}
        if given:
            key, value = next(iter(given.items()))
            raise ValueError("The embedded dataset is generated and reads no files. "
                             f"Received: {key}={str(value)!r}")
        return embedded.load_arrays(), "generated"
    if files_dir is not None:  # the alias of data_dir for files only (--files-dir)
        folder = _folder("files_dir", files_dir)
        return _files.read(name, folder, cache_dir, "files_dir"), f"files:{folder}"
    if source == "tfds" or (source == "auto" and data_dir is None and
                            name not in _sources.DOWNLOADABLE):
        if source == "auto" and not _sources.tfds_installed():
            raise MissingDependencyError(
                f"{name}: Keras cannot download it and tensorflow-datasets is not installed; "
                f"install it with {_sources.TFDS_HINT}, or pass --data-dir (data_dir=) a "
                f"folder of its files ({_files.LAYOUTS[name].expected()})"
            )
        if info.tfds_name is None:
            raise ValueError(
                f"{name} is not in tensorflow-datasets; pass --data-dir (data_dir=) a folder "
                f"of its standard files{' or let Keras download it' if name in _sources.DOWNLOADABLE else ''}. "
                f"Received: source={source!r}"
            )
        return _sources.from_tfds(info.tfds_name, data_dir), "tfds" + (
            f":{data_dir}" if data_dir else "")
    if source == "keras" or (source == "auto" and data_dir is None):
        if name not in _sources.DOWNLOADABLE:
            raise ValueError(f"Keras cannot download {name}; use tensorflow-datasets "
                             f"(source='tfds') or a folder of its files (data_dir=). "
                             f"Received: source={source!r}")
        return _sources.download(name, cache_dir)
    if data_dir is None:
        raise ValueError(f"source='files' needs data_dir= (or files_dir=) a folder of the "
                         f"standard {name} files. Received: data_dir=None")
    folder = _folder("data_dir", data_dir)
    if _files.LAYOUTS[name].find(folder) is not None or source == "files":
        return _files.read(name, folder, cache_dir), f"files:{folder}"
    if info.tfds_name is not None and _sources.tfds_prepared(folder, info.tfds_name):
        return _sources.from_tfds(info.tfds_name, folder, download=False), f"tfds:{folder}"
    tfds_text = (f", nor a tensorflow-datasets data_dir where it is prepared "
                 f"({info.tfds_name}/<version>/dataset_info.json)" if info.tfds_name else "")
    raise _files.FilesNotFound(
        f"data_dir (--data-dir) holds neither the {name} files (expected "
        f"{_files.LAYOUTS[name].expected()}){tfds_text}.{_files.missing_text(name, folder)}"
        f"{_files.describe_detected(folder, exclude=(name,))} Received: data_dir={folder!r}"
    )


def _seeded_permutation(seed, n):
    """A permutation of ``range(n)`` from ``seed``: the stable argsort of the raw PCG64 stream
    seeded by ``SeedSequence([seed, 0, 2])`` -- like the pipeline's epoch order, only the raw
    stream, which NumPy keeps fixed across versions (Generator.permutation is not)."""
    raw = np.random.PCG64(np.random.SeedSequence([int(seed), 0, _SPLIT_STREAM])).random_raw(n)
    return np.argsort(raw, kind="stable")


def pooled_split(num_examples, seed, validation_split=0.0):
    """``(train_idx, val_idx, test_idx)`` of the pooled split of ``num_examples`` examples (the
    official train set followed by the official test set): a seeded permutation; its first
    ``round(0.2 n)`` are the test part, the next ``round(f (n - n_test))`` the validation part
    (``f = validation_split`` if > 0, else 0.1), the rest the training part; each sorted.

    Raises:
        ValueError: a part would be empty (too few examples).
    """
    n = int(num_examples)
    fraction = float(validation_split) or POOLED_VALIDATION_FRACTION
    num_test = int(round(POOLED_TEST_FRACTION * n))
    num_val = int(round(fraction * (n - num_test)))
    sizes = {"train": n - num_test - num_val, "validation": num_val, "test": num_test}
    empty = [part for part, size in sizes.items() if size < 1]
    if empty:
        raise ValueError(
            f"split='pooled' of {n} examples leaves the {' and '.join(empty)} part empty "
            f"(20% test, {fraction:g} of the rest validation); it needs at least "
            f"{_pooled_minimum(fraction)} examples, or use split='official'. Received: "
            f"{n} examples")
    order = _seeded_permutation(seed, n)
    test_idx = np.sort(order[:num_test])
    val_idx = np.sort(order[num_test:num_test + num_val])
    train_idx = np.sort(order[num_test + num_val:])
    return train_idx, val_idx, test_idx


def _pooled_minimum(fraction):
    n = 1
    while True:
        test = int(round(POOLED_TEST_FRACTION * n))
        val = int(round(fraction * (n - test)))
        if test >= 1 and val >= 1 and n - test - val >= 1:
            return n
        n += 1


def _channel_stats(x):
    """Per-channel mean and std of [0, 1] pixels (float64 accumulation, in chunks)."""
    c = x.shape[-1]
    total = np.zeros(c)
    total_sq = np.zeros(c)
    for start in range(0, len(x), 2048):  # chunks: float64 copies of <= 2048 images
        chunk = x[start:start + 2048].reshape(-1, c).astype(np.float64)
        total += chunk.sum(0)
        total_sq += np.square(chunk).sum(0)
    count = x.size // c
    mean = total / count / 255.0
    var = total_sq / count / 255.0**2 - mean**2
    return tuple(float(m) for m in mean), tuple(float(s) for s in np.sqrt(np.maximum(var, 0)))


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
    *,
    split="official",
    source="auto",
    cache_dir=None,
    prefetch=2,
):
    """Load a dataset into memory; batches come from the NumPy pipeline on every backend.

    Args:
        name: ``"embedded"`` (generated, no download), ``"cifar10"``, ``"cifar100"``,
            ``"mnist"``, ``"fashion_mnist"``, ``"svhn_cropped"`` or ``"tiny_imagenet"``.
        batch_size: examples per batch (paper: 128).
        data_dir: a folder of the dataset's standard files (MNIST idx ``.gz``, CIFAR python
            batches, SVHN ``.mat``, ``tiny-imagenet-200``; the layout is detected), or a
            tensorflow-datasets ``data_dir`` where it is prepared.
        files_dir: a folder of the standard files only (the older name; kept).
        augment: random crop (4-pixel zero padding) + horizontal flip (flip only where it
            keeps the label) on the training split. Off by default (Wang 2026 uses none).
        validation_split: fraction of the training split held out (seeded), in [0, 1).
            With ``split="pooled"``: the validation fraction of the non-test part (0: the
            paper's 0.1).
        q_star: if given, each example is scaled to mean 0 and variance ``q_star`` over its
            pixels (Dent & Tanner 2026, section 3) instead of channel normalisation.
        seed: order, augmentation and validation-split seed (paper: 3407).
        max_train_examples: keep only this many training examples (after the split: the
            validation and test parts do not change).
        split: ``"official"`` (the dataset's train and test sets) or ``"pooled"`` (Dent &
            Tanner 2026: train and test pooled, 20% test, 10% of the rest validation, seeded
            by ``seed``; docs/data.md, "Splits").
        source: ``"auto"``, ``"files"``, ``"keras"`` (download through Keras) or ``"tfds"``.
        cache_dir: where decoded arrays of slow sources (Tiny ImageNet) are cached
            (default ``$KERASPARSE_CACHE_DIR`` or ``~/.keras/kerasparse``).
        prefetch: batches made ahead in background threads (0: none).

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
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}. Received: split={split!r}")
    if q_star is not None and not float(q_star) > 0.0:
        raise ValueError(f"q_star must be a positive number. Received: q_star={q_star!r}")
    if max_train_examples is not None and int(max_train_examples) < 1:
        raise ValueError(
            "max_train_examples must be a positive integer. "
            f"Received: max_train_examples={max_train_examples!r}"
        )
    ((x_train, y_train), (x_test, y_test)), source_text = load_arrays(
        name, data_dir, files_dir, source, cache_dir)
    if tuple(x_train.shape[1:]) != tuple(info.input_shape):
        raise ValueError(f"{name} images from {source_text} are {x_train.shape[1:]}, expected "
                         f"{info.input_shape}")

    for part, y in (("training", y_train), ("test", y_test)):
        y = np.asarray(y)
        if y.size and (y.min() < 0 or y.max() >= info.num_classes):
            bad = int(y.min()) if y.min() < 0 else int(y.max())
            raise ValueError(
                f"{name} {part} labels from {source_text} must be class numbers in [0, "
                f"{info.num_classes - 1}]; found label {bad} (damaged or mismatched label "
                "file?)")
    x_val = y_val = None
    if split == "pooled":
        x_all = np.concatenate([x_train, x_test])
        y_all = np.concatenate([np.asarray(y_train), np.asarray(y_test)])
        try:
            train_idx, val_idx, test_idx = pooled_split(len(x_all), seed, validation_split)
        except ValueError as exc:
            raise ValueError(f"{name} from {source_text}: {exc}") from None
        x_train, y_train = x_all[train_idx], y_all[train_idx]
        x_val, y_val = x_all[val_idx], y_all[val_idx]
        x_test, y_test = x_all[test_idx], y_all[test_idx]
        del x_all, y_all
        num_val = len(x_val)
    else:
        num_val = int(round(float(validation_split) * len(x_train)))
        if validation_split > 0 and num_val == 0:
            num_val = 1
    if num_val and split == "official":
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(x_train))
        val_idx, train_idx = np.sort(order[:num_val]), np.sort(order[num_val:])
        x_val, y_val = x_train[val_idx], y_train[val_idx]
        x_train, y_train = x_train[train_idx], y_train[train_idx]
    if max_train_examples is not None:
        x_train, y_train = x_train[: int(max_train_examples)], y_train[: int(max_train_examples)]
    x_train, y_train = np.ascontiguousarray(x_train), np.ascontiguousarray(y_train, np.int32)
    x_test, y_test = np.ascontiguousarray(x_test), np.ascontiguousarray(y_test, np.int32)

    if q_star is not None:
        normalization = {"kind": "per_example", "q_star": float(q_star)}
    else:
        mean, std = (info.mean, info.std) if info.mean is not None else _channel_stats(x_train)
        normalization = {"kind": "channel", "mean": list(mean), "std": list(std)}
    pipeline = Pipeline(normalization, x_train.shape[1:], seed, augment=augment, flip=info.flip)

    return DatasetBundle(
        name=name,
        train=TrainBatches(x_train, y_train, batch_size, pipeline, prefetch),
        val=ArrayBatches(x_val, np.asarray(y_val, np.int32), batch_size, pipeline, prefetch)
        if num_val else None,
        test=ArrayBatches(x_test, y_test, batch_size, pipeline, prefetch),
        num_classes=info.num_classes,
        input_shape=tuple(int(d) for d in x_train.shape[1:]),
        num_train=len(x_train),
        num_val=num_val,
        num_test=len(x_test),
        normalization=normalization,
        source=source_text,
        split=split,
        batch_size=int(batch_size),
        seed=int(seed),
        augment=bool(augment),
        pipeline=pipeline,
        prefetch=int(prefetch),
        _x_train=x_train,
        _y_train=y_train,
    )


__all__ = ["DATASETS", "DatasetInfo", "MissingDependencyError", "SOURCES", "SPLITS", "load",
           "load_arrays", "pooled_split"]

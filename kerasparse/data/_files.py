"""Readers for the standard distribution files a user may already have (offline nodes).

- MNIST / Fashion-MNIST: the four idx files (``train-images-idx3-ubyte[.gz]``, ...), also as
  torchvision stores them in ``MNIST/raw/`` (``FashionMNIST/raw/``).
- CIFAR-10 / CIFAR-100: the "python version" pickles (``cifar-10-batches-py/data_batch_1``
  .. ``data_batch_5``, ``test_batch``; ``cifar-100-python/train``, ``test``).
- SVHN (cropped digits): ``train_32x32.mat`` and ``test_32x32.mat``.
- Tiny ImageNet: the ``tiny-imagenet-200`` folder (``wnids.txt``,
  ``train/<wnid>/images/*.JPEG``, ``val/images/*.JPEG`` + ``val/val_annotations.txt``),
  decoded with Pillow once and cached as ``.npz`` (:mod:`kerasparse.data._cache`).

Hand-written because no installed library reads these files without downloading its own copy
(``keras.datasets`` and torchvision fetch theirs); each format is a few lines. Each reader
has a ``find(folder)`` (the files it would read, or None) so that a folder's layout can be
detected (``--data-dir`` given any of these folders just works).
"""

import concurrent.futures
import dataclasses
import gzip
import hashlib
import os
import pickle
import zlib
from typing import Callable

import numpy as np

IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
_IDX_MAGIC = {3: 2051, 1: 2049}  # images (3 dims), labels (1 dim)
# md5 of the standard train-images-idx3-ubyte.gz of each (the published checksums): idx
# files do not say which dataset they hold, so a copy of the other one is recognised by it.
_IDX_TRAIN_MD5 = {
    "mnist": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "fashion_mnist": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
}


class FilesNotFound(ValueError):
    """A folder does not hold the files of the dataset asked for."""


@dataclasses.dataclass(frozen=True)
class Layout:
    """The files of one dataset: what to look for, where, and how to read them."""

    label: str  # e.g. "MNIST idx files"
    subfolders: tuple  # searched below the given folder ("" = the folder itself)
    names: tuple  # file (or folder) names that must all be present
    optional_suffix: str  # e.g. ".gz": each name may also carry it
    reader: Callable  # reader(found: {name: path}, cache_dir) -> arrays

    def expected(self):
        suffix = f"[{self.optional_suffix}]" if self.optional_suffix else ""
        names = ", ".join(n + suffix for n in self.names)
        where = ", ".join(repr(s) if s else "the folder itself" for s in self.subfolders)
        return f"{self.label} ({names}) in {where}"

    def find(self, folder):
        """``{name: path}`` in the first searched folder holding every name, else None."""
        for sub in self.subfolders:
            base = os.path.join(folder, sub) if sub else folder
            found = {}
            for name in self.names:
                for candidate in (name, name + self.optional_suffix) if self.optional_suffix \
                        else (name,):
                    path = os.path.join(base, candidate)
                    if os.path.exists(path):
                        found[name] = path
                        break
            if len(found) == len(self.names):
                return found
        return None

    def missing(self, folder):
        """``(base, [missing names])`` for the searched folder holding some but not all of
        the names (the most found), else None: what a partial copy lacks."""
        best = None
        suffixes = ("", self.optional_suffix) if self.optional_suffix else ("",)
        for sub in self.subfolders:
            base = os.path.join(folder, sub) if sub else folder
            lacking = [name for name in self.names if not any(
                os.path.exists(os.path.join(base, name + suffix)) for suffix in suffixes)]
            if 0 < len(lacking) < len(self.names) and (best is None or
                                                       len(lacking) < len(best[1])):
                best = (base, lacking)
        return best


def missing_text(name, folder):
    """`` It lacks val/val_annotations.txt (in <base>).`` for a partial copy of ``name``'s
    files in ``folder``, else ``""``."""
    partial = LAYOUTS[name].missing(folder)
    if partial is None:
        return ""
    base, lacking = partial
    return f" It lacks {', '.join(lacking)} (in {base})."


def read_idx(path, dims):
    """An idx file (optionally gzip-compressed) as a uint8 array with ``dims`` dimensions."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        reason = str(exc) or type(exc).__name__
        raise ValueError(f"{path} cannot be read ({reason}); is it a corrupted download?") from None
    magic = int.from_bytes(data[0:4], "big")
    if magic != _IDX_MAGIC[dims]:
        raise ValueError(
            f"{path} is not an idx file of {dims}-D uint8 data (magic number "
            f"{_IDX_MAGIC[dims]}). Received: magic={magic}"
        )
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims))
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims)
    if array.size != int(np.prod(shape)):
        raise ValueError(f"{path} is truncated: header says {shape}, found {array.size} bytes")
    return array.reshape(shape)


def _md5(path):
    with open(path, "rb") as f:
        return hashlib.md5(f.read()).hexdigest()


def _idx_reader(name):
    def read(found, cache_dir=None):
        path = found[IDX_FILES["x_train"]]
        digest = _md5(path) if path.endswith(".gz") else None
        for other, md5 in _IDX_TRAIN_MD5.items():
            if other != name and digest == md5:
                raise ValueError(
                    f"{path} is the {other} training set, not {name}'s (its md5 is the "
                    f"published {other} checksum): use --dataset {other}, or point the data "
                    f"folder at the {name} files"
                )
        x_train = read_idx(path, 3)[..., None]
        y_train = read_idx(found[IDX_FILES["y_train"]], 1)
        x_test = read_idx(found[IDX_FILES["x_test"]], 3)[..., None]
        y_test = read_idx(found[IDX_FILES["y_test"]], 1)
        return (x_train, y_train.astype("int32")), (x_test, y_test.astype("int32"))

    return read


def _unpickle(path):
    try:
        with open(path, "rb") as f:
            return pickle.load(f, encoding="bytes")
    except (pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise ValueError(f"{path} is not a CIFAR python batch ({exc})") from None


def _cifar_images(batch):
    return np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


_CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))


def _read_cifar10(found, cache_dir=None):
    batches = [_unpickle(found[name]) for name in _CIFAR10_TRAIN]
    test = _unpickle(found["test_batch"])
    x_train = np.ascontiguousarray(np.concatenate([_cifar_images(b) for b in batches]))
    y_train = np.concatenate([np.asarray(b[b"labels"]) for b in batches]).astype("int32")
    return (x_train, y_train), (np.ascontiguousarray(_cifar_images(test)),
                                np.asarray(test[b"labels"], "int32"))


def _read_cifar100(found, cache_dir=None):
    train, test = _unpickle(found["train"]), _unpickle(found["test"])
    return (
        (np.ascontiguousarray(_cifar_images(train)), np.asarray(train[b"fine_labels"], "int32")),
        (np.ascontiguousarray(_cifar_images(test)), np.asarray(test[b"fine_labels"], "int32")),
    )


def _read_svhn(found, cache_dir=None):
    import scipy.io

    def read(path):
        try:
            mat = scipy.io.loadmat(path)
        except Exception as exc:  # scipy raises several types for a bad file
            raise ValueError(f"{path} is not a readable .mat file ({exc})") from None
        labels = mat["y"].reshape(-1).astype("int32") % 10  # the files label digit 0 as 10
        return np.ascontiguousarray(mat["X"].transpose(3, 0, 1, 2)), labels

    return read(found["train_32x32.mat"]), read(found["test_32x32.mat"])


# --- Tiny ImageNet ------------------------------------------------------------------------------

TINY_IMAGENET_SHAPE = (64, 64, 3)
_VAL_ANNOTATIONS = os.path.join("val", "val_annotations.txt")


def _tiny_imagenet_files(root):
    """``(train, val, wnids)``: lists of (path, wnid) and the sorted class ids.

    Classes are numbered in sorted wnid order (what torchvision's ImageFolder does with the
    train folder); the labelled ``val`` folder is the test split.
    """
    with open(os.path.join(root, "wnids.txt")) as f:
        wnids = sorted({line.strip() for line in f if line.strip()})
    known = set(wnids)
    train = []
    for wnid in wnids:
        folder = os.path.join(root, "train", wnid, "images")
        if not os.path.isdir(folder):
            raise ValueError(f"{folder} is missing (wnids.txt lists {wnid})")
        names = sorted(n for n in os.listdir(folder) if n.lower().endswith((".jpeg", ".jpg")))
        train += [(os.path.join(folder, n), wnid) for n in names]
    val = []
    annotations = os.path.join(root, "val", "val_annotations.txt")
    with open(annotations) as f:
        for number, line in enumerate(f, 1):
            parts = line.split("\t")
            if not line.strip():
                continue
            if len(parts) < 2 or parts[1].strip() not in known:
                raise ValueError(
                    f"{annotations}, line {number}: expected 'file<TAB>wnid<TAB>...' with a "
                    f"wnid from wnids.txt. Received: {line.strip()[:80]!r}"
                )
            val.append((os.path.join(root, "val", "images", parts[0].strip()), parts[1].strip()))
    val.sort()
    return train, val, wnids


def _decode(paths, shape):
    """JPEG files -> uint8 array (n, H, W, 3), with Pillow, in threads (Pillow releases the
    GIL while decoding). Grayscale images (a few in Tiny ImageNet) become RGB."""
    from PIL import Image

    def one(path):
        try:
            with Image.open(path) as image:
                array = np.asarray(image.convert("RGB"))
        except OSError as exc:
            raise ValueError(f"{path} cannot be decoded as an image ({exc})") from None
        if array.shape != shape:
            raise ValueError(f"{path} is {array.shape[1]}x{array.shape[0]}, expected "
                             f"{shape[1]}x{shape[0]} (Tiny ImageNet images are 64x64)")
        return array

    out = np.empty((len(paths), *shape), np.uint8)
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        for i, array in enumerate(pool.map(one, paths, chunksize=256)):
            out[i] = array
    return out


def _read_tiny_imagenet(found, cache_dir=None):
    from kerasparse.data import _cache

    root = os.path.dirname(found["wnids.txt"])
    train, val, wnids = _tiny_imagenet_files(root)
    index = {w: i for i, w in enumerate(wnids)}

    def decode():
        x_train = _decode([p for p, _ in train], TINY_IMAGENET_SHAPE)
        x_test = _decode([p for p, _ in val], TINY_IMAGENET_SHAPE)
        y_train = np.array([index[w] for _, w in train], np.int32)
        y_test = np.array([index[w] for _, w in val], np.int32)
        return (x_train, y_train), (x_test, y_test)

    listing = [p for p, _ in train] + [p for p, _ in val] + [found["wnids.txt"],
                                                             found[_VAL_ANNOTATIONS]]
    return _cache.cached_arrays("tiny_imagenet", root, listing, decode, cache_dir)


LAYOUTS = {
    "mnist": Layout("MNIST idx files", ("", "raw", os.path.join("MNIST", "raw")),
                    tuple(IDX_FILES.values()), ".gz", _idx_reader("mnist")),
    "fashion_mnist": Layout("Fashion-MNIST idx files",
                            ("", "raw", os.path.join("FashionMNIST", "raw")),
                            tuple(IDX_FILES.values()), ".gz", _idx_reader("fashion_mnist")),
    "cifar10": Layout("CIFAR-10 python batches", ("", "cifar-10-batches-py"),
                      _CIFAR10_TRAIN + ("test_batch",), "", _read_cifar10),
    "cifar100": Layout("CIFAR-100 python files", ("", "cifar-100-python"), ("train", "test"),
                       "", _read_cifar100),
    "svhn_cropped": Layout("SVHN cropped-digit files", ("",),
                           ("train_32x32.mat", "test_32x32.mat"), "", _read_svhn),
    "tiny_imagenet": Layout("the tiny-imagenet-200 folder", ("", "tiny-imagenet-200"),
                            ("wnids.txt", "train", _VAL_ANNOTATIONS), "", _read_tiny_imagenet),
}


def detect(folder):
    """Names of the datasets whose files ``folder`` holds (in any accepted layout)."""
    return [name for name, layout in LAYOUTS.items() if layout.find(folder) is not None]


def describe_detected(folder, exclude=()):
    """`` It holds: MNIST idx files (--dataset mnist or fashion_mnist).`` or ``""``."""
    found = [n for n in detect(folder) if n not in exclude]
    if not found:
        return ""
    if {"mnist", "fashion_mnist"} <= set(found):  # the same file names
        found = [n for n in found if n != "fashion_mnist"]
        return " It holds idx files (--dataset mnist or fashion_mnist)." if len(found) == 1 \
            else " It holds: " + ", ".join(
                f"{LAYOUTS[n].label} (--dataset {n})" for n in found) + "."
    return " It holds: " + ", ".join(f"{LAYOUTS[n].label} (--dataset {n})" for n in found) + "."


def read(name, folder, cache_dir=None, argument="data_dir"):
    """The arrays of dataset ``name`` from the standard files in ``folder``.

    Raises:
        FilesNotFound: the folder holds no such files (the message lists what was expected,
            where, and which other datasets' files the folder holds).
    """
    layout = LAYOUTS[name]
    found = layout.find(folder)
    if found is None:
        flag = "--" + argument.replace("_", "-")
        raise FilesNotFound(
            f"{argument} ({flag}) holds no {name} files: expected {layout.expected()}."
            f"{missing_text(name, folder)}"
            f"{describe_detected(folder, exclude=(name,))} Received: {argument}={str(folder)!r}"
        )
    return layout.reader(found, cache_dir)

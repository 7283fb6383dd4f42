"""Readers for the standard distribution files a user may already have (offline nodes).

- MNIST / Fashion-MNIST: the four idx files (``train-images-idx3-ubyte[.gz]``, ...), as
  torchvision stores them in ``MNIST/raw/`` (``FashionMNIST/raw/``).
- CIFAR-10 / CIFAR-100: the "python version" pickles (``cifar-10-batches-py/data_batch_1``
  .. ``data_batch_5``, ``test_batch``; ``cifar-100-python/train``, ``test``).
- SVHN (cropped digits): ``train_32x32.mat`` and ``test_32x32.mat``.

Hand-written because no installed library reads these files without downloading them
(``keras.datasets`` and torchvision fetch their own copies); each format is a few lines.
"""

import gzip
import os
import pickle

import numpy as np

IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
_IDX_MAGIC = {3: 2051, 1: 2049}  # images (3 dims), labels (1 dim)


def _missing(name, files_dir, expected, folders):
    searched = ", ".join(str(f) for f in folders)
    return ValueError(
        f"files_dir does not hold the {name} files: expected {', '.join(expected)} in one of "
        f"{searched}. Received: files_dir={str(files_dir)!r}"
    )


def _find_folder(files_dir, subfolders, names, optional_suffix=""):
    """``({name: path}, folders)`` for the first folder holding every name.

    ``(None, folders)`` when none does.
    """
    folders = [os.path.join(files_dir, sub) if sub else files_dir for sub in subfolders]
    for folder in folders:
        found = {}
        for name in names:
            for candidate in (name, name + optional_suffix) if optional_suffix else (name,):
                path = os.path.join(folder, candidate)
                if os.path.isfile(path):
                    found[name] = path
                    break
        if len(found) == len(names):
            return found, folders
    return None, folders


def read_idx(path, dims):
    """An idx file (optionally gzip-compressed) as a uint8 array with ``dims`` dimensions."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
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


def load_idx(files_dir, raw_folder):
    """MNIST-format idx files from ``files_dir`` or ``files_dir/<raw_folder>/raw``."""
    result, folders = _find_folder(
        files_dir, ["", "raw", os.path.join(raw_folder, "raw")], list(IDX_FILES.values()), ".gz"
    )
    if result is None:
        expected = [f"{n}[.gz]" for n in IDX_FILES.values()]
        raise _missing(raw_folder, files_dir, expected, folders)
    x_train = read_idx(result[IDX_FILES["x_train"]], 3)[..., None]
    y_train = read_idx(result[IDX_FILES["y_train"]], 1)
    x_test = read_idx(result[IDX_FILES["x_test"]], 3)[..., None]
    y_test = read_idx(result[IDX_FILES["y_test"]], 1)
    return (x_train, y_train.astype("int32")), (x_test, y_test.astype("int32"))


def _unpickle(path):
    with open(path, "rb") as f:
        return pickle.load(f, encoding="bytes")


def _cifar_images(batch):
    return np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


def load_cifar10(files_dir):
    train_names = [f"data_batch_{i}" for i in range(1, 6)]
    result, folders = _find_folder(
        files_dir, ["", "cifar-10-batches-py"], train_names + ["test_batch"]
    )
    if result is None:
        raise _missing("CIFAR-10 (python version)", files_dir, train_names + ["test_batch"],
                       folders)
    batches = [_unpickle(result[name]) for name in train_names]
    test = _unpickle(result["test_batch"])
    x_train = np.concatenate([_cifar_images(b) for b in batches])
    y_train = np.concatenate([np.asarray(b[b"labels"]) for b in batches]).astype("int32")
    return (x_train, y_train), (_cifar_images(test), np.asarray(test[b"labels"], "int32"))


def load_cifar100(files_dir):
    result, folders = _find_folder(files_dir, ["", "cifar-100-python"], ["train", "test"])
    if result is None:
        raise _missing("CIFAR-100 (python version)", files_dir, ["train", "test"], folders)
    train, test = _unpickle(result["train"]), _unpickle(result["test"])
    return (
        (_cifar_images(train), np.asarray(train[b"fine_labels"], "int32")),
        (_cifar_images(test), np.asarray(test[b"fine_labels"], "int32")),
    )


def load_svhn(files_dir):
    import scipy.io

    names = ["train_32x32.mat", "test_32x32.mat"]
    result, folders = _find_folder(files_dir, [""], names)
    if result is None:
        raise _missing("SVHN (cropped digits)", files_dir, names, folders)

    def read(path):
        mat = scipy.io.loadmat(path)
        labels = mat["y"].reshape(-1).astype("int32") % 10  # the files label digit 0 as 10
        return np.ascontiguousarray(mat["X"].transpose(3, 0, 1, 2)), labels

    return read(result[names[0]]), read(result[names[1]])

"""Where a dataset's arrays come from besides files: downloads through Keras, and tfds.

- ``download(name)``: ``keras.datasets`` (MNIST, Fashion-MNIST, CIFAR-10/100) or
  ``keras.utils.get_file`` (Tiny ImageNet's zip), cached in ``~/.keras/datasets`` by Keras.
  No TensorFlow. The network call is :func:`_keras_load_data` / :func:`_fetch_tiny_imagenet`
  (one function each, replaced by the tests, which run offline).
- ``from_tfds(name, data_dir)``: tensorflow-datasets (needs the ``[tfds]`` extra and
  TensorFlow), read into memory through ``tfds.as_numpy``.
"""

import importlib.util
import os

import numpy as np


class MissingDependencyError(ImportError):
    """An optional dependency needed for this request is not installed (one line naming the
    extra to install)."""


TFDS_HINT = "pip install 'kerasparse[tfds]'"
TF_HINT = "pip install 'kerasparse[tensorflow]' (or tensorflow-cpu)"

# keras.datasets module and load_data arguments per dataset.
KERAS_DATASETS = {
    "mnist": ("mnist", {}),
    "fashion_mnist": ("fashion_mnist", {}),
    "cifar10": ("cifar10", {}),
    "cifar100": ("cifar100", {"label_mode": "fine"}),
}
TINY_IMAGENET_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
TINY_IMAGENET_MD5 = "90528d7ca1a48142e341f4ef8d21d0de"
DOWNLOADABLE = tuple(KERAS_DATASETS) + ("tiny_imagenet",)


class DownloadError(ValueError):
    pass


def _keras_load_data(module, kwargs):
    """``keras.datasets.<module>.load_data(**kwargs)`` (downloads into ~/.keras/datasets
    unless cached there)."""
    import importlib

    return importlib.import_module(f"keras.datasets.{module}").load_data(**kwargs)


def _fetch_tiny_imagenet():
    """The extracted tiny-imagenet-200 folder under ~/.keras/datasets (downloaded once)."""
    import keras

    extracted = keras.utils.get_file(
        "tiny-imagenet-200.zip", TINY_IMAGENET_URL, md5_hash=TINY_IMAGENET_MD5, extract=True
    )
    return os.path.join(extracted, "tiny-imagenet-200")


def _offline_hint(name):
    return (f"Offline? Pass --data-dir (data_dir=) a folder of the standard {name} files, "
            "see docs/data.md")


def download(name, cache_dir=None):
    """``((x_train, y_train), (x_test, y_test))`` of ``name`` through Keras, and the source
    description. Raises :class:`DownloadError` (one line) when the download fails."""
    if name == "tiny_imagenet":
        from kerasparse.data import _files

        try:
            folder = _fetch_tiny_imagenet()
        except Exception as exc:  # urllib/hash/zip errors: report them in one line
            raise DownloadError(
                f"could not download tiny_imagenet from {TINY_IMAGENET_URL}: "
                f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}. "
                f"{_offline_hint(name)}"
            ) from None
        return _files.read(name, folder, cache_dir), f"keras.utils.get_file:{folder}"
    module, kwargs = KERAS_DATASETS[name]
    try:
        (x_train, y_train), (x_test, y_test) = _keras_load_data(module, kwargs)
    except ImportError as exc:  # an install gap, not "offline"
        raise DownloadError(
            f"could not load {name} with keras.datasets.{module}: a module it needs is "
            f"missing ({exc}); repair the install, or pass --data-dir (data_dir=) a folder "
            f"of the standard {name} files"
        ) from None
    except Exception as exc:  # urllib raises many types when offline
        text = str(exc).splitlines()[0][:200] if str(exc) else ""
        raise DownloadError(
            f"could not download {name} with keras.datasets.{module}: "
            f"{type(exc).__name__}: {text}. {_offline_hint(name)}"
        ) from None
    arrays = (_nhwc(x_train), _labels(y_train)), (_nhwc(x_test), _labels(y_test))
    return arrays, f"keras.datasets.{module}"


def _nhwc(x):
    x = np.asarray(x, dtype=np.uint8)
    if x.ndim == 3:  # MNIST-like (n, 28, 28)
        return x[..., None]
    if x.shape[1] in (1, 3) and x.shape[-1] not in (1, 3):  # channels_first image format
        x = x.transpose(0, 2, 3, 1)
    return np.ascontiguousarray(x)


def _labels(y):
    return np.asarray(y).reshape(-1).astype("int32")


# --- tensorflow-datasets ----------------------------------------------------------------------


def tfds_prepared(data_dir, tfds_name):
    """Whether ``data_dir`` holds a prepared tfds copy of ``tfds_name``
    (``<tfds_name>/[<config>/]<version>/dataset_info.json``), checked without importing tfds."""
    base = os.path.join(data_dir, tfds_name)
    if not os.path.isdir(base):
        return False
    for root, dirs, files in os.walk(base):
        if "dataset_info.json" in files:
            return True
        if root.count(os.sep) - base.count(os.sep) >= 2:
            dirs[:] = []
    return False


def tfds_installed():
    return importlib.util.find_spec("tensorflow_datasets") is not None


def _require_tfds():
    if not tfds_installed():
        raise MissingDependencyError(
            f"tensorflow-datasets is not installed; install it with {TFDS_HINT}"
        )
    if importlib.util.find_spec("tensorflow") is None:
        raise MissingDependencyError(f"tensorflow-datasets needs TensorFlow; install it with "
                                     f"{TF_HINT}")
    try:
        import tensorflow_datasets as tfds
    except ImportError as exc:
        raise MissingDependencyError(
            f"tensorflow-datasets cannot be imported ({exc}); reinstall it with {TFDS_HINT}"
        ) from None
    return tfds


def from_tfds(tfds_name, data_dir=None, download=True):
    """Both splits of a tfds dataset as uint8/int32 numpy arrays."""
    tfds = _require_tfds()
    try:
        splits = tfds.load(tfds_name, split=["train", "test"], data_dir=data_dir,
                           as_supervised=True, download=download)
        arrays = []
        for ds in splits:
            xs, ys = [], []
            # ds.batch, not tfds.load(batch_size=-1): the latter aborts under mock_data.
            for x, y in tfds.as_numpy(ds.batch(10000)):
                xs.append(np.asarray(x, dtype=np.uint8))
                ys.append(np.asarray(y, dtype=np.int32))
            arrays.append((np.concatenate(xs), np.concatenate(ys)))
    except ImportError as exc:  # e.g. importlib_resources: an install gap, not "offline"
        raise MissingDependencyError(
            f"tensorflow-datasets could not load {tfds_name!r}: a module it needs is missing "
            f"({exc}); install what it needs with {TFDS_HINT}"
        ) from None
    except Exception as exc:  # tfds raises many types (download, missing files, ...)
        raise ValueError(
            f"tensorflow-datasets could not load {tfds_name!r} (offline, or not prepared "
            f"in data_dir): {type(exc).__name__}: {str(exc).splitlines()[0][:200]}. Pass "
            f"--data-dir (data_dir=) a folder of the standard files or a tfds data_dir where "
            f"it is prepared. Received: data_dir={data_dir!r}"
        ) from None
    return tuple(arrays)

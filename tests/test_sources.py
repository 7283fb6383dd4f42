"""Where the data comes from: --data-dir layout detection, Tiny ImageNet (decoded with Pillow,
cached), Keras downloads (the network call replaced, these machines are offline), and
tensorflow-datasets through its real code path from a data_dir prepared in the test."""

import pathlib
import pickle

import numpy as np
import pytest

from kerasparse.data import _files, _sources, load, load_arrays

REPO = pathlib.Path(__file__).resolve().parents[1]
MNIST_DIR = REPO.parent / "shared" / "data" / "mnist"
needs_mnist = pytest.mark.skipif(
    not (MNIST_DIR / "train-images-idx3-ubyte.gz").is_file(),
    reason=f"the real MNIST files are not at {MNIST_DIR} (../shared/data/mnist from the repo)",
)

# --- Tiny ImageNet ------------------------------------------------------------------------------

WNIDS = ["n09999999", "n01443537", "n02124075"]  # not sorted: labels follow the sorted order


def _colour(label):
    return np.array([40 + 60 * label, 200 - 50 * label, 30 * label + 10], np.uint8)


def _fake_tiny_imagenet(root):
    """A tiny-imagenet-200 folder: 3 classes x 2 training images, 4 labelled val images.
    Every image of class c is the flat colour _colour(c) (JPEG keeps flat colours to within
    a few levels); one training image is grayscale, as a few in the real set are."""
    from PIL import Image

    base = pathlib.Path(root) / "tiny-imagenet-200"
    (base / "val" / "images").mkdir(parents=True)
    (base / "wnids.txt").write_text("\n".join(WNIDS) + "\n")
    labels = {w: i for i, w in enumerate(sorted(WNIDS))}
    for wnid in WNIDS:
        folder = base / "train" / wnid / "images"
        folder.mkdir(parents=True)
        for k in range(2):
            colour = _colour(labels[wnid])
            if wnid == WNIDS[0] and k == 1:
                Image.new("L", (64, 64), int(colour[0])).save(folder / f"{wnid}_{k}.JPEG")
            else:
                Image.new("RGB", (64, 64), tuple(int(c) for c in colour)).save(
                    folder / f"{wnid}_{k}.JPEG", quality=95)
        (base / "train" / wnid / f"{wnid}_boxes.txt").write_text("")
    lines = []
    for k, wnid in enumerate([WNIDS[2], WNIDS[0], WNIDS[1], WNIDS[2]]):
        name = f"val_{k}.JPEG"
        Image.new("RGB", (64, 64), tuple(int(c) for c in _colour(labels[wnid]))).save(
            base / "val" / "images" / name, quality=95)
        lines.append(f"{name}\t{wnid}\t0\t0\t63\t63")
    (base / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return base


def test_tiny_imagenet_folder_is_decoded_labelled_and_cached(tmp_path, monkeypatch):
    root = _fake_tiny_imagenet(tmp_path / "data")
    cache = tmp_path / "cache"
    # The parent folder or the folder itself: the layout is detected either way.
    bundle = load("tiny_imagenet", data_dir=tmp_path / "data", batch_size=4, cache_dir=cache)
    assert bundle.source == f"files:{tmp_path / 'data'}" and bundle.input_shape == (64, 64, 3)
    assert bundle.num_classes == 200 and (bundle.num_train, bundle.num_test) == (6, 4)
    ((x, y), (xt, yt)), _ = load_arrays("tiny_imagenet", data_dir=root, cache_dir=cache)
    assert x.dtype == np.uint8 and x.shape == (6, 64, 64, 3)
    # Sorted wnids: n01443537 -> 0, n02124075 -> 1, n09999999 -> 2; val follows its file.
    np.testing.assert_array_equal(y, [0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(yt, [1, 2, 0, 1])
    for images, labels in ((x, y), (xt, yt)):
        for image, label in zip(images, labels):
            expected = _colour(label).astype(int)
            if label == 2 and image.std(axis=-1).max() == 0:  # the grayscale image
                expected = np.full(3, expected[0])
            assert np.abs(image.astype(int) - expected).max() <= 3
    entries = list(cache.glob("tiny_imagenet-*.npz"))
    assert len(entries) == 1
    # A second load reads the cache (decoding would fail now) ...
    monkeypatch.setattr(_files, "_decode", lambda *a, **k: pytest.fail("decoded again"))
    ((x2, y2), _), _ = load_arrays("tiny_imagenet", data_dir=root, cache_dir=cache)
    np.testing.assert_array_equal(x2, x)
    np.testing.assert_array_equal(y2, y)
    # ... and a changed folder (one more image) makes a new entry.
    monkeypatch.undo()
    from PIL import Image

    Image.new("RGB", (64, 64), (1, 2, 3)).save(root / "train" / WNIDS[1] / "images" / "x.JPEG")
    ((x3, _), _), _ = load_arrays("tiny_imagenet", data_dir=root, cache_dir=cache)
    assert len(x3) == 7 and len(list(cache.glob("tiny_imagenet-*.npz"))) == 2


def test_tiny_imagenet_bad_folder(tmp_path):
    root = _fake_tiny_imagenet(tmp_path)
    (root / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn00000000\t0\t0\t1\t1\n")
    with pytest.raises(ValueError, match=r"val_annotations.txt, line 1: .*wnid from wnids.txt"):
        load_arrays("tiny_imagenet", data_dir=root, cache_dir=tmp_path / "c")
    with pytest.raises(ValueError, match=r"tiny-imagenet-200 folder \(wnids.txt, train, "
                                         r"val/val_annotations.txt\)"):
        load("tiny_imagenet", data_dir=root / "train")


# --- layout detection ---------------------------------------------------------------------------


def _cifar10(folder):
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name, n in [(f"data_batch_{i}", 2) for i in range(1, 6)] + [("test_batch", 3)]:
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                         b"labels": list(rng.integers(0, 10, n))}, f)


@needs_mnist
def test_data_dir_detects_each_layout_and_lists_what_is_expected(tmp_path):
    import scipy.io

    (tmp_path / "mnist").mkdir()
    for f in MNIST_DIR.glob("*.gz"):
        (tmp_path / "mnist" / f.name).symlink_to(f)
    _cifar10(tmp_path / "c10" / "cifar-10-batches-py")
    images = np.zeros((32, 32, 3, 2), np.uint8)
    (tmp_path / "svhn").mkdir()
    for name in ("train_32x32.mat", "test_32x32.mat"):
        scipy.io.savemat(tmp_path / "svhn" / name, {"X": images, "y": np.array([[10], [3]])})
    for name, folder, n in [("mnist", "mnist", 60000), ("cifar10", "c10", 10),
                            ("svhn_cropped", "svhn", 2)]:
        ((x, _), _), source = load_arrays(name, data_dir=tmp_path / folder)
        assert source == f"files:{tmp_path / folder}" and len(x) == n
    # The wrong dataset for the folder: what was expected, and what the folder holds.
    with pytest.raises(ValueError) as info:
        load("cifar10", data_dir=tmp_path / "mnist")
    text = str(info.value)
    assert "data_batch_1" in text and "cifar-10-batches-py" in text
    assert "cifar10/<version>/dataset_info.json" in text  # or a tfds data_dir
    assert "--dataset mnist or fashion_mnist" in text
    assert f"data_dir={str(tmp_path / 'mnist')!r}" in text
    with pytest.raises(ValueError, match="is the mnist training set, not fashion_mnist's"):
        load("fashion_mnist", data_dir=tmp_path / "mnist")


# --- Keras downloads (offline here: the network call is replaced) --------------------------------


def test_keras_download_is_the_default_without_a_folder(monkeypatch):
    import keras

    calls = []

    def fake_load_data(**kwargs):
        calls.append(kwargs)
        rng = np.random.default_rng(0)
        # Keras' own format: (n, 32, 32, 3) uint8 and labels of shape (n, 1).
        return ((rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8),
                 rng.integers(0, 100, (20, 1), dtype=np.uint8)),
                (rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8),
                 rng.integers(0, 100, (5, 1), dtype=np.uint8)))

    monkeypatch.setattr(keras.datasets.cifar100, "load_data", fake_load_data)
    bundle = load("cifar100", batch_size=8)
    assert calls == [{"label_mode": "fine"}]
    assert bundle.source == "keras.datasets.cifar100" and bundle.num_train == 20
    x, y = bundle.train[0]
    assert x.shape == (8, 32, 32, 3) and y.dtype == np.int32 and y.shape == (8,)

    def offline(**kwargs):
        raise Exception("URL fetch failure on https://www.cs.toronto.edu/...: None -- "
                        "[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(keras.datasets.cifar100, "load_data", offline)
    with pytest.raises(ValueError, match=r"could not download cifar100 with "
                                         r"keras.datasets.cifar100: .*Offline\? Pass --data-dir"):
        load("cifar100")


def test_tiny_imagenet_download_goes_through_keras_get_file(tmp_path, monkeypatch):
    import keras

    root = _fake_tiny_imagenet(tmp_path / "tiny-imagenet-200_extracted")
    calls = []

    def fake_get_file(fname, origin, **kwargs):
        calls.append((fname, origin, kwargs))
        return str(root.parent)

    monkeypatch.setattr(keras.utils, "get_file", fake_get_file)
    ((x, y), _), source = load_arrays("tiny_imagenet", cache_dir=tmp_path / "cache")
    assert calls == [("tiny-imagenet-200.zip", _sources.TINY_IMAGENET_URL,
                      {"md5_hash": _sources.TINY_IMAGENET_MD5, "extract": True})]
    assert source == f"keras.utils.get_file:{root}" and x.shape == (6, 64, 64, 3)


def test_svhn_without_a_folder_needs_tfds(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "tensorflow_datasets" else real(name, *a))
    with pytest.raises(ImportError, match=r"pip install 'kerasparse\[tfds\]'.*--data-dir"):
        load("svhn_cropped")


# --- tensorflow-datasets, for real ------------------------------------------------------------


def test_tfds_loads_a_prepared_data_dir_through_its_real_code_path(tmp_path):
    """A data_dir prepared with tfds' own writer (mnist 3.0.1, 30 + 12 examples); loading it
    runs the registered MNIST builder, tfds' reader and decoders, as for a user's copy. A
    broken tensorflow-datasets install (e.g. a missing module) fails here."""
    tfds = pytest.importorskip("tensorflow_datasets")
    rng = np.random.default_rng(0)
    stored = {split: [(rng.integers(0, 256, (28, 28, 1), dtype=np.uint8), int(i % 10))
                      for i in range(n)] for split, n in (("train", 30), ("test", 12))}
    features = tfds.features.FeaturesDict({
        "image": tfds.features.Image(shape=(28, 28, 1)),
        "label": tfds.features.ClassLabel(num_classes=10),
    })
    tfds.dataset_builders.store_as_tfds_dataset(
        name="mnist", version="3.0.1", features=features, data_dir=str(tmp_path),
        split_datasets={split: [(i, {"image": x, "label": y}) for i, (x, y) in enumerate(rows)]
                        for split, rows in stored.items()},
    )
    # Detected as a tfds data_dir (no idx files there), loaded without any download.
    bundle = load("mnist", data_dir=tmp_path, batch_size=8)
    assert bundle.source == f"tfds:{tmp_path}"
    assert (bundle.num_train, bundle.num_test) == (30, 12)
    ((x, y), (xt, yt)), _ = load_arrays("mnist", data_dir=tmp_path)
    for (images, labels), split in (((x, y), "train"), ((xt, yt), "test")):
        got = sorted((img.tobytes(), int(lab)) for img, lab in zip(images, labels))
        want = sorted((img.tobytes(), lab) for img, lab in stored[split])
        assert got == want  # tfds reorders examples; the contents are exact (PNG)

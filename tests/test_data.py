"""kerasparse.data: the embedded dataset, file readers, tfds (mocked here; for real in
tests/test_tfds.py), normalisation, splits, the NumPy pipeline's order and augmentation.

The real MNIST files are looked up at ../shared/data/mnist relative to the repository root.
"""

import gzip
import pathlib
import pickle

import numpy as np
import pytest

import keras
from conftest import BACKEND

from kerasparse.data import DATASETS, load, load_arrays
from kerasparse.data import embedded

REPO = pathlib.Path(__file__).resolve().parents[1]
MNIST_DIR = REPO.parent / "shared" / "data" / "mnist"
needs_mnist = pytest.mark.skipif(
    not (MNIST_DIR / "train-images-idx3-ubyte.gz").is_file(),
    reason=f"the real MNIST files are not at {MNIST_DIR} (../shared/data/mnist from the repo)",
)


def _uint8(bundle, x):
    """Undo the channel normalisation of a bundle: back to uint8 pixels."""
    norm = bundle.normalization
    x = (np.asarray(x) * np.asarray(norm["std"]) + np.asarray(norm["mean"])) * 255.0
    return np.round(x).astype(np.int64)


def _all(ds):
    xs, ys = zip(*[(np.asarray(x), np.asarray(y)) for x, y in ds])
    return np.concatenate(xs), np.concatenate(ys)


# --- embedded ---------------------------------------------------------------------------


def test_embedded_images_do_not_depend_on_the_chunk_size(monkeypatch):
    """The embedded images are generated a chunk of images at a time (small temporaries);
    whole-split generation (one chunk) gives the same bytes, across chunk boundaries and for
    a partial last chunk."""
    chunked = embedded.generate(601, 7)
    assert embedded._CHUNK < 601
    monkeypatch.setattr(embedded, "_CHUNK", 10**6)
    whole = embedded.generate(601, 7)
    assert np.array_equal(chunked[0], whole[0]) and np.array_equal(chunked[1], whole[1])
    assert chunked[0].dtype == np.uint8 and chunked[0].shape == (601, 32, 32, 3)


def test_embedded_is_fixed_balanced_and_needs_a_nonlinear_model():
    (x, y), (xt, yt) = embedded.load_arrays()
    (x2, y2), _ = embedded.load_arrays()
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    assert x.shape == (5000, 32, 32, 3) and x.dtype == np.uint8
    assert xt.shape == (1000, 32, 32, 3)
    np.testing.assert_array_equal(np.bincount(y), [500] * 10)
    # A ridge-regression (linear) classifier on the pixels is near chance ...
    x, y = x[:2500], y[:2500]  # half the training set keeps the solves quick
    flat = x.reshape(len(x), -1) / 255.0
    mu = flat.mean(0)
    flat, flat_t = flat - mu, xt.reshape(len(xt), -1) / 255.0 - mu
    onehot = np.eye(10)[y]
    w = np.linalg.solve(flat.T @ flat + 10 * np.eye(flat.shape[1]), flat.T @ onehot)
    linear_acc = np.mean(np.argmax(flat_t @ w, 1) == yt)
    # ... while the same classifier on Fourier magnitudes (orientation/frequency energy)
    # does well: the labels are learnable, but not linearly from pixels.
    def energy(images):
        return np.abs(np.fft.fft2(images.mean(-1) / 255.0, axes=(1, 2))).reshape(len(images), -1)

    e, et = energy(x), energy(xt)
    m, s = e.mean(0), e.std(0) + 1e-6
    e, et = (e - m) / s, (et - m) / s
    w = np.linalg.solve(e.T @ e + 100 * np.eye(e.shape[1]), e.T @ onehot)
    energy_acc = np.mean(np.argmax(et @ w, 1) == yt)
    assert linear_acc < 0.2
    assert energy_acc > 0.7


def test_load_embedded_channel_normalisation():
    bundle = load("embedded", batch_size=500)
    assert bundle.num_classes == 10 and bundle.input_shape == (32, 32, 3)
    assert (bundle.num_train, bundle.num_val, bundle.num_test) == (5000, 0, 1000)
    assert bundle.val is None and bundle.source == "generated"
    x, y = _all(bundle.train)
    assert x.dtype == np.float32 and y.dtype == np.int32 and len(x) == 5000
    # Statistics computed from the training split: the normalised split has mean 0, std 1.
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(x64.mean(axis=(0, 1, 2)), 0.0, atol=1e-4)
    np.testing.assert_allclose(x64.std(axis=(0, 1, 2)), 1.0, atol=1e-4)
    # The training pipeline is shuffled but holds exactly the training set.
    (x_raw, y_raw), _ = embedded.load_arrays()
    assert not np.array_equal(y, y_raw)
    np.testing.assert_array_equal(np.sort(y), np.sort(y_raw))
    rows = sorted(r.tobytes() for r in _uint8(bundle, x).reshape(len(x), -1))
    rows_raw = sorted(r.astype(np.int64).tobytes() for r in x_raw.reshape(len(x_raw), -1))
    assert rows == rows_raw


def test_q_star_scales_each_example():
    bundle = load("embedded", batch_size=64, q_star=3.0)
    x, _ = next(iter(bundle.train))
    flat = x.reshape(len(x), -1).astype(np.float64)
    np.testing.assert_allclose(flat.mean(1), 0.0, atol=1e-5)
    np.testing.assert_allclose(flat.var(1), 3.0, rtol=1e-4)
    assert bundle.normalization == {"kind": "per_example", "q_star": 3.0}
    xs, _ = bundle.sample(7)
    np.testing.assert_allclose(xs.reshape(7, -1).var(1), 3.0, rtol=1e-4)


def test_validation_split_is_a_seeded_partition():
    bundle = load("embedded", batch_size=1000, validation_split=0.1, seed=7)
    assert (bundle.num_train, bundle.num_val) == (4500, 500)
    xv, yv = _all(bundle.val)
    xt, yt = _all(bundle.train)
    key = lambda a: {row.tobytes() for row in _uint8(bundle, a).reshape(len(a), -1)}  # noqa: E731
    val_rows, train_rows = key(xv), key(xt)
    (x_raw, _), _ = embedded.load_arrays()
    all_rows = {row.astype(np.int64).tobytes() for row in x_raw.reshape(len(x_raw), -1)}
    assert not val_rows & train_rows
    assert val_rows | train_rows == all_rows
    again = load("embedded", batch_size=1000, validation_split=0.1, seed=7)
    np.testing.assert_array_equal(_all(again.val)[1], yv)
    other = load("embedded", batch_size=1000, validation_split=0.1, seed=8)
    assert not np.array_equal(_all(other.val)[1], yv)


def test_augmentation_is_a_random_shift_of_the_image(tmp_path):
    bundle = load("cifar10", batch_size=16, augment=True, max_train_examples=1,
                  files_dir=_fake_cifar10(tmp_path))
    original = bundle._x_train[0].astype(np.int64)
    padded = np.pad(original, ((4, 4), (4, 4), (0, 0)))
    candidates = [padded[i:i + 32, j:j + 32] for i in range(9) for j in range(9)]
    candidates += [c[:, ::-1] for c in candidates]
    seen_shift = seen_flip = False
    for _ in range(12):  # a whole pass each time (one batch): a new pass, new draws
        x, _ = next(iter(bundle.train))
        img = _uint8(bundle, x[0])
        matches = [k for k, c in enumerate(candidates) if np.array_equal(c, img)]
        assert matches, "augmented image is not a crop (+ flip) of the padded original"
        seen_shift |= any(k % 81 != 40 for k in matches)
        seen_flip |= all(k >= 81 for k in matches)
    assert seen_shift and seen_flip


def _rows(bundle, x):
    return [row.tobytes() for row in _uint8(bundle, x).reshape(len(x), -1)]


def test_train_epochs_is_a_replayable_per_epoch_shuffle():
    bundle = load("embedded", batch_size=64, max_train_examples=200, seed=5)
    assert bundle.steps_per_epoch() == 4 and bundle.steps_per_epoch(3) == 3
    batches = [(x, y) for x, y in bundle.train_epochs(3)]
    assert [len(b[1]) for b in batches] == [64, 64, 64, 8] * 3
    stored = _rows(bundle, bundle.train_arrays()[0])
    epochs = [np.concatenate([b[0] for b in batches[4 * e:4 * e + 4]]) for e in range(3)]
    orders = []
    for x in epochs:  # each epoch is a permutation of the training set
        rows = _rows(bundle, x)
        assert sorted(rows) == sorted(stored)
        orders.append([stored.index(r) for r in rows])
    assert orders[0] != orders[1] != orders[2]  # reshuffled every epoch
    # Replay: epoch 2 alone (a resumed run) gives exactly epoch 2 of the full pipeline, and a
    # second bundle with the same seed gives the same batches; another seed does not.
    again = load("embedded", batch_size=64, max_train_examples=200, seed=5)
    tail = np.concatenate([x for x, _ in again.train_epochs(3, initial_epoch=2)])
    np.testing.assert_array_equal(tail, epochs[2])
    other = load("embedded", batch_size=64, max_train_examples=200, seed=6)
    assert not np.array_equal(next(iter(other.train_epochs(1)))[0], batches[0][0])
    # The cap: each epoch restarts at its own shuffle after `steps_per_epoch` batches.
    capped = [x for x, _ in bundle.train_epochs(2, steps_per_epoch=2)]
    assert len(capped) == 4
    np.testing.assert_array_equal(capped[2], batches[4][0])
    with pytest.raises(ValueError, match="initial_epoch=3, epochs=3"):
        bundle.train_epochs(3, initial_epoch=3)


def test_train_epochs_augmentation_is_per_example_and_replayable(tmp_path):
    bundle = load("cifar10", batch_size=8, augment=True, max_train_examples=8,
                  files_dir=_fake_cifar10(tmp_path))
    x_raw = bundle._x_train.astype(np.int64)
    padded = np.pad(x_raw, ((0, 0), (4, 4), (4, 4), (0, 0)))
    first = [x for x, _ in bundle.train_epochs(2)]
    shifts = set()
    for x in first:
        for img in _uint8(bundle, x):
            found = [(i, j, f) for n in range(8) for i in range(9) for j in range(9)
                     for f in (False, True)
                     if np.array_equal((padded[n, i:i + 32, j:j + 32])[:, ::-1] if f
                                       else padded[n, i:i + 32, j:j + 32], img)]
            assert found, "augmented image is not a crop (+ flip) of a padded original"
            shifts.update(found)
    assert len(shifts) > 4  # different crops/flips across examples of one batch and epochs
    replay = [x for x, _ in bundle.train_epochs(2, initial_epoch=1)]
    np.testing.assert_array_equal(replay[0], first[1])


def test_sample_is_normalised_training_data():
    bundle = load("embedded", batch_size=32)
    x, y = bundle.sample(10, seed=1)
    assert x.shape == (10, 32, 32, 3) and x.dtype == np.float32 and y.shape == (10,)
    x2, y2 = bundle.sample(10, seed=1)
    np.testing.assert_array_equal(x, x2)
    raw = _uint8(bundle, x)
    rows = {r.astype(np.int64).tobytes() for r in bundle._x_train.reshape(5000, -1)}
    assert all(r.tobytes() in rows for r in raw.reshape(10, -1))


# --- files ------------------------------------------------------------------------------


@needs_mnist
def test_real_mnist_files():
    (x, y), (xt, yt) = load_arrays("mnist", files_dir=MNIST_DIR)[0]
    assert x.shape == (60000, 28, 28, 1) and xt.shape == (10000, 28, 28, 1)
    # The published class counts of MNIST's training and test sets.
    np.testing.assert_array_equal(
        np.bincount(y), [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949])
    np.testing.assert_array_equal(
        np.bincount(yt), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])
    bundle = load("mnist", files_dir=MNIST_DIR, batch_size=256)
    # The usual MNIST normalisation constants (mean 0.1307, std 0.3081).
    assert bundle.normalization["mean"][0] == pytest.approx(0.1307, abs=1e-4)
    assert bundle.normalization["std"][0] == pytest.approx(0.3081, abs=1e-4)
    assert bundle.source == f"files:{MNIST_DIR}" and bundle.num_test == 10000


@needs_mnist
def test_mnist_in_torchvision_layout(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in MNIST_DIR.glob("*-ubyte.gz"):
        (raw / f.name).symlink_to(f)
    # Uncompressed test files (torchvision keeps both) are read too.
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (raw / f"{name}.gz").unlink()
        (raw / name).write_bytes(gzip.decompress((MNIST_DIR / f"{name}.gz").read_bytes()))
    (_, _), (xt, yt) = load_arrays("mnist", files_dir=tmp_path)[0]
    assert xt.shape == (10000, 28, 28, 1) and np.bincount(yt)[1] == 1135


def test_missing_files_list_what_is_expected(tmp_path):
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte\[\.gz\].*MNIST/raw"):
        load("mnist", files_dir=tmp_path)
    with pytest.raises(ValueError, match="data_batch_1.*test_batch.*cifar-10-batches-py"):
        load("cifar10", files_dir=tmp_path)
    with pytest.raises(ValueError, match="not a folder"):
        load("cifar10", files_dir=tmp_path / "nope")
    with pytest.raises(ValueError, match="reads no files"):
        load("embedded", files_dir=tmp_path)


def test_corrupt_idx_file(tmp_path):
    names = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    for name in names:
        (tmp_path / name).write_bytes(b"\x00\x00\x08\x01" + b"\x00" * 16)
    with pytest.raises(ValueError, match="not an idx file"):
        load_arrays("mnist", files_dir=tmp_path)


def _fake_cifar10(folder):
    """CIFAR-10 python batches with known content (rows are R, G, B planes of 32x32)."""
    folder = pathlib.Path(folder) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name, n in [(f"data_batch_{i}", 4) for i in range(1, 6)] + [("test_batch", 3)]:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": list(rng.integers(0, 10, n))}, f)
    return folder.parent


def test_cifar10_python_batches(tmp_path):
    root = _fake_cifar10(tmp_path)
    (x, y), (xt, yt) = load_arrays("cifar10", files_dir=root)[0]
    with open(root / "cifar-10-batches-py" / "data_batch_2", "rb") as f:
        batch = pickle.load(f, encoding="bytes")
    assert x.shape == (20, 32, 32, 3) and xt.shape == (3, 32, 32, 3)
    row = batch[b"data"][1]
    # Image 1 of batch 2 is training image 5; pixel (r, c) of channel k is row[k*1024+r*32+c].
    for k, r, c in [(0, 0, 0), (1, 3, 17), (2, 31, 5)]:
        assert x[5, r, c, k] == row[k * 1024 + r * 32 + c]
    assert y[5] == batch[b"labels"][1]
    bundle = load("cifar10", files_dir=root / "cifar-10-batches-py", batch_size=8)
    assert bundle.normalization["mean"] == [0.4914, 0.4822, 0.4465]  # Wang 2026, 2.1
    assert bundle.normalization["std"] == [0.2470, 0.2435, 0.2616]


def test_cifar100_and_svhn_files(tmp_path):
    import scipy.io

    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    data = np.arange(2 * 3072, dtype=np.int64).astype(np.uint8).reshape(2, 3072)
    for name in ("train", "test"):
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": data, b"fine_labels": [99, 3], b"coarse_labels": [1, 2]}, f)
    (x, y), _ = load_arrays("cifar100", files_dir=tmp_path)[0]
    assert x[1, 2, 3, 1] == data[1, 1024 + 2 * 32 + 3] and list(y) == [99, 3]

    images = np.random.default_rng(0).integers(0, 256, (32, 32, 3, 5), dtype=np.uint8)
    for name in ("train_32x32.mat", "test_32x32.mat"):
        scipy.io.savemat(tmp_path / name, {"X": images, "y": np.array([[10], [1], [2], [3], [9]])})
    (x, y), _ = load_arrays("svhn_cropped", files_dir=tmp_path)[0]
    assert x.shape == (5, 32, 32, 3) and x[4, 7, 8, 2] == images[7, 8, 2, 4]
    assert list(y) == [0, 1, 2, 3, 9]  # the files label the digit 0 as 10


# --- tensorflow-datasets (mocked: no download) ------------------------------------------


@pytest.mark.parametrize("name", ["cifar10", "mnist", "fashion_mnist", "cifar100", "svhn_cropped"])
def test_tfds_datasets_with_mock_data(name):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=24):
        bundle = load(name, batch_size=8, validation_split=0.25, source="tfds")
    info = DATASETS[name]
    assert bundle.source == "tfds" and bundle.num_classes == info.num_classes
    assert bundle.input_shape == info.input_shape
    assert (bundle.num_train, bundle.num_val, bundle.num_test) == (18, 6, 24)
    x, y = next(iter(bundle.train))
    assert tuple(x.shape) == (8, *info.input_shape) and x.dtype.name == "float32"
    assert y.dtype.name == "int32"
    if info.mean is None:  # computed from the (mock) training split: normalised to 0 / 1
        xs, _ = _all(bundle.train)
        np.testing.assert_allclose(xs.astype(np.float64).mean(axis=(0, 1, 2)), 0.0, atol=1e-4)


# --- bad input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(name="cifar-10"), r"Did you mean 'cifar10'\?"),
        (dict(name="imagenet"), "known datasets"),
        (dict(batch_size=0), "batch_size must be a positive integer"),
        (dict(validation_split=1.0), r"validation_split must be in \[0, 1\)"),
        (dict(q_star=0.0), "q_star must be a positive number"),
        (dict(max_train_examples=0), "max_train_examples must be a positive integer"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        load(**{"name": "embedded", **kwargs})


# --- the pipelines feed fit on every backend --------------------------------------------


def test_pipelines_feed_fit_on_this_backend():
    bundle = load("embedded", batch_size=32, validation_split=0.1, max_train_examples=64)
    model = keras.Sequential([
        keras.Input(bundle.input_shape),
        keras.layers.Conv2D(4, 3, strides=4),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(bundle.num_classes),
    ])
    kw = {"jit_compile": False} if BACKEND == "torch" else {}
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], **kw)
    history = model.fit(bundle.train, validation_data=bundle.val, epochs=2, verbose=0)
    assert len(history.history["val_loss"]) == 2 and np.isfinite(history.history["loss"]).all()
    loss, acc = model.evaluate(bundle.test, verbose=0)
    assert np.isfinite(loss) and 0.0 <= acc <= 1.0

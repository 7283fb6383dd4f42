"""Dent & Tanner's data protocol (issue 17): ``split = "pooled"`` pools a dataset's official
train and test sets, holds out 20% as test and 10% of the rest as validation, seeded; the
validation part is what ``kerasparse train`` reports as val_*, the test part its test_*."""

import csv
import hashlib
import json
import pathlib

import numpy as np
import pytest
from typer.testing import CliRunner

from kerasparse.cli import app
from kerasparse.data import load, load_arrays, pooled_split

REPO = pathlib.Path(__file__).resolve().parents[1]
MNIST_DIR = REPO.parent / "shared" / "data" / "mnist"
needs_mnist = pytest.mark.skipif(
    not (MNIST_DIR / "train-images-idx3-ubyte.gz").is_file(),
    reason=f"the real MNIST files are not at {MNIST_DIR} (../shared/data/mnist from the repo)",
)


# The paper's protocol on each dataset's pooled size: (train, validation, test).
@pytest.mark.parametrize("n, sizes", [(70_000, (50_400, 5_600, 14_000)),  # MNIST
                                      (60_000, (43_200, 4_800, 12_000)),  # CIFAR-10
                                      (110_000, (79_200, 8_800, 22_000))])  # Tiny ImageNet
def test_pooled_split_sizes_partition_and_seed(n, sizes):
    parts = pooled_split(n, seed=3407)
    assert tuple(len(p) for p in parts) == sizes
    joined = np.concatenate(parts)
    np.testing.assert_array_equal(np.sort(joined), np.arange(n))  # each example once
    again = pooled_split(n, seed=3407)
    for a, b in zip(parts, again):
        np.testing.assert_array_equal(a, b)
    other = pooled_split(n, seed=3408)
    assert not np.array_equal(parts[2], other[2])
    # Both official sets feed every part (the first 6/7, 5/6, 10/11 are the official train).
    official_train = n - {70_000: 10_000, 60_000: 10_000, 110_000: 10_000}[n]
    for part in parts:
        share = np.mean(part >= official_train)
        assert abs(share - (n - official_train) / n) < 0.03
    # validation_split > 0 sets the validation fraction of the non-test part.
    assert len(pooled_split(n, 3407, validation_split=0.05)[1]) == round(0.05 * sizes[0] / 0.9)


def test_pooled_split_refuses_an_empty_part():
    with pytest.raises(ValueError, match=r"leaves the validation part empty .* at least 7"):
        pooled_split(6, seed=0)
    assert [len(p) for p in pooled_split(7, seed=0)] == [5, 1, 1]


def _hashes(x, y):
    return sorted(hashlib.sha1(image.tobytes() + bytes([int(label)])).hexdigest()
                  for image, label in zip(x, y))


@needs_mnist
def test_pooled_mnist_is_the_papers_protocol():
    """Real MNIST: 50,400 / 5,600 / 14,000, and the three parts hold every example of the
    official train + test sets exactly once (as a multiset: MNIST has a few duplicates)."""
    ((x, y), (xt, yt)), _ = load_arrays("mnist", data_dir=MNIST_DIR)
    bundle = load("mnist", data_dir=MNIST_DIR, split="pooled", batch_size=1000)
    assert (bundle.num_train, bundle.num_val, bundle.num_test) == (50_400, 5_600, 14_000)
    assert bundle.split_record()["split"] == "pooled"
    raw = {"train": (bundle._x_train, bundle._y_train),  # the stored uint8 images
           "val": (bundle.val.images, bundle.val.labels),
           "test": (bundle.test.images, bundle.test.labels)}
    parts = {k: _hashes(*v) for k, v in raw.items()}
    assert sorted(sum(parts.values(), [])) == _hashes(np.concatenate([x, xt]),
                                                      np.concatenate([y, yt]))
    official_test = set(_hashes(xt, yt))
    from_test = sum(h in official_test for h in parts["test"])
    assert 0.1 < from_test / 14_000 < 0.2  # 1/7 expected: the test part mixes both sets
    # The official split is unchanged by the new option.
    official = load("mnist", data_dir=MNIST_DIR, validation_split=0.1, batch_size=1000)
    assert (official.num_train, official.num_val, official.num_test) == (54_000, 6_000, 10_000)


runner = CliRunner()


def test_train_reports_the_validation_and_test_parts(tmp_path):
    """A pooled run: summary.json records the split; history's val_accuracy is the model's
    accuracy on the validation part, test_accuracy on (the head of) the test part;
    --train-examples caps the training part only."""
    out = tmp_path / "run"
    result = runner.invoke(app, [
        "train", "--model", "mlp100x300", "--set", "depth=2", "--set", "width=16",
        "--q-star", "2", "--dataset", "embedded", "--split", "pooled", "--train-examples", "96",
        "--batch-size", "32", "--epochs", "1", "--set", "test_examples=200",
        "--set", "monitor_batch=0", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["data"] == {"split": "pooled", "num_train": 96, "num_val": 480,
                               "num_test": 1200, "source": "generated", "test_evaluated": 200}
    with open(out / "history.csv") as f:
        row = list(csv.DictReader(f))[-1]
    import keras

    model = keras.saving.load_model(out / "model.keras")
    bundle = load("embedded", split="pooled", batch_size=32, q_star=2.0)
    (xv, yv), (xt, yt) = bundle.val.arrays(), bundle.test.head(200).arrays()
    for x, y, logged in ((xv, yv, row["val_accuracy"]), (xt, yt, row["test_accuracy"])):
        predicted = np.argmax(keras.ops.convert_to_numpy(model.predict(x, verbose=0)), -1)
        assert abs(np.mean(predicted == y) - float(logged)) < 1e-6

"""The NumPy input pipeline (kerasparse.data.pipeline): augmentation and normalisation against
plain NumPy references, the per-epoch randomness as a pure function of (seed, epoch), and what
``model.fit`` on this backend actually trains on (exact epochs with initial_epoch and a steps
cap; one pass per epoch for ``bundle.train``)."""

import numpy as np
import pytest

import keras
from conftest import BACKEND

from kerasparse.data import load
from kerasparse.data.pipeline import ArrayBatches, EpochBatches, Pipeline


def _reference_crop_flip(images, dy, dx, flip, pad=4):
    """One image at a time: np.pad, a slice, a reversed slice."""
    h, w = images.shape[1:3]
    out = []
    for img, i, j, f in zip(images, dy, dx, flip):
        crop = np.pad(img, ((pad, pad), (pad, pad), (0, 0)))[i:i + h, j:j + w]
        out.append(crop[:, ::-1] if f else crop)
    return np.stack(out)


@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 32, 3), (64, 64, 3)])
def test_crop_flip_matches_a_per_image_reference(shape):
    rng = np.random.default_rng(1)
    n = 40
    images = rng.integers(0, 256, (n, *shape), dtype=np.uint8)
    dy, dx = rng.integers(0, 9, n), rng.integers(0, 9, n)
    dy[:4], dx[:4] = [0, 8, 0, 8], [0, 0, 8, 8]  # the corners
    flip = rng.integers(0, 2, n).astype(bool)
    pipeline = Pipeline({"kind": "channel", "mean": [0.5] * shape[2], "std": [0.25] * shape[2]},
                        shape, seed=0, augment=True)
    got = pipeline.crop_flip(images, dy, dx, flip)
    np.testing.assert_array_equal(got, _reference_crop_flip(images, dy, dx, flip))
    none = np.zeros(n, bool)
    np.testing.assert_array_equal(pipeline.crop_flip(images, dy, dx, none),
                                  _reference_crop_flip(images, dy, dx, none))


def test_epoch_randomness_is_a_pure_function_of_seed_and_epoch():
    a = Pipeline({"kind": "per_example", "q_star": 1.0}, (32, 32, 3), seed=11, augment=True)
    b = Pipeline({"kind": "per_example", "q_star": 1.0}, (32, 32, 3), seed=11, augment=True)
    n = 50000
    for epoch in (0, 7):
        np.testing.assert_array_equal(a.epoch_order(epoch, n), b.epoch_order(epoch, n))
        for u, v in zip(a.epoch_augmentation(epoch, n), b.epoch_augmentation(epoch, n)):
            np.testing.assert_array_equal(u, v)
    order = a.epoch_order(3, n)
    np.testing.assert_array_equal(np.sort(order), np.arange(n))  # a permutation
    assert not np.array_equal(order, a.epoch_order(4, n))
    c = Pipeline({"kind": "per_example", "q_star": 1.0}, (32, 32, 3), seed=12, augment=True)
    assert not np.array_equal(order, c.epoch_order(3, n))
    # Offsets uniform over 0..8 in each direction, independent, flips fair (50,000 draws: a
    # cell of the 9x9x2 table expects 309, sd ~17.5; allow 5 sd).
    dy, dx, flip = a.epoch_augmentation(3, n)
    counts = np.zeros((9, 9, 2))
    np.add.at(counts, (dy, dx, flip.astype(int)), 1)
    assert np.abs(counts - n / 162).max() < 5 * np.sqrt(n / 162)
    # Where a flip changes the label (digits), there is none.
    digits = Pipeline({"kind": "per_example", "q_star": 1.0}, (28, 28, 1), seed=11,
                      augment=True, flip=False)
    assert not digits.epoch_augmentation(3, n)[2].any()


def test_normalisation_matches_numpy():
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    mean, std = [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]
    p = Pipeline({"kind": "channel", "mean": mean, "std": std}, (32, 32, 3), seed=0)
    out = p.normalize(x)
    assert out.dtype == np.float32 and out.shape == x.shape
    np.testing.assert_allclose(out, (x / 255.0 - np.array(mean)) / np.array(std), atol=2e-6)
    q = Pipeline({"kind": "per_example", "q_star": 3.0}, (32, 32, 3), seed=0)
    flat = x.reshape(6, -1) / 255.0
    ref = np.sqrt(3.0) * (flat - flat.mean(1, keepdims=True)) / flat.std(1, keepdims=True)
    np.testing.assert_allclose(q.normalize(x).reshape(6, -1), ref, atol=2e-5)


def test_prefetch_gives_the_same_batches():
    bundle = load("embedded", batch_size=100, augment=True, max_train_examples=1000, seed=3)
    bundle_no = load("embedded", batch_size=100, augment=True, max_train_examples=1000, seed=3,
                     prefetch=0)
    for ds, ref in ((bundle.train_epochs(2), bundle_no.train_epochs(2)),
                    (bundle.test, bundle_no.test)):
        for (x, y), (xr, yr) in zip(ds, ref):
            np.testing.assert_array_equal(x, xr)
            np.testing.assert_array_equal(y, yr)
    head = bundle.test.head(150)
    assert isinstance(head, ArrayBatches) and len(head) == 2 and head.num_examples == 150
    np.testing.assert_array_equal(np.concatenate([y for _, y in head]),
                                  np.asarray(bundle.test.labels[:150]))


# --- what fit trains on -------------------------------------------------------------------


def _frozen_model(bundle):
    """A model whose weights do not move (SGD with lr 0): an epoch's mean training loss is a
    function of exactly the examples the epoch saw."""
    model = keras.Sequential([keras.Input(bundle.input_shape), keras.layers.Flatten(),
                              keras.layers.Dense(bundle.num_classes)])
    kw = {"jit_compile": False} if BACKEND == "torch" else {}
    model.compile(keras.optimizers.SGD(0.0),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True), **kw)
    return model


def _mean_loss(model, batches):
    """Mean cross-entropy over the examples of ``batches`` (float64, from predicted logits)."""
    losses = []
    for x, y in batches:
        logits = np.asarray(model.predict_on_batch(x), np.float64)
        logits -= logits.max(1, keepdims=True)
        log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
        losses.append(-log_p[np.arange(len(y)), y])
    return float(np.mean(np.concatenate(losses)))


def test_fit_trains_epoch_e_on_epoch_e_batches_after_initial_epoch_with_a_cap():
    bundle = load("embedded", batch_size=16, augment=True, max_train_examples=160, seed=5)
    model = _frozen_model(bundle)
    steps = bundle.steps_per_epoch(3)  # a cap below the 10 batches of an epoch
    ds = bundle.train_epochs(6, initial_epoch=2, steps_per_epoch=3)
    assert isinstance(ds, EpochBatches) and len(ds) == 4 * 3
    history = model.fit(ds, epochs=6, initial_epoch=2, steps_per_epoch=steps, shuffle=False,
                        verbose=0).history
    x, y = bundle._x_train, bundle._y_train
    expected = [_mean_loss(model, [bundle.pipeline.train_batch(x, y, e, 16 * b, 16 * b + 16)
                                   for b in range(3)]) for e in range(2, 6)]
    np.testing.assert_allclose(history["loss"], expected, rtol=2e-5)
    # Not vacuous: continuing epoch 2's order into epoch 3 (what fit does with a plain
    # dataset and a cap) would have given another loss.
    wrong = _mean_loss(model, [bundle.pipeline.train_batch(x, y, 2, 16 * b, 16 * b + 16)
                               for b in range(3, 6)])
    assert abs(wrong - expected[1]) > 1e-4


def test_bundle_train_is_one_pass_per_epoch_even_when_keras_shuffles():
    bundle = load("embedded", batch_size=32, augment=True, max_train_examples=96, seed=5,
                  validation_split=0.2)
    model = _frozen_model(bundle)
    history = model.fit(bundle.train, validation_data=bundle.val, epochs=3, verbose=0,
                        shuffle=True).history  # Keras permutes the batches of each pass
    x, y = bundle._x_train, bundle._y_train
    expected = [_mean_loss(model, [bundle.pipeline.train_batch(x, y, e, 32 * b, 32 * b + 32)
                                   for b in range(bundle.steps_per_epoch())])
                for e in range(3)]
    np.testing.assert_allclose(history["loss"], expected, rtol=2e-5)
    assert len(set(np.round(expected, 6))) == 3  # the passes differ (augmentation)
    assert bundle.train.epoch == 3


def test_keras_shuffle_of_train_epochs_is_refused():
    bundle = load("embedded", batch_size=8, max_train_examples=160)
    model = _frozen_model(bundle)
    with pytest.raises(Exception, match="shuffle=False"):
        model.fit(bundle.train_epochs(3), epochs=3, steps_per_epoch=bundle.steps_per_epoch(),
                  shuffle=True, verbose=0)

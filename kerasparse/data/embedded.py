"""The embedded dataset: generated Gabor-patch images that need no download.

Ten classes of 32x32 RGB images. Class ``c`` is a sinusoidal grating with orientation
``(c % 5) * 36`` degrees and spatial frequency ``3`` (classes 0-4) or ``6`` (classes 5-9)
cycles per image width, seen through a Gaussian window at a random position. Everything
else is a nuisance drawn per image: orientation jitter (+-6 degrees), frequency jitter
(x0.9-1.1), phase (uniform), window centre (8-24 px) and width (sigma 7-12 px), a random
colour (the grating's amplitude in each channel), contrast (0.35-0.5), background
brightness (0.35-0.65) and i.i.d. pixel noise (sigma 0.1). Values are clipped to [0, 1]
and stored as uint8, like a real image dataset.

Because the phase is uniform, every class's mean image is the same flat grey: a linear
classifier on the pixels is near chance, and a net has to learn oriented, frequency-tuned
(and position-invariant) features — real structure, but small enough for a CPU.

The dataset is fixed: the training split (5,000 images, 500 per class) is generated from
seed 20261122 and the test split (1,000 images) from seed 20261123, whatever seed the
loader gets (that one shuffles and splits).
"""

import functools

import numpy as np

from kerasparse.presets import DATASETS

NUM_CLASSES = DATASETS["embedded"].num_classes  # 10
IMAGE_SHAPE = DATASETS["embedded"].input_shape  # (32, 32, 3)
TRAIN_SIZE = 5000
TEST_SIZE = 1000
TRAIN_SEED = 20261122
TEST_SEED = 20261123
_CHUNK = 250  # images generated at a time (any size gives the same bytes)


def generate(num_examples, seed, image_size=32):
    """``num_examples`` images (uint8, NHWC) and labels (int32), classes balanced.

    Deterministic given ``seed``. Labels cycle 0..9 and the images are then shuffled.
    """
    rng = np.random.default_rng(seed)
    n = int(num_examples)
    labels = rng.permutation(np.arange(n) % NUM_CLASSES).astype("int32")
    theta = np.deg2rad((labels % 5) * 36.0 + rng.uniform(-6.0, 6.0, n))
    cycles = np.where(labels < 5, 3.0, 6.0) * rng.uniform(0.9, 1.1, n)
    phase = rng.uniform(0.0, 2 * np.pi, n)
    centre = rng.uniform(8.0, 24.0, (n, 2)) * image_size / 32.0
    sigma = rng.uniform(7.0, 12.0, n) * image_size / 32.0
    colour = rng.uniform(0.3, 1.0, (n, 3)) * rng.choice([-1.0, 1.0], (n, 3))
    contrast = rng.uniform(0.35, 0.5, n)
    background = rng.uniform(0.35, 0.65, n)

    coords = np.arange(image_size, dtype="float64")
    yy, xx = np.meshgrid(coords, coords, indexing="ij")  # (H, W)
    images = np.empty((n, image_size, image_size, 3), dtype="uint8")
    # In chunks of images: the same arithmetic per pixel and the same noise draws in the same
    # order (a Generator's normal() over consecutive chunks gives the values one call gives),
    # so the same bytes; but the float64 temporaries stay small (whole-split temporaries of
    # 5,000 x 32 x 32 x 3 made this take seconds in every process that loads the data).
    for start in range(0, n, _CHUNK):
        i = slice(start, min(start + _CHUNK, n))
        b = (i, None, None)  # per-image scalars -> (chunk, 1, 1)
        along = xx * np.cos(theta)[b] + yy * np.sin(theta)[b]
        grating = np.cos(2 * np.pi * cycles[b] * along / image_size + phase[b])
        window = np.exp(
            -((xx - centre[i, 1, None, None]) ** 2 + (yy - centre[i, 0, None, None]) ** 2)
            / (2 * sigma[b] ** 2)
        )
        pattern = (contrast[b] * grating * window)[..., None] * colour[i, None, None, :]
        chunk = background[i, None, None, None] + pattern
        chunk = chunk + rng.normal(0.0, 0.1, chunk.shape)
        images[i] = np.clip(np.round(chunk * 255.0), 0, 255).astype("uint8")
    return images, labels


@functools.lru_cache(maxsize=1)
def load_arrays():
    """``(x_train, y_train), (x_test, y_test)`` of the fixed embedded dataset.

    Generated once per process and cached; the arrays are read-only.
    """
    splits = generate(TRAIN_SIZE, TRAIN_SEED), generate(TEST_SIZE, TEST_SEED)
    for array in (a for split in splits for a in split):
        array.setflags(write=False)
    return splits


def write_cifar10_batches(folder, num_train=50000, num_test=10000, seed=TRAIN_SEED):
    """Generated gratings written as CIFAR-10 "python version" batches (``data_batch_1`` ..
    ``data_batch_5``, ``test_batch``) in ``folder/cifar-10-batches-py``: a CIFAR-shaped set of
    any size, read back through the real CIFAR-10 file reader (``--dataset cifar10 --data-dir
    folder``), for benchmarks and the GPU check. Returns the folder written."""
    import os
    import pickle

    target = os.path.join(os.fspath(folder), "cifar-10-batches-py")
    os.makedirs(target, exist_ok=True)
    sizes = [num_train // 5 + (1 if i < num_train % 5 else 0) for i in range(5)]
    names = [f"data_batch_{i + 1}" for i in range(5)] + ["test_batch"]
    for k, (name, n) in enumerate(zip(names, sizes + [num_test])):
        chunks = [generate(min(5000, n - start), seed + 1000 * k + start)
                  for start in range(0, n, 5000)]
        images = np.concatenate([c[0] for c in chunks]) if chunks else np.zeros((0, 32, 32, 3))
        labels = np.concatenate([c[1] for c in chunks]) if chunks else np.zeros(0)
        batch = {b"data": images.astype(np.uint8).transpose(0, 3, 1, 2).reshape(n, 3072),
                 b"labels": [int(v) for v in labels]}
        with open(os.path.join(target, name), "wb") as f:
            pickle.dump(batch, f, protocol=4)
    return target


"""``kerasparse bench --input-pipeline``: the input pipeline alone, in images per second.

Measured (docs/benchmarks.md, "Input pipeline"):

- ``images_per_s``: the NumPy pipeline read the way ``fit`` reads it (batch after batch of
  ``train_epochs``, with its default background prefetch), no model: the most a training loop
  could take from it;
- ``single_thread_images_per_s``: the same without prefetch (one core);
- ``threads``: batches made by N threads at once, N = 1, 2, 4, ... up to the cores: how the
  pipeline scales with cores (NumPy releases the GIL in its copies and arithmetic);
- ``tf_data_images_per_s``: the tf.data pipeline kerasparse used before (stateless per-epoch
  shuffle, per-example ``tf.image`` crop and flip, ``AUTOTUNE`` parallelism), on the same
  arrays in the same process, where TensorFlow is installed. It lives here, as a reference
  figure only: training never uses it.

With ``augment``, crop + flip are timed whatever the dataset (as for CIFAR-10), although the
embedded gratings and digits are never flipped in training.

Timing rules as for the other benchmarks: warm-up batches excluded, the variants measured in
one process, one after the other, over the same number of batches.
"""

import concurrent.futures
import os
import platform
import statistics
import time

import numpy as np


def _time(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def tf_data_reference(x, y, batch_size, seed, augment, flip, normalization, pad=4):
    """The tf.data training pipeline of kerasparse <= 0.1 (``train_epochs``), for comparison.

    Returns a function ``epochs(first, last) -> tf.data.Dataset`` of normalised batches.
    """
    import tensorflow as tf

    n = len(x)
    shape = x.shape[1:]
    images, labels = tf.constant(x), tf.constant(y)
    base = tf.constant(seed, tf.int64)
    mean = tf.constant(normalization["mean"], tf.float32)
    std = tf.constant(normalization["std"], tf.float32)

    def normalize(xb):
        return (tf.cast(xb, tf.float32) / 255.0 - mean) / std

    def augment_example(image, s):
        image = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]])
        image = tf.image.stateless_random_crop(image, shape, seed=s)
        if flip:
            image = tf.image.stateless_random_flip_left_right(image, seed=s[::-1])
        return image

    def one_epoch(epoch):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(n, dtype=tf.int64), seed=tf.stack([base, epoch]))
        ds = tf.data.Dataset.from_tensor_slices(order).enumerate()
        if augment:
            ds = ds.map(
                lambda i, idx: (
                    augment_example(tf.gather(images, idx),
                                    tf.random.experimental.stateless_fold_in(
                                        tf.stack([base, epoch]), i)),
                    tf.gather(labels, idx)),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            return ds.batch(batch_size)
        return ds.batch(batch_size).map(lambda _, idx: (tf.gather(images, idx),
                                                        tf.gather(labels, idx)))

    def epochs(first, last):
        ds = tf.data.Dataset.range(first, last).flat_map(one_epoch)
        ds = ds.map(lambda xb, yb: (normalize(xb), yb), num_parallel_calls=tf.data.AUTOTUNE)
        return ds.prefetch(tf.data.AUTOTUNE)

    return epochs


def bench_input_pipeline(dataset="embedded", batch_size=128, augment=False, batches=200,
                         warmup=10, data_dir=None, reference=True, seed=3407, rounds=20):
    """Time the input pipeline alone; returns the ``--json`` dict."""
    from kerasparse import data

    bundle = data.load(dataset, batch_size=batch_size, augment=augment, data_dir=data_dir,
                       seed=seed)
    if augment and not bundle.pipeline.flip:
        # Time CIFAR's crop + flip whatever the dataset (the embedded gratings and digits are
        # never flipped in training: a flip changes their class).
        from kerasparse.data.pipeline import Pipeline

        bundle.pipeline = Pipeline(bundle.normalization, bundle.input_shape, bundle.seed,
                                   augment=True, flip=True)
    steps = bundle.steps_per_epoch()
    epochs = -(-(batches + warmup) // steps) + 1
    seq = bundle.train_epochs(epochs)
    total = len(seq)
    warm = list(range(min(warmup, total)))
    timed = list(range(len(warm), min(len(warm) + batches, total)))
    full = bundle.batch_size  # the last batch of an epoch may be smaller: count real images
    images = sum(min(full, bundle.num_train - seq.position(i)[1] * full) for i in timed)
    per_batch = images / len(timed)

    prefetched = bundle.train_epochs(epochs)
    cores = os.cpu_count() or 1
    counts = sorted({1, 2, 4, 8, 16, cores} & set(range(1, cores + 1)))
    pools = {t: concurrent.futures.ThreadPoolExecutor(t) for t in counts}
    try:
        for i in warm:
            seq._make(i)
            prefetched[i]
        for pool in pools.values():
            list(pool.map(seq._make, warm))
        tf_iterator, tf_info = _tf_reference(bundle, epochs, warm) if reference else (
            None, {"tf_data_note": "not asked for"})
        # Interleaved rounds (machine load hits every variant alike); the median round counts.
        # Prefetch reads its sequence in order (one block per round, as fit reads it).
        seconds = {"single": [], "prefetch": [], **{t: [] for t in counts}}
        rounds = max(1, min(rounds, len(timed)))
        blocks = np.array_split(np.asarray(timed), rounds)
        for block in blocks:
            block = [int(i) for i in block]
            seconds["single"].append(_time(lambda: [seq._make(i) for i in block]))
            seconds["prefetch"].append(_time(lambda: [prefetched[i] for i in block]))
            for t, pool in pools.items():
                seconds[t].append(_time(lambda: list(pool.map(seq._make, block))))
            if tf_iterator is not None:
                seconds.setdefault("tf", []).append(
                    _time(lambda: [next(tf_iterator) for _ in block]))
    finally:
        for pool in pools.values():
            pool.shutdown()
    block_images = per_batch * len(timed) / rounds

    def rate(values):
        return block_images / statistics.median(values)

    single, with_prefetch = rate(seconds["single"]), rate(seconds["prefetch"])
    threads = {str(t): rate(seconds[t]) for t in counts}

    result = {
        "dataset": dataset,
        "input_shape": list(bundle.input_shape),
        "num_train": bundle.num_train,
        "batch_size": batch_size,
        "augment": bool(augment),
        "flip": bool(bundle.pipeline.flip and augment),
        "batches": len(timed),
        "rounds": rounds,
        "images_per_s": with_prefetch,
        "single_thread_images_per_s": single,
        "threads": threads,
        "prefetch": bundle.prefetch,
        "cpu_count": cores,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "tf_data_images_per_s": None,
        "tf_data_note": None,
    }
    result.update(tf_info)
    if tf_iterator is not None:
        result["tf_data_images_per_s"] = rate(seconds["tf"])
    return result


def _tf_reference(bundle, epochs, warm):
    """``(iterator over the old tf.data pipeline's batches, warmed up; facts)``, or
    ``(None, {"tf_data_note": why not})``."""
    import importlib.util

    if importlib.util.find_spec("tensorflow") is None:
        return None, {"tf_data_note": "TensorFlow is not installed"}
    import tensorflow as tf

    norm = bundle.normalization
    if norm["kind"] != "channel":
        return None, {"tf_data_note": "measured for channel normalisation only"}
    make = tf_data_reference(bundle._x_train, bundle._y_train, bundle.batch_size, bundle.seed,
                             bundle.augment, bundle.pipeline.flip, norm)
    iterator = iter(make(0, epochs).as_numpy_iterator())
    for _ in warm:
        next(iterator)
    return iterator, {"tensorflow": tf.__version__}


def format_result(result):
    """The human-readable lines of ``kerasparse bench --input-pipeline``."""
    what = "crop+flip" if result["flip"] else ("crop" if result["augment"] else "no augmentation")
    lines = [
        f"input pipeline, {result['dataset']} {tuple(result['input_shape'])}, batch "
        f"{result['batch_size']}, {what}: {result['images_per_s']:,.0f} images/s "
        f"(prefetch {result['prefetch']}; one thread, no prefetch: "
        f"{result['single_thread_images_per_s']:,.0f})",
        "threads: " + ", ".join(f"{t}: {v:,.0f}" for t, v in result["threads"].items())
        + f" images/s ({result['cpu_count']} cores)",
    ]
    if result["tf_data_images_per_s"] is not None:
        lines.append(f"tf.data reference (the old pipeline): "
                     f"{result['tf_data_images_per_s']:,.0f} images/s")
    else:
        lines.append(f"tf.data reference: not measured ({result['tf_data_note']})")
    return lines

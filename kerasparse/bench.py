"""Benchmarks behind ``kerasparse bench``: timing only (``kerasparse compare`` trains through
:mod:`kerasparse.compare`, which borrows :func:`machine_state` and :func:`peak_rss_mb`).

Timing rules (docs/benchmarks.md): warm-up steps (tracing, compilation, allocator growth) are
excluded, the median over timed steps is reported, and configurations that are compared
with each other (top-k vs ReLU) are measured interleaved in one process, so machine load
affects them alike.

Keras is imported lazily: set the backend (``kerasparse.cli._app.use_backend`` or
``KERAS_BACKEND``) before calling anything here.
"""

import datetime
import os
import resource
import statistics
import sys
import time

import numpy as np

from kerasparse import config, distribution, step_options

PRECISIONS = config.PRECISIONS
DATA_FORMATS = step_options.DATA_FORMATS


def peak_rss_mb():
    """Peak resident memory of this process so far, in MiB (``ru_maxrss`` is KiB on Linux)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024.0 * 1024.0) if sys.platform == "darwin" else rss / 1024.0


def default_data_format(backend):
    """channels_first on torch (its CPU/GPU conv kernels are NCHW-native: measured faster,
    docs/benchmarks.md), channels_last elsewhere. Results are identical either way."""
    return step_options.data_format("auto", backend)


def compile_for_benchmark(model, learning_rate=0.1, jit_compile="auto", steps_per_execution=1):
    """SGD with Nesterov momentum and cross-entropy, compiled as ``kerasparse train`` does
    (the same step options: ``kerasparse.step_options``)."""
    import keras

    from kerasparse.train import compile_model

    return compile_model(
        model, optimizer=keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=True),
        metrics=None, jit_compile=jit_compile, steps_per_execution=steps_per_execution,
    )


def machine_state():
    """Date and load average, recorded with every measurement (the machine is shared)."""
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "cpu_count": os.cpu_count(),
    }


def synthetic_batch(input_shape, num_classes, batch_size, seed=0):
    """A fixed normalised random batch ``(x, y)`` (timing does not depend on the values)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch_size, *input_shape)).astype(np.float32)
    y = rng.integers(0, num_classes, size=(batch_size,)).astype(np.int32)
    return x, y


def interleaved_times(functions, steps, warmup=2):
    """Call each of ``functions`` (name -> zero-argument callable) ``warmup`` times, then
    ``steps`` rounds in alternation; returns name -> list of seconds per call."""
    for _ in range(warmup):
        for fn in functions.values():
            fn()
    times = {name: [] for name in functions}
    for _ in range(steps):
        for name, fn in functions.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def _train_step_fn(model, x, y, steps_per_execution=1):
    """One timed call: a training step (``train_on_batch`` returns host floats, so the step
    has finished when it returns); with ``steps_per_execution`` N > 1, ``fit`` over N copies
    of the batch in one compiled call, so the caller divides by N."""
    if steps_per_execution == 1:
        def step():
            model.train_on_batch(x, y)

        return step
    xs = np.concatenate([x] * steps_per_execution)
    ys = np.concatenate([y] * steps_per_execution)

    def steps():
        model.fit(xs, ys, batch_size=len(x), epochs=1, shuffle=False, verbose=0)

    return steps


def _inference_fn(model, x):
    def infer():
        np.asarray(model.predict_on_batch(x))

    return infer


def build_model(model_name, *, topk=True, keep_ratio=0.5, data_format="auto", jit_compile="auto",
                **overrides):
    """``kerasparse.models.get_model`` with the benchmark's options applied."""
    import keras

    from kerasparse import models

    spec = models.model_spec(model_name)
    kwargs = dict(overrides)
    if spec.builder == "WideResNet":
        backend = keras.backend.backend()
        data_format = step_options.data_format(data_format, backend)
        step_options.check_layout(backend, data_format, jit_compile)
        kwargs["data_format"] = data_format
    if not topk:
        kwargs["topk"] = False
    else:
        kwargs["keep_ratio"] = keep_ratio
    return models.get_model(model_name, **kwargs)


def bench_model(
    model_name="wrn28-4",
    *,
    batch_size=32,
    steps=5,
    warmup=2,
    keep_ratio=0.5,
    topk=True,
    inference=True,
    data_format="auto",
    precision="float32",
    jit_compile="auto",
    steps_per_execution=1,
    devices=1,
    seed=0,
    **overrides,
):
    """Time training steps (and inference) of one model; returns the ``--json`` dict."""
    import keras

    keras.utils.set_random_seed(seed)
    keras.mixed_precision.set_dtype_policy(precision)
    backend = keras.backend.backend()
    with distribution.data_parallel(devices):
        model = build_model(
            model_name, topk=topk, keep_ratio=keep_ratio, data_format=data_format,
            jit_compile=jit_compile, **overrides
        )
        compile_for_benchmark(model, jit_compile=jit_compile,
                              steps_per_execution=steps_per_execution)
    x, y = synthetic_batch(model.input_shape[1:], model.output_shape[-1], batch_size, seed)
    fns = {"train": _train_step_fn(model, x, y, steps_per_execution)}
    if inference:
        fns["inference"] = _inference_fn(model, x)
    times = interleaved_times(fns, steps, warmup)
    times["train"] = [t / steps_per_execution for t in times["train"]]
    step_s = statistics.median(times["train"])
    result = {
        "backend": backend,
        "model": model_name,
        "batch_size": batch_size,
        "keep_ratio": keep_ratio if topk else None,
        "topk": bool(topk),
        "data_format": getattr(model, "data_format", None),
        "precision": precision,
        "jit_compile": bool(model.jit_compile),
        "steps_per_execution": steps_per_execution,
        "devices": devices,
        "steps": steps,
        "warmup": warmup,
        "step_s": step_s,
        "images_per_s": batch_size / step_s,
        "train_step_times_s": times["train"],
        "peak_rss_mb": peak_rss_mb(),
        **machine_state(),
    }
    if inference:
        infer_s = statistics.median(times["inference"])
        result.update(inference_s=infer_s, inference_images_per_s=batch_size / infer_s)
    keras.mixed_precision.set_dtype_policy("float32")
    return result


def bench_keep_ratios(
    model_name="wrn28-4",
    keep_ratios=(0.5, 0.2, 0.05),
    *,
    batch_size=32,
    steps=5,
    warmup=2,
    data_format="auto",
    precision="float32",
    jit_compile="auto",
    steps_per_execution=1,
    devices=1,
    seed=0,
    **overrides,
):
    """The training step with plain ReLU, with GlobalTopK at r = 1 and at each of
    ``keep_ratios``, built in this process and timed interleaved (one step of each in turn),
    so machine load hits them alike; returns the ``--json`` dict with each median step time
    and its ratio to ReLU (issue 12's goals: <= 1.10 for r < 1, <= 1.02 for r = 1)."""
    import keras

    keras.mixed_precision.set_dtype_policy(precision)
    backend = keras.backend.backend()
    configs = {"relu": (False, 1.0), "r=1": (True, 1.0)}
    for r in keep_ratios:
        configs.setdefault(f"r={r:g}", (True, float(r)))
    fns, layout, jit = {}, None, None
    x = y = None
    for name, (topk, r) in configs.items():
        keras.utils.set_random_seed(seed)  # the same initial weights for every configuration
        with distribution.data_parallel(devices):
            model = build_model(
                model_name, topk=topk, keep_ratio=r, data_format=data_format,
                jit_compile=jit_compile, **overrides
            )
            compile_for_benchmark(model, jit_compile=jit_compile,
                                  steps_per_execution=steps_per_execution)
        if x is None:
            x, y = synthetic_batch(model.input_shape[1:], model.output_shape[-1], batch_size,
                                   seed)
        fns[name] = _train_step_fn(model, x, y, steps_per_execution)
        layout, jit = getattr(model, "data_format", None), bool(model.jit_compile)
    times = interleaved_times(fns, steps, warmup)
    times = {k: [t / steps_per_execution for t in v] for k, v in times.items()}
    step_s = {k: statistics.median(v) for k, v in times.items()}
    keras.mixed_precision.set_dtype_policy("float32")
    return {
        "backend": backend,
        "model": model_name,
        "batch_size": batch_size,
        "keep_ratios": [float(r) for r in keep_ratios],
        "data_format": layout,
        "precision": precision,
        "jit_compile": jit,
        "steps_per_execution": steps_per_execution,
        "devices": devices,
        "steps": steps,
        "warmup": warmup,
        "step_s": step_s,
        "images_per_s": {k: batch_size / v for k, v in step_s.items()},
        "ratio_to_relu": {k: v / step_s["relu"] for k, v in step_s.items() if k != "relu"},
        "train_step_times_s": times,
        "peak_rss_mb": peak_rss_mb(),
        **machine_state(),
    }


# --- GlobalTopK alone -----------------------------------------------------------------------

# Activation shapes (H, W, C) at the sparse sites of WRN-28-4 on 32x32 inputs, per group.
WRN28_4_SITE_SHAPES = {"group1": (32, 32, 64), "group2": (16, 16, 128), "group3": (8, 8, 256)}


def _site_model(shape, topk, keep_ratio, batch_size):
    """A one-parameter model: ``site(x * w)``; a training step is the site's forward and
    backward plus the same small overhead (loss, one-weight update) for both variants."""
    import keras

    from kerasparse import layers

    class Scale(keras.layers.Layer):
        def build(self, input_shape):
            self.w = self.add_weight(shape=(), initializer="ones", name="w")

        def call(self, x):
            return x * self.w

    inputs = keras.Input(shape, batch_size=batch_size)
    x = Scale()(inputs)
    if topk:
        x = layers.SparseActivation("relu", keep_ratio=keep_ratio)(x)
    else:
        x = keras.layers.ReLU()(x)
    model = keras.Model(inputs, x)
    from kerasparse.train import compile_model

    return compile_model(model, optimizer=keras.optimizers.SGD(1e-3), loss="mse", metrics=None)


def bench_topk_sites(batch_size=32, steps=10, warmup=2, keep_ratios=(0.5, 1.0), shapes=None,
                     seed=0):
    """Forward+backward of one sparse site (ReLU + GlobalTopK) vs ReLU alone, per shape.

    Returns a list of dicts: shape, config (``"relu"`` or ``"topk r=..."``), median ms,
    and the ratio to ReLU. Configurations of one shape are timed interleaved.
    """
    import keras

    keras.utils.set_random_seed(seed)
    rows = []
    for group, shape in (shapes or WRN28_4_SITE_SHAPES).items():
        x = np.random.default_rng(seed).standard_normal((batch_size, *shape)).astype("float32")
        y = np.zeros_like(x)
        fns = {"relu": _train_step_fn(_site_model(shape, False, 1.0, batch_size), x, y)}
        for r in keep_ratios:
            fns[f"topk r={r:g}"] = _train_step_fn(_site_model(shape, True, r, batch_size), x, y)
        times = interleaved_times(fns, steps, warmup)
        relu_ms = statistics.median(times["relu"]) * 1e3
        for name, values in times.items():
            ms = statistics.median(values) * 1e3
            rows.append(
                {"site": group, "shape": list(shape), "config": name, "ms": ms,
                 "ratio_to_relu": ms / relu_ms}
            )
    return rows

"""One backend's run of ``kerasparse compare``, in its own process (KERAS_BACKEND set).

``python -m kerasparse.compare SPEC.json`` reads the spec the command wrote (the config, the
shared initial weights file, the result path) and writes the result JSON. The run is assembled
from the public builders of ``kerasparse train`` (:func:`kerasparse.train.build_data`,
:func:`~kerasparse.train.build_model`, :func:`~kerasparse.train.build_controller`,
:func:`~kerasparse.train.compile_model`), so every backend trains exactly what ``kerasparse
train`` would; timing uses the median step time with the first (compiling) step dropped, as
``kerasparse bench`` does (docs/benchmarks.md).

Keras is imported lazily: set KERAS_BACKEND before calling anything here.
"""

import json
import os
import statistics
import sys
import time

INITIAL_LOSS_EXAMPLES = 256


def initial_loss(model, data, examples=INITIAL_LOSS_EXAMPLES, batch_size=None):
    """The model's mean loss on the first ``examples`` training examples in their stored
    order, without augmentation: the figure every backend must agree on before training.

    ``data.train_arrays()`` is already normalised exactly as the training batches are; it is
    passed to ``evaluate`` as it is (normalising it again was issue 15's compare bug).
    """
    x, y = data.train_arrays()
    n = min(len(x), int(examples))
    result = model.evaluate(x[:n], y[:n], batch_size=batch_size or data.batch_size, verbose=0,
                            return_dict=True)
    return float(result["loss"])


def run_backend(spec_path):
    """Train the spec's config on this process's backend from the shared initial weights
    (written by the first backend, loaded by the others); returns and writes the result."""
    import keras

    from kerasparse import callbacks, train
    from kerasparse.bench import machine_state, peak_rss_mb
    from kerasparse.config import resolve

    with open(spec_path) as f:
        spec = json.load(f)
    config = resolve(overrides=spec["config"])
    keras.utils.set_random_seed(config["seed"])
    keras.mixed_precision.set_dtype_policy(config["precision"])
    data = train.build_data(config)
    model = train.build_model(config, data)
    controller = train.build_controller(config)
    steps = data.steps_per_epoch(config["steps_per_epoch"])
    train.compile_model(model, config, steps)
    weights = spec["initial_weights"]
    if os.path.exists(weights):
        model.load_weights(weights)
    else:
        model.save_weights(weights)
    if config["controller"] == "constant":
        # The keep ratio the controller applies from the first epoch on, so the initial loss
        # is that of the model that starts training.
        for layer in callbacks.find_topk_layers(model):
            layer.keep_ratio.assign(config["keep_ratio"])
    loss0 = initial_loss(model, data, spec.get("initial_loss_examples", INITIAL_LOSS_EXAMPLES),
                         config["batch_size"])

    step_times = []

    class StepTimer(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self._start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            step_times.append(time.perf_counter() - self._start)

    test = data.test if config["test_examples"] is None else data.test.head(
        config["test_examples"])
    start = time.perf_counter()
    history = model.fit(
        # The epoch-indexed batches of `kerasparse train`: every backend sees the same data.
        data.train_epochs(config["epochs"], steps_per_epoch=steps),
        epochs=config["epochs"], steps_per_epoch=steps, validation_data=test,
        callbacks=[c for c in (controller, StepTimer()) if c is not None],
        shuffle=False, verbose=0,
    ).history
    wall = time.perf_counter() - start
    # The test split is fit's validation data here: val_* are its metrics.
    accuracy = [float(a) for a in history["val_accuracy"]]
    step_s = statistics.median(step_times[1:] or step_times)  # warm-up (compile) excluded
    result = {
        "backend": keras.backend.backend(),
        "step_s": step_s,
        "images_per_s": config["batch_size"] / step_s,
        "peak_rss_mb": peak_rss_mb(),
        "initial_loss": loss0,
        "final_accuracy": accuracy[-1],
        "best_accuracy": max(accuracy),
        "accuracy": accuracy,
        "loss": [float(v) for v in history["loss"]],
        "keep_ratio": [float(v) for v in history.get("keep_ratio", [])] or None,
        "steps": len(step_times),
        "wall_s": wall,
        **machine_state(),
    }
    with open(spec["result"], "w") as f:
        json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":  # python -m kerasparse.compare SPEC.json
    if len(sys.argv) != 2:
        sys.exit("usage: python -m kerasparse.compare SPEC.json")
    run_backend(sys.argv[1])

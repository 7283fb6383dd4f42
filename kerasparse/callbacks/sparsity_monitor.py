import contextlib
import time

import keras
import numpy as np
from keras import ops

from kerasparse.callbacks._sites import find_activation_layers, unique_names
from kerasparse.validation import check_names


class SparsityMonitor(keras.callbacks.Callback):
    """Log the actual fraction of non-zero hidden activations, per layer and overall, every
    epoch, for any activation: top-k sites, CReLU, CST, the shrink family, ReLU.

    The nominal keep ratio r is an upper bound: after ReLU many activations are already zero,
    so the real non-zero rate is usually far lower (Wang 2026, section 4); in an EoC model
    without top-k (Dent & Tanner 2026) it starts near 1 - s, s the sparsity the activation
    was set up for. At the end of each epoch this callback runs the model once (``training=False``) on a
    fixed batch ``x`` of training inputs and writes into the epoch's logs::

        logs["nz"]           = sum over layers of non-zeros / sum over layers of entries
        logs["nz/<name>"]    = non-zeros / entries of that layer's output on x

    (``nz`` weights each layer by its size, so it is the fraction of all hidden activations
    that are non-zero.) It measures with the keep ratio of the epoch just ended: the
    keep-ratio controllers change r only at the next epoch's start.

    The measured layers are those of :func:`~kerasparse.callbacks.find_activation_layers`
    (or those named in ``layers``): every GlobalTopK / SparseActivation site, and every
    activation layer outside one (kerasparse's CReLU, CST, HardShrink, CHardShrink,
    Sawtooth; Keras' ReLU and Activation), wherever it sits (functional, sequential,
    subclassed or nested models). A WideResNet's keys are its 25 sites; a DeepMLP's its
    ``act1``..``act<depth>`` layers. The outputs are counted by wrapping each layer's
    ``call`` while the model is traced (see ``_NonZeroCounter``); a layer called several
    times in the pass counts all its calls. The cost is one compiled inference pass on ``x``
    per epoch (plus one trace, on the first epoch); see docs/callbacks.md for measured numbers.

    Place it before CSVLogger / TensorBoard in ``callbacks`` so they see ``nz``.

    Args:
        x: a fixed batch of training inputs (a NumPy array; or a list / dict of arrays for a
            multi-input model), e.g. 256 images: ``x, _ = bundle.sample(256)``.
        layers: None (every hidden activation layer) or the names of the layers to measure.
    """

    def __init__(self, x, layers=None):
        super().__init__()
        self.x = _check_inputs(x)
        self.layer_names = check_names("SparsityMonitor", "layers", layers)
        self.sites = []
        self.last_seconds = None  # wall time of the last measurement
        self._counter = None

    def on_train_begin(self, logs=None):
        self.sites = find_activation_layers(self.model, self.layer_names)
        self._counter = None

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update(self.measure())

    def measure(self):
        """Run the model on ``x`` once and return ``{"nz": ..., "nz/<name>": ...}``."""
        start = time.perf_counter()
        model = self.model  # on JAX, syncs the trained variables into the model
        if not self.sites:
            self.sites = find_activation_layers(model, self.layer_names)
        if self._counter is None or self._counter.model is not model:
            self._counter = _NonZeroCounter(model, self.sites)
            if keras.backend.backend() == "tensorflow" and getattr(model, "compiled", False):
                # Run as the model's own steps do: a channels_first model on a CPU runs only
                # under XLA there (its CPU convolutions are NHWC only).
                self._counter.compile(jit_compile=model.jit_compile)
        counts = self._counter.predict_on_batch(self.x)
        result, total_nonzero, total_size = {}, 0, 0
        for layer, name, per_sample in zip(self.sites, unique_names(self.sites), counts):
            size_per_sample = self._counter.sizes[id(layer)]
            if not size_per_sample:
                raise ValueError(
                    f"SparsityMonitor: layer {layer.name!r} was not called when the model ran "
                    f"on x, so its sparsity cannot be measured; pass layers= to choose the "
                    f"sites. Received: layers={self.layer_names!r}"
                )
            nonzero = int(np.sum(per_sample, dtype=np.int64))
            size = size_per_sample * len(per_sample)
            result[f"nz/{name}"] = nonzero / size
            total_nonzero += nonzero
            total_size += size
        result = {"nz": total_nonzero / total_size, **result}
        self.last_seconds = time.perf_counter() - start
        return result


class _NonZeroCounter(keras.Model):
    """``model`` run with ``training=False``; outputs each measured layer's (site's)
    per-sample non-zero count.

    Keras 3 has no backend-neutral forward hook, so while ``call`` runs, each site's bound
    ``call`` is shadowed by an instance attribute that counts the non-zeros of its output
    (see ``_counting``). Going through ``predict_on_batch`` compiles this like a predict
    step (jit on JAX, tf.function on TensorFlow; torch runs eagerly): the hooks are then
    only active while tracing, and the compiled function computes the counts. Only one int32
    per sample and site leaves the step, never the activations (GBs for a WRN-28-4 batch).
    """

    def __init__(self, model, sites):
        super().__init__(name="nonzero_counter")
        self.model = model
        self.sites = list(sites)
        self.sizes = {}  # id(site) -> entries per sample summed over its calls (trace time)
        self.built = True  # the wrapped model is built; nothing of our own to build

    def call(self, x):
        counts = {id(layer): [] for layer in self.sites}
        with _counting(self.sites, counts):
            self.model(x, training=False)
        self.sizes = {key: sum(size for _, size in calls) for key, calls in counts.items()}
        outputs = []
        for layer in self.sites:
            calls = counts[id(layer)]
            if not calls:  # never called: measure() raises a clear error
                outputs.append(ops.zeros((1,), "int32"))
                continue
            total = calls[0][0]
            for count, _ in calls[1:]:
                total = total + count
            outputs.append(total)
        return outputs


@contextlib.contextmanager
def _counting(layers, counts):
    """Shadow each layer's ``call`` so it appends (per-sample non-zero counts, entries per
    sample) of its output to ``counts[id(layer)]``; restore the layers afterwards."""
    for layer in layers:
        original = layer.call

        def counting_call(*args, _original=original, _calls=counts[id(layer)], **kwargs):
            outputs = _original(*args, **kwargs)
            per_sample = int(np.prod(outputs.shape[1:]))
            rows = ops.reshape(outputs, (-1, per_sample))
            _calls.append((ops.sum(ops.cast(ops.not_equal(rows, 0), "int32"), axis=1),
                           per_sample))
            return outputs

        # object.__setattr__: bypass Keras' attribute tracking for this temporary attribute.
        object.__setattr__(layer, "call", counting_call)
    try:
        yield
    finally:
        for layer in layers:
            vars(layer).pop("call", None)


def _check_inputs(x):
    def ok(a):
        return hasattr(a, "shape") and len(a.shape) >= 1 and a.shape[0] > 0

    if isinstance(x, dict):
        valid = bool(x) and all(ok(v) for v in x.values())
    elif isinstance(x, (list, tuple)):
        valid = bool(x) and all(ok(v) for v in x)
    else:
        valid = x is not None and ok(x)
    if not valid:
        raise ValueError(
            "SparsityMonitor: x must be a non-empty batch of training inputs (an array with a "
            "batch axis, or a list/dict of them), e.g. x = bundle.sample(256)[0]. "
            f"Received: x={_describe(x)}"
        )
    return x


def _describe(x):
    if hasattr(x, "shape"):
        return f"<{type(x).__name__} of shape {tuple(x.shape)}>"
    return repr(x)[:80]

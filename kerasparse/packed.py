"""Packed training: N compatible cells of a grid trained as one program, each written to its
own run directory exactly as ``kerasparse train`` writes it.

    from kerasparse.packed import compatible, packs, train_pack
    cells = [resolve("configs/dent-tanner2026-dnn-mnist-q3.toml", {"seed": s, "sparsity": x})
             for s in (3407, 3408) for x in (0.8, 0.85, 0.9)]
    compatible(cells)               # None, or one line naming what differs
    train_pack([f"runs/c{i}" for i in range(6)], cells)      # 6 run directories
    train_pack([...same dirs...], resume=True)                 # after a kill: exact resume

A cell's settings split in two (docs/training.md, "Packed training"):

- per member (:data:`PER_MEMBER`): ``seed`` (initial weights, validation split, data order),
  ``sparsity``, ``q_star``, ``v_prime`` (the EoC setting: tau, m, sigma_w^2, sigma_b^2 and
  the input scaling);
- shared: everything else (model, depth, width, data, batch size, epochs, optimizer,
  learning rate and schedule, ...). Cells that differ in a shared key are refused
  (:func:`compatible` says which key).

Why the pack trains each member exactly as its own run would:

- member i's initial weights are those of its own run: its ordinary model is built the way
  ``kerasparse train`` builds it (``keras.utils.set_random_seed(seed)``, then
  :func:`kerasparse.train.build_model`) and copied into the stack;
- member i sees its own run's batches: its data come from its own ``kerasparse.data.load``
  bundle with its seed and q*, through the same epoch-indexed order
  (:func:`_member_train_batches`), stacked on axis 1;
- the loss is the sum over members of each member's own mean cross-entropy
  (:class:`MemberCrossentropy`), so the gradient of member i's weights is the gradient of
  its own loss; members share no weights, and the optimizers allowed
  (:data:`PACKABLE_OPTIMIZERS`) update each parameter from its own gradient and state only
  (SGD with or without momentum / Nesterov / decoupled weight decay; Adam(W)), with one
  step counter and one learning-rate schedule, which the members share anyway.
  Gradient clipping by norm, LAMB/LARS-style trust ratios or loss scaling would mix members
  (one norm over the stack) and are not packable.

Per-member metrics are vectors (:class:`MemberLoss`, :class:`MemberAccuracy`: logs
``member_loss``, ``member_accuracy`` and their ``val_`` / ``test_`` versions); each cell's
``history.csv`` row is built from its member's entries with the keys ``kerasparse train``
writes.
"""

import contextlib
import math
import os
import queue
import random
import signal
import threading
import time

import numpy as np

from kerasparse import rundir
from kerasparse.config import FIELDS, ConfigError, resolve

PER_MEMBER = ("seed", "sparsity", "q_star", "v_prime")
PACKABLE_OPTIMIZERS = ("sgd", "adam")
PACKABLE_BUILDERS = ("DeepMLP", "DeepCNN")
# Of the available memory, the part a pack may plan to use (the estimate is rough).
MEMORY_HEADROOM = 0.9


# ---------------------------------------------------------------------------------------------
# Which cells can be packed (the model registry: importing kerasparse.models imports Keras)


def _packable_models():
    from kerasparse.presets import MODELS

    return [name for name, spec in MODELS.items() if spec.builder in PACKABLE_BUILDERS]


def _fmt_values(values, limit=4):
    distinct = []
    for v in values:
        if v not in distinct:
            distinct.append(v)
    text = ", ".join(repr(v) for v in distinct[:limit])
    return text + (", ..." if len(distinct) > limit else "")


def _unpackable(config):
    """One line saying why a single cell cannot be in any pack, or None."""
    from kerasparse.presets import MODELS

    spec = MODELS.get(config["model"])
    if spec is None or spec.builder not in PACKABLE_BUILDERS:
        return (
            f"model {config['model']!r} cannot be packed; packable models: "
            f"{', '.join(_packable_models())}"
        )
    if config["optimizer"] not in PACKABLE_OPTIMIZERS:
        return (
            f"optimizer {config['optimizer']!r} cannot be packed exactly; packable: sgd "
            "(with or without momentum, Nesterov, weight decay) and adam"
        )
    if config["controller"] != "none":
        return (
            f"controller {config['controller']!r} cannot be packed (the packable models have "
            "no top-k sites); packing needs controller 'none'"
        )
    if config["devices"] != 1:
        return f"devices={config['devices']} cannot be packed; a pack runs on one device"
    for key, flag in (("tensorboard", "--tensorboard"), ("callbacks", "--callback"),
                      ("model_args", "a [model] table's other arguments")):
        if config[key]:  # the pack's members have no model of their own to give them
            return (f"{key} ({flag}) cannot be packed; run these cells alone (--pack 1). "
                    f"Received: {key}={config[key]!r}")
    return None


def compatible(configs):
    """None if the resolved ``configs`` can be trained as one pack; else one line naming what
    differs (or what cannot be packed) and what is allowed.

    It reads the model registry, whose package imports Keras: choose the backend first (as
    ``kerasparse models`` does)."""
    configs = list(configs)
    if not configs:
        return "a pack needs at least 1 cell. Received: 0 cells"
    for config in configs:
        reason = _unpackable(config)
        if reason:
            return reason
    for key in FIELDS:
        if key in PER_MEMBER:
            continue
        values = [c[key] for c in configs]
        if any(v != values[0] for v in values):
            return (
                f"cells differ in {key} ({_fmt_values(values)}); the cells of a pack may differ "
                f"only in {', '.join(PER_MEMBER)}"
            )
    return None


def _signature(config):
    return tuple((k, repr(config[k])) for k in FIELDS if k not in PER_MEMBER)


def packs(configs, size):
    """Split cells into packs of at most ``size`` compatible cells (the order kept within
    each group of cells that share every setting but :data:`PER_MEMBER`); a list of lists
    of indices into ``configs``. ConfigError if ``size`` < 1 or a cell cannot be packed.
    Imports Keras (see :func:`compatible`)."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ConfigError(f"pack size must be a positive integer. Received: pack={size!r}")
    groups = {}
    for i, config in enumerate(configs):
        reason = _unpackable(config)
        if reason:
            raise ConfigError(reason)
        groups.setdefault(_signature(config), []).append(i)
    out = []
    for members in groups.values():
        out.extend(members[j:j + size] for j in range(0, len(members), size))
    return out


# ---------------------------------------------------------------------------------------------
# Memory


def pack_memory(configs):
    """Estimated bytes a pack needs on its device: ``{"weights", "activations", "total"}``.

    weights: parameters x (1 + gradient + optimizer slots: momentum 1, Adam 2) x dtype size;
    activations: what the backward pass keeps per hidden layer (pre-activation, output and a
    gradient buffer: 3 x batch x units) for every member. From the closed-form parameter
    count and the dataset's shape, without building anything. A rough figure (allocator
    overheads and compiled temporaries vary by backend), used to refuse packs that cannot fit.
    """
    from kerasparse.presets import DATASETS, MODELS

    config = configs[0]
    n = len(configs)
    spec = MODELS[config["model"]]
    info = DATASETS.get(config["dataset"])
    if info is None:
        raise ConfigError(f"unknown dataset {config['dataset']!r}")
    args = {**spec.defaults, "num_classes": info.num_classes, "input_shape": info.input_shape}
    for key in ("depth", "width"):
        if config[key] is not None:
            args["channels" if key == "width" and spec.builder == "DeepCNN" else key] = config[key]
    params = spec.parameter_count(**args)
    slots = 0
    if config["optimizer"] == "adam":
        slots = 2
    elif config["momentum"]:
        slots = 1
    size = 2 if config["precision"] == "mixed_bfloat16" else 4
    weights = n * params * 4 * (2 + slots)
    units = args.get("width", args.get("channels"))
    per_example = units
    if spec.builder == "DeepCNN":
        per_example = units * info.input_shape[0] * info.input_shape[1]
    inputs = int(np.prod(info.input_shape))
    activations = n * config["batch_size"] * size * (3 * args["depth"] * per_example + 2 * inputs)
    return {"weights": weights, "activations": activations, "total": weights + activations}


def available_memory():
    """(bytes, where) the backend's first device has free: GPU memory where a GPU is used,
    else the host's MemAvailable. (None, where) if unknown (e.g. TensorFlow on a GPU)."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        if device.platform != "cpu":
            stats = device.memory_stats() or {}
            if "bytes_limit" in stats:
                return stats["bytes_limit"] - stats.get("bytes_in_use", 0), device.device_kind
            return None, device.device_kind
    elif backend == "torch":
        import torch

        if torch.cuda.is_available():
            free, _ = torch.cuda.mem_get_info()
            return free, torch.cuda.get_device_name()
    elif backend == "tensorflow":
        import tensorflow as tf

        if tf.config.list_physical_devices("GPU"):
            return None, "the GPU"
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, "this host"
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "this host"
    except (ValueError, OSError, AttributeError):
        return None, "this host"


def _fmt_bytes(n, unit):
    return f"{n / unit[1]:.1f} {unit[0]}"


def _unit(n):
    """GiB for sizes from 0.1 GiB, else MiB (from 0.1 MiB), else KiB."""
    for name, size in (("GiB", 2.0**30), ("MiB", 2.0**20)):
        if n >= 0.1 * size:
            return name, size
    return "KiB", 2.0**10


def check_memory(configs, limit=None, where=None):
    """ConfigError (one line: what the pack needs, what there is, the largest pack that fits)
    if the estimate of :func:`pack_memory` exceeds ``limit`` bytes (default: 90% of
    :func:`available_memory`). ``where`` names the limit in the message (default: "the
    limit given", or the device)."""
    need = pack_memory(configs)
    if limit is None:
        free, where = available_memory()
        if free is None:
            return need
        limit = MEMORY_HEADROOM * free
    elif where is None:
        where = "the limit given"
    if need["total"] > limit:
        n = len(configs)
        fits = int(limit // (need["total"] / n))
        unit = _unit(max(need["total"], limit))
        advice = (f"use packs of at most {fits} cell{'s' if fits > 1 else ''}" if fits >= 1
                  else "not even one cell fits")
        raise ConfigError(
            f"a pack of {n} cells of {configs[0]['model']} needs about "
            f"{_fmt_bytes(need['total'], unit)} (weights, gradients and optimizer state "
            f"{_fmt_bytes(need['weights'], unit)}, activations "
            f"{_fmt_bytes(need['activations'], unit)} at batch {configs[0]['batch_size']}); "
            f"{where} allows {_fmt_bytes(limit, unit)}: {advice}"
        )
    return need


# ---------------------------------------------------------------------------------------------
# Loss and metrics with a member axis (Keras objects; imported lazily through _keras_parts)


_KERAS_NAMES = ("MemberCrossentropy", "MemberLoss", "MemberAccuracy")
_keras_classes = []


def _keras_parts():
    """(MemberCrossentropy, MemberLoss, MemberAccuracy), defined on first use: this module
    is imported without Keras (to check cells before the CLI chooses the backend)."""
    if not _keras_classes:
        _keras_classes.extend(_define_keras_parts())
    return tuple(_keras_classes)


def _define_keras_parts():
    import keras
    from keras import ops

    def per_example_crossentropy(y_true, y_pred):
        """(batch, N) cross-entropies from logits (batch, N, classes), the op Keras'
        ``SparseCategoricalCrossentropy(from_logits=True)`` applies to each member."""
        classes = y_pred.shape[-1]
        members = y_pred.shape[-2]
        flat = ops.sparse_categorical_crossentropy(
            ops.reshape(y_true, (-1,)), ops.reshape(y_pred, (-1, classes)), from_logits=True
        )
        return ops.reshape(flat, (-1, members))

    @keras.saving.register_keras_serializable(package="kerasparse")
    class MemberCrossentropy(keras.losses.Loss):
        """Sum over members of each member's mean sparse cross-entropy (from logits).

        ``y_true (batch, N)``, ``y_pred (batch, N, classes)``. The gradient with respect to
        member i's weights is that of member i's own mean loss, as in its own run.
        """

        def __init__(self, name="member_crossentropy", dtype=None):
            super().__init__(name=name, reduction="sum", dtype=dtype)

        def call(self, y_true, y_pred):
            y_pred = ops.cast(y_pred, "float32")
            return ops.mean(per_example_crossentropy(y_true, y_pred), axis=0)

        def get_config(self):
            return {"name": self.name, "dtype": self.dtype}

    class _MemberMean(keras.metrics.Metric):
        """Per-member mean over examples of ``value(y_true, y_pred)``: a vector result."""

        def __init__(self, members, name, dtype="float32"):
            super().__init__(name=name, dtype=dtype)
            self.members = int(members)
            self.total = self.add_variable(shape=(self.members,), initializer="zeros",
                                           name="total")
            self.count = self.add_variable(shape=(), initializer="zeros", name="count")

        def update_state(self, y_true, y_pred, sample_weight=None):
            values = ops.cast(self.value(y_true, ops.cast(y_pred, "float32")), self.dtype)
            self.total.assign_add(ops.sum(values, axis=0))
            self.count.assign_add(ops.cast(ops.shape(values)[0], self.dtype))

        def result(self):
            return ops.divide_no_nan(self.total, self.count)

        def reset_state(self):
            self.total.assign(ops.zeros((self.members,), self.dtype))
            self.count.assign(ops.zeros((), self.dtype))

        def get_config(self):
            return {"members": self.members, "name": self.name, "dtype": self.dtype}

    @keras.saving.register_keras_serializable(package="kerasparse")
    class MemberLoss(_MemberMean):
        """Each member's mean cross-entropy over the examples seen (logs ``member_loss``):
        what ``loss`` is in the member's own run."""

        def __init__(self, members, name="member_loss", dtype="float32"):
            super().__init__(members, name=name, dtype=dtype)

        @staticmethod
        def value(y_true, y_pred):
            return per_example_crossentropy(y_true, y_pred)

    @keras.saving.register_keras_serializable(package="kerasparse")
    class MemberAccuracy(_MemberMean):
        """Each member's accuracy (logs ``member_accuracy``): Keras' sparse categorical
        accuracy per member."""

        def __init__(self, members, name="member_accuracy", dtype="float32"):
            super().__init__(members, name=name, dtype=dtype)

        @staticmethod
        def value(y_true, y_pred):
            pred = ops.argmax(y_pred, axis=-1)
            return ops.cast(ops.equal(ops.cast(y_true, pred.dtype), pred), "float32")

    return MemberCrossentropy, MemberLoss, MemberAccuracy


def __getattr__(name):  # ``from kerasparse.packed import MemberLoss`` (imports Keras)
    if name in _KERAS_NAMES:
        return dict(zip(_KERAS_NAMES, _keras_parts()))[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---------------------------------------------------------------------------------------------
# Data. The only functions that know how kerasparse.data orders and serves a member's data:
# switch these when the data module changes (issue 11), nothing else.


def _data_key(config):
    """Members with equal keys get identical data (same split, order and scaling)."""
    from kerasparse.train import data_q_star

    return (config["seed"], data_q_star(config))


def _load_member_data(config):
    """The member's DatasetBundle, loaded as ``kerasparse train`` loads its run's."""
    from kerasparse.train import build_data

    return build_data(config)

def _member_train_batches(bundle, start, epochs, steps):
    """The training batches of epochs ``[start, epochs)``, ``steps`` each, as a sequence of
    NumPy ``(x, y)``: the batches the member's own run sees (``DatasetBundle.train_epochs``:
    epoch e's order is a pure function of (seed, e))."""
    return bundle.train_epochs(epochs, initial_epoch=start, steps_per_epoch=steps)


def _eval_arrays(split, limit=None):
    """All of an evaluation split (``bundle.val`` / ``bundle.test``) as NumPy arrays, in
    order; the first ``limit`` examples if given (as ``kerasparse train``'s
    ``test_examples``)."""
    return (split if limit is None else split.head(limit)).arrays()


def _stacked_batches(sequences, member_keys):
    """Read the distinct members' batch sequences in step; stack each member's batch on
    axis 1."""
    for j in range(min(len(s) for s in sequences.values())):
        batch = {key: s[j] for key, s in sequences.items()}
        yield (np.stack([batch[k][0] for k in member_keys], axis=1),
               np.stack([batch[k][1] for k in member_keys], axis=1))


class _Prefetch:
    """Run an iterator in a background thread, ``depth`` items ahead.

    Keras asks a Python generator for the next batch between steps, synchronously; stacking
    N members' batches takes milliseconds that would otherwise add to every step. (The
    per-member pipelines already prefetch on their own.) ``close()`` stops the thread.
    """

    _END = object()

    def __init__(self, iterator, depth=2):
        self._queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(iterator,), daemon=True)
        self._thread.start()

    def _run(self, iterator):
        try:
            for item in iterator:
                if not self._put(item):
                    return
            self._put(self._END)
        except BaseException as exc:  # handed to the consumer
            self._put(exc)

    def _put(self, item):
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self):
        return self

    def __next__(self):
        item = self._queue.get()
        if item is self._END:
            raise StopIteration
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self):
        self._stop.set()


def _eval_dataset(arrays, member_keys, batch_size):
    """A ``keras.utils.PyDataset`` of stacked evaluation batches (re-iterable each epoch)."""
    import keras

    class StackedEval(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.n = len(next(iter(arrays.values()))[0])

        def __len__(self):
            return -(-self.n // batch_size)

        def __getitem__(self, index):
            part = slice(index * batch_size, (index + 1) * batch_size)
            x = np.stack([arrays[k][0][part] for k in member_keys], axis=1)
            y = np.stack([arrays[k][1][part] for k in member_keys], axis=1)
            return x, y

    return StackedEval()


# ---------------------------------------------------------------------------------------------
# Members, checkpoints


def _member_model(config, info):
    """Member's ordinary model, built exactly as ``kerasparse train`` builds its run's (the
    seed set first, then :func:`kerasparse.train.build_model`): the same initial weights."""
    import keras

    from kerasparse.train import build_model

    keras.utils.set_random_seed(config["seed"])
    keras.mixed_precision.set_dtype_policy(config["precision"])
    return build_model(config, info)


class _Info:
    """What :func:`kerasparse.train.build_model` reads of a DatasetBundle."""

    def __init__(self, bundle):
        self.num_classes = bundle.num_classes
        self.input_shape = tuple(bundle.input_shape)


def _packed_class(model):
    from kerasparse import models

    return {models.DeepMLP: models.PackedDeepMLP, models.DeepCNN: models.PackedDeepCNN}[type(model)]


def _all_variables(model):
    return list(model.variables) + list(model.optimizer.variables)


def _member_arrays(arrays, i):
    """Member i's checkpoint arrays from the pack's: stacked variables (rank >= 1: model
    weights and optimizer slots) give their slice i; scalars (the step counter, a constant
    learning rate) are shared."""
    return [a[i] if a.ndim else a for a in arrays]


class _Member:
    """One cell of the pack: its run directory and a :class:`kerasparse.run_record.RunRecord` for the
    files that are written exactly as ``kerasparse train`` writes them."""

    def __init__(self, index, out, config, backend):
        from kerasparse.run_record import RunRecord

        self.index = index
        self.run = RunRecord(out, config, backend)
        self.status = None  # None while training; "diverged" once its loss is not finite

    @property
    def out(self):
        return self.run.out

    def checkpoint_files(self, epoch):
        stem = f"epoch-{epoch:04d}"
        return (self.run.path("checkpoints", f"{stem}.npz"),
                self.run.path("checkpoints", f"{stem}.json"))

    def write_checkpoint_files(self, arrays, epoch):
        """The weights file and the state file of ``epoch`` (the format of
        :meth:`kerasparse.run_record.RunRecord.save_checkpoint`), without moving ``latest.json``."""
        from kerasparse.run_record import jsonable

        run = self.run
        os.makedirs(run.path("checkpoints"), exist_ok=True)
        weights, state_path = self.checkpoint_files(epoch)
        tmp = run.path("checkpoints", f".tmp-epoch-{epoch:04d}.npz")
        with open(tmp, "wb") as f:
            np.savez(f, **{f"v{j:05d}": a for j, a in enumerate(arrays)})
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, weights)
        state = {
            "epoch": epoch,
            "controller": None,
            "history": run.history,
            "wall_time_s": run.wall_before + (time.time() - run.started),
            "python_random": jsonable(random.getstate()),
            "numpy_random": jsonable(np.random.get_state()),
        }
        rundir.atomic_write_json(state_path, state)

    def flip_latest(self, epoch):
        stem = f"epoch-{epoch:04d}"
        rundir.atomic_write_json(
            self.run.path("checkpoints", "latest.json"),
            {"epoch": epoch, "weights": f"{stem}.npz", "state": f"{stem}.json"},
        )

    def prune(self, epoch):
        """Keep the ``keep_checkpoints`` newest epochs, as ``kerasparse train`` does."""
        from kerasparse import checkpoint

        checkpoint.prune(self.run.path("checkpoints"), epoch, self.run.config["keep_checkpoints"])

    def checkpoint_epochs(self):
        """Epochs for which both checkpoint files exist."""
        folder = self.run.path("checkpoints")
        if not os.path.isdir(folder):
            return set()
        names = set(os.listdir(folder))
        return {
            int(name[6:10]) for name in names
            if name.startswith("epoch-") and name.endswith(".npz") and name[6:10].isdigit()
            and f"epoch-{name[6:10]}.json" in names
        }

    def load(self, epoch):
        """(arrays, state) of this member's checkpoint of ``epoch``."""
        weights, state_path = self.checkpoint_files(epoch)
        with np.load(weights) as data:
            arrays = [data[f"v{j:05d}"] for j in range(len(data.files))]
        return arrays, rundir.read_json(state_path)

    def write_summary(self, status, pack_size, cells):
        from kerasparse import report

        summary = self.run.summary(status)
        summary["packed"] = {"size": pack_size, "index": self.index, "cells": cells}
        rundir.atomic_write_json(self.run.path("summary.json"), summary)
        if self.run.history:
            report.plot_run(self.out)
        return summary


# ---------------------------------------------------------------------------------------------
# The packed run


def train_pack(out_dirs, configs=None, backend=None, *, resume=False, overwrite=False,
               verbose=1, memory_limit=None):
    """Train the cells ``configs`` (resolved configs, :func:`compatible`) as one packed
    program; cell i is written to ``out_dirs[i]`` exactly as ``kerasparse train`` writes a
    run (config.json, history.csv, summary.json, checkpoints/, model.keras, training.png),
    with one extra summary entry, ``packed`` (pack size, index, cells); its wall time is the
    pack's. Returns the cells' summaries.

    ``resume=True`` continues the cells in ``out_dirs`` from their checkpoints (configs read
    back; completed and diverged cells are left as they are). Each cell directory is also an
    ordinary run directory: ``kerasparse train --resume DIR`` continues one cell alone.

    Bad input raises ConfigError (or RunDirError for the directories) with one line, before
    anything is written: an empty pack, cells that cannot be packed (:func:`compatible`),
    a pack that does not fit in memory (:func:`check_memory`; ``memory_limit`` in bytes
    replaces the device's free memory), a directory in use or not empty.
    """
    from kerasparse import interrupts

    # KERASPARSE_FAULT (the resume tests' faults) is read per run, for this run only.
    with interrupts.faults_armed():
        return _train_pack(out_dirs, configs, backend, resume=resume, overwrite=overwrite,
                           verbose=verbose, memory_limit=memory_limit)


def _train_pack(out_dirs, configs, backend, *, resume, overwrite, verbose, memory_limit):
    out_dirs = [os.fspath(o) for o in out_dirs]
    if not out_dirs:
        raise ConfigError("a pack needs at least 1 cell. Received: 0 cells")
    seen = set()
    for out in out_dirs:
        key = os.path.abspath(out)
        if key in seen:
            raise ConfigError(f"the cells of a pack need distinct run directories. Received: "
                              f"{out!r} twice")
        seen.add(key)
    if resume:
        if configs is not None:
            raise ConfigError("resume reads each cell's config.json; give no configs")
        for out in out_dirs:
            rundir.check(out, resume=True)
        configs = []
        for out in out_dirs:
            saved = rundir.read_json(os.path.join(out, "config.json"))
            configs.append(resolve(overrides={k: v for k, v in saved.items() if k != "backend"},
                                   check_unread=False))
    else:
        if configs is None or len(configs) != len(out_dirs):
            raise ConfigError(
                f"train_pack needs one config per run directory. Received: {len(out_dirs)} "
                f"directories, {0 if configs is None else len(configs)} configs"
            )
        configs = [dict(c) for c in configs]
        for out in out_dirs:
            rundir.check(out, overwrite=overwrite)
    reason = compatible(configs)
    if reason:
        raise ConfigError(reason)
    summaries = [None] * len(out_dirs)
    todo = list(range(len(out_dirs)))
    if resume:
        for i, out in enumerate(out_dirs):
            path = os.path.join(out, "summary.json")
            if os.path.exists(path):
                summary = rundir.read_json(path)
                if summary["status"] in ("completed", "diverged"):
                    summaries[i] = summary
        todo = [i for i in todo if summaries[i] is None]
        if not todo:
            if verbose:
                print("every cell of the pack is already finished; nothing to resume")
            return summaries
    check_memory([configs[i] for i in todo], memory_limit)
    pack = _Pack([out_dirs[i] for i in todo], [configs[i] for i in todo], backend, verbose)
    with contextlib.ExitStack() as stack:
        pack.setup()  # data and models: fails early (ConfigError), writes nothing
        if not resume:
            for out in pack.out_dirs:
                rundir.prepare(out, overwrite=overwrite)
        for out in pack.out_dirs:
            stack.enter_context(rundir.RunLock(out))
        for i, summary in zip(todo, pack.train(resume)):
            summaries[i] = summary
    return summaries


class _Pack:
    """All state of one packed run (the members, the model, the data), top to bottom."""

    def __init__(self, out_dirs, configs, backend, verbose):
        self.out_dirs = out_dirs
        self.configs = configs
        self.config = configs[0]  # the shared settings
        self.backend = backend
        self.verbose = verbose
        self.n = len(configs)
        self.interrupted = False
        self.epoch = 0
        self.batches_done = 0
        self.epoch_lr = None  # the learning rate of the current epoch's first step

    # -- set-up: nothing written
    def setup(self):
        import keras

        keras.mixed_precision.set_dtype_policy(self.config["precision"])
        try:
            bundles = {}
            for config in self.configs:
                key = _data_key(config)
                if key not in bundles:
                    bundles[key] = _load_member_data(config)
            self.bundles = bundles
            self.keys = [_data_key(c) for c in self.configs]
            first = bundles[self.keys[0]]
            self.info = _Info(first)
            self.steps = first.steps_per_epoch(self.config["steps_per_epoch"])
            self.model = self._build_model()
        except (ValueError, FileNotFoundError) as exc:
            raise ConfigError(str(exc).splitlines()[0]) from None
        self.val_arrays = None
        if first.val is not None:
            self.val_arrays = {k: _eval_arrays(b.val) for k, b in bundles.items()}
        self.test_arrays = {
            k: _eval_arrays(b.test, self.config["test_examples"]) for k, b in bundles.items()
        }
        # The SparsityMonitor batch of each member's own run (bundle.sample), stacked.
        self.monitor = None
        if self.config["monitor_batch"]:
            samples = {k: b.sample(self.config["monitor_batch"])[0] for k, b in bundles.items()}
            self.monitor = _MemberSparsity(self.model, self.template, self.n,
                                           np.stack([samples[k] for k in self.keys], axis=1))

    def _build_model(self):
        """Each member built under its own seed as in its own run; weights stacked."""
        import keras

        stacks, members, cls = None, [], None
        for i, config in enumerate(self.configs):
            model = _member_model(config, self.info)
            if cls is None:
                cls = _packed_class(model)
                template = model
            weights = model.get_weights()
            if stacks is None:
                stacks = [np.empty((self.n, *w.shape), w.dtype) for w in weights]
            for stack, w in zip(stacks, weights):
                stack[i] = w
            members.append({k: getattr(model, k) for k in
                            ("sparsity", "q_star", "v_prime", "activation_params")})
            if i:
                del model
        kwargs = template.get_config()
        for key in ("name", "trainable", "sparsity", "q_star", "v_prime", "activation_params"):
            kwargs.pop(key, None)
        keras.utils.set_random_seed(self.config["seed"])
        packed = cls(members=members, **kwargs)
        packed.set_weights(stacks)
        self.template = template  # an ordinary member model (architecture of every member)
        return packed

    # -- training
    def train(self, resume):
        import keras

        from kerasparse.train import build_optimizer, compile_model

        backend = keras.backend.backend()
        self.backend_name = backend
        self.members = [_Member(i, out, c, backend)
                        for i, (out, c) in enumerate(zip(self.out_dirs, self.configs))]
        self.cells = [os.path.basename(os.path.normpath(out)) for out in self.out_dirs]
        started = time.time()
        for m, key in zip(self.members, self.keys):
            m.run.started = started
            m.run.steps = self.steps
            # best.weights.h5 is chosen as kerasparse train chooses it (train._setup).
            m.run.best_monitor = "val_accuracy" if self.val_arrays is not None else "test_accuracy"
            bundle = self.bundles[key]  # summary.json's "data", as kerasparse train writes it
            m.run.data_record = {**bundle.split_record(), "test_evaluated": min(
                bundle.num_test, m.run.config["test_examples"] or bundle.num_test)}
        if not resume:
            from kerasparse.train import resolved_config

            for m in self.members:  # the values each cell uses, defaults included
                rundir.atomic_write_json(m.run.path("config.json"),
                                         {**resolved_config(m.run.config), "backend": backend})
        crossentropy, member_loss, member_accuracy = _keras_parts()
        model = self.model
        compile_model(model, optimizer=build_optimizer(self.config, self.steps),
                      loss=crossentropy(), metrics=[member_loss(self.n), member_accuracy(self.n)])
        model.optimizer.build(model.trainable_variables)
        start = self._restore() if resume else 0
        if resume and self.verbose:
            print(f"resuming a pack of {self.n} cells after epoch {start}")

        val = None
        if self.val_arrays is not None:
            val = _eval_dataset(self.val_arrays, self.keys, self.config["batch_size"])
        test = _eval_dataset(self.test_arrays, self.keys, self.config["batch_size"])
        callbacks = _pack_callbacks(self, test)

        previous = signal.getsignal(signal.SIGINT)

        def on_sigint(signum, frame):
            if self.interrupted:
                signal.signal(signal.SIGINT, previous)
                raise KeyboardInterrupt
            self.interrupted = True
            print("\nInterrupted: stopping after this batch (Ctrl-C again to abort now)")

        epochs = self.config["epochs"]
        if start < epochs and any(m.status is None for m in self.members):
            distinct = {}
            for key in self.keys:
                if key not in distinct:
                    distinct[key] = _member_train_batches(self.bundles[key], start, epochs,
                                                          self.steps)
            feed = _Prefetch(_stacked_batches(distinct, self.keys))
            signal.signal(signal.SIGINT, on_sigint)
            try:
                model.fit(
                    (batch for batch in feed),  # Keras takes generators, not iterators
                    epochs=epochs, initial_epoch=start, steps_per_epoch=self.steps,
                    validation_data=val, callbacks=callbacks, shuffle=False, verbose=0,
                )
            finally:
                feed.close()
                signal.signal(signal.SIGINT, previous)
        return self._finish()

    def _restore(self):
        """Load every member's checkpoint of the newest epoch all of them hold; returns it."""
        common = None
        for m in self.members:
            epochs = m.checkpoint_epochs()
            common = epochs if common is None else common & epochs
        if not common:
            # Killed before every member's first checkpoint was written: start over (the
            # initial weights are a function of the seeds), as a run killed in its first
            # epoch does.
            for m in self.members:
                m.run.history = []
            return 0
        epoch = max(common)
        variables = _all_variables(self.model)
        values = [_numpy(v) for v in variables]
        for m in self.members:
            arrays, state = m.load(epoch)
            if len(arrays) != len(variables):
                raise rundir.RunDirError(
                    f"checkpoint epoch {epoch} of {m.out} holds {len(arrays)} variables, the "
                    f"pack's members have {len(variables)}: the run directory does not match "
                    "its config"
                )
            for value, a in zip(values, arrays):
                if value.ndim:
                    value[m.index] = a
                else:
                    value[...] = a
            m.run.history = state["history"]
            m.run.wall_before = state.get("wall_time_s", 0.0)
        for v, value in zip(variables, values):
            v.assign(value)
        return epoch

    # -- epoch end (from the Recorder callback)
    def active(self):
        return [m for m in self.members if m.status is None]

    def record_epoch(self, epoch, logs, seconds):
        lr = self.epoch_lr  # the rate of the epoch's first step (kerasparse.history)
        # The columns in the order of a kerasparse train run's history.csv: Keras' logs
        # (train, val), the SparsityMonitor's nz, nz/<site>, then the test metrics.
        columns = [(f"{p}{k}", f"{p}member_{k}") for p in ("", "val_") for k in
                   ("accuracy", "loss")]
        tests = [(f"test_{k}", f"test_member_{k}") for k in ("accuracy", "loss")]
        nz = self.monitor.measure() if self.monitor is not None else {}
        for m in self.active():
            row = {"epoch": epoch + 1}
            for key, source in columns:
                if source in logs:
                    row[key] = float(np.asarray(logs[source])[m.index])
            row.update({key: float(values[m.index]) for key, values in nz.items()})
            for key, source in tests:
                if source in logs:
                    row[key] = float(np.asarray(logs[source])[m.index])
            row["lr"] = lr
            row["epoch_time_s"] = round(seconds, 4)
            m.run.history.append(row)
            if m.run.is_best(row):
                self.write_best(m)
            m.run.write_history()
        every = self.config["checkpoint_every"]
        if (epoch + 1) % every == 0 or epoch + 1 == self.config["epochs"]:
            self.save_checkpoint(epoch + 1)

    def write_best(self, m):
        """Member ``m``'s ``best.weights.h5``, the file ``kerasparse train`` writes: its weights
        as an ordinary model (no optimizer), loadable by ``model.load_weights`` on the cell's
        own model. The member model is made once and refreshed from the pack's weights."""
        from kerasparse import checkpoint

        if getattr(m, "best_model", None) is None:
            m.best_model = self.model.member(m.index)
        else:
            m.best_model.set_weights(self.model.member_weights(m.index))
        checkpoint.write_weights(m.best_model, m.run.path(checkpoint.BEST),
                                 include_optimizer=False)

    def save_checkpoint(self, epoch):
        """Every active member's checkpoint files first, then every ``latest.json``, then the
        pruning: a kill at any point leaves each member at this epoch or the previous
        checkpoint, and files of the newest epoch they all hold (what resume restores)."""
        from kerasparse.interrupts import maybe_fault as _maybe_fault

        arrays = [_numpy(v) for v in _all_variables(self.model)]
        active = self.active()
        for m in active:
            m.write_checkpoint_files(_member_arrays(arrays, m.index), epoch)
            _maybe_fault("checkpoint", epoch)
        for m in active:
            m.flip_latest(epoch)
            _maybe_fault("packflip", epoch)
        for m in active:
            m.prune(epoch)

    def diverge(self, m, epoch, step, loss):
        m.status = "diverged"
        m.run.diverged = {"epoch": epoch, "step": step, "loss": loss}
        print(
            f"{m.out}: diverged (non-finite loss {loss} at epoch {epoch}, step {step}); the "
            f"last good checkpoint (epoch {len(m.run.history)}) is kept; the other cells go on"
        )
        m.write_summary("diverged", self.n, self.cells)

    # -- the end
    def _finish(self):
        from kerasparse.train import build_optimizer, compile_model

        summaries = []
        optimizer_arrays = None
        stopped = [m for m in self.members
                   if m.status is None and len(m.run.history) < self.config["epochs"]]
        if stopped:
            print(
                f"Stopped after epoch {len(stopped[0].run.history)} of {self.config['epochs']}; "
                f"resume the pack (kerasparse.packed.train_pack(dirs, resume=True)), or a cell "
                f"alone with: kerasparse train --resume {stopped[0].out}"
            )
        for m in self.members:
            if m.status == "diverged":
                summaries.append(rundir.read_json(m.run.path("summary.json")))
                continue
            if m in stopped:
                status = "interrupted"
            else:
                status = "completed"
                if optimizer_arrays is None:
                    optimizer_arrays = [_numpy(v) for v in self.model.optimizer.variables]
                member = self.model.member(m.index)
                compile_model(member, optimizer=build_optimizer(self.config, self.steps))
                member.optimizer.build(member.trainable_variables)
                for v, a in zip(member.optimizer.variables,
                                _member_arrays(optimizer_arrays, m.index)):
                    v.assign(a)
                member.save(m.run.path("model.keras"))
                del member
            m.status = status
            summaries.append(m.write_summary(status, self.n, self.cells))
        return summaries


class _MemberSparsity:
    """What :class:`kerasparse.callbacks.SparsityMonitor` logs in each member's own run
    (``nz`` and ``nz/<site>``: the fraction of non-zero hidden activations on the member's
    monitor batch, ``training=False``), for every member at once: one inference pass of the
    pack on the stacked batches; only the per-member counts leave the compiled step.
    Inactive (``measure`` returns {}) if the member model has no activation sites, as
    ``kerasparse train`` then runs no monitor."""

    def __init__(self, packed_model, template, n, x):
        from kerasparse.callbacks import find_activation_layers
        from kerasparse.callbacks._sites import unique_names

        self.x = x
        self.names, self.layers = [], []
        try:
            sites = find_activation_layers(template)
        except ValueError:  # no sites: no monitor in the member's own run either
            sites = []
        for site, name in zip(sites, unique_names(sites)):
            try:
                layer = packed_model.get_layer(site.name)
            except ValueError:
                self.names, self.layers = [], []
                break
            self.names.append(name)
            self.layers.append(layer)
        self.n = n
        self.packed_model = packed_model
        self.counter = None

    def _build(self):
        import keras
        from keras import ops

        n, layers = self.n, self.layers
        sub = keras.Model(self.packed_model.inputs, [layer.output for layer in layers])
        sizes = []
        for layer in layers:
            shape = tuple(layer.output.shape)
            if getattr(layer, "layout", "members_first") == "channels":
                sizes.append(int(np.prod(shape[1:-1])) * (shape[-1] // n))
            else:  # (N, batch, ...)
                sizes.append(int(np.prod(shape[2:])))
        self.sizes = sizes  # entries per example and member, per site

        class Counter(keras.Model):
            def __init__(self):
                super().__init__(name="member_nonzero")
                self.sub = sub  # tracked: a compiled predict reads its current variables

            def call(self, x):
                outputs = self.sub(x, training=False)
                if not isinstance(outputs, (list, tuple)):
                    outputs = [outputs]
                counts = []
                for layer, out in zip(layers, outputs):
                    nonzero = ops.cast(ops.not_equal(out, 0), "int32")
                    if getattr(layer, "layout", "members_first") == "channels":
                        c = out.shape[-1] // n
                        counts.append(ops.sum(ops.reshape(nonzero, (-1, n, c)), axis=(0, 2)))
                    else:
                        counts.append(ops.sum(ops.reshape(nonzero, (n, -1)), axis=1))
                return ops.stack(counts)

        self.counter = Counter()

    def measure(self):
        """``{"nz": array(N), "nz/<site>": array(N), ...}`` ({} without sites)."""
        if not self.layers:
            return {}
        if self.counter is None:
            self._build()
        counts = np.asarray(self.counter.predict_on_batch(self.x), dtype=np.int64)  # (sites, N)
        examples = self.x.shape[0]
        sizes = np.asarray(self.sizes, dtype=np.int64)[:, None] * examples
        result = {"nz": counts.sum(axis=0) / sizes.sum(axis=0)}
        for name, count, size in zip(self.names, counts, sizes):
            result[f"nz/{name}"] = count / size
        return result


def _numpy(variable):
    """A writable NumPy copy of a variable (through a tensor: works for every backend)."""
    import keras

    return np.array(keras.ops.convert_to_numpy(keras.ops.convert_to_tensor(variable)))


def _pack_callbacks(pack, test):
    import keras

    from kerasparse.interrupts import maybe_fault as _maybe_fault

    class TestEvaluator(keras.callbacks.Callback):
        """Each member's test metrics at the epoch end: ``test_member_loss``/``_accuracy``."""

        def on_epoch_end(self, epoch, logs=None):
            if logs is None:
                return
            result = self.model.evaluate(test, verbose=0, return_dict=True)
            for key, value in result.items():
                logs[f"test_{key}"] = np.asarray(keras.ops.convert_to_numpy(value))

    class Guard(keras.callbacks.Callback):
        """A member whose running loss is not finite is diverged (its own run would stop
        there); the pack goes on with the others, and stops when none is left or on SIGINT."""

        def on_epoch_begin(self, epoch, logs=None):
            pack.epoch = epoch
            pack.batches_done = 0

        def on_train_batch_end(self, batch, logs=None):
            pack.batches_done = int(batch) + 1
            losses = None if logs is None else logs.get("member_loss")
            if losses is not None:
                losses = np.asarray(losses, dtype="float64")
                for m in pack.active():
                    if not math.isfinite(losses[m.index]):
                        pack.diverge(m, pack.epoch + 1, int(batch) + 1, float(losses[m.index]))
                if not pack.active():
                    self.model.stop_training = True
            if pack.interrupted:
                self.model.stop_training = True
            _maybe_fault("batch", pack.epoch + 1, int(batch) + 1)

    class Recorder(keras.callbacks.Callback):
        """Each active member's history row and, every ``checkpoint_every`` epochs, the
        checkpoints of all of them."""

        def on_epoch_begin(self, epoch, logs=None):
            from kerasparse.history import learning_rate

            self._start = time.perf_counter()
            pack.epoch_lr = learning_rate(self.model.optimizer)

        def on_epoch_end(self, epoch, logs=None):
            # Keras ends the epoch early after stop_training (Ctrl-C, every member diverged):
            # a partial epoch is neither recorded nor checkpointed, so that a resumed pack
            # replays it whole.
            if logs is None or not pack.active() or pack.batches_done < pack.steps:
                return
            pack.record_epoch(epoch, logs, time.perf_counter() - self._start)

    class Progress(keras.callbacks.Callback):
        """A rich progress bar per epoch and one line per finished epoch with the members'
        mean (min-max) metrics."""

        def on_train_begin(self, logs=None):
            from kerasparse.run_callbacks import epoch_progress_bar

            self._bar = epoch_progress_bar()
            self._bar.start()

        def on_epoch_begin(self, epoch, logs=None):
            self._task = self._bar.add_task(
                "", total=pack.steps, epoch=f"{epoch + 1}/{pack.config['epochs']}", metrics=""
            )
            self._start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            text = ""
            active = [m.index for m in pack.active()]
            if logs and "member_loss" in logs and active:
                text = f"loss {np.mean(np.asarray(logs['member_loss'])[active]):.4f} (mean)"
            self._bar.update(self._task, advance=1, metrics=text)

        def on_epoch_end(self, epoch, logs=None):
            self._bar.remove_task(self._task)
            logs = logs or {}
            active = [m.index for m in pack.active()]
            parts = [f"epoch {epoch + 1}/{pack.config['epochs']}", f"{len(active)}/{pack.n} cells"]
            for key, label in (("member_loss", "loss"), ("member_accuracy", "acc"),
                               ("val_member_accuracy", "val acc"),
                               ("test_member_accuracy", "test acc")):
                if key in logs and active:
                    v = np.asarray(logs[key])[active]
                    parts.append(f"{label} {v.mean():.4f} ({v.min():.4f}-{v.max():.4f})")
            parts.append(f"{time.perf_counter() - self._start:.1f}s")
            self._bar.console.print("  ".join(parts), highlight=False)

        def on_train_end(self, logs=None):
            self._bar.stop()

    callbacks = [TestEvaluator(), Guard(), Recorder()]
    if pack.verbose:
        callbacks.append(Progress())
    return callbacks

"""Run checkpoints: Keras' weights file keyed by variable path, plus a JSON sidecar.

A checkpoint of epoch N in ``<run>/checkpoints/`` is two files and a pointer:

- ``epoch-NNNN.weights.h5``: every model and optimizer variable, written by Keras'
  ``model.save_weights`` (the optimizer's slots and step counter included, hence the position
  of the cosine schedule), read back by ``model.load_weights``;
- ``epoch-NNNN.json``: the run's state (controller, history, Python/NumPy RNG, wall time) and
  ``variables``, the manifest ``[[key, shape, dtype], ...]`` of what the weights file holds;
- ``latest.json``: ``{"epoch", "weights", "state"}``, rewritten last (atomically) to make the
  pair current.

Every file is written to a temporary name in the same folder, fsync'ed and moved over the
target with ``os.replace`` (:mod:`kerasparse._io`): a process killed at any point leaves the
previous checkpoint whole. On load the manifest is compared with the model's variables, key
by key, before the first variable is assigned: a run whose config no longer describes the
model that wrote it fails with one line naming the first variable that differs.

A variable's key is its Keras path (``group1_block1_conv1/kernel``); an optimizer variable's
is its path below the optimizer (``optimizer/iteration``), since the optimizer's own name is
numbered per process (``sgd``, ``sgd_1``) while kerasparse models name every layer.

Older checkpoints (``epoch-NNNN.npz``: arrays ``v00000...`` in variable order, written by
kerasparse before 0.x and still by ``kerasparse train-pack`` members) are read too: matched
by position (count and shapes checked), with a one-line note; the next checkpoint of the run
is written in the format above.
"""

import contextlib
import os
import zipfile
import zlib

import numpy as np

from kerasparse import _io, rundir

CHECKPOINTS = "checkpoints"
WEIGHTS_SUFFIX = ".weights.h5"
LEGACY_SUFFIX = ".npz"
BEST = "best.weights.h5"


def all_variables(model):
    """Model variables, then the optimizer's (the order of the legacy .npz files)."""
    return list(model.variables) + list(model.optimizer.variables)


def variable_keys(model):
    """The key of each variable of :func:`all_variables` (see the module docstring)."""
    keys = [v.path for v in model.variables]
    for v in model.optimizer.variables:
        keys.append("optimizer/" + v.path.split("/", 1)[-1])
    return keys


def manifest(model):
    """``[[key, shape, dtype], ...]`` of every model and optimizer variable."""
    return [[key, list(v.shape), str(v.dtype)]
            for key, v in zip(variable_keys(model), all_variables(model))]


def stem(epoch):
    return f"epoch-{epoch:04d}"


def weights_name(epoch):
    return stem(epoch) + WEIGHTS_SUFFIX


def epoch_of(name):
    """N for ``epoch-NNNN.weights.h5`` / ``epoch-NNNN.npz`` / ``epoch-NNNN.json``, else None."""
    if name.startswith("epoch-") and name[6:10].isdigit() and name[10:] in (
            WEIGHTS_SUFFIX, LEGACY_SUFFIX, ".json"):
        return int(name[6:10])
    return None


def write_weights(model, path, *, include_optimizer=True, fault=None):
    """``model.save_weights`` to ``path`` atomically (a temporary ``*.weights.h5`` next to it,
    fsync'ed, then ``os.replace``); ``include_optimizer=False`` writes the model's variables
    only (a file any copy of the model loads without an optimizer). ``fault`` (a callable)
    runs after the temporary file is written: the test hook of a failing write."""
    with _io.atomic_path(path, suffix=WEIGHTS_SUFFIX) as tmp:
        if include_optimizer or getattr(model, "optimizer", None) is None:
            model.save_weights(tmp)
        else:
            # Model.save_weights has no way to leave the optimizer out; the function behind
            # it does (objects_to_skip, recent Keras 3). Older Keras: the optimizer too.
            from keras.src.saving import saving_lib

            try:
                saving_lib.save_weights_only(model, tmp, objects_to_skip=[model.optimizer])
            except TypeError:
                model.save_weights(tmp)
        if fault is not None:
            fault()


def check_manifest(saved, model, path):
    """RunDirError naming the first variable in which checkpoint ``path`` (manifest
    ``saved``) and ``model`` differ; nothing is assigned."""
    hint = "the run's config.json no longer describes the model that wrote it"
    try:
        entries = [(str(k), tuple(int(d) for d in s), str(t)) for k, s, t in saved]
    except (TypeError, ValueError):
        raise rundir.RunDirError(f"{path}: its 'variables' list is damaged") from None
    have = {k: (s, t) for k, s, t in entries}
    mine = list(zip(variable_keys(model), all_variables(model)))
    for key, v in mine:
        if key not in have:
            raise rundir.RunDirError(
                f"checkpoint {path} does not match the model: the model has variable {key} "
                f"{tuple(v.shape)}, the checkpoint does not ({hint})")
        shape, dtype = have[key]
        if tuple(v.shape) != shape:
            raise rundir.RunDirError(
                f"checkpoint {path} does not match the model: {key} has shape "
                f"{tuple(v.shape)}, the checkpoint {shape} ({hint})")
        if str(v.dtype) != dtype:
            raise rundir.RunDirError(
                f"checkpoint {path} does not match the model: {key} is {v.dtype}, the "
                f"checkpoint {dtype} ({hint})")
    keys = {key for key, _ in mine}
    for key, shape, _ in entries:
        if key not in keys:
            raise rundir.RunDirError(
                f"checkpoint {path} does not match the model: it holds variable {key} "
                f"{shape}, the model has no such variable ({hint})")


def check_weights_file(path):
    """RunDirError unless ``path`` is a readable HDF5 file (read before anything is assigned:
    a truncated, empty or foreign file is reported by name)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            count = []
            f.visititems(lambda name, obj: count.append(name)
                         if isinstance(obj, h5py.Dataset) else None)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise rundir.RunDirError(
            f"checkpoint {path} is damaged ({reason}); it cannot be restored") from None
    return len(count)


def load_weights(model, path):
    """``model.load_weights(path)``; a failure (a file damaged past what
    :func:`check_weights_file` sees, one that lacks some of the model's layers) is a
    RunDirError naming it."""
    import warnings

    try:
        # Keras only warns when a file lacks a layer's group (the layer keeps its fresh
        # weights) or an optimizer's variable count differs (it skips them): for a checkpoint
        # each of those is a failed restore.
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)
            model.load_weights(path)
    except (OSError, ValueError, KeyError, TypeError, UserWarning) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise rundir.RunDirError(
            f"checkpoint {path} cannot be restored ({reason})") from None


def read_legacy(path):
    """The arrays v00000, v00001, ... of a legacy checkpoint .npz (RunDirError if damaged)."""
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError("not an .npz archive")
        with data:
            names = [f"v{i:05d}" for i in range(len(data.files))]
            return [np.asarray(data[name]) for name in names]
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        reason = str(exc) or type(exc).__name__
        if isinstance(exc, EOFError):
            reason = "empty or truncated"
        raise rundir.RunDirError(
            f"checkpoint {path} is damaged ({reason}); it cannot be restored") from None


def check_legacy(arrays, model, path):
    """Count and shapes of a legacy .npz against the model's variables (by position)."""
    variables = all_variables(model)
    if len(arrays) != len(variables):
        raise rundir.RunDirError(
            f"checkpoint {path} holds {len(arrays)} variables, the model has "
            f"{len(variables)}: the run directory does not match its config")
    for key, v, a in zip(variable_keys(model), variables, arrays):
        if tuple(v.shape) != tuple(a.shape):
            raise rundir.RunDirError(
                f"checkpoint {path} does not match the model: {key} has shape "
                f"{tuple(v.shape)}, the checkpoint {tuple(a.shape)} (the run's config.json "
                "no longer describes the model that wrote it)")


def prune(folder, newest, keep):
    """Keep the files of the ``keep`` newest checkpointed epochs up to ``newest`` (the epoch
    latest.json now points to), delete older ones (``keep`` 0: keep all). Files of epochs
    after ``newest`` (left by a process killed before it moved latest.json) are left alone:
    the resumed run rewrites them."""
    if keep <= 0:
        return
    names = [(epoch_of(n), n) for n in os.listdir(folder)]
    epochs = sorted({e for e, _ in names if e is not None and e <= newest}, reverse=True)
    old = set(epochs[keep:])
    for epoch, name in names:
        if epoch in old:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(folder, name))

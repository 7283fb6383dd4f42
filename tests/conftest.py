"""Shared test set-up. The backend is chosen by KERAS_BACKEND (dev.sh runs one process each)."""

import atexit
import contextlib
import os
import shutil
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# JAX's persistent compilation cache, for this test session only (a fresh folder, removed at
# exit): the suite compiles the same small programs again and again (the reference run, the
# runs killed and resumed, sweep cells, each in a new process), and XLA's CPU compilation is
# about two thirds of such a run's time. A cache hit loads the very executable a compile
# would give, so nothing checked changes. Set before Keras imports jax; subprocesses inherit
# it. A test session given its own JAX_COMPILATION_CACHE_DIR keeps it.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _jax_cache = tempfile.mkdtemp(prefix="kerasparse-tests-jax-cache-")
    atexit.register(shutil.rmtree, _jax_cache, True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _jax_cache
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"  # (default 1 s)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import keras  # noqa: E402

BACKEND = keras.backend.backend()


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(1234)
    yield


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def h5_arrays(path):
    """{dataset path: array} of a Keras .weights.h5 file, read with h5py (an independent
    reader of what Keras wrote)."""
    import h5py

    found = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: found.__setitem__(name, obj[()])
                     if isinstance(obj, h5py.Dataset) else None)
    return found


def to_numpy(x):
    return keras.ops.convert_to_numpy(x)


@contextlib.contextmanager
def weights_not_initialized():
    """Variables created inside get their shapes but never their values:
    keras.StatelessScope(initialize_variables=False) defers each initializer, which is then
    never run. For tests about a model's structure (parameter counts, layers, shapes) of
    full-size models: initializing one is what makes building it slow (on JAX a random-normal
    program is compiled for every distinct weight shape). Nothing built inside may be called
    or read after the block; the Keras session is cleared at its end (which also drops the
    list of never-initialized variables)."""
    try:
        with keras.StatelessScope(initialize_variables=False):
            yield
    finally:
        keras.backend.clear_session()


def trainable_count(make):
    """The trainable parameter count of the model ``make()`` builds: the sizes of the
    trainable variables Keras creates (see weights_not_initialized; a count does not depend
    on the values)."""
    with weights_not_initialized():
        model = make()
        return sum(int(np.prod(w.shape)) for w in model.trainable_weights)

"""kerasparse: sparse-activation training for Keras 3 on JAX, PyTorch and TensorFlow.

Importing ``kerasparse`` itself is cheap and does not import Keras, so that the command line
can choose the backend (``KERAS_BACKEND``) first. Import the submodules you need::

    from kerasparse.layers import GlobalTopK, RMSNorm2D, SparseActivation
"""

import os

__version__ = "0.1.0"

# The backend of every kerasparse entry point (`kerasparse train`, the apps/ scripts) when
# KERAS_BACKEND is not set (Keras' own default would be tensorflow).
DEFAULT_BACKEND = "jax"


def use_default_backend():
    """Set ``KERAS_BACKEND`` to :data:`DEFAULT_BACKEND` unless it is set; returns the backend.
    Call it before Keras is imported (a script's first lines), as the apps/ scripts do."""
    if not os.environ.get("KERAS_BACKEND"):
        os.environ["KERAS_BACKEND"] = DEFAULT_BACKEND
    return os.environ["KERAS_BACKEND"]

"""kerasparse: sparse-activation training for Keras 3 on JAX, PyTorch and TensorFlow.

Importing ``kerasparse`` itself is cheap and does not import Keras, so that the command line
can choose the backend (``KERAS_BACKEND``) first. Import the submodules you need::

    from kerasparse.layers import GlobalTopK, RMSNorm2D, SparseActivation
"""

__version__ = "0.1.0"

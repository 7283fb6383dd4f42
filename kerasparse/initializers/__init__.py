"""kerasparse initializers: edge-of-chaos kernel and bias initializers (Dent & Tanner 2026).

Both are built from a solved :class:`kerasparse.eoc.EoCSetup` (``EoCKernel.from_setup(s)``,
or ``kerasparse.eoc_keras.kernel_initializer(s)``) or from the theory inputs (activation,
sparsity, q*, V'(q*)), which is also their saved config.
"""

from kerasparse.initializers.eoc_bias import EoCBias
from kerasparse.initializers.eoc_kernel import EoCKernel

__all__ = ["EoCBias", "EoCKernel"]

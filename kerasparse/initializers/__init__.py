"""kerasparse initializers: edge-of-chaos kernel and bias initializers (Dent & Tanner 2026).

Both take the theory inputs (activation, sparsity, q*, V'(q*)) and solve for sigma_w^2 /
sigma_b^2 with :func:`kerasparse.eoc.setup`; ``eoc.setup(...).kernel_initializer()`` builds them.
"""

from kerasparse.initializers.eoc_bias import EoCBias
from kerasparse.initializers.eoc_kernel import EoCKernel

__all__ = ["EoCBias", "EoCKernel"]

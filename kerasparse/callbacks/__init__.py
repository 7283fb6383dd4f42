"""Keras callbacks that drive and measure activation sparsity (Wang 2026, section 2.6).

Keep-ratio controllers move the keep ratio r of every GlobalTopK / SparseActivation layer
epoch by epoch; SparsityMonitor logs the actual non-zero rate of the hidden activations (top-k
sites and activation layers such as CReLU). Use them with plain
``model.fit``::

    from kerasparse.callbacks import MultiplicativeKeepRatio, SparsityMonitor

    model.fit(x, y, epochs=100, callbacks=[MultiplicativeKeepRatio(), SparsityMonitor(x[:256])])

Exact semantics, logs and the resume story: docs/callbacks.md.
"""

from kerasparse.callbacks._sites import find_activation_layers, find_topk_layers
from kerasparse.callbacks.additive_keep_ratio import AdditiveKeepRatio
from kerasparse.callbacks.constant_keep_ratio import ConstantKeepRatio
from kerasparse.callbacks.history_csv import HistoryCSV
from kerasparse.callbacks.multiplicative_keep_ratio import MultiplicativeKeepRatio
from kerasparse.callbacks.scheduled_keep_ratio import ScheduledKeepRatio
from kerasparse.callbacks.sparsity_monitor import SparsityMonitor
from kerasparse.callbacks.tensorboard_scalars import TensorBoardScalars

__all__ = [
    "AdditiveKeepRatio",
    "ConstantKeepRatio",
    "HistoryCSV",
    "MultiplicativeKeepRatio",
    "ScheduledKeepRatio",
    "SparsityMonitor",
    "TensorBoardScalars",
    "find_activation_layers",
    "find_topk_layers",
]

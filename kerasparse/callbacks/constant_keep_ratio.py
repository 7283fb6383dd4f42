from kerasparse.callbacks._base import KeepRatioController
from kerasparse.validation import check_number


class ConstantKeepRatio(KeepRatioController):
    """A fixed keep ratio r for every GlobalTopK layer (a baseline / ablation controller).

    At the start of every epoch each controlled layer's ``keep_ratio`` is set to ``r``; at its
    end ``logs["keep_ratio"] = r`` and ``logs["keep_ratio_reset"] = 0`` are written, so runs
    with and without a feedback controller have the same history columns. ``r = 1`` is the
    dense baseline; ``r = 0`` keeps ``k = max(1, ceil(0 * D)) = 1`` activation per sample.

    Args:
        keep_ratio: r in [0, 1].
        layers: None (every GlobalTopK layer) or names of the layers to control.
        backup_dir: as in :class:`AdditiveKeepRatio` (only the epoch count matters here).
    """

    def __init__(self, keep_ratio, layers=None, backup_dir=None):
        owner = type(self).__name__
        keep_ratio = check_number(owner, "keep_ratio", keep_ratio, low=0.0, high=1.0)
        super().__init__(max_keep_ratio=keep_ratio, layers=layers, backup_dir=backup_dir)

    def _next_state(self, state, logs):
        return state, False

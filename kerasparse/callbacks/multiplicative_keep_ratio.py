from kerasparse.callbacks._base import SmoothedController
from kerasparse.validation import check_number


class MultiplicativeKeepRatio(SmoothedController):
    """Wang 2026's Strategy 2: multiplicative compression of r with a best-gap reset.

    Drives the keep ratio r of every GlobalTopK / SparseActivation layer of the model (or of
    the layers named in ``layers``); all of them get the same r. Exact semantics, with
    ``a = logs[monitor]`` the epoch's training accuracy::

        on train begin (fresh run):  r = max_keep_ratio, e_prev = best = None, resets = 0
        on epoch begin:              every controlled layer's keep_ratio <- r
        on epoch end:
            logs["keep_ratio"] = r                       # the r used during this epoch
            e = a if e_prev is None else smoothing * e_prev + (1 - smoothing) * a
            best = e if best is None else max(best, e)   # over all epochs; never cleared
            reset = e < best - gap
            if reset: r = max_keep_ratio; resets += 1
            else:     r = max(r * factor, min_keep_ratio)
            e_prev = e
            logs["keep_ratio_reset"] = int(reset)

    The new r applies from the next epoch. Each site keeps ``k = max(1, ceil(r * D))`` of its
    D activations per sample. ``best`` is not cleared by a reset, so after a collapse r stays
    at ``max_keep_ratio`` (resetting every epoch) until the smoothed value is back within
    ``gap`` of the best.

    ``get_state()`` / ``set_state()`` and ``backup_dir`` make a run resumable exactly; see
    ``docs/callbacks.md``. Place the controller before CSVLogger / TensorBoard in
    ``callbacks`` so they see the ``keep_ratio`` and ``keep_ratio_reset`` it logs.

    Args:
        factor: multiplicative decay of r per epoch, in (0, 1). Paper: 0.98.
        smoothing: EMA factor of the monitored value, in [0, 1). Paper: 0.5.
        gap: reset when the smoothed value is more than ``gap`` below the best so far, >= 0.
            Paper: 0.2.
        monitor, min_keep_ratio, max_keep_ratio, layers, backup_dir: as in
            :class:`AdditiveKeepRatio`.
    """

    def __init__(
        self,
        factor=0.98,
        smoothing=0.5,
        gap=0.2,
        monitor="accuracy",
        min_keep_ratio=0.0,
        max_keep_ratio=1.0,
        layers=None,
        backup_dir=None,
    ):
        owner = type(self).__name__
        self.factor = check_number(owner, "factor", factor, low=0.0, high=1.0, low_open=True,
                                   high_open=True)
        self.gap = check_number(owner, "gap", gap, low=0.0)
        super().__init__(
            smoothing=smoothing,
            monitor=monitor,
            min_keep_ratio=min_keep_ratio,
            max_keep_ratio=max_keep_ratio,
            layers=layers,
            backup_dir=backup_dir,
        )

    def _settings(self):
        config = super()._settings()
        config.update(factor=self.factor, gap=self.gap)
        return config

    def _is_drop(self, e_prev, e, best):
        return e < best - self.gap

    def _compress(self, keep_ratio):
        return keep_ratio * self.factor

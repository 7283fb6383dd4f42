from kerasparse.callbacks._base import SmoothedController
from kerasparse.validation import check_number


class AdditiveKeepRatio(SmoothedController):
    """Wang 2026's Strategy 1: additive compression of r with a local drop-triggered reset.

    Drives the keep ratio r of every GlobalTopK / SparseActivation layer of the model (or of
    the layers named in ``layers``); all of them get the same r. Exact semantics, with
    ``a = logs[monitor]`` the epoch's training accuracy::

        on train begin (fresh run):  r = max_keep_ratio, e_prev = None, resets = 0
        on epoch begin:              every controlled layer's keep_ratio <- r
        on epoch end:
            logs["keep_ratio"] = r                       # the r used during this epoch
            e = a if e_prev is None else smoothing * e_prev + (1 - smoothing) * a
            reset = e_prev is not None and e_prev - e >= drop   # never on the first epoch
            if reset: r = max_keep_ratio; resets += 1
            else:     r = max(r - step, min_keep_ratio)
            e_prev = e
            logs["keep_ratio_reset"] = int(reset)

    The new r applies from the next epoch (so after a reset the next epoch runs at
    ``max_keep_ratio`` and the next decrease happens at that epoch's end). Each site keeps
    ``k = max(1, ceil(r * D))`` of its D activations per sample; ``r = 0`` (reachable with
    ``min_keep_ratio=0``) therefore keeps one activation per sample and site.

    ``get_state()`` / ``set_state()`` and ``backup_dir`` make a run resumable exactly; see
    ``docs/callbacks.md``. Place the controller before CSVLogger / TensorBoard in
    ``callbacks`` so they see the ``keep_ratio`` and ``keep_ratio_reset`` it logs.

    Args:
        step: additive decrease of r per epoch, in (0, 1]. Paper: 0.01.
        smoothing: EMA factor of the monitored value, in [0, 1). Paper: 0.9.
        drop: reset when the smoothed value falls by at least this much from one epoch to the
            next, >= 0. Paper: 0.01.
        monitor: the logged metric to watch (higher is better). Default ``"accuracy"``.
        min_keep_ratio: lower bound of r, in [0, max_keep_ratio].
        max_keep_ratio: starting and reset value of r, in (0, 1].
        layers: None (every GlobalTopK layer) or names of the layers to control.
        backup_dir: None, or a directory where the state after every epoch is saved as JSON
            (use BackupAndRestore's ``backup_dir``): a re-run ``fit`` resumes from it.
    """

    def __init__(
        self,
        step=0.01,
        smoothing=0.9,
        drop=0.01,
        monitor="accuracy",
        min_keep_ratio=0.0,
        max_keep_ratio=1.0,
        layers=None,
        backup_dir=None,
    ):
        owner = type(self).__name__
        self.step = check_number(owner, "step", step, low=0.0, high=1.0, low_open=True)
        self.drop = check_number(owner, "drop", drop, low=0.0)
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
        config.update(step=self.step, drop=self.drop)
        return config

    def _is_drop(self, e_prev, e, best):
        return e_prev is not None and e_prev - e >= self.drop

    def _compress(self, keep_ratio):
        return keep_ratio - self.step

from kerasparse.callbacks._base import KeepRatioController
from kerasparse.validation import is_number


class ScheduledKeepRatio(KeepRatioController):
    """An open-loop keep-ratio schedule: ``r = schedule(epoch)`` (for baselines and ablations).

    ``schedule`` is called with the 0-based index of the epoch about to run, at its start, and
    must return a number in [0, 1]; every controlled layer's ``keep_ratio`` is set to it. At
    the epoch's end ``logs["keep_ratio"]`` is that r and ``logs["keep_ratio_reset"] = 0``
    (a schedule has no feedback resets; ``resets`` stays 0). Because r depends on the epoch
    only, a resumed run recomputes it and continues exactly.

    Example: ``ScheduledKeepRatio(lambda epoch: max(0.05, 0.98 ** epoch))``.

    Args:
        schedule: a callable ``epoch -> r``.
        layers: None (every GlobalTopK layer) or names of the layers to control.
        backup_dir: as in :class:`AdditiveKeepRatio` (only the epoch count matters here).
    """

    def __init__(self, schedule, layers=None, backup_dir=None):
        if not callable(schedule):
            raise ValueError(
                "ScheduledKeepRatio: schedule must be a callable epoch -> keep ratio. "
                f"Received: schedule={schedule!r}"
            )
        self.schedule = schedule
        super().__init__(max_keep_ratio=1.0, layers=layers, backup_dir=backup_dir)

    def _keep_ratio_for_epoch(self, epoch, state):
        r = self.schedule(epoch)
        if not (is_number(r) and 0.0 <= r <= 1.0):
            raise ValueError(
                f"ScheduledKeepRatio: schedule({epoch}) must return a number in [0, 1]. "
                f"Received: keep_ratio={r!r}"
            )
        return float(r)

    def _next_state(self, state, logs):
        return state, False

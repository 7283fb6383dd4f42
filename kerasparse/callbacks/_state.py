"""The state of a keep-ratio controller: one immutable record, its checks and JSON form."""

import dataclasses
import math
from typing import Optional

from kerasparse.validation import is_integer, is_number


@dataclasses.dataclass(frozen=True)
class KeepRatioState:
    """Everything a keep-ratio controller carries from one epoch to the next.

    keep_ratio  the r applied at the start of epoch ``epoch`` (the next epoch to run)
    e_prev      the smoothed monitored value after the last epoch (None before the first)
    best        the best smoothed value so far (None before the first epoch)
    resets      how many times r was reset to max_keep_ratio
    epoch       how many epochs have completed
    """

    keep_ratio: float
    e_prev: Optional[float] = None
    best: Optional[float] = None
    resets: int = 0
    epoch: int = 0

    def to_dict(self):
        """The JSON-serialisable dict of :meth:`KeepRatioController.get_state`."""
        return dataclasses.asdict(self)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, owner, state, initial):
        """Check a dict from :meth:`to_dict` (keys may be missing: they take ``initial``'s
        values) and return the state; one-line ``ValueError`` naming a bad key or value."""
        if not isinstance(state, dict):
            raise ValueError(f"{owner}: state must be a dict. Received: state={state!r}")
        keys = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(state) - set(keys))
        if unknown:
            raise ValueError(
                f"{owner}: unknown state keys {unknown}; allowed: {keys}. "
                f"Received: state={state!r}"
            )
        merged = {**initial.to_dict(), **state}
        r = merged["keep_ratio"]
        if not is_number(r) or not 0.0 <= r <= 1.0:
            raise ValueError(
                f"{owner}: state keep_ratio must be a number in [0, 1]. Received: keep_ratio={r!r}"
            )
        for key in ("e_prev", "best"):
            v = merged[key]
            if v is not None and not (is_number(v) and math.isfinite(v)):
                raise ValueError(
                    f"{owner}: state {key} must be None or a finite number. Received: {key}={v!r}"
                )
        for key in ("resets", "epoch"):
            v = merged[key]
            if not is_integer(v) or v < 0:
                raise ValueError(
                    f"{owner}: state {key} must be an integer >= 0. Received: {key}={v!r}"
                )
        return cls(
            keep_ratio=float(r),
            e_prev=None if merged["e_prev"] is None else float(merged["e_prev"]),
            best=None if merged["best"] is None else float(merged["best"]),
            resets=int(merged["resets"]),
            epoch=int(merged["epoch"]),
        )

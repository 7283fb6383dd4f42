"""Argument checks shared by kerasparse: layers, models, callbacks, the EoC solver (no Keras).

Every check raises a one-line ``ValueError`` of the form Keras uses::

    <owner>: <name> must be <what>. Received: <name>=<value!r>

and returns the normalised value (``float`` for numbers, ``int`` for integers, a tuple for
name lists), so a constructor reads ``self.step = check_number(owner, "step", step, ...)``.
``owner`` is the class or function the user called (``"AdditiveKeepRatio"``,
``"eoc.setup"``); ``interval`` and :class:`Interval` give the text of a range, for callers
(the configuration schema) that check a value of their own type first.
"""

import dataclasses
import math
import numbers
import os


def is_number(value):
    """A real number that is not a bool (``True`` is an int in Python)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def is_integer(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def message(owner, name, value, what):
    """``"<owner>: <name> must be <what>. Received: <name>=<value!r>"`` (owner may be None)."""
    prefix = f"{owner}: " if owner else ""
    return f"{prefix}{name} must be {what}. Received: {name}={value!r}"


def fail(owner, name, value, what):
    raise ValueError(message(owner, name, value, what))


def _bound(x):
    return f"{x:g}" if isinstance(x, float) else f"{x}"


@dataclasses.dataclass(frozen=True)
class Interval:
    """A range of numbers: ``0.5 in Interval(0, 1, low_open=True)``; ``str()`` is ``(0, 1]``.

    ``None`` bounds are infinite (and always open); NaN is never inside.
    """

    low: float = None
    high: float = None
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value):
        if value != value:  # NaN
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        if self.high is not None and (
            value >= self.high if self.high_open else value > self.high
        ):
            return False
        return True

    def __str__(self):
        lo = "-inf" if self.low is None else _bound(self.low)
        hi = "inf" if self.high is None else _bound(self.high)
        left = "(" if self.low_open or self.low is None else "["
        right = ")" if self.high_open or self.high is None else "]"
        return f"{left}{lo}, {hi}{right}"


def interval(low=None, high=None, low_open=False, high_open=False):
    return Interval(low, high, low_open, high_open)


def check_number(owner, name, value, *, low=None, high=None, low_open=False, high_open=False,
                 finite=False, allow_none=False):
    """``float(value)`` after checking it is a real number in the interval (NaN never is;
    infinities only if ``finite`` is False and the interval reaches them)."""
    if value is None and allow_none:
        return None
    bounds = Interval(low, high, low_open, high_open)
    ok = is_number(value) and value in bounds and (not finite or math.isfinite(value))
    if not ok:
        fail(owner, name, value, f"a {'finite ' if finite else ''}number in {bounds}")
    return float(value)


def check_positive_int(owner, name, value):
    """``int(value)`` for an integer >= 1 (bools and floats are refused)."""
    if not is_integer(value) or value < 1:
        fail(owner, name, value, "a positive integer")
    return int(value)


def check_choice(owner, name, value, allowed):
    if value not in allowed:
        fail(owner, name, value, f"one of {', '.join(map(repr, allowed))}")
    return value


def check_keep_ratio(owner, value):
    """A keep ratio r in (0, 1] (r = 0 would keep nothing: k = max(1, ...) makes it 1)."""
    return check_number(owner, "keep_ratio", value, low=0.0, high=1.0, low_open=True)


def check_axis(owner, value):
    if not is_integer(value):
        fail(owner, "axis", value, "an integer")
    return int(value)


def check_rank(owner, input_shape, min_rank, axis=None, what="(batch, ...)"):
    """Check an input rank in a layer's ``build()``; return the non-negative ``axis`` if given."""
    rank = len(input_shape)
    if rank < min_rank:
        raise ValueError(
            f"{owner} expects inputs of rank >= {min_rank} {what}. "
            f"Received: input_shape={tuple(input_shape)}"
        )
    if axis is None:
        return None
    if not -rank <= axis < rank or axis % rank == 0:
        raise ValueError(
            f"{owner}: axis must name a non-batch axis of the input (1..{rank - 1} or "
            f"-{rank - 1}..-1). Received: axis={axis} for input_shape={tuple(input_shape)}"
        )
    return axis % rank


def check_name(owner, name, value, what):
    """A non-empty string (``what`` says what it names, e.g. "the name of a logged metric")."""
    if not isinstance(value, str) or not value:
        fail(owner, name, value, what)
    return value


def check_names(owner, name, value):
    """None, or a non-empty tuple of non-empty strings (a single string is one name)."""
    if value is None:
        return None
    names = [value] if isinstance(value, str) else value
    ok = isinstance(names, (list, tuple)) and len(names) > 0
    ok = ok and all(isinstance(n, str) and n for n in names)
    if not ok:
        fail(owner, name, value, "None or a non-empty list of layer names")
    return tuple(names)


def check_path(owner, name, value, allow_none=True):
    """A file-system path as a ``str`` (``os.PathLike`` accepted), or None if allowed."""
    if value is None and allow_none:
        return None
    if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
        fail(owner, name, value, ("None or " if allow_none else "") + "a directory path")
    return os.fspath(value)


__all__ = [
    "Interval",
    "check_axis",
    "check_choice",
    "check_keep_ratio",
    "check_name",
    "check_names",
    "check_number",
    "check_path",
    "check_positive_int",
    "check_rank",
    "fail",
    "interval",
    "is_integer",
    "is_number",
    "message",
]

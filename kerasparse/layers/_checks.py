"""Argument checks shared by kerasparse's layers (one-line ValueErrors naming the value)."""

import numbers


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_number(owner, name, value, *, low=None, high=None, low_open=False, high_open=False):
    """Return ``float(value)`` after checking it is a real number in the given interval."""
    ok = _is_number(value) and value == value  # rejects NaN
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        lo = "-inf" if low is None else f"{low}"
        hi = "inf" if high is None else f"{high}"
        interval = ("(" if low_open or low is None else "[") + f"{lo}, {hi}" + (
            ")" if high_open or high is None else "]"
        )
        raise ValueError(
            f"{owner}: {name} must be a number in {interval}. Received: {name}={value!r}"
        )
    return float(value)


def check_keep_ratio(owner, value):
    return check_number(owner, "keep_ratio", value, low=0.0, high=1.0, low_open=True)


def check_choice(owner, name, value, allowed):
    if value not in allowed:
        raise ValueError(
            f"{owner}: {name} must be one of {', '.join(map(repr, allowed))}. "
            f"Received: {name}={value!r}"
        )
    return value


def check_axis(owner, value):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise ValueError(f"{owner}: axis must be an integer. Received: axis={value!r}")
    return int(value)


def check_rank(owner, input_shape, min_rank, axis=None, what="(batch, ...)"):
    """Check the input rank in ``build()``; return the non-negative channel axis if given."""
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

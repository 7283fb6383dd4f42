"""kerasparse.validation (the one validators module) and kerasparse._io (the one atomic-write
helper): messages of the ``Received: x=...`` form, and writes that never leave half a file."""

import json
import math
import os

import numpy as np
import pytest

from kerasparse import _io, rundir, validation
from kerasparse.validation import Interval, check_number


def test_interval_text_and_membership():
    assert str(Interval(0, 1, low_open=True)) == "(0, 1]"
    assert str(Interval(0.0, None)) == "[0, inf)"
    assert str(Interval(None, 1e-10, high_open=True)) == "(-inf, 1e-10)"
    r = Interval(0, 1, low_open=True)
    assert 1 in r and 0.5 in r and 0 not in r and 1.5 not in r and math.nan not in r
    assert math.inf in Interval(0) and -math.inf not in Interval(0)


@pytest.mark.parametrize(
    "kwargs, value, message",
    [
        (dict(low=0.0, high=1.0, low_open=True), 0.0,
         "Owner: x must be a number in (0, 1]. Received: x=0.0"),
        (dict(low=0.0, finite=True), math.inf, "Owner: x must be a finite number in [0, inf). "
                                               "Received: x=inf"),
        (dict(), math.nan, "Owner: x must be a number in (-inf, inf). Received: x=nan"),
        (dict(), True, "Owner: x must be a number in (-inf, inf). Received: x=True"),
        (dict(), "3", "Owner: x must be a number in (-inf, inf). Received: x='3'"),
        (dict(), None, "Owner: x must be a number in (-inf, inf). Received: x=None"),
    ],
)
def test_check_number_messages(kwargs, value, message):
    with pytest.raises(ValueError) as info:
        check_number("Owner", "x", value, **kwargs)
    assert str(info.value) == message


def test_checks_return_normalised_values():
    assert check_number("O", "x", 3, low=0) == 3.0 and isinstance(check_number("O", "x", 3), float)
    assert check_number("O", "x", None, allow_none=True) is None
    assert check_number("O", "m", math.inf, low=0, low_open=True) == math.inf  # CReLU(m=inf)
    assert validation.check_positive_int("O", "depth", np.int64(3)) == 3
    for bad in (0, 2.0, True):
        with pytest.raises(ValueError, match=f"depth must be a positive integer. Received: "
                                             f"depth={bad!r}"):
            validation.check_positive_int("O", "depth", bad)
    assert validation.check_names("O", "layers", "a") == ("a",)
    with pytest.raises(ValueError, match=r"layers must be None or a non-empty list of layer "
                                         r"names. Received: layers=\[''\]"):
        validation.check_names("O", "layers", [""])
    assert validation.check_path("O", "backup_dir", None) is None
    with pytest.raises(ValueError, match="Received: mode='x'"):
        validation.check_choice("O", "mode", "x", ("global", "channel"))


def test_atomic_write_replaces_whole_or_not_at_all(tmp_path):
    path = tmp_path / "state.json"
    _io.atomic_write_json(path, {"a": np.float32(0.5), "b": np.arange(3), "c": np.array([7])})
    assert json.loads(path.read_text()) == {"a": 0.5, "b": [0, 1, 2], "c": 7}
    with pytest.raises(RuntimeError, match="killed"):
        with _io.atomic_write(path) as f:
            f.write('{"half": ')
            raise RuntimeError("killed")
    assert json.loads(path.read_text())["a"] == 0.5  # the old file, whole
    assert os.listdir(tmp_path) == ["state.json"]  # no temporary file left behind
    with _io.atomic_write(tmp_path / "w.npz", "wb") as f:
        np.savez(f, x=np.ones(2))
    assert np.load(tmp_path / "w.npz")["x"].tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="Received: mode='a'"):
        with _io.atomic_write(path, "a"):
            pass
    assert rundir.atomic_write_json is _io.atomic_write_json  # one helper, re-exported
    # The permissions open() gives a new file (mkstemp alone would make it owner-only).
    with open(tmp_path / "plain", "w"):
        pass
    assert os.stat(path).st_mode == os.stat(tmp_path / "plain").st_mode


def test_atomic_write_json_is_strict_json(tmp_path):
    """Issue 16: no bare NaN / Infinity (invalid for strict readers): non-finite numbers,
    Python or NumPy, nested or not, are written as null."""
    path = tmp_path / "s.json"
    _io.atomic_write_json(path, {"a": float("nan"), "b": [np.float32("inf"), 1.5],
                                 "c": {"d": np.array([-np.inf, 2.0])}})

    def strict(name):
        raise ValueError(name)

    assert json.loads(path.read_text(), parse_constant=strict) == {
        "a": None, "b": [None, 1.5], "c": {"d": [None, 2.0]}}

"""The one atomic-write helper of kerasparse (no Keras import).

Every file kerasparse writes for a user (run directories, checkpoints, controller backups,
plots, sweep tables) goes through :func:`atomic_write` (or :func:`atomic_path`, for writers that
take a file name: h5py, Keras' weights files): the bytes go to a temporary file in the
same directory, are flushed and fsync'ed, and ``os.replace`` moves it over the target. Readers,
and a process killed mid-write, see either the old file or the whole new one, never a half
file. (The standard library has no such helper; ``os.replace`` is atomic on POSIX and Windows
when both paths are on one file system, hence the temporary file next to the target.)
"""

import contextlib
import json
import math
import os
import tempfile

# mkstemp creates files readable by their owner only (0600); a result file should get the
# permissions open() would give it, 0666 less the umask. The umask can only be read by setting
# it, so read it once, at import.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path, suffix=None):
    """``with atomic_path(path) as tmp: writer(tmp)``: :func:`atomic_write` for writers that
    take a file name rather than a file object (h5py, Keras' ``save_weights``). ``tmp`` is a
    temporary file next to ``path`` (its name ends with ``suffix``, for writers that check
    the extension); on a clean exit it is fsync'ed and renamed over ``path``, on an exception
    it is deleted and ``path`` is left as it was."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-",
                               suffix=suffix or "-" + os.path.basename(path))
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fchmod(f.fileno(), 0o666 & ~_UMASK)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_write(path, mode="w"):
    """``with atomic_write(path, "wb") as f: ...``: ``f`` is a temporary file next to
    ``path``; on a clean exit it is fsync'ed and renamed over ``path``, on an exception it is
    deleted and ``path`` is left as it was."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write: mode must be 'w' or 'wb'. Received: mode={mode!r}")
    with atomic_path(path) as tmp, open(tmp, mode) as f:
        yield f


def atomic_write_text(path, text):
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write`)."""
    with atomic_write(path) as f:
        f.write(text)


def atomic_write_json(path, obj, indent=2):
    """Write ``obj`` as strict JSON (NumPy scalars and arrays as numbers and lists; a NaN or
    infinity as null, which strict readers accept where a bare ``NaN`` is invalid),
    atomically. Writers that must say which non-finite value it was add a field for it
    (summary.json's ``diverged.loss_non_finite``)."""
    text = json.dumps(_finite(obj), indent=indent, default=_json_default, allow_nan=False)
    atomic_write_text(path, text + "\n")


def _finite(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if hasattr(value, "dtype") and hasattr(value, "tolist"):  # NumPy scalars and arrays
        return _finite(_json_default(value))
    return value


def read_json(path):
    with open(path) as f:
        return json.load(f)


def _json_default(value):
    if hasattr(value, "item"):  # NumPy scalars (and one-element arrays)
        with contextlib.suppress(ValueError):
            return value.item()
    if hasattr(value, "tolist"):  # NumPy arrays
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")

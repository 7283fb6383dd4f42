"""Run directories: an exclusive lock, refusing to clobber results, and the atomic writes of
:mod:`kerasparse._io` (re-exported here for run-directory code)."""

import contextlib
import fcntl
import os
import shutil

# The one atomic-write helper lives in kerasparse._io; run-directory code uses it from here.
from kerasparse._io import atomic_write, atomic_write_json, atomic_write_text, read_json  # noqa: F401


class RunDirError(Exception):
    """A run directory that cannot be used as asked (reported as a one-line usage error)."""


def check(out, *, resume=False, overwrite=False):
    """Raise RunDirError unless ``out`` can be used as asked; writes nothing.

    A non-empty ``out`` is refused unless ``resume`` (continue it) or ``overwrite`` (delete
    its contents first) is given; ``resume`` needs an existing run directory.
    """
    if resume and overwrite:
        raise RunDirError("--resume and --overwrite exclude each other")
    exists = os.path.isdir(out) and bool(os.listdir(out))
    if os.path.exists(out) and not os.path.isdir(out):
        raise RunDirError(f"--out {out!r} exists and is not a directory")
    if resume:
        if not os.path.isfile(os.path.join(out, "config.json")):
            raise RunDirError(
                f"cannot resume {out!r}: no config.json there (not a kerasparse run directory)"
            )
        return
    if exists and not overwrite:
        raise RunDirError(
            f"run directory {out!r} already exists and is not empty; pass --resume to "
            "continue it or --overwrite to replace it (its results will be deleted)"
        )


def prepare(out, *, overwrite=False):
    """Create ``out`` for a new run (after :func:`check`), emptying it if ``overwrite``."""
    check(out, overwrite=overwrite)
    exists = os.path.isdir(out) and bool(os.listdir(out))
    if exists and overwrite:
        with RunLock(out):  # never delete a directory another process is writing
            pass
        for name in os.listdir(out):
            path = os.path.join(out, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
    os.makedirs(out, exist_ok=True)


class RunLock:
    """An exclusive advisory lock on ``<dir>/.lock`` held for the life of a run."""

    def __init__(self, directory):
        self.path = os.path.join(directory, ".lock")
        self._fd = None

    def __enter__(self):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            self._fd = None
            owner = ""
            with contextlib.suppress(OSError, ValueError):
                owner = f" (pid {int(open(self.path).read().strip())})"
            raise RunDirError(
                f"run directory {os.path.dirname(self.path)!r} is in use by another "
                f"kerasparse process{owner}"
            ) from None
        os.ftruncate(self._fd, 0)
        os.write(self._fd, str(os.getpid()).encode())
        return self

    def __exit__(self, *exc):
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

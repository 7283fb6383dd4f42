"""Run directories: an exclusive lock, refusing to clobber results, and the atomic writes of
:mod:`kerasparse._io` (re-exported here for run-directory code)."""

import contextlib
import fcntl
import json
import os
import shutil

# The one atomic-write helper lives in kerasparse._io; run-directory code uses it from here.
from kerasparse._io import atomic_write, atomic_write_json, atomic_write_text, read_json  # noqa: F401


class RunDirError(Exception):
    """A run directory that cannot be used as asked (reported as a one-line usage error)."""


def read_json_object(path):
    """The JSON object (dict) in ``path``: the one reader of the JSON files of a run
    (config.json, summary.json, checkpoints/latest.json and the state files). A missing,
    unreadable, non-UTF-8, invalid or non-object file raises RunDirError naming the file
    (a one-line usage error on the command line, never a traceback)."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise RunDirError(f"{path} is missing") from None
    except OSError as exc:
        raise RunDirError(f"{path} cannot be read ({exc.strerror or exc})") from None
    try:
        value = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise RunDirError(f"{path} is damaged: not UTF-8 text (expected a JSON object)") from None
    except json.JSONDecodeError as exc:
        raise RunDirError(f"{path} is damaged: not valid JSON ({exc}); expected a JSON "
                          "object") from None
    if not isinstance(value, dict):
        raise RunDirError(f"{path} is damaged: it holds a JSON {type(value).__name__}, "
                          "expected a JSON object")
    return value


def is_run_directory(out):
    """True if ``out`` holds a config.json written by kerasparse (a JSON object with the
    run keys every kerasparse run records): the only kind of folder --overwrite may empty."""
    try:
        config = read_json_object(os.path.join(out, "config.json"))
    except RunDirError:
        return False
    return all(key in config for key in ("model", "dataset", "epochs", "seed"))


def _check_parent(out, flag):
    """The nearest existing ancestor of ``out`` must be a writable directory."""
    parent = os.path.dirname(os.path.abspath(out))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise RunDirError(f"{flag} {out!r} is under {parent!r}, which is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise RunDirError(f"{flag} {out!r} cannot be created: {parent!r} is not writable")


def check(out, *, resume=False, overwrite=False, flag="--out"):
    """Raise RunDirError unless ``out`` can be used as asked; writes nothing.

    A non-empty ``out`` is refused unless ``resume`` (continue it) or ``overwrite`` (delete
    its contents first) is given; ``resume`` needs an existing run directory, and
    ``overwrite`` empties only a kerasparse run directory (never a user's other folder).
    """
    if resume and overwrite:
        raise RunDirError("--resume and --overwrite exclude each other")
    if os.path.exists(out) and not os.path.isdir(out):
        raise RunDirError(f"{flag} {out!r} exists and is not a directory")
    if not os.path.exists(out):
        _check_parent(out, flag)
    exists = os.path.isdir(out) and bool(os.listdir(out))
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
    if exists and overwrite and not is_run_directory(out):
        raise RunDirError(
            f"--overwrite refused: {out!r} is not a kerasparse run directory (no config.json "
            "written by kerasparse); it may hold other results, so nothing was deleted. "
            "Choose another --out or empty it yourself"
        )
    if exists and not os.access(out, os.W_OK | os.X_OK):
        raise RunDirError(f"run directory {out!r} is not writable")


def empty(out):
    """Remove everything inside ``out`` (links are removed, never followed)."""
    for name in os.listdir(out):
        path = os.path.join(out, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)


def prepare(out, *, overwrite=False):
    """Create ``out`` for a new run (after :func:`check`), emptying it if ``overwrite``."""
    check(out, overwrite=overwrite)
    exists = os.path.isdir(out) and bool(os.listdir(out))
    if exists and overwrite:
        with RunLock(out):  # never delete a directory another process is writing
            pass
        empty(out)
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as exc:
        raise RunDirError(f"--out {out!r} cannot be created ({exc.strerror or exc})") from None


class RunLock:
    """An exclusive advisory lock on ``<dir>/.lock`` held for the life of a run."""

    def __init__(self, directory):
        self.path = os.path.join(directory, ".lock")
        self._fd = None

    def __enter__(self):
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:  # a read-only run directory or file system
            raise RunDirError(
                f"cannot lock run directory {os.path.dirname(self.path)!r} "
                f"({exc.strerror or exc}); is it read-only?"
            ) from None
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

"""How a run stops: Ctrl-C and SIGTERM, and the fault injection of the resume tests.

Ctrl-C and SIGTERM (docs/training.md, "Ctrl-C"): under :func:`stop_on_signals` the first
signal only sets :class:`STOP`; the run stops at the end of the current batch, an epoch cut
short is never recorded or checkpointed, and the run keeps the last finished epoch's
checkpoint (status "interrupted", resumable exactly). A second signal aborts at once
(KeyboardInterrupt). SIGTERM is what a cluster scheduler sends before preemption.

Fault injection (docs/training.md): ``KERASPARSE_FAULT="batch:E:S"`` kills the process with
SIGKILL after step S of epoch E (1-based); ``"checkpoint:E"`` kills it while writing the
checkpoint of epoch E (after the weights file, before latest.json moves); ``"sigint:E:S"`` /
``"sigterm:E:S"`` send the process SIGINT / SIGTERM as step S of epoch E begins;
``"diskfull:E"`` makes the write of epoch E's weights file fail with ENOSPC (a full disk).
The variable is read by :func:`faults_armed` when a run starts (``train.run``,
``packed.train_pack``), never at import.

No Keras here: the CLI installs the handlers before the backend is imported.
"""

import contextlib
import errno
import os
import signal
import sys
import threading

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(Exception):
    """SIGINT / SIGTERM before training started: nothing was trained (``signum`` says which)."""

    def __init__(self, message, signum):
        super().__init__(message)
        self.signum = signum


class STOP:
    signum = None  # the first SIGINT / SIGTERM received under stop_on_signals(), else None


def _on_signal(signum, frame):
    if STOP.signum is not None:
        raise KeyboardInterrupt
    STOP.signum = signum
    # os.write, not print: a print interrupted by the handler would re-enter the stream.
    with contextlib.suppress(OSError):
        os.write(2, f"\nInterrupted ({signal.Signals(signum).name}): stopping at the last "
                    "finished epoch's "
                    "checkpoint (send it again to abort now)\n".encode())


@contextlib.contextmanager
def stop_on_signals():
    """SIGINT and SIGTERM set :class:`STOP` instead of raising, for the life of the block
    (nested blocks share the outer one's state; outside the main thread it does nothing)."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is _on_signal):
        yield
        return
    STOP.signum = None
    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    for s in STOP_SIGNALS:
        signal.signal(s, _on_signal)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def raise_if_stopped(where):
    """Raise :class:`Interrupted` if a stop signal has arrived (``where``: when it came)."""
    if STOP.signum is not None:
        raise Interrupted(
            f"interrupted ({signal.Signals(STOP.signum).name}) {where}", STOP.signum
        )


def stop_reason():
    """`` (SIGINT)`` / `` (SIGTERM)`` after a stop signal, else ``""`` (for messages)."""
    return "" if STOP.signum is None else f" ({signal.Signals(STOP.signum).name})"


# ---------------------------------------------------------------------------------------------
# Fault injection (tests only)

_FAULT_SIGNALS = {"batch": signal.SIGKILL, "checkpoint": signal.SIGKILL,
                  "sigint": signal.SIGINT, "sigterm": signal.SIGTERM}


class _Fault:
    armed = ""  # the KERASPARSE_FAULT of the current run ("" = none)


@contextlib.contextmanager
def faults_armed():
    """Read ``KERASPARSE_FAULT`` for the run inside the block; disarmed again after it (a
    fault meant for one in-process run never fires in a later one)."""
    previous, _Fault.armed = _Fault.armed, os.environ.get("KERASPARSE_FAULT", "")
    try:
        yield
    finally:
        _Fault.armed = previous


def maybe_fault(kind, *where):
    """Trigger the armed fault if it is ``kind`` at ``where`` (epoch, step)."""
    if _Fault.armed and _Fault.armed == ":".join([kind, *map(str, where)]):
        sys.stdout.flush()
        if kind == "diskfull":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        os.kill(os.getpid(), _FAULT_SIGNALS.get(kind, signal.SIGKILL))

"""Interrupts: SIGINT or SIGTERM stops a long command at its next safe point.

A long command (a round, reproduce, reconstruct, failures, exit-criteria) runs inside
:func:`stop_on_signals`. There, a SIGINT or SIGTERM does not raise where it lands --
possibly half-way through a ledger step -- but records the request and SIGKILLs the
process group of every running sandbox job (each registered by
:func:`killing_on_interrupt`). The command raises :class:`~breedlab.errors.Interrupted`
at its next safe point (:func:`check`, called between two ledger steps), so a step is
recorded whole or not at all. The CLI maps it to exit code 130 (128 + SIGINT).

The handlers replace whatever was there, ``SIG_IGN`` included: a shell starts a
background command with SIGINT ignored, and ``kill -INT`` of a background round used to
do nothing (issue 10). The previous handlers come back when the command ends.

A library that installs its own handlers while a command runs (``ray.init`` makes
SIGTERM exit at once, wherever it lands) is followed by :func:`reclaim`, which puts
these back.

Signal handlers are installed only by the main thread; elsewhere (a server's worker
thread) :func:`stop_on_signals` changes nothing and the process's own handlers apply.
The state is per process: sandbox jobs run in their own processes and are killed, never
asked.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType

from breedlab.errors import Interrupted

__all__ = ["check", "killing_on_interrupt", "reclaim", "requested", "stop_on_signals"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)

# The handler runs on the main thread between two bytecodes, maybe while that thread is
# inside one of the functions below: it takes no lock. set.add/discard and list(set) are
# atomic under the GIL, which is all the sharing needs.
_groups: set[int] = set()  # process groups of running sandbox jobs
_requested: list[str] = []  # the name of the first signal received, once received
_installed = False


def _kill(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _handle(signum: int, _frame: FrameType | None) -> None:
    if not _requested:
        _requested.append(signal.Signals(signum).name)
    for pgid in list(_groups):
        _kill(pgid)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[bool]:
    """Within: SIGINT and SIGTERM request a stop (see the module docstring). Nests;
    yields whether this is the outermost one (which installed the handlers)."""
    global _installed
    if _installed or threading.current_thread() is not threading.main_thread():
        yield False
        return
    previous = {sig: signal.signal(sig, _handle) for sig in SIGNALS}
    _installed = True
    try:
        yield True
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _installed = False
        _requested.clear()


def reclaim() -> None:
    """Within :func:`stop_on_signals`, on the main thread: install this module's handlers
    again, over whatever a library put there meanwhile; elsewhere, nothing."""
    if _installed and threading.current_thread() is threading.main_thread():
        for sig in SIGNALS:
            signal.signal(sig, _handle)


def requested() -> str | None:
    """The signal that asked this process to stop (``"SIGINT"``), if one did."""
    return _requested[0] if _requested else None


def check(step: str) -> None:
    """A safe point, before ``step``.

    Raises:
        Interrupted: a stop was requested.
    """
    name = requested()
    if name is not None:
        raise Interrupted(f"interrupted ({name}) before {step}")


@contextlib.contextmanager
def killing_on_interrupt(pgid: int) -> Iterator[None]:
    """Within: a stop request SIGKILLs process group ``pgid`` (a sandbox job's), also
    one requested before it was registered."""
    _groups.add(pgid)
    try:
        if requested() is not None:
            _kill(pgid)
        yield
    finally:
        _groups.discard(pgid)

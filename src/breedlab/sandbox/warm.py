"""Warm starts: the lab's side of the zygote (:mod:`breedlab.sandbox.zygote`).

:func:`shared` gives the process's one zygote, started on first use (or earlier, by
:func:`prestart`) -- ``python -I -B``, the sandbox's scrubbed environment, its own
session, no descriptor of the lab but its socket (``close_fds``), so it holds no key,
ledger connection or open file of the lab -- and started afresh when the previous one
has died. :meth:`Zygote.spawn` has it fork one
job's child and returns a :class:`ForkedJob`, which the runner waits for, kills and
releases as it would a cold worker. What the zygote itself guarantees, and why, is in
its module docstring.

Linux only (elsewhere every job starts cold). The runner falls back to a cold start
whenever the zygote cannot start a job (:class:`NotStarted`: nothing of the job ran),
and retires that zygote: it ends once the jobs it runs are done, and the next job gets
a fresh one. If a zygote cannot even start, warm starts stay off for the rest of the
process, with one warning saying why. A zygote that dies while jobs run takes them with it
(:class:`ZygoteLost`; each is reported as a crash) and is replaced for the next job. At
exit, and in a process forked from the lab, the zygote is let go (its socket closed):
it kills its children and ends.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

from breedlab import interrupts

__all__ = [
    "ForkedJob",
    "NotStarted",
    "Zygote",
    "ZygoteLost",
    "prestart",
    "retire",
    "shared",
    "shutdown",
]

#: The zygote's module (a test points this elsewhere to see the cold fallback). Nothing
#: the lab imports may import it: ``python -m`` would then run it a second time.
MODULE = "breedlab.sandbox.zygote"
#: The largest message of the protocol (``breedlab.sandbox.zygote``), either way.
MAX_MESSAGE = 1 << 16
#: Generous bounds: the machine may be loaded; a healthy zygote answers far sooner.
READY_SECONDS = 120.0
REPLY_SECONDS = 60.0
#: How often a waiting lab looks for an interrupt while a zygote starts.
_POLL_SECONDS = 0.25

Environment = Callable[[Path], dict[str, str]]

_log = logging.getLogger(__name__)


class NotStarted(Exception):
    """The zygote did not start the job (no job code ran): start it cold instead."""


class ZygoteLost(Exception):
    """The zygote ended while the job ran; the job was killed with it."""


class ForkedJob:
    """One job's child, forked by the zygote; its pid is its process group."""

    def __init__(self, zygote: Zygote, sock: socket.socket, pid: int) -> None:
        self.zygote = zygote
        self.sock = sock
        self.pid = pid

    def wait(self, timeout: float | None) -> int | None:
        """The child's return code (negative: killed by that signal), or None if
        ``timeout`` seconds passed first.

        Raises:
            ZygoteLost: the zygote ended first.
        """
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(MAX_MESSAGE)
        except TimeoutError:
            return None
        except OSError as e:
            raise ZygoteLost(f"the zygote's socket failed: {e}") from e
        if not data:
            raise ZygoteLost("the sandbox's zygote ended while the job ran")
        return int(json.loads(data.decode("utf-8"))["returncode"])

    def kill(self) -> None:
        """Kill the child's process group and wait for it; a zygote that does not
        report the end in time is killed too (its children die with it)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)  # a zombie until release(): never reused
        try:
            ended = self.wait(REPLY_SECONDS)
        except ZygoteLost:
            return
        if ended is None:
            self.zygote.kill()

    def release(self) -> None:
        """Done with the child: the zygote reaps it."""
        self.sock.close()
        self.zygote.released()


class Zygote:
    """The lab's handle on one zygote process."""

    def __init__(
        self, proc: subprocess.Popen[bytes], control: socket.socket, errors: IO[bytes], home: Path
    ):
        self.proc = proc
        self.control = control
        self.errors = errors  # its stderr, unlinked once it is ready: read back if it fails
        self.home = home
        self._lock = threading.Lock()
        self._ready_lock = threading.Lock()
        self._ready = False
        self._failure = ""
        self._closed = False
        self._running = 0  # jobs forked and not yet released
        self._retired = False

    @classmethod
    def start(cls, environment: Environment) -> Zygote:
        """Start a zygote and wait until it has imported torch and the catalogues.

        Raises:
            NotStarted: it failed, or was not ready within ``READY_SECONDS``.
            Interrupted: a stop was requested meanwhile (the zygote is killed).
        """
        zygote = cls.launch(environment)
        zygote.ready()
        return zygote

    @classmethod
    def launch(cls, environment: Environment) -> Zygote:
        """Start a zygote without waiting for it (:meth:`ready` does).

        Raises:
            NotStarted: the process could not be started.
        """
        home = Path(tempfile.mkdtemp(prefix="breedlab-zygote-"))
        try:
            errors = (home / "stderr.txt").open("w+b")
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        except OSError as e:
            shutil.rmtree(home, ignore_errors=True)
            raise NotStarted(f"cannot prepare the zygote: {e}") from e
        try:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-B", "-m", MODULE, str(theirs.fileno())],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=errors,
                env=environment(home),
                cwd=home,
                pass_fds=(theirs.fileno(),),
                start_new_session=True,  # no terminal's Ctrl-C reaches it
            )
        except OSError as e:
            ours.close()
            errors.close()
            shutil.rmtree(home, ignore_errors=True)
            raise NotStarted(f"cannot start the zygote: {e}") from e
        finally:
            theirs.close()
        return cls(proc, ours, errors, home)

    def ready(self) -> None:
        """Wait until the zygote has imported torch and the catalogues (once).

        Raises:
            NotStarted: it failed, or was not ready within ``READY_SECONDS``.
            Interrupted: a stop was requested meanwhile (the zygote is killed).
        """
        with self._ready_lock:
            if self._failure:
                raise NotStarted(self._failure)
            if self._ready:
                return
            try:
                self._wait_ready()
            except NotStarted as e:
                self._failure = str(e)
                raise
            finally:
                # Its home and temporary folder served its imports only: its children
                # get their job's. The stderr file lives on, unlinked, while it runs.
                shutil.rmtree(self.home, ignore_errors=True)
            self._ready = True

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_SECONDS
        self.control.settimeout(_POLL_SECONDS)
        data = b""
        while not data:
            try:
                data = self.control.recv(MAX_MESSAGE)
                if not data:
                    break
            except TimeoutError:
                if interrupts.requested() is not None:
                    self.kill()
                    interrupts.check("starting the sandbox's zygote")
                if time.monotonic() > deadline:
                    self.kill()
                    raise NotStarted(
                        f"the zygote was not ready after {READY_SECONDS:g} s"
                    ) from None
            except OSError as e:  # closed meanwhile (the lab is shutting down)
                raise NotStarted(f"the zygote's socket failed: {e}") from e
        self.control.settimeout(None)
        message: dict[str, Any] = json.loads(data.decode("utf-8")) if data else {}
        if "ready" not in message:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()  # all it wrote is in its stderr now
            reason = message.get("error") or f"it ended: {self._stderr_tail()}"
            self.close()
            raise NotStarted(f"the zygote did not start: {reason}")

    def _stderr_tail(self) -> str:
        with contextlib.suppress(OSError, ValueError):
            self.errors.seek(0)
            lines = self.errors.read().decode("utf-8", errors="replace").strip().splitlines()
            return lines[-1][:300] if lines else "no output"
        return "no output"

    def alive(self) -> bool:
        return not self._closed and self.proc.poll() is None

    def spawn(
        self, job: Path, cwd: Path, env: Mapping[str, str], log_fd: int, result_fd: int
    ) -> ForkedJob:
        """Have the zygote fork the child of one job (``job``: its ``job.json``).

        Raises:
            NotStarted: the zygote is gone, retired or refused; no job code ran.
        """
        request = {"job": str(job), "cwd": str(cwd), "env": dict(env)}
        with self._lock:
            if self._closed or self._retired:
                raise NotStarted("the zygote is retired")
            self._running += 1  # from now: a retirement waits for this job's release
        try:
            ours = self._request(request, log_fd, result_fd)
        except NotStarted:
            self.released()
            raise
        ours.settimeout(REPLY_SECONDS)
        try:
            data = ours.recv(MAX_MESSAGE)
        except OSError as e:  # a timeout included: a zygote that hangs is no use
            ours.close()
            self.released()
            self.kill()  # a child waiting for its go-ahead ends with it
            raise NotStarted(f"the zygote did not answer: {e}") from e
        reply: dict[str, Any] = json.loads(data.decode("utf-8")) if data else {}
        if "pid" not in reply:
            ours.close()
            self.released()
            raise NotStarted(f"the zygote refused the job: {reply.get('error', 'it ended')}")
        return ForkedJob(self, ours, int(reply["pid"]))

    def _request(self, request: Mapping[str, Any], log_fd: int, result_fd: int) -> socket.socket:
        """Send one request with a fresh job socket; our end of it."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            with self._lock:
                socket.send_fds(
                    self.control,
                    [json.dumps(request, sort_keys=True).encode("utf-8")],
                    [theirs.fileno(), log_fd, result_fd],
                )
        except OSError as e:
            ours.close()
            raise NotStarted(f"the zygote is gone: {e}") from e
        finally:
            theirs.close()
        return ours

    def released(self) -> None:
        with self._lock:
            self._running -= 1
            idle = self._retired and self._running == 0
        if idle:
            self.close()

    def retire(self) -> None:
        """Start no more jobs here; close once the running ones are released (closing
        now would kill them)."""
        with self._lock:
            self._retired = True
            idle = self._running == 0
        if idle:
            self.close()

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # its own session: pgid == pid
        self.close()

    def close(self) -> None:
        """Let the zygote go: it kills its children and ends; wait for it."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self.control.close()
        try:
            self.proc.wait(timeout=REPLY_SECONDS)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.errors.close()
        shutil.rmtree(self.home, ignore_errors=True)  # still there if it was never ready


# -- the process's one zygote ------------------------------------------------------------

_lock = threading.Lock()
_zygote: list[Zygote] = []  # none, or the current one
_off: list[str] = []  # why warm starts are off in this process, once they are
_hooked: list[bool] = []


def shared(environment: Environment) -> Zygote | None:
    """This process's zygote, started (or replaced, if it died) now if need be, once it
    is ready; None if warm starts are off here.

    Raises:
        Interrupted: a stop was requested while it started.
    """
    zygote = _current(environment)
    if zygote is None:
        return None
    try:
        zygote.ready()
    except NotStarted as e:
        _turn_off(zygote, str(e))
        return None
    return zygote


def prestart(environment: Environment) -> None:
    """Start this process's zygote now without waiting for it, so its imports overlap
    the caller's own work before the first job."""
    _current(environment)


def _current(environment: Environment) -> Zygote | None:
    if not sys.platform.startswith("linux"):
        return None  # fork with torch loaded is unsafe on macOS; the confinement is Linux's
    with _lock:
        if _off:
            return None
        if _zygote and not _zygote[0].alive():
            _zygote.pop().close()
        if not _zygote:
            if not _hooked:
                atexit.register(shutdown)
                os.register_at_fork(after_in_child=_forget_in_child)
                _hooked.append(True)
            try:
                _zygote.append(Zygote.launch(environment))
            except NotStarted as e:
                _off.append(str(e))
                _log.warning("the warm sandbox is off in this process (%s): jobs start cold", e)
                return None
        return _zygote[0]


def _turn_off(zygote: Zygote, reason: str) -> None:
    with _lock:
        if zygote not in _zygote:
            return  # another thread saw it fail first
        _zygote.remove(zygote)
        _off.append(reason)
    zygote.close()
    _log.warning("the warm sandbox is off in this process (%s): jobs start cold", reason)


def retire(zygote: Zygote) -> None:
    """Retire ``zygote`` (it refused a job): the next job starts a fresh one; jobs it
    runs now run to their end."""
    with _lock:
        if zygote in _zygote:
            _zygote.remove(zygote)
    zygote.retire()


def shutdown() -> None:
    """Close this process's zygote, if any (at exit; in tests and benchmarks), and allow
    warm starts again."""
    with _lock:
        current = list(_zygote)
        _zygote.clear()
        _off.clear()
    for zygote in current:
        zygote.close()


def _forget_in_child() -> None:
    """In a process forked from the lab: drop the copy of the zygote's socket, so the
    zygote still sees end of file when the lab ends."""
    for zygote in _zygote:
        with contextlib.suppress(OSError):
            zygote.control.close()
        zygote._closed = True
    _zygote.clear()

"""The zygote: a warm, single-threaded parent that forks one confined worker per job.

Started by :mod:`breedlab.sandbox.warm` as ``python -I -B -m breedlab.sandbox.zygote FD``
-- with the sandbox's scrubbed environment, in its own session, holding no descriptor of
the lab but its end of a Unix socket pair (``FD``) -- never by hand. It imports torch
(one thread) and the catalogues once, so a job no longer pays 2-3 s of imports, then
serves requests until that socket reaches end of file.

For each request it forks a child that turns itself into exactly what a cold worker is
before any job code runs: a new session (its pid is its process group, which the lab
kills on a timeout or an interrupt), the default signal handlers, no descriptor but
stdin (``/dev/null``), stdout and stderr (the job's log) and the result pipe (fd 3), the
job's folder as working directory and the job's scrubbed environment; then it runs
:func:`breedlab.sandbox.worker.run` -- parent-death signal, network namespace, rlimits,
one torch thread, the audit-hook tripwire -- as a cold start does.

Hazards, and what is done about them:

- ``fork`` copies only the calling thread: a lock another thread held at that instant
  stays held in the child for ever. The zygote starts with ``OMP_NUM_THREADS=1`` (torch
  starts no pool at import), runs no torch operation, and counts its threads
  (``/proc/self/task``) before each fork; more than one and it refuses to fork (the lab
  then starts that job cold and the zygote afresh).
- A child must not hold what lets it reach beyond its job: the control socket (it could
  ask for children of its own choosing) and other jobs' sockets and descriptors are
  closed in the child before it waits for its go-ahead.
- The lab must never kill a recycled pid: a child that has ended stays a zombie (seen
  with ``waitid(WNOWAIT)``) until the lab closes the job's socket, so its process group
  cannot be reused while the lab may still kill it.
- A child runs job code only after the lab has been told its pid (the go-ahead comes
  after the reply): a zygote that dies in between leaves no job half-run, and the lab
  can start that job cold instead.
- The zygote ends when the control socket reaches end of file -- the lab closed it or
  died (the kernel closes a SIGKILLed lab's descriptors) -- after killing every child's
  process group; each child also dies with the zygote (``PR_SET_PDEATHSIG``). The zygote
  itself gets no parent-death signal: Linux sends it when the *thread* that started a
  process ends, and the lab starts the zygote from whichever executor thread needs it
  first.

Protocol (``SOCK_SEQPACKET``, one JSON object per message):

- zygote -> lab, on the control socket, once: ``{"ready": THREADS}`` or ``{"error": ...}``;
- lab -> zygote, on the control socket: ``{"job": JOB_JSON, "cwd": TMP, "env": {...}}``
  with three descriptors attached: the job's socket, the log, the result pipe's write end;
- zygote -> lab, on the job's socket: ``{"pid": PID}`` (or ``{"error": ...}``: nothing was
  started), later ``{"returncode": CODE}`` (negative: killed by that signal);
- lab -> zygote: closing the job's socket; the zygote reaps the child, killing its
  process group first if it still runs.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import json
import os
import resource
import selectors
import signal
import socket
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from breedlab.sandbox.warm import MAX_MESSAGE

__all__ = ["PRELOADED", "main", "thread_count"]

#: Imported once by the zygote: what every job imports (the catalogues, the torch family).
PRELOADED = (
    "torch",
    "breedlab.jobs",
    "breedlab.factory.operators",
    "breedlab.evaluator.runner",
    "breedlab.families.torch_family",
    "breedlab.sandbox.faults",
    "breedlab.sandbox.worker",
)
RESULT_FD = 3
_PR_SET_NAME = 15


def thread_count() -> int:
    """This process's threads as the kernel sees them (native ones included)."""
    try:
        return len(os.listdir("/proc/self/task"))
    except FileNotFoundError:  # not Linux: Python's threads only
        return threading.active_count()


def name_process(name: bytes) -> None:
    """Name this process in ``ps`` and ``/proc/PID/comm`` (Linux; at most 15 bytes)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).prctl(_PR_SET_NAME, ctypes.c_char_p(name[:15]), 0, 0, 0)


def send(sock: socket.socket, message: Mapping[str, Any]) -> None:
    sock.send(json.dumps(message, sort_keys=True).encode("utf-8"))


def _wake(_signum: int, _frame: object) -> None:
    """The SIGCHLD handler: nothing to do here, the wake-up descriptor does the work.
    (``SIG_IGN`` would have the kernel reap the children before their codes are read.)"""


@dataclass(slots=True, kw_only=True)
class _Child:
    pid: int
    sock: socket.socket
    returncode: int | None = None


class _Zygote:
    def __init__(self, control: socket.socket) -> None:
        self.control = control
        self.children: dict[int, _Child] = {}
        self.selector = selectors.DefaultSelector()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        signal.signal(signal.SIGCHLD, _wake)
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        self.selector.register(control, selectors.EVENT_READ, self._request)
        self.selector.register(self.wake_r, selectors.EVENT_READ, self._reap_ended)
        self.serving = True

    def serve(self) -> None:
        while self.serving:
            for key, _ in self.selector.select():
                callback: Callable[[], None] = key.data
                callback()
        for child in list(self.children.values()):  # the lab is gone: so are its jobs
            self._release(child)

    def _request(self) -> None:
        try:
            data, fds, _, _ = socket.recv_fds(self.control, MAX_MESSAGE, 3)
        except ConnectionError:
            data, fds = b"", []
        if not data:
            self.serving = False
            for fd in fds:
                os.close(fd)
            return
        if len(fds) != 3:  # not a request the lab would send
            for fd in fds:
                os.close(fd)
            return
        sock_fd, log_fd, result_fd = fds
        job_sock = socket.socket(fileno=sock_fd)
        try:
            request = json.loads(data.decode("utf-8"))
            pid, go = self._fork(request, job_sock, log_fd, result_fd)
        except (OSError, ValueError, KeyError, TypeError, _Refused) as e:
            with contextlib.suppress(OSError):
                send(job_sock, {"error": f"{type(e).__name__}: {e}"})
            job_sock.close()
            return
        finally:
            os.close(log_fd)  # the child has its own copies now: only the child may hold
            os.close(result_fd)  # the result pipe open, or the lab never reads its end
        child = _Child(pid=pid, sock=job_sock)
        self.children[pid] = child
        with contextlib.suppress(OSError):
            send(job_sock, {"pid": pid})
            os.write(go, b"g")  # only now may the child run the job: the lab knows its pid
        os.close(go)
        self.selector.register(job_sock, selectors.EVENT_READ, lambda: self._release(child))
        self._reap_ended()  # a child that died before this registration sent no signal late

    def _fork(
        self, request: dict[str, Any], job_sock: socket.socket, log_fd: int, result_fd: int
    ) -> tuple[int, int]:
        threads = thread_count()
        if threads != 1:
            raise _Refused(f"the zygote runs {threads} threads; fork copies only one")
        job, cwd, env = str(request["job"]), str(request["cwd"]), dict(request["env"])
        ready_r, ready_w = os.pipe()
        go_r, go_w = os.pipe()
        zygote = os.getpid()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child
            os.close(ready_r)
            os.close(go_w)
            self._become_worker(job, cwd, env, zygote, job_sock, log_fd, result_fd, ready_w, go_r)
        try:
            os.close(ready_w)
            os.close(go_r)
            os.read(ready_r, 1)  # end of file: the child leads its own session (or is dead)
            os.close(ready_r)
        except BaseException:
            os.kill(pid, signal.SIGKILL)  # never leave a child waiting for a go-ahead
            os.close(go_w)
            os.waitpid(pid, 0)
            raise
        return pid, go_w

    def _become_worker(
        self,
        job: str,
        cwd: str,
        env: dict[str, str],
        zygote: int,
        job_sock: socket.socket,
        log_fd: int,
        result_fd: int,
        ready_w: int,
        go_r: int,
    ) -> NoReturn:
        code = 1
        try:
            os.setsid()
            os.close(ready_w)
            name_process(b"breedlab-job")
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            self._forget(job_sock)
            if os.read(go_r, 1) != b"g":
                os._exit(1)  # the zygote died before the lab heard of this job
            os.close(go_r)
            os.dup2(log_fd, 1)
            os.dup2(log_fd, 2)
            if result_fd != RESULT_FD:
                os.dup2(result_fd, RESULT_FD)
            os.closerange(RESULT_FD + 1, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
            os.chdir(cwd)
            os.environ.clear()
            os.environ.update(env)
            tempfile.tempdir = None  # found again from TMPDIR (the job's tmp/)
            from breedlab.sandbox import worker

            code = worker.run(job, RESULT_FD, zygote)
        except BaseException:  # noqa: BLE001 -- the child must never return into the zygote
            with contextlib.suppress(BaseException):
                traceback.print_exc()
        finally:
            with contextlib.suppress(BaseException):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)

    def _forget(self, job_sock: socket.socket) -> None:
        """In a child: close the zygote's own descriptors (the child's copies only)."""
        self.selector.close()
        self.control.close()
        job_sock.close()
        for child in self.children.values():
            child.sock.close()
        os.close(self.wake_r)
        os.close(self.wake_w)

    def _reap_ended(self) -> None:
        """Tell the lab of each child that has ended; leave it a zombie until released."""
        with contextlib.suppress(BlockingIOError):
            while os.read(self.wake_r, 512):
                pass
        for child in self.children.values():
            if child.returncode is not None:
                continue
            info = os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            if info is None or info.si_pid == 0:
                continue
            exited = info.si_code == os.CLD_EXITED
            child.returncode = info.si_status if exited else -info.si_status
            with contextlib.suppress(OSError):
                send(child.sock, {"returncode": child.returncode})

    def _release(self, child: _Child) -> None:
        """The lab closed the job's socket (or is gone): end the child and reap it."""
        self.selector.unregister(child.sock)
        child.sock.close()
        if child.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.pid, signal.SIGKILL)
        os.waitpid(child.pid, 0)
        del self.children[child.pid]


class _Refused(Exception):
    pass


def _preload() -> None:
    import torch

    torch.set_num_threads(1)  # OMP_NUM_THREADS=1 in the environment already: no pool
    for name in PRELOADED:
        importlib.import_module(name)


def main(argv: Sequence[str]) -> int:
    control = socket.socket(fileno=int(argv[0]))
    name_process(b"breedlab-zygote")
    try:
        _preload()
    except BaseException as e:  # noqa: BLE001 -- say why, then end
        traceback.print_exc()
        with contextlib.suppress(OSError):
            send(control, {"error": f"import failed: {type(e).__name__}: {e}"})
        return 1
    threads = thread_count()
    if threads != 1:
        send(control, {"error": f"the zygote runs {threads} threads after its imports"})
        return 1
    send(control, {"ready": threads})
    _Zygote(control).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

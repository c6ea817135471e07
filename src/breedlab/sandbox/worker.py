"""The sandboxed side of a job: confine this process, run one job, report on a pipe.

Run as ``python -I -m breedlab.sandbox.worker JOB_JSON RESULT_FD PARENT_PID`` by
:func:`breedlab.sandbox.runner.run_job` (a cold start), or called as :func:`run` in a
child the zygote has forked (``breedlab.sandbox.zygote``) -- never by hand. In order,
before any job code runs: ask the kernel to SIGKILL this process when its parent dies
(Linux ``PR_SET_PDEATHSIG``; a parent already gone means exit at once), unshare the
network namespace (Linux, where permitted), set rlimits (address space, CPU seconds,
file size, no core dumps), install an audit hook (PEP 578) that refuses sockets, new
processes, signals to other processes and writes outside the job's writable folders,
then import the catalogue and run the job. The result is one JSON document written to
the inherited pipe, so the job cannot forge it by writing files.

The audit hook is a tripwire, not a jail: native code can bypass it. The network
namespace and rlimits are enforced by the kernel; root still bypasses file modes, which
is why everything the parent reads back is re-hashed on ingest.
"""

from __future__ import annotations

import ctypes
import importlib
import json
import os
import resource
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

_CLONE_NEWNET = 0x40000000
_PR_SET_PDEATHSIG = 1
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


class SandboxViolation(PermissionError):
    """Raised inside the job when it tries something the sandbox forbids."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def die_with_parent(parent: int) -> bool:
    """Have the kernel SIGKILL this process when ``parent`` dies; False if it has died.

    Linux delivers the signal when the parent *thread* that started this process ends;
    the runner's thread waits for the job, so it outlives it. Elsewhere, a no-op (the
    runner's wall-clock limit still applies while the parent lives).
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):
            pass
    # Checked after the request: a parent that died before it was made is seen here.
    return os.getppid() == parent


def unshare_network() -> bool:
    """Move this process into a fresh network namespace (no interfaces but a down lo)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.unshare(_CLONE_NEWNET)) == 0
    except (OSError, AttributeError):
        return False


def set_limits(limits: dict[str, Any]) -> None:
    mib = 1024 * 1024
    memory = int(limits["memory_mib"]) * mib
    cpu = int(limits["cpu_seconds"])
    size = int(limits["file_mib"]) * mib
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


class Tripwire:
    """The audit hook: records and refuses forbidden operations."""

    def __init__(self, writable: Sequence[str]) -> None:
        self.roots = tuple(os.path.realpath(w) for w in writable)
        self.violations: list[tuple[str, str]] = []
        self.armed = False

    def _inside(self, path: object) -> bool:
        if isinstance(path, int):
            return True  # an already-open descriptor
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if not isinstance(path, str | os.PathLike):
            return False
        real = os.path.realpath(os.fspath(path))
        return any(real == root or real.startswith(root + os.sep) for root in self.roots)

    def _refuse(self, kind: str, message: str) -> None:
        self.violations.append((kind, message))
        raise SandboxViolation(kind, message)

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        if not self.armed:
            return
        if event.startswith("socket."):
            self._refuse("network", f"network access refused ({event})")
        elif event in (
            "subprocess.Popen",
            "os.system",
            "os.exec",
            "os.posix_spawn",
            "os.fork",
            "os.forkpty",
            "os.spawn",
            "pty.spawn",
        ):
            self._refuse("escape", f"starting a process refused ({event})")
        elif event in ("os.kill", "os.killpg") and args and not _own(event, args[0]):
            # the zygote and the sibling jobs are this user's processes too
            self._refuse("escape", f"signalling another process refused ({event} {args[0]})")
        elif event == "open":
            path, mode, flags = [*args, None, None, None][:3]
            writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & _WRITE_FLAGS
            )
            if writes and not self._inside(path):
                self._refuse("escape", f"write outside the job's folder refused: {path}")
        elif event in (
            "os.remove",
            "os.rmdir",
            "os.mkdir",
            "os.chmod",
            "os.chown",
            "os.truncate",
            "os.utime",
            "shutil.rmtree",
            "os.chflags",
        ) and (args and not self._inside(args[0])):
            self._refuse("escape", f"{event} outside the job's folder refused: {args[0]}")
        elif event in ("os.rename", "shutil.move") and not all(self._inside(a) for a in args[:2]):
            # moving removes the source too: both ends must be the job's
            self._refuse("escape", f"{event} outside the job's folder refused: {args[:2]}")
        elif event in ("os.link", "os.symlink", "shutil.copyfile", "shutil.copytree") and (
            len(args) > 1 and not self._inside(args[1])
        ):
            # reading the source is allowed; creating the destination is a write
            self._refuse("escape", f"{event} outside the job's folder refused: {args[1]}")


def _own(event: str, target: object) -> bool:
    """Whether a signal sent to ``target`` reaches only this job's own process group."""
    if event == "os.killpg":
        return target in (0, os.getpgrp())
    return target in (0, os.getpid(), -os.getpgrp())


def _catalogue(name: str, kind: str) -> dict[str, Callable[..., Any]]:
    if kind == "evaluate":
        from breedlab.evaluator.runner import EVALUATORS

        return dict(EVALUATORS)
    if name == "faults":
        from breedlab.sandbox.faults import FAULTS

        return dict(FAULTS)
    from breedlab.factory.operators import OPERATORS

    return dict(OPERATORS)


def _preload(kind: str, job: Any) -> None:
    """Import the trusted libraries a job will need while the tripwire is still off."""
    names: tuple[str, ...] = ()
    if kind == "evaluate":
        names = ("breedlab.families.torch_family",)
        if any(p.family == "transformers" for p in job.parents):
            # modeling_utils: see factory.operators.TEXT_PRELOAD (urllib3's import probe)
            names += (
                "breedlab.families.transformers_family",
                "transformers",
                "transformers.modeling_utils",
            )
    else:
        from breedlab.factory.operators import PRELOAD, TEXT_PRELOAD

        names = PRELOAD.get(job.operator, ())
        if any(p.family == "transformers" for p in job.parents):
            names += TEXT_PRELOAD
    for name in names:
        importlib.import_module(name)


def main(argv: Sequence[str]) -> int:
    """``python -m breedlab.sandbox.worker JOB_JSON RESULT_FD PARENT_PID``: a cold start."""
    return run(argv[0], int(argv[1]), int(argv[2]))


def run(control_path: str, result_fd: int, parent: int) -> int:
    """Confine this process, run the job of ``control_path``, write the result to
    ``result_fd``; the exit code. Shared by a cold start (:func:`main`) and a child forked
    by the zygote (``breedlab.sandbox.zygote``), whose torch is already imported."""
    if not die_with_parent(parent):
        return 1  # an orphan from birth: nobody is waiting for the result
    result: dict[str, Any] = {"status": "error", "failure": "error", "reason": "not started"}
    tripwire: Tripwire | None = None
    try:
        control = json.loads(Path(control_path).read_text("utf-8"))
        result["network_isolated"] = unshare_network()
        set_limits(control["limits"])
        import torch  # imported before the hook so its own start-up is not judged

        torch.set_num_threads(1)
        from breedlab.jobs import Job

        job = Job.from_json(control["job"])
        catalogue = _catalogue(control["catalogue"], control["kind"])
        if job.operator not in catalogue:
            raise LookupError(f"{job.operator!r} is not in the {control['catalogue']} catalogue")
        func = catalogue[job.operator]
        _preload(control["kind"], job)
        tripwire = Tripwire(control["writable"])
        sys.addaudithook(tripwire)
        tripwire.armed = True
        if control["kind"] == "evaluate":
            payload = func(job, _log, control.get("extra", {}))
            tripwire.armed = False
            result = {
                **result,
                "status": "ok",
                "failure": None,
                "reason": "",
                "outputs": [],
                "evaluation": payload,
            }
        else:
            outputs = func(job, _log)
            tripwire.armed = False
            result = {
                **result,
                "status": "ok",
                "failure": None,
                "reason": "",
                "outputs": [o.to_json() for o in outputs],
            }
    except MemoryError:
        result.update(status="failed", failure="memory", reason="address-space limit reached")
    except SandboxViolation as e:
        result.update(status="failed", failure=e.kind, reason=str(e))
    except BaseException as e:  # noqa: BLE001 -- the job's own error: report it, never crash silently
        result.update(status="failed", failure="error", reason=f"{type(e).__name__}: {e}")
        traceback.print_exc()
    finally:
        if tripwire is not None:
            tripwire.armed = False
    if tripwire is not None and tripwire.violations and result.get("status") == "ok":
        kind, message = tripwire.violations[0]
        result.update(status="failed", failure=kind, reason=f"{message} (the job caught it)")
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["peak_rss_kib"] = int(usage.ru_maxrss)
    result["cpu_seconds"] = f"{usage.ru_utime + usage.ru_stime:.3f}"
    data = json.dumps(result, sort_keys=True).encode("utf-8")
    view = memoryview(data)
    while view:
        written = os.write(result_fd, view)
        view = view[written:]
    os.close(result_fd)
    return 0


def _log(message: str) -> None:
    sys.stdout.write(message + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

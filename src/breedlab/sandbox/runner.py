"""The sandbox: every operator or evaluation job runs in its own process (DESIGN §8).

The parent side (:func:`run_job`) lays out a job folder -- ``job.json`` (control, outside
the operator's reach), ``out/`` (the one writable folder), ``tmp/`` -- and starts the
job's process with a scrubbed environment (no inherited variables but a minimal PATH,
locale, one-thread settings and offline switches), in its own session so a timeout or
an interrupt (``breedlab.interrupts``) can kill the whole process group.

Warm (the default): the process's zygote (``breedlab.sandbox.zygote``, started on first
use by ``breedlab.sandbox.warm``), which has torch and the catalogues imported, forks the
job's process, saving each job 2-3 s of imports. Cold (``warm=False``, and the fallback
whenever the zygote cannot start a job): ``python -I -B -m breedlab.sandbox.worker``.
Either way the process dies with its parent (``PR_SET_PDEATHSIG``: the runner's waiting
thread, or the zygote, which ends when the lab does), so a SIGKILLed lab leaves no
orphan job behind; and either way it confines itself before any job code runs
(``breedlab.sandbox.worker``): an unshared network namespace where the OS allows,
rlimits on address space, CPU time, file size and core dumps, one torch thread, and an
audit hook that refuses sockets, subprocesses, signals to other processes and any write
outside ``out/`` and ``tmp/``.

Every way a job can end becomes an :class:`Outcome`: ``ok``, or failed with a
:class:`FailureKind` and a one-line reason (crash, timeout, memory, cpu, escape,
network, error). The round goes on after a failure.
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from breedlab import canonical, interrupts
from breedlab.canonical import JsonValue
from breedlab.errors import Interrupted
from breedlab.jobs import Job, OutputPackage
from breedlab.sandbox import warm as warm_starts

__all__ = ["FailureKind", "JobSpec", "Limits", "OnDone", "Outcome", "run_job", "warm_up"]

_PASS_THROUGH = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Resource limits of one job. Units in the names."""

    memory_mib: int = 4096
    cpu_seconds: int = 600
    file_mib: int = 2048
    wall_seconds: float = 600.0

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "memory_mib": self.memory_mib,
            "cpu_seconds": self.cpu_seconds,
            "file_mib": self.file_mib,
            "wall_seconds": str(self.wall_seconds),
        }


class FailureKind(enum.StrEnum):
    CRASH = "crash"  # killed by a signal or exited without a result
    TIMEOUT = "timeout"  # wall-clock limit
    MEMORY = "memory"  # address-space limit
    CPU = "cpu"  # CPU-time limit
    ESCAPE = "escape"  # tried to write outside its folder or start a process
    NETWORK = "network"  # tried to open a socket
    ERROR = "error"  # the job raised


@dataclass(frozen=True, slots=True, kw_only=True)
class JobSpec:
    """What to run: an operator job (``kind="operator"``) or an evaluation
    (``kind="evaluate"``, whose ``job.operator`` names the evaluator)."""

    job: Job
    kind: str = "operator"
    catalogue: str = "operators"  # "faults" only in the sandbox's own tests
    limits: Limits = field(default_factory=Limits)
    extra: Mapping[str, JsonValue] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    ok: bool
    failure: FailureKind | None
    reason: str
    outputs: tuple[OutputPackage, ...]
    result: Mapping[str, Any]
    log: str
    wall_seconds: float
    peak_rss_kib: int
    network_isolated: bool
    out_dir: Path


#: Called with a job's index and its outcome as each job ends (executors run it).
OnDone = Callable[[int, Outcome], None]


def _environment(tmp: Path) -> dict[str, str]:
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": str(tmp),
        "TMPDIR": str(tmp),
        "PYTHONHASHSEED": "0",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    for key in _PASS_THROUGH:  # OpenBLAS workarounds this machine needs (see env notes)
        if key in os.environ:
            env[key] = os.environ[key]
    return env


def warm_up() -> None:
    """Start this process's zygote now, without waiting for it: its imports then overlap
    the caller's own work before the first job (``breedlab.sandbox.warm.prestart``)."""
    warm_starts.prestart(_environment)


def run_job(spec: JobSpec, folder: Path, *, warm: bool = True) -> Outcome:
    """Run one job in a fresh sandbox process rooted at ``folder`` (created, must be new):
    forked by the zygote (``warm``, falling back to a cold start if it cannot), or
    started cold.

    ``spec.job.out_dir`` is ignored: the job writes to ``folder/out``.

    Raises:
        Interrupted: a stop was requested before the job started, or while it ran (its
            process group is killed, its outcome discarded).
    """
    interrupts.check(f"starting the sandbox job {folder.name}")
    folder.mkdir(parents=True, exist_ok=False)
    out_dir = folder / "out"
    tmp = folder / "tmp"
    out_dir.mkdir()
    tmp.mkdir()
    job = Job(
        operator=spec.job.operator,
        params=spec.job.params,
        seed=spec.job.seed,
        parents=spec.job.parents,
        data=spec.job.data,
        out_dir=out_dir,
        failure_cluster=spec.job.failure_cluster,
    )
    control = {
        "job": job.to_json(),
        "kind": spec.kind,
        "catalogue": spec.catalogue,
        "limits": spec.limits.to_json(),
        "writable": [str(out_dir), str(tmp)],
        "extra": dict(spec.extra),
    }
    (folder / "job.json").write_bytes(canonical.encode(control))
    log_path = folder / "log.txt"
    read_fd, write_fd = os.pipe()
    started = time.monotonic()
    timed_out = False
    lost = ""
    with log_path.open("wb") as log:
        try:
            process = _start(folder, tmp, log.fileno(), write_fd, warm=warm)
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)  # only the job holds the result pipe open now
        with interrupts.killing_on_interrupt(process.pid):  # its own session: pgid == pid
            try:
                code = process.wait(spec.limits.wall_seconds)
                if code is None:
                    timed_out = True
                    process.kill()
            except warm_starts.ZygoteLost as e:
                lost = str(e)
                code = None
            finally:
                process.release()
    with os.fdopen(read_fd, "rb") as pipe:
        raw = pipe.read()
    signal_name = interrupts.requested()
    if signal_name is not None:
        raise Interrupted(
            f"interrupted ({signal_name}) while the sandbox job {folder.name} ran; "
            "its process group was killed"
        )
    wall = time.monotonic() - started
    log_text = log_path.read_text("utf-8", errors="replace")[-20_000:]
    result: dict[str, Any] = {}
    if raw:
        try:
            result = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            result = {}
    network_isolated = bool(result.get("network_isolated", False))
    peak = int(result.get("peak_rss_kib", 0))

    def finished(
        failure: FailureKind | None, reason: str, outputs: tuple[OutputPackage, ...] = ()
    ) -> Outcome:
        return Outcome(
            ok=failure is None,
            failure=failure,
            reason=reason,
            outputs=outputs,
            result=result,
            log=log_text,
            wall_seconds=wall,
            peak_rss_kib=peak,
            network_isolated=network_isolated,
            out_dir=out_dir,
        )

    if timed_out:
        return finished(FailureKind.TIMEOUT, f"wall-clock limit of {spec.limits.wall_seconds:g} s")
    if lost:
        return finished(FailureKind.CRASH, lost)
    if code is not None and code < 0:
        sig = signal.Signals(-code)
        if sig is signal.SIGXCPU or (sig is signal.SIGKILL and result.get("cpu_exceeded")):
            return finished(FailureKind.CPU, f"CPU-time limit of {spec.limits.cpu_seconds} s")
        if sig is signal.SIGXFSZ:
            return finished(FailureKind.ESCAPE, f"file-size limit of {spec.limits.file_mib} MiB")
        return finished(FailureKind.CRASH, f"killed by {sig.name}")
    if not result:
        tail = log_text.strip().splitlines()[-1:] or ["no output"]
        return finished(FailureKind.CRASH, f"exited {code} without a result: {tail[0][:200]}")
    if result.get("status") != "ok":
        kind = FailureKind(result.get("failure", "error"))
        return finished(kind, str(result.get("reason", "unknown failure"))[:500])
    try:
        outputs = tuple(OutputPackage.from_json(o) for o in result.get("outputs", []))
        _check_outputs(out_dir, outputs)
    except (KeyError, TypeError, ValueError) as e:
        return finished(FailureKind.ERROR, f"malformed result: {e}")
    except _OutputProblem as e:
        return finished(FailureKind.ESCAPE, str(e))
    return finished(None, "", outputs)


class _OutputProblem(Exception):
    pass


def _check_outputs(out_dir: Path, outputs: tuple[OutputPackage, ...]) -> None:
    """Outputs must be real folders inside ``out_dir`` holding only regular files."""
    root = out_dir.resolve()
    for output in outputs:
        folder = (out_dir / output.folder).resolve()
        if not folder.is_relative_to(root) or not folder.is_dir():
            raise _OutputProblem(f"output {output.folder!r} is not a folder inside the job's dir")
    for path in out_dir.rglob("*"):
        if path.is_symlink():
            raise _OutputProblem(f"output contains a symlink: {path.relative_to(out_dir)}")


class _Process(Protocol):
    """A started job: a cold worker or a child forked by the zygote."""

    pid: int

    def wait(self, timeout: float | None) -> int | None:
        """Its return code (negative: killed by that signal); None after ``timeout``."""
        ...

    def kill(self) -> None:
        """Kill its process group and wait for it."""
        ...

    def release(self) -> None: ...


class _Cold:
    """A worker started cold: ``python -I -B -m breedlab.sandbox.worker``."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.pid = proc.pid

    def wait(self, timeout: float | None) -> int | None:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def release(self) -> None:
        pass


def _start(folder: Path, tmp: Path, log_fd: int, result_fd: int, *, warm: bool) -> _Process:
    """Start the job of ``folder``: forked by the zygote if ``warm`` and it can, else cold."""
    control = folder / "job.json"
    zygote = warm_starts.shared(_environment) if warm else None
    if zygote is not None:
        try:
            return zygote.spawn(control, tmp, _environment(tmp), log_fd, result_fd)
        except warm_starts.NotStarted:
            warm_starts.retire(zygote)  # no job code ran: start it cold, the next one afresh
    proc = subprocess.Popen(
        [
            sys.executable,
            "-I",  # isolated: ignore PYTHON* variables and the user's site-packages
            "-B",  # never write bytecode caches outside the job's folder
            "-m",
            "breedlab.sandbox.worker",
            str(control),
            str(result_fd),
            str(os.getpid()),  # the worker dies with this process (PR_SET_PDEATHSIG)
        ],
        stdin=subprocess.DEVNULL,
        stdout=log_fd,
        stderr=subprocess.STDOUT,
        env=_environment(tmp),
        cwd=tmp,
        pass_fds=(result_fd,),
        start_new_session=True,
    )
    return _Cold(proc)

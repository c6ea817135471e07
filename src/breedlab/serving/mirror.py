"""The shadow mirror: a bounded queue of mirrored requests into a shadow process.

Owns :class:`ShadowMirror` (the shadow process's start, stop and restart with backoff;
the job and result pipes, sized with ``fcntl`` so a write never waits; the collector
thread that pairs answers and writes them, and the drops) and :class:`MirrorJob`, one
mirrored request. Leaves to others: the shadow process itself
(:mod:`breedlab.serving.shadow_process`), which requests are mirrored (the router), and
where the evidence goes (the run's :class:`~breedlab.serving.release_logs.EvidenceSink`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from breedlab.canonical import JsonValue
from breedlab.digest import Digest
from breedlab.errors import InvalidRequest
from breedlab.release.shadow_stats import ShadowPair
from breedlab.serving.release_logs import EvidenceSink, pair_record
from breedlab.serving.request_inputs import Row
from breedlab.serving.served_models import ServedModel
from breedlab.serving.shadow_process import (
    READY,
    ModelSpec,
    frame_bound,
    idle_priority,
    job_frame,
    results_from,
    text_frame,
)

__all__ = ["MirrorJob", "ShadowMirror"]


@dataclass(frozen=True, slots=True, kw_only=True)
class MirrorJob:
    """One mirrored request: the models, the run's log, the row (floats, or a text) and
    the primary's answer."""

    shadow: ServedModel
    champion: ServedModel
    log: EvidenceSink
    inputs: Row
    primary: str
    primary_latency_s: float
    capability: str


class ShadowMirror:
    """A bounded queue into a shadow process: mirrored requests never hold up the primary.

    The challenger (and, for paired latencies, the champion) run in a separate process
    (a fresh ``python -I -B`` running :mod:`breedlab.serving.shadow_process`, idle priority)
    that loads both models from their package folders, so shadow inference never competes
    for this process's GIL and yields the CPU to the primary path. Jobs are fixed binary
    frames on a pipe, written by the request thread itself (no feeder thread, nothing
    pickled); at most ``maxsize`` mirrors are outstanding and the pipe is sized to hold
    them all, so a write never waits -- a mirror beyond the bound is dropped and counted
    (DESIGN §11). A collector thread here reads the answers in batches, pairs and writes
    them. A text travels as a length-prefixed UTF-8 frame, bounded by 4 bytes per
    character of its contract's ``max_length`` (the pipe is sized by that bound, and a
    longer text is never written). The latencies of a timed pair are the child's thread
    CPU time, back to back: the primary's own latency was measured under other
    contention, and would bias the ratio. A shadow process that dies only stops
    mirroring: its outstanding mirrors, and later ones until it is back, are counted as
    drops; the next mirror after a backoff (1 s, doubling to 60 s while it keeps dying)
    starts it again on another thread.
    """

    def __init__(
        self,
        *,
        maxsize: int = 256,
        on_pair: Callable[[str, ShadowPair], None] | None = None,
        idle: bool = True,
    ) -> None:
        if maxsize < 1:
            raise InvalidRequest(f"the shadow queue holds at least one mirror (got {maxsize})")
        self._maxsize = maxsize
        self.idle = idle  # SCHED_IDLE (the default) or normal priority
        self._bound = maxsize
        self._drops: list[tuple[EvidenceSink, dict[str, JsonValue]]] = []
        self._lock = threading.Lock()
        self._pipe_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self._jobs: dict[int, MirrorJob] = {}  # sent, not yet answered
        self._next_id = 0
        self._on_pair = on_pair
        self._target: frozenset[tuple[Digest, Digest]] = frozenset()
        self._index: dict[Digest, int] = {}
        self._pairs: list[tuple[ServedModel, ServedModel]] = []
        self._proc_lock = threading.Lock()  # one start or stop at a time
        self._proc: subprocess.Popen[bytes] | None = None
        self._started_at = 0.0
        self._retry_at = 0.0
        self._backoff = _FIRST_BACKOFF_S
        self._restarting = False
        self.restarts = 0
        self._jobs_fd: int | None = None
        self._collector: threading.Thread | None = None
        self._alive = False
        self._ready = threading.Event()
        self.mirrored = 0
        self.dropped = 0

    @property
    def pid(self) -> int | None:
        """The shadow process's pid (None when no shadow runs)."""
        proc = self._proc
        return None if proc is None else proc.pid

    @property
    def up(self) -> bool:
        """Whether a shadow process runs and answers mirrors now."""
        return self._alive

    # -- the process ----------------------------------------------------------------------

    def retarget(self, pairs: Iterable[tuple[ServedModel, ServedModel]]) -> None:
        """Run a shadow process for these (shadow, champion) pairs; none stops it."""
        listed = list(pairs)
        target = frozenset((s.package, c.package) for s, c in listed)
        with self._proc_lock:
            if target == self._target and (self._proc is not None or not target):
                return
            self._stop()
            self._target, self._pairs = target, listed
            self._backoff = _FIRST_BACKOFF_S
            if target:
                self._start(listed)

    def _restart(self, target: frozenset[tuple[Digest, Digest]]) -> None:
        """Start the shadow process again after it died (the target is unchanged)."""
        try:
            with self._proc_lock:
                if target == self._target and not self._alive:
                    self._stop()
                    self.restarts += 1
                    self._start(self._pairs)
        finally:
            self._restarting = False

    def _start(self, listed: list[tuple[ServedModel, ServedModel]]) -> None:
        models = {m.package: m for pair in listed for m in pair}
        order = sorted(models)
        specs: list[ModelSpec] = [
            # A model the server did not load from a package has no budget: 0 refuses it.
            (
                str(m.folder or ""),
                m.family or "",
                tuple(m.labels),
                m.inputs,
                m.max_bytes or 0,
                _max_length(m),
            )
            for m in (models[p] for p in order)
        ]
        frame = max(frame_bound(m.inputs, _max_length(m)) for m in models.values())
        jobs_r, jobs_w = os.pipe()
        results_r, results_w = os.pipe()
        try:
            self._bound = _size_pipe(jobs_w, self._maxsize, frame)
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-I",
                    "-B",
                    "-c",
                    "from breedlab.serving.shadow_process import main; main()",
                    json.dumps(specs),
                    str(jobs_r),
                    str(results_w),
                    "idle" if self.idle else "normal",
                ],
                pass_fds=(jobs_r, results_w),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                env={**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
            )
        except OSError:  # no shadow process: every mirror is a drop until the next target
            os.close(jobs_w)
            os.close(results_r)
            return
        finally:  # the child's ends: it holds its own copies
            os.close(jobs_r)
            os.close(results_w)
        if self.idle:
            idle_priority(proc.pid)  # before the child's own imports, not after them
        os.set_blocking(jobs_w, False)  # a write that cannot complete fails, never waits
        self._ready = threading.Event()
        with self._lock:
            self._index = {p: i for i, p in enumerate(order)}
            self._proc, self._jobs_fd, self._alive = proc, jobs_w, True
            self._started_at = time.monotonic()
        self._collector = threading.Thread(
            target=self._collect, args=(proc, results_r), name="shadow-collector", daemon=True
        )
        self._collector.start()

    def wait_ready(self, timeout: float = 120.0) -> bool:
        """Wait until the shadow process has loaded its models (False: none, or not yet)."""
        proc = self._proc
        deadline = time.monotonic() + timeout
        while proc is not None and proc.poll() is None and time.monotonic() < deadline:
            if self._ready.wait(timeout=0.1):
                return True
        return self._ready.is_set()

    def _close_jobs(self) -> None:
        with self._pipe_lock:
            fd, self._jobs_fd = self._jobs_fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def _stop(self) -> None:
        proc, collector = self._proc, self._collector
        if proc is None:
            return
        self._close_jobs()  # end of input: the child answers what it holds, then exits
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        if collector is not None:
            collector.join(timeout=5)
        with self._lock:
            self._proc, self._collector, self._alive = None, None, False
            self._lost()
        self._write_drops()

    def _lost(self) -> None:
        """Every unanswered mirror becomes a drop (the lock is held)."""
        for job in self._jobs.values():
            self._drop(job)
        self._jobs.clear()
        self._done.notify_all()

    def _drop(self, job: MirrorJob) -> None:
        self.dropped += 1
        self._drops.append(
            (
                job.log,
                {
                    "kind": "dropped",
                    "count": 1,
                    "primary": job.primary,
                    "primary_latency_s": repr(job.primary_latency_s),
                },
            )
        )

    def _collect(self, proc: subprocess.Popen[bytes], fd: int) -> None:
        pending: list[tuple[EvidenceSink, dict[str, JsonValue]]] = []
        buf = bytearray()
        try:
            while True:
                try:
                    chunk = os.read(fd, 1 << 16)
                except OSError:
                    chunk = b""
                if not chunk:  # the shadow process ended (or died)
                    break
                buf += chunk
                answered = []
                for job_id, index, shadow_s, champion_s in results_from(buf):
                    if job_id == READY:
                        self._ready.set()
                        continue
                    with self._lock:
                        job = self._jobs.get(job_id)
                    if job is None:
                        continue
                    labels = job.shadow.labels
                    label = labels[index] if 0 <= index < len(labels) else None
                    timed = label is not None and not math.isnan(shadow_s + champion_s)
                    pair = ShadowPair(
                        primary=job.primary,
                        shadow=label,
                        primary_latency_s=champion_s if timed else None,
                        shadow_latency_s=shadow_s if timed else None,
                        shadow_error=label is None,
                    )
                    pending.append((job.log, {"kind": "pair", **pair_record(pair)}))
                    answered.append(job_id)
                    if self._on_pair is not None:
                        with contextlib.suppress(Exception):
                            self._on_pair(job.capability, pair)
                self._write(pending)  # one batched append per read
                with self._lock:
                    for job_id in answered:  # popped from the unanswered once written
                        self._jobs.pop(job_id, None)
                    if not self._jobs:
                        self._done.notify_all()
        finally:
            os.close(fd)
            with self._lock:
                if self._proc is proc:
                    self._alive = False
                    self._lost()
                    # Restart later; sooner if it had run a while, later if it keeps dying.
                    now = time.monotonic()
                    if now - self._started_at >= _STEADY_S:
                        self._backoff = _FIRST_BACKOFF_S
                    self._retry_at = now + self._backoff
                    self._backoff = min(self._backoff * 2, _MAX_BACKOFF_S)
            self._close_jobs_of(proc)
            self._write_drops()

    def _close_jobs_of(self, proc: subprocess.Popen[bytes]) -> None:
        if self._proc is proc:
            self._close_jobs()

    # -- the primary path -----------------------------------------------------------------

    def submit(self, job: MirrorJob) -> bool:
        """Queue a mirror without waiting; False (and counted) when it cannot be sent."""
        with self._lock:
            self.mirrored += 1
            target = (job.shadow.package, job.champion.package)
            if not self._alive or target not in self._target or len(self._jobs) >= self._bound:
                self._drop(job)
                if (
                    not self._alive
                    and self._proc is not None
                    and not self._restarting
                    and time.monotonic() >= self._retry_at
                ):  # it died: start it again, off the request thread
                    self._restarting = True
                    threading.Thread(
                        target=self._restart, args=(self._target,), name="shadow-restart"
                    ).start()
                return False
            job_id = self._next_id
            self._next_id += 1
            self._jobs[job_id] = job
            shadow, champion = self._index[target[0]], self._index[target[1]]
        try:
            if isinstance(job.inputs, str):
                bound = _max_length(job.shadow)
                frame = text_frame(job_id, shadow, champion, job.inputs, bound)
            else:
                frame = job_frame(job_id, shadow, champion, job.inputs)
            with self._pipe_lock:
                if self._jobs_fd is None:
                    raise BrokenPipeError("the shadow process is stopping")
                written = os.write(self._jobs_fd, frame)
            if written != len(frame):  # never by the bound; a torn frame ends the stream
                self._close_jobs()
            return True
        except (struct.error, OSError, TypeError, ValueError):
            with self._lock:
                if self._jobs.pop(job_id, None) is not None:
                    self._drop(job)
            return False

    def _write_drops(self) -> None:
        # One writer at a time: a flush returns only after drops taken by the collector
        # are on disk.
        with self._write_lock:
            with self._lock:
                drops, self._drops = self._drops, []
            by_log: dict[int, tuple[EvidenceSink, list[dict[str, JsonValue]]]] = {}
            for log, rec in drops:
                by_log.setdefault(id(log), (log, []))[1].append(rec)
            for log, recs in by_log.values():
                log.append(recs)

    def _write(self, pending: list[tuple[EvidenceSink, dict[str, JsonValue]]]) -> None:
        by_log: dict[int, tuple[EvidenceSink, list[dict[str, JsonValue]]]] = {}
        for log, rec in pending:
            by_log.setdefault(id(log), (log, []))[1].append(rec)
        for log, recs in by_log.values():
            log.append(recs)
        pending.clear()
        self._write_drops()

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every sent mirror is answered (or lost) and every drop is written."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._jobs and (deadline is None or time.monotonic() < deadline):
                self._done.wait(timeout=0.5)
        self._write_drops()

    def close(self) -> None:
        self.flush(timeout=30)
        with self._proc_lock:
            self._stop()
            self._target, self._pairs = frozenset(), []
        self._write_drops()


_FIRST_BACKOFF_S = 1.0  # a dead shadow process is restarted after this long, then
_MAX_BACKOFF_S = 60.0  # twice as long each time it dies again, up to this
_STEADY_S = 60.0  # ... unless it had run this long: then the wait starts over


def _max_length(model: ServedModel) -> int:
    """A text model's ``max_length`` in characters; 0 for a model of float rows.

    A text capability's contract always gives one; a text model without it (none the
    server loads) gets a length of 1, so its frames stay bounded and long texts drop.
    """
    if not model.takes_text:
        return 0
    return model.schema.max_length or 1


def _size_pipe(fd: int, maxsize: int, frame: int) -> int:
    """Grow the pipe to hold ``maxsize`` frames; how many it holds (at least one).

    Outstanding mirrors never exceed this many, so the pipe never fills and a write
    never waits. A request above the system's ``fs/pipe-max-size`` (1 MiB by default:
    256 text frames of a 2000-character contract ask for 2 MiB) takes that maximum.
    """
    for size in (s for s in (maxsize * frame, _pipe_max_size()) if s > 0):
        try:
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, size)
            break
        except (AttributeError, OSError):
            continue
    try:
        capacity = fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ)
    except (AttributeError, OSError):
        capacity = 4096  # POSIX guarantees PIPE_BUF (512); Linux gives at least a page
    return max(1, min(maxsize, capacity // frame))


def _pipe_max_size() -> int:
    """The largest pipe an unprivileged process may ask for (0: unknown)."""
    try:
        return int(Path("/proc/sys/fs/pipe-max-size").read_text("ascii"))
    except (OSError, ValueError):
        return 0

"""Which model answers a request, and the swap when an alias moves.

Owns the :class:`RoutingTable` (an immutable value: per capability the verified, loaded
champion, previous, shadow and canary), the :class:`Router` that rebuilds it when the
ledger head moves and swaps one reference (so no request ever sees a half-loaded
model), the bounded shadow mirror, and the canary's automatic abort. Decisions belong
to ``breedlab.release``; ledger writes to ``breedlab.lab.release``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import random
import sqlite3
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from breedlab.authority import Replayer
from breedlab.canonical import JsonValue
from breedlab.config import SHADOW_PRIORITIES
from breedlab.digest import Digest
from breedlab.errors import IntegrityError, InvalidRequest, LabError
from breedlab.http.shadow_process import (
    JOB,
    READY,
    ModelSpec,
    idle_priority,
    job_frame,
    results_from,
)
from breedlab.lab.release import (
    CanaryRun,
    ServedModel,
    load_served,
    pair_record,
    shadow_log,
)
from breedlab.registry.manifest import RiskTier
from breedlab.release.canary import CanaryObservation, CanaryPolicy
from breedlab.release.sequential import Verdict
from breedlab.release.shadow_stats import ShadowPair
from breedlab.supply.evidence import EvidenceLog

if TYPE_CHECKING:
    from breedlab.lab import Lab

__all__ = ["Answer", "CapabilityRoute", "Router", "RoutingTable", "ShadowMirror"]


@dataclass(frozen=True, slots=True, kw_only=True)
class CapabilityRoute:
    """The models serving one capability at one ledger head."""

    capability: str
    risk_tier: RiskTier
    champion: ServedModel
    previous: ServedModel | None = None
    shadow: ServedModel | None = None
    shadow_seq: int | None = None
    shadow_log: EvidenceLog | None = None
    shadow_sample: float = 1.0
    canary: ServedModel | None = None
    canary_run: CanaryRun | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RoutingTable:
    """Every served capability at ledger head ``seq``. Built whole, then swapped in."""

    seq: int
    routes: Mapping[str, CapabilityRoute] = field(default_factory=dict)
    expires: float | None = None  # clock.monotonic() when a baking period ends: rebuild


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    """What a request got: the label, probabilities, who answered and the latency."""

    label: str
    probabilities: list[float]
    role: str  # champion | canary
    package: Digest
    latency_s: float
    canary_failed: bool = False  # the canary failed and the champion's answer was used


@dataclass(frozen=True, slots=True, kw_only=True)
class _Mirror:
    shadow: ServedModel
    champion: ServedModel
    log: EvidenceLog
    inputs: list[float]
    primary: str
    primary_latency_s: float
    capability: str


class ShadowMirror:
    """A bounded queue into a shadow process: mirrored requests never hold up the primary.

    The challenger (and, for paired latencies, the champion) run in a separate process
    (a fresh ``python -I -B`` running :mod:`breedlab.http.shadow_process`, idle priority)
    that loads both models from their package folders, so shadow inference never competes
    for this process's GIL and yields the CPU to the primary path. Jobs are fixed binary
    frames on a pipe, written by the request thread itself (no feeder thread, nothing
    pickled); at most ``maxsize`` mirrors are outstanding and the pipe is sized to hold
    them all, so a write never waits -- a mirror beyond the bound is dropped and counted
    (DESIGN §11). A collector thread here reads the answers in batches, pairs and writes
    them. The latencies of a timed pair are the child's thread CPU time, back to back:
    the primary's own latency was measured under other contention, and would bias the
    ratio. A shadow process that dies only stops mirroring: its outstanding mirrors, and
    later ones until it is back, are counted as drops; the next mirror after a backoff
    (1 s, doubling to 60 s while it keeps dying) starts it again on another thread.
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
        self._drops: list[tuple[EvidenceLog, dict[str, JsonValue]]] = []
        self._lock = threading.Lock()
        self._pipe_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self._jobs: dict[int, _Mirror] = {}  # sent, not yet answered
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
            (str(m.folder or ""), m.family or "", tuple(m.labels), m.inputs, m.max_bytes or 0)
            for m in (models[p] for p in order)
        ]
        frame = JOB.size + 8 * max(m.inputs for m in models.values())
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
                    "from breedlab.http.shadow_process import main; main()",
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

    def _drop(self, job: _Mirror) -> None:
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
        pending: list[tuple[EvidenceLog, dict[str, JsonValue]]] = []
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

    def submit(self, job: _Mirror) -> bool:
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
            by_log: dict[int, tuple[EvidenceLog, list[dict[str, JsonValue]]]] = {}
            for log, rec in drops:
                by_log.setdefault(id(log), (log, []))[1].append(rec)
            for log, recs in by_log.values():
                log.append(recs)

    def _write(self, pending: list[tuple[EvidenceLog, dict[str, JsonValue]]]) -> None:
        by_log: dict[int, tuple[EvidenceLog, list[dict[str, JsonValue]]]] = {}
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


def _size_pipe(fd: int, maxsize: int, frame: int) -> int:
    """Grow the pipe to hold ``maxsize`` frames; how many it holds (at least one).

    Outstanding mirrors never exceed this many, so the pipe never fills and a write
    never waits.
    """
    with contextlib.suppress(AttributeError, OSError):
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, maxsize * frame)
    try:
        capacity = fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ)
    except (AttributeError, OSError):
        capacity = 4096  # POSIX guarantees PIPE_BUF (512); Linux gives at least a page
    return max(1, min(maxsize, capacity // frame))


#: What loading one capability's models can raise: breedlab's own errors, and what a
#: model library raises on a file it cannot use (reported, never fatal to the server).
_LOAD_ERRORS = (LabError, OSError, RuntimeError, ValueError, KeyError, TypeError)


def _message(error: BaseException) -> str:
    return error.message if isinstance(error, LabError) else f"{type(error).__name__}: {error}"


def _target(pid: str | None) -> Digest | None:
    return None if pid is None else Digest.parse(pid)


def _head_reader(lab: Lab) -> Callable[[], int]:
    """The ledger head seq, cheaply: a read-only SQLite connection per thread."""
    url = lab.config.ledger_sqlalchemy_url
    if not url.startswith("sqlite:///"):

        def head_any() -> int:
            with lab.ledger.reader() as r:
                return r.head()[0]

        return head_any
    path = Path(url.removeprefix("sqlite:///"))
    local = threading.local()

    def head() -> int:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=True)
            local.conn = conn
        row = conn.execute("SELECT seq FROM head WHERE id = 1").fetchone()
        return 0 if row is None else int(row[0])

    return head


class Router:
    """Keeps the routing table in step with the ledger and answers requests.

    Each request compares the ledger head with the table's; when it moved (or a baking
    period ended), the table is rebuilt (models verified and loaded outside the swap,
    cached by package id, so the previous champion stays warm while it bakes and is
    released after) and swapped in as one reference.
    """

    def __init__(
        self,
        lab: Lab,
        *,
        canary_policy: CanaryPolicy | None = None,
        faults: Mapping[str, float] | None = None,
        shadow_queue: int = 256,
        srm_min_units: int = 200,
        seed: int = 0,
        shadow_priority: str | None = None,
    ) -> None:
        priority = shadow_priority or lab.config.shadow_priority
        if priority not in SHADOW_PRIORITIES:
            raise InvalidRequest(
                f"the shadow priority is one of {', '.join(SHADOW_PRIORITIES)} (got {priority!r})"
            )
        self.lab = lab
        self.canary_policy = canary_policy or CanaryPolicy()
        self.srm_min_units = srm_min_units
        self.faults = dict(faults or {})
        self._rng = random.Random(seed)
        self._models: dict[Digest, ServedModel] = {}
        self._runs: dict[int, CanaryRun] = {}
        self._rebuild_lock = threading.Lock()
        self._flip_lock = threading.Lock()
        self._flips = 0
        self._head = _head_reader(lab)
        self.mirror = ShadowMirror(maxsize=shadow_queue, idle=priority == "idle")
        self.events: list[dict[str, object]] = []  # aborts and stage moves, for metrics
        # The server follows only what verifies: every new event's chain link, signature
        # and authority are checked before an alias move is served (DESIGN §13).
        self._verified = Replayer(lab.blobs, pinned=lab.config.lab_key_id or None)
        self.refused: str | None = None  # why the ledger's newest events are not followed
        self.degraded: dict[str, str] = {}  # capability -> why its new route failed
        self._refused_head: int | None = None
        self.table = RoutingTable(seq=-1)
        self.refresh()

    # -- the table ------------------------------------------------------------------------

    def _model(self, pid: Digest | None) -> ServedModel | None:
        if pid is None:
            return None
        if pid not in self._models:
            self._models[pid] = load_served(self.lab, pid)
        return self._models[pid]

    def refresh(self, *, force: bool = False) -> RoutingTable:
        """The current table, rebuilt first if the ledger head moved (or ``force``).

        New events are verified first (chain, signatures, authority). If they do not
        verify, the table of the last verified head goes on serving and ``refused`` says
        why; a server that starts on a ledger that does not verify refuses to start.

        Raises:
            IntegrityError: at start only, the ledger does not verify.
        """
        head = self._head()
        table = self.table
        unchanged = head in (table.seq, self._refused_head)
        if unchanged and not force and not self._expired(table):
            return table
        with self._rebuild_lock:
            head = self._head()
            if head == self.table.seq and not force and not self._expired(self.table):
                return self.table
            try:
                self._verify_new()
            except IntegrityError as e:
                if self.table.seq < 0:
                    raise
                self.refused, self._refused_head = e.message, head
                return self.table
            self.refused = self._refused_head = None
            self.table = self._build(self._verified.count)  # one reference swap
            self._retarget(self.table)
            return self.table

    def _verify_new(self) -> None:
        with self.lab.ledger.reader() as r:
            self._verified.feed(r.events(after=self._verified.count))
        self._verified.settled()

    def _expired(self, table: RoutingTable) -> bool:
        return table.expires is not None and self.lab.clock.monotonic() >= table.expires

    def _build(self, head: int) -> RoutingTable:
        """A table for every capability with a champion. One capability whose models do
        not verify or load keeps its last good route (or none) and is reported in
        ``degraded``: it never takes the other capabilities down."""
        routes: dict[str, CapabilityRoute] = {}
        degraded: dict[str, str] = {}
        now, mono = self.lab.clock.now(), self.lab.clock.monotonic()
        expires: float | None = None
        verified = self._verified.state  # aliases and release state as verified
        for cap, tier in sorted(verified.tiers.items()):
            try:
                route, until = self._route(cap, tier, now, mono)
            except _LOAD_ERRORS as e:
                degraded[cap] = _message(e)
                last = self.table.routes.get(cap)
                if last is not None:
                    routes[cap] = last
                continue
            if route is None:
                continue
            if until is not None:
                expires = until if expires is None else min(expires, until)
            try:
                route = self._with_challengers(route)
            except _LOAD_ERRORS as e:  # the champion serves; the challenger waits
                degraded[cap] = f"shadow/canary not loaded: {_message(e)}"
            routes[cap] = route
        # Keep loaded only what this table serves: a baked previous champion, a stopped
        # shadow or an ended canary is released here (requests in flight keep theirs).
        served = {
            m.package
            for r in routes.values()
            for m in (r.champion, r.previous, r.shadow, r.canary)
            if m is not None
        }
        self._models = {p: m for p, m in self._models.items() if p in served}
        self.degraded = degraded
        return RoutingTable(seq=head, routes=routes, expires=expires)

    def _route(
        self, cap: str, tier: RiskTier, now: datetime, mono: float
    ) -> tuple[CapabilityRoute | None, float | None]:
        """The champion (and the previous one while it bakes) of ``cap``; when the
        baking period ends, on the monotonic clock."""
        verified = self._verified.state
        champion = self._model(_target(verified.aliases.get((cap, "champion"))))
        if champion is None:
            return None, None
        state = verified.release_of(cap)
        previous, until = None, None
        if state.baking(now) and state.baking_until is not None:
            # The old champion stays warm (loaded) until its baking period ends.
            previous = self._model(_target(verified.aliases.get((cap, "previous"))))
            until = mono + (state.baking_until - now).total_seconds()
        route = CapabilityRoute(
            capability=cap, risk_tier=tier, champion=champion, previous=previous
        )
        return route, until

    def _with_challengers(self, route: CapabilityRoute) -> CapabilityRoute:
        """``route`` with its shadow and running canary, if the release state has them."""
        cap = route.capability
        state = self._verified.state.release_of(cap)
        run = None
        if state.cohort is not None and state.canary_seq is not None:
            run = self._runs.get(state.canary_seq)
            if run is None:
                run = CanaryRun(
                    self.lab, state, policy=self.canary_policy, srm_min_units=self.srm_min_units
                )
                self._runs[state.canary_seq] = run
            if run.finished is not None or run.capped:
                run = None
        return replace(
            route,
            shadow=self._model(state.shadow),
            shadow_seq=state.shadow_seq,
            shadow_log=None
            if state.shadow_seq is None
            else shadow_log(self.lab, cap, state.shadow_seq),
            shadow_sample=state.shadow_sample,
            canary=self._model(state.canary) if run is not None else None,
            canary_run=run,
        )

    def _retarget(self, table: RoutingTable) -> None:
        """Start, restart or stop the shadow process to match the table's shadows."""
        self.mirror.retarget(
            (r.shadow, r.champion)
            for r in table.routes.values()
            if r.shadow is not None and r.shadow_log is not None
        )

    def drop_canary(self, capability: str) -> None:
        """Route 100% to the champion now: swap in a table without the canary."""
        with self._rebuild_lock:
            table = self.table
            route = table.routes.get(capability)
            if route is None:
                return
            routes = dict(table.routes)
            routes[capability] = replace(route, canary=None, canary_run=None)
            self.table = RoutingTable(seq=table.seq, routes=routes)

    # -- answering ------------------------------------------------------------------------

    def _answer(
        self, model: ServedModel, inputs: list[float], role: str
    ) -> tuple[str, list[float]]:
        rate = self.faults.get(role, 0.0)
        if rate and self._rng.random() < rate:
            raise LabError(f"injected fault in the {role} (drill)")
        return model.predict(inputs)

    def predict(
        self,
        route: CapabilityRoute,
        *,
        unit: str,
        inputs: list[float],
        truth: str | None,
        low_risk: bool,
    ) -> Answer:
        """Answer one request; feed the canary's monitors and the shadow mirror.

        Raises:
            InvalidRequest: the inputs do not answer the contract (checked before any
                model sees them: a bad request is never a canary's or shadow's fault).
        """
        route.champion.check(inputs)
        run = route.canary_run
        if run is not None and route.canary is not None and low_risk and run.contains(unit):
            if run.admit(unit):
                return self._canary(route, run, route.canary, unit, inputs, truth)
            self._stop_at_cap(route, run)  # the stage's exposure cap: the champion answers
        if run is not None and run.saw_champion(unit) is Verdict.ABORT:
            self._abort(route, run, inputs)  # the no-data rule: no canary traffic for too long
        t0, c0 = time.perf_counter(), time.thread_time()
        label, probs = self._answer(route.champion, inputs, "champion")
        latency = max(time.perf_counter() - t0, 1e-9)
        cpu = max(time.thread_time() - c0, 1e-9)
        if (
            route.shadow is not None
            and route.shadow_log is not None
            and (route.shadow_sample >= 1.0 or self._rng.random() < route.shadow_sample)
        ):
            self.mirror.submit(
                _Mirror(
                    shadow=route.shadow,
                    champion=route.champion,
                    log=route.shadow_log,
                    inputs=inputs,
                    primary=label,
                    primary_latency_s=cpu,
                    capability=route.capability,
                )
            )
        return Answer(
            label=label,
            probabilities=probs,
            role="champion",
            package=route.champion.package,
            latency_s=latency,
        )

    def _canary(
        self,
        route: CapabilityRoute,
        run: CanaryRun,
        canary: ServedModel,
        unit: str,
        inputs: list[float],
        truth: str | None,
    ) -> Answer:
        def run_canary() -> tuple[str | None, list[float], float]:
            c0 = time.thread_time()
            try:
                c_label: str | None
                c_label, c_probs = self._answer(canary, inputs, "canary")
            except LabError:
                c_label, c_probs = None, []
            return c_label, c_probs, time.thread_time() - c0

        def run_champion() -> tuple[str, list[float], float]:
            c0 = time.thread_time()
            label, probs = route.champion.predict(inputs)
            return label, probs, time.thread_time() - c0

        # Alternate which model runs first, so a warm cache favours neither on average.
        t0 = time.perf_counter()
        if self._flip():
            c_label, c_probs, c_cpu = run_canary()
            label, probs, p_cpu = run_champion()
        else:
            label, probs, p_cpu = run_champion()
            c_label, c_probs, c_cpu = run_canary()
        t1 = time.perf_counter()
        obs = CanaryObservation(  # latencies: thread CPU time, free of interpreter waits
            failed=c_label is None,
            canary_label=c_label,
            champion_label=label,
            canary_latency_s=max(c_cpu, 1e-9),
            champion_latency_s=max(p_cpu, 1e-9),
            truth=truth,
        )
        verdict = run.observe(unit, obs)
        if verdict is Verdict.ABORT:
            self._abort(route, run, inputs)
        elif verdict is Verdict.PASS:
            event = run.advance()
            self.events.append({"kind": event.kind, "seq": event.seq})
        if c_label is None:  # a failed canary answer falls back to the champion's
            return Answer(
                label=label,
                probabilities=probs,
                role="champion",
                package=route.champion.package,
                latency_s=t1 - t0,
                canary_failed=True,
            )
        return Answer(
            label=c_label,
            probabilities=c_probs,
            role="canary",
            package=canary.package,
            latency_s=c_cpu,
        )

    def _stop_at_cap(self, route: CapabilityRoute, run: CanaryRun) -> None:
        event = run.stop_at_cap(switch=lambda: self.drop_canary(route.capability))
        if event is not None:
            self.events.append({"kind": event.kind, "seq": event.seq})

    def _abort(self, route: CapabilityRoute, run: CanaryRun, inputs: list[float]) -> None:
        """seed, stage 3: canary abort is automatic -- switch, verify, record."""
        t_detect = self.lab.clock.now()

        def verify() -> None:  # the champion now routed answers this very input
            self.table.routes[route.capability].champion.predict(inputs)

        event = run.abort(
            t_detect=t_detect,
            switch=lambda: self.drop_canary(route.capability),
            verify=verify,
        )
        if event is not None:
            self.events.append({"kind": event.kind, "seq": event.seq})

    def _flip(self) -> bool:
        with self._flip_lock:
            self._flips += 1
            return self._flips % 2 == 0

    def close(self) -> None:
        """Stop mirroring, then seal what the running shadow and canary runs recorded
        (nothing of a run is left only in a file when the server stops)."""
        self.mirror.close()
        for route in self.table.routes.values():
            logs = [route.shadow_log, route.canary_run.log if route.canary_run else None]
            for log in logs:
                if log is not None:
                    with contextlib.suppress(LabError):
                        log.seal()

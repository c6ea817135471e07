"""Which model answers a request, and the swap when an alias moves.

Owns the :class:`RoutingTable` (an immutable value: per capability the verified, loaded
champion, previous, shadow and canary), the :class:`Router` that rebuilds it when the
ledger head moves and swaps one reference (so no request ever sees a half-loaded
model), the bounded shadow mirror, and the canary's automatic abort. Decisions belong
to ``breedlab.release``; ledger writes to ``breedlab.lab.release``.
"""

from __future__ import annotations

import contextlib
import queue
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from breedlab.canonical import JsonValue
from breedlab.digest import Digest
from breedlab.errors import LabError
from breedlab.lab.release import (
    CanaryRun,
    JsonlLog,
    ServedModel,
    load_served,
    pair_record,
    release_state,
    shadow_log,
)
from breedlab.registry.manifest import RiskTier
from breedlab.release.canary import CanaryObservation, CanaryPolicy
from breedlab.release.sequential import Verdict
from breedlab.release.shadow_stats import ShadowPair

if TYPE_CHECKING:
    from breedlab.lab import Lab

__all__ = ["Answer", "CapabilityRoute", "Router", "RoutingTable", "ShadowMirror"]

#: The longest a mirror waits for the primary path to go idle before it runs anyway (s).
MAX_YIELD_S = 0.05


@dataclass(frozen=True, slots=True, kw_only=True)
class CapabilityRoute:
    """The models serving one capability at one ledger head."""

    capability: str
    risk_tier: RiskTier
    champion: ServedModel
    previous: ServedModel | None = None
    shadow: ServedModel | None = None
    shadow_seq: int | None = None
    shadow_log: JsonlLog | None = None
    shadow_sample: float = 1.0
    canary: ServedModel | None = None
    canary_run: CanaryRun | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RoutingTable:
    """Every served capability at ledger head ``seq``. Built whole, then swapped in."""

    seq: int
    routes: Mapping[str, CapabilityRoute] = field(default_factory=dict)


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
    log: JsonlLog
    inputs: list[float]
    primary: str
    primary_latency_s: float
    capability: str


class ShadowMirror:
    """A bounded queue and one worker: mirrored requests never hold up the primary.

    When the queue is full the mirror is dropped and counted (DESIGN §11). The worker
    also re-runs the champion on the mirrored input and pairs the two latencies (thread
    CPU time, same thread, back to back): the primary's own latency was measured on
    another thread under other contention, and would bias the ratio.
    """

    def __init__(
        self,
        *,
        maxsize: int = 256,
        on_pair: Callable[[str, ShadowPair], None] | None = None,
    ) -> None:
        self._queue: queue.Queue[_Mirror | None] = queue.Queue(maxsize=maxsize)
        self._drops: list[tuple[JsonlLog, dict[str, JsonValue]]] = []
        self._lock = threading.Lock()
        self._inflight = 0
        self._idle = threading.Event()
        self._idle.set()
        self._on_pair = on_pair
        self.mirrored = 0
        self.dropped = 0
        self._worker = threading.Thread(target=self._run, name="shadow-mirror", daemon=True)
        self._worker.start()

    def submit(self, job: _Mirror) -> bool:
        """Queue a mirror without waiting; False (and counted) when the queue is full."""
        with self._lock:
            self.mirrored += 1
        try:
            self._queue.put_nowait(job)
            return True
        except queue.Full:
            with self._lock:
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
            return False

    def _write_drops(self) -> None:
        with self._lock:
            drops, self._drops = self._drops, []
        for log, rec in drops:
            log.append([rec])

    @staticmethod
    def _champion(job: _Mirror) -> float:
        """The champion's latency on the mirrored input: the shadow's paired twin."""
        c0 = time.thread_time()
        job.champion.predict(job.inputs)
        return max(time.thread_time() - c0, 1e-9)

    @staticmethod
    def _shadow(job: _Mirror) -> tuple[str | None, float]:
        c0 = time.thread_time()
        try:
            label: str | None = job.shadow.predict(job.inputs)[0]
        except Exception:  # noqa: BLE001 -- the shadow must never take the server down
            label = None
        return label, max(time.thread_time() - c0, 1e-9)

    @contextlib.contextmanager
    def primary(self) -> Iterator[None]:
        """Mark a primary request in flight: the worker yields the interpreter meanwhile."""
        with self._lock:
            self._inflight += 1
            self._idle.clear()
        try:
            yield
        finally:
            with self._lock:
                self._inflight -= 1
                if not self._inflight:
                    self._idle.set()

    def _yield_to_primary(self) -> None:
        # Shadow runs on idle capacity: while a primary request is in flight the worker
        # sleeps (releasing the interpreter), at most MAX_YIELD_S per mirror so it cannot
        # starve; under sustained load the queue fills and mirrors are dropped instead.
        self._idle.wait(timeout=MAX_YIELD_S)  # blocks without polling the interpreter

    def _write(self, pending: list[tuple[JsonlLog, dict[str, JsonValue]]]) -> None:
        by_log: dict[int, tuple[JsonlLog, list[dict[str, JsonValue]]]] = {}
        for log, rec in pending:
            by_log.setdefault(id(log), (log, []))[1].append(rec)
        for log, recs in by_log.values():
            log.append(recs)
        pending.clear()
        self._write_drops()

    def _run(self) -> None:
        turn = 0
        pending: list[tuple[JsonlLog, dict[str, JsonValue]]] = []
        while True:
            job = self._queue.get()
            try:
                if job is None:
                    self._write(pending)
                    return
                self._yield_to_primary()
                turn += 1
                if turn % 2:  # alternate the order: a warm cache favours neither side
                    champion_s = self._champion(job)
                label, shadow_s = self._shadow(job)
                if not turn % 2:
                    champion_s = self._champion(job)
                pair = ShadowPair(
                    primary=job.primary,
                    shadow=label,
                    primary_latency_s=champion_s,
                    shadow_latency_s=shadow_s,
                    shadow_error=label is None,
                )
                pending.append((job.log, {"kind": "pair", **pair_record(pair)}))
                if len(pending) >= 64 or self._queue.empty():  # batched appends
                    self._write(pending)
                if self._on_pair is not None:
                    self._on_pair(job.capability, pair)
            finally:
                self._queue.task_done()

    def flush(self) -> None:
        """Wait until every queued mirror is answered and every drop is written."""
        self._queue.join()
        self._write_drops()

    def close(self) -> None:
        self._queue.put(None)
        self._worker.join(timeout=5)
        self._write_drops()


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

    Each request compares the ledger head with the table's; when it moved, the table is
    rebuilt (models verified and loaded outside the swap, cached by package id so the
    previous champion stays warm) and swapped in as one reference.
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
    ) -> None:
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
        self.mirror = ShadowMirror(maxsize=shadow_queue)
        self.events: list[dict[str, object]] = []  # aborts and stage moves, for metrics
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
        """The current table, rebuilt first if the ledger head moved (or ``force``)."""
        head = self._head()
        table = self.table
        if head == table.seq and not force:
            return table
        with self._rebuild_lock:
            head = self._head()
            if head == self.table.seq and not force:
                return self.table
            self.table = self._build(head)  # one reference swap
            return self.table

    def _build(self, head: int) -> RoutingTable:
        routes: dict[str, CapabilityRoute] = {}
        for info in self.lab.capabilities():
            cap = info.manifest.capability
            champion = self._model(self.lab.alias(cap, "champion"))
            if champion is None:
                continue
            _, contract = self.lab.capability(cap)
            state = release_state(self.lab, cap)
            run = None
            if state.cohort is not None and state.canary_seq is not None:
                run = self._runs.get(state.canary_seq)
                if run is None:
                    run = CanaryRun(
                        self.lab,
                        state,
                        policy=self.canary_policy,
                        srm_min_units=self.srm_min_units,
                    )
                    self._runs[state.canary_seq] = run
                if run.finished is not None:
                    run = None
            routes[cap] = CapabilityRoute(
                capability=cap,
                risk_tier=contract.risk_tier,
                champion=champion,
                previous=self._model(self.lab.alias(cap, "previous")),
                shadow=self._model(state.shadow),
                shadow_seq=state.shadow_seq,
                shadow_log=None
                if state.shadow_seq is None
                else shadow_log(self.lab, cap, state.shadow_seq),
                shadow_sample=state.shadow_sample,
                canary=self._model(state.canary) if run is not None else None,
                canary_run=run,
            )
        return RoutingTable(seq=head, routes=routes)

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
        """Answer one request; feed the canary's monitors and the shadow mirror."""
        run = route.canary_run
        if run is not None and route.canary is not None and low_risk and run.contains(unit):
            return self._canary(route, run, route.canary, unit, inputs, truth)
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
        self.mirror.close()

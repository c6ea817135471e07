"""Which model answers a request, and the swap when an alias moves.

Owns the :class:`RoutingTable` (an immutable value: per capability the verified, loaded
champion, previous, shadow and canary) and the :class:`Router` that rebuilds it when the
ledger head moves and swaps one reference (so no request ever sees a half-loaded
model), feeds the shadow mirror and the canary's monitors, and aborts a canary
automatically. Leaves to others: decisions (``breedlab.release``), the shadow process
(:mod:`breedlab.serving.mirror`), and ledger writes (the release controller's
:class:`~breedlab.serving.supplier.ReleaseRecorder`).
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TypedDict

from breedlab.authority import Replayer
from breedlab.config import SHADOW_PRIORITIES
from breedlab.digest import Digest
from breedlab.errors import IntegrityError, InvalidRequest, LabError
from breedlab.registry.manifest import RiskTier
from breedlab.release.canary import CanaryObservation, CanaryPolicy
from breedlab.release.sequential import Verdict
from breedlab.release.shadow_stats import ShadowPair
from breedlab.serving.canary_run import CanaryRun
from breedlab.serving.mirror import MirrorJob, ShadowMirror
from breedlab.serving.release_logs import EvidenceSink
from breedlab.serving.request_inputs import Row
from breedlab.serving.served_models import ServedModel, load_served
from breedlab.serving.supplier import ReleaseRecorder, Supplier

__all__ = ["Answer", "CapabilityRoute", "Router", "RouterOptions", "RoutingTable"]


@dataclass(frozen=True, slots=True, kw_only=True)
class CapabilityRoute:
    """The models serving one capability at one ledger head."""

    capability: str
    risk_tier: RiskTier
    champion: ServedModel
    previous: ServedModel | None = None
    shadow: ServedModel | None = None
    shadow_seq: int | None = None
    shadow_log: EvidenceSink | None = None
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


#: What loading one capability's models can raise: breedlab's own errors, and what a
#: model library raises on a file it cannot use (reported, never fatal to the server).
_LOAD_ERRORS = (LabError, OSError, RuntimeError, ValueError, KeyError, TypeError)


def _message(error: BaseException) -> str:
    return error.message if isinstance(error, LabError) else f"{type(error).__name__}: {error}"


def _target(pid: str | None) -> Digest | None:
    return None if pid is None else Digest.parse(pid)


class RouterOptions(TypedDict, total=False):
    """:class:`Router`'s keyword arguments, for a caller that passes them on (the
    ``Lab.router`` facade); their defaults are the router's own."""

    canary_policy: CanaryPolicy | None
    faults: Mapping[str, float] | None
    shadow_queue: int
    srm_min_units: int
    seed: int
    shadow_priority: str | None
    on_pair: Callable[[str, ShadowPair], None] | None


class Router:
    """Keeps the routing table in step with the ledger and answers requests.

    Each request compares the ledger head with the table's; when it moved (or a baking
    period ended), the table is rebuilt (models verified and loaded outside the swap,
    cached by package id, so the previous champion stays warm while it bakes and is
    released after) and swapped in as one reference.

    ``supply`` is the registry the models and the ledger come from; ``recorder`` makes
    the ledger writes (evidence logs, a canary's events); ``on_pair`` is called with
    each answered shadow pair (for metrics; its errors are ignored).
    """

    def __init__(
        self,
        supply: Supplier,
        recorder: ReleaseRecorder,
        *,
        canary_policy: CanaryPolicy | None = None,
        faults: Mapping[str, float] | None = None,
        shadow_queue: int = 256,
        srm_min_units: int = 200,
        seed: int = 0,
        shadow_priority: str | None = None,
        on_pair: Callable[[str, ShadowPair], None] | None = None,
    ) -> None:
        priority = shadow_priority or supply.config.shadow_priority
        if priority not in SHADOW_PRIORITIES:
            raise InvalidRequest(
                f"the shadow priority is one of {', '.join(SHADOW_PRIORITIES)} (got {priority!r})"
            )
        self.supply = supply
        self.recorder = recorder
        self.canary_policy = canary_policy or CanaryPolicy()
        self.srm_min_units = srm_min_units
        self.faults = dict(faults or {})
        self._rng = random.Random(seed)
        self._models: dict[Digest, ServedModel] = {}
        self._runs: dict[int, CanaryRun] = {}
        self._rebuild_lock = threading.Lock()
        self._flip_lock = threading.Lock()
        self._flips = 0
        self._head = supply.ledger.head  # one indexed row read, on every request
        self.mirror = ShadowMirror(maxsize=shadow_queue, on_pair=on_pair, idle=priority == "idle")
        self.events: list[dict[str, object]] = []  # aborts and stage moves, for metrics
        # The server follows only what verifies: every new event's chain link, signature
        # and authority are checked before an alias move is served (DESIGN §13).
        self._verified = Replayer(supply.blobs, pinned=supply.config.lab_key_id or None)
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
            self._models[pid] = load_served(self.supply, pid)
        return self._models[pid]

    def refresh(self, *, force: bool = False) -> RoutingTable:
        """The current table, rebuilt first if the ledger head moved (or ``force``).

        New events are verified first (chain, signatures, authority). If they do not
        verify, the table of the last verified head goes on serving and ``refused`` says
        why; a server that starts on a ledger that does not verify refuses to start.

        Raises:
            IntegrityError: at start only, the ledger does not verify.
        """
        head = self._head().seq
        table = self.table
        unchanged = head in (table.seq, self._refused_head)
        if unchanged and not force and not self._expired(table):
            return table
        with self._rebuild_lock:
            head = self._head().seq
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
        with self.supply.ledger.reader() as r:
            self._verified.feed(r.events(after=self._verified.count))
        self._verified.settled()

    def _expired(self, table: RoutingTable) -> bool:
        return table.expires is not None and self.supply.clock.monotonic() >= table.expires

    def _build(self, head: int) -> RoutingTable:
        """A table for every capability with a champion. One capability whose models do
        not verify or load keeps its last good route (or none) and is reported in
        ``degraded``: it never takes the other capabilities down."""
        routes: dict[str, CapabilityRoute] = {}
        degraded: dict[str, str] = {}
        now, mono = self.supply.clock.now(), self.supply.clock.monotonic()
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
                    state,
                    clock=self.supply.clock,
                    log=self.recorder.evidence_log(cap, "canary", state.canary_seq),
                    record=self.recorder.record,
                    policy=self.canary_policy,
                    srm_min_units=self.srm_min_units,
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
            else self.recorder.evidence_log(cap, "shadow", state.shadow_seq),
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

    def _answer(self, model: ServedModel, inputs: Row, role: str) -> tuple[str, list[float]]:
        self._inject(role)
        return model.predict(inputs)

    def _inject(self, role: str) -> None:
        rate = self.faults.get(role, 0.0)
        if rate and self._rng.random() < rate:
            raise LabError(f"injected fault in the {role} (drill)")

    def predict(
        self,
        route: CapabilityRoute,
        *,
        unit: str,
        inputs: Row,
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
        self._mirror(route, inputs, label, cpu)
        return Answer(
            label=label,
            probabilities=probs,
            role="champion",
            package=route.champion.package,
            latency_s=latency,
        )

    @staticmethod
    def batches(route: CapabilityRoute) -> bool:
        """Whether :meth:`predict_batch` may answer a batch of ``route`` in one call.

        Only a text champion with no canary running: a canary routes each unit by its
        cohort (and one request may abort it for the next), so each is routed alone; and
        a float row costs too little to gain from it, so a batch of them answers as its
        singles do, bit for bit (one forward pass of many texts pads them to one length,
        which moves probabilities in their last digits only).
        """
        return route.champion.takes_text and route.canary_run is None

    def predict_batch(self, route: CapabilityRoute, rows: Sequence[Row]) -> list[Answer]:
        """Answer ``rows`` with one call of the champion (issue 12: ``predict:batch``);
        mirror each to the shadow as :meth:`predict` does. Each answer's latency is the
        batch's share.

        Raises:
            InvalidRequest: a row does not answer the contract (none is answered), or
                the route may not be batched (:meth:`batches`).
            LabError: an injected champion fault (drills), for the whole batch.
        """
        if not self.batches(route):
            raise InvalidRequest(f"{route.capability}: this route answers each request alone")
        for row in rows:  # every row checked before any model sees one
            route.champion.check(row)
        for _ in rows:
            self._inject("champion")
        t0, c0 = time.perf_counter(), time.thread_time()
        answers = route.champion.predict_many(rows)
        latency = max(time.perf_counter() - t0, 1e-9) / max(len(rows), 1)
        cpu = max(time.thread_time() - c0, 1e-9) / max(len(rows), 1)
        for row, (label, _) in zip(rows, answers, strict=True):
            self._mirror(route, row, label, cpu)
        return [
            Answer(
                label=label,
                probabilities=probs,
                role="champion",
                package=route.champion.package,
                latency_s=latency,
            )
            for label, probs in answers
        ]

    def _mirror(self, route: CapabilityRoute, row: Row, label: str, cpu: float) -> None:
        """Send a sampled share of the champion's answers to the shadow (never waits)."""
        if (
            route.shadow is not None
            and route.shadow_log is not None
            and (route.shadow_sample >= 1.0 or self._rng.random() < route.shadow_sample)
        ):
            self.mirror.submit(
                MirrorJob(
                    shadow=route.shadow,
                    champion=route.champion,
                    log=route.shadow_log,
                    inputs=row,
                    primary=label,
                    primary_latency_s=cpu,
                    capability=route.capability,
                )
            )

    def _canary(
        self,
        route: CapabilityRoute,
        run: CanaryRun,
        canary: ServedModel,
        unit: str,
        inputs: Row,
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

    def _abort(self, route: CapabilityRoute, run: CanaryRun, inputs: Row) -> None:
        """seed, stage 3: canary abort is automatic -- switch, verify, record."""
        t_detect = self.supply.clock.now()

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

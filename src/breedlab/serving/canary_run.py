"""The live side of one canary run: the current stage's monitors, counts and log.

Owns :class:`CanaryRun`, which the router feeds every request of a capability under a
canary, and the records of what it decided (a passed stage, an exposure cap reached, an
abort, with the recovery's moments). Leaves to others: the statistics and the ramp
(:mod:`breedlab.release`), switching traffic (the router's ``switch``), and writing
the events (``record``, from the release controller: serving never signs).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import datetime

from breedlab.canonical import JsonValue
from breedlab.clock import Clock
from breedlab.ledger import Event, EventKind
from breedlab.release.canary import CanaryObservation, CanaryPolicy, CanaryStage
from breedlab.release.cohorts import Cohort, Ramp, SrmVerdict
from breedlab.release.cohorts import sample_ratio_check as _srm
from breedlab.release.recovery import Recovery
from breedlab.release.sequential import Verdict
from breedlab.release.state import ReleaseState
from breedlab.serving.release_logs import EvidenceSink

__all__ = ["CanaryRun", "Record"]

#: Appends a ``release.*`` event (kind, capability, payload) to the ledger.
Record = Callable[[EventKind, str, Mapping[str, JsonValue]], Event]


class CanaryRun:
    """The live side of one canary: the current stage's monitors, counts and log.

    A controller object (not a value): the server feeds it every request of the
    capability and acts on what :meth:`observe` returns. Thread-safe. ``log`` is the
    run's canary evidence; ``record`` writes its events (signed by the factory key).
    """

    def __init__(
        self,
        state: ReleaseState,
        *,
        clock: Clock,
        log: EvidenceSink,
        record: Record,
        policy: CanaryPolicy | None = None,
        srm_min_units: int = 200,
    ) -> None:
        assert state.canary is not None and state.canary_seq is not None and state.salt
        self.clock = clock
        self.record = record
        self.capability = state.capability
        self.package = state.canary
        self.seq = state.canary_seq
        self.cohort = Cohort(salt=state.salt, ramp=Ramp(stages=state.ramp), stage=state.stage)
        self.cap = state.exposure_cap
        self.capped = False  # the stage reached its exposure cap without passing
        self.policy = policy or CanaryPolicy()
        self.srm_min_units = srm_min_units
        self.log = log
        self._lock = threading.Lock()
        self._new_stage()
        self.finished: Verdict | None = None

    def _new_stage(self) -> None:
        self.stage = CanaryStage.start(self.policy, at=self.clock.monotonic())
        self.onset: datetime | None = None
        self.onset_requests = 0
        self.canary_units: set[str] = set()
        self.champion_units: set[str] = set()
        self.stage_units: set[str] = set()  # units this stage admitted to the canary
        self.admitted = 0  # canary requests this stage admitted (observed or in flight)

    def contains(self, unit: str) -> bool:
        return self.cohort.contains(unit)

    def admit(self, unit: str) -> bool:
        """Reserve one canary request for a cohort ``unit``; False once the stage's
        exposure cap is reached (or the run ended). Exact under concurrency: requests
        are counted when admitted, not when observed."""
        with self._lock:
            if self.finished is not None or self.capped:
                return False
            if not self.cap.admits(requests=self.admitted, units=self.stage_units, unit=unit):
                return False
            self.admitted += 1
            self.stage_units.add(unit)
            return True

    def saw_champion(self, unit: str) -> Verdict:
        """Count a champion-cohort unit; the no-data rule is checked on every request."""
        with self._lock:
            self.champion_units.add(unit)
            if self.finished is not None:
                return self.finished
            if self.capped:
                return Verdict.CONTINUE
            self.stage = self.stage.tick(at=self.clock.monotonic())
            return self.stage.verdict

    def observe(self, unit: str, obs: CanaryObservation) -> Verdict:
        """Feed one canary-cohort request; returns the stage verdict (latched)."""
        with self._lock:
            if self.finished is not None:
                return self.finished
            if self.onset is None:
                self.onset = self.clock.now()
            self.canary_units.add(unit)
            self.stage = self.stage.observe(obs, at=self.clock.monotonic())
            self.log.append([{"stage": self.cohort.stage, "unit": unit, **obs.to_record()}])
            verdict = self.stage.verdict
            if verdict is Verdict.CONTINUE and self._srm_broken():
                verdict = Verdict.ABORT
            return verdict

    def _srm_broken(self) -> bool:
        w = self.cohort.weight
        counts = (len(self.canary_units), len(self.champion_units))
        if w >= 1.0 or sum(counts) < self.srm_min_units:
            return False
        self.srm = _srm(counts, (w, 1.0 - w), min_total=self.srm_min_units)
        return self.srm.verdict is SrmVerdict.MISMATCH

    def statuses(self) -> dict[str, JsonValue]:
        with self._lock:
            return {name: s.to_record() for name, s in self.stage.statuses().items()} | {
                "requests": self.stage.requests
            }

    def advance(self) -> Event:
        """Record a passed stage: next ramp stage, or ``release.canary_passed`` at the end."""
        with self._lock:
            evidence = {n: s.to_record() for n, s in self.stage.statuses().items()}
            payload: dict[str, JsonValue] = {
                "package": str(self.package),
                "canary": self.seq,
                "passed_stage": self.cohort.stage,
                "weight": repr(self.cohort.weight),
                "requests": self.stage.requests,
                "guardrails": evidence,
            }
            payload["evidence"] = list(self.log.seal())
            nxt = self.cohort.ramp.next_stage(self.cohort.stage)
            # Recorded first: a write that fails (no factory key) leaves the run as it was.
            if nxt is None:
                event = self.record(EventKind.CANARY_PASSED, self.capability, payload)
                self.finished = Verdict.PASS
                return event
            advanced = self.cohort.advanced()
            payload["stage"] = advanced.stage
            event = self.record(EventKind.CANARY_STAGE, self.capability, payload)
            self.cohort = advanced
            self._new_stage()
            return event

    def stop_at_cap(self, *, switch: Callable[[], None]) -> Event | None:
        """The stage reached its exposure cap without passing: stop the canary as
        *inconclusive* (100% to the champion via ``switch``; the id is not retired, as
        nothing showed harm). Idempotent: later callers get ``None``."""
        with self._lock:
            if self.finished is not None or self.capped:
                return None
            self.capped = True
            statuses = {n: s.to_record() for n, s in self.stage.statuses().items()}
            exposure: dict[str, JsonValue] = {
                "requests": self.admitted,
                "units": len(self.stage_units),
            }
        switch()
        limit = self.cap.to_record()
        sealed = self.log.seal()
        return self.record(
            EventKind.CANARY_STOPPED,
            self.capability,
            {
                "package": str(self.package),
                "canary": self.seq,
                "stage": self.cohort.stage,
                "weight": repr(self.cohort.weight),
                "reason": (
                    f"exposure cap reached at stage {self.cohort.stage}: "
                    f"{exposure['requests']} canary request(s) from {exposure['units']} "
                    f"unit(s) (cap: {limit['requests']} requests, {limit['units']} units) "
                    "without a decision; restart with a larger cap or leave the champion"
                ),
                "inconclusive": True,
                "exposure": exposure,
                "exposure_cap": limit,
                "guardrails": statuses,
                "evidence": list(sealed),
            },
        )

    def abort(
        self, *, t_detect: datetime, switch: Callable[[], None], verify: Callable[[], None]
    ) -> Event | None:
        """seed, stage 3: canary abort is automatic. Route 100% to the champion (``switch``),
        check the champion answers (``verify``), retire the canary id, record the moments.

        Idempotent: requests in flight that also saw the abort get ``None``."""
        with self._lock:
            if self.finished is Verdict.ABORT:
                return None
            self.finished = Verdict.ABORT
        switch()
        t_switch = self.clock.now()
        verify()
        t_verified = self.clock.now()
        onset = self.onset or t_detect
        n = self.stage.requests
        recovery = Recovery(
            t_onset=onset,
            t_detect=max(t_detect, onset),
            t_switch=max(t_switch, t_detect, onset),
            t_verified=max(t_verified, t_switch, t_detect, onset),
            detection_requests=n,
            exposed_requests=n,
            exposed_units=min(n, max(1, len(self.canary_units))) if n else 0,
        )
        statuses = self.stage.statuses()
        sealed = self.log.seal()
        return self.record(
            EventKind.CANARY_ABORTED,
            self.capability,
            {
                "package": str(self.package),
                "canary": self.seq,
                "stage": self.cohort.stage,
                "weight": repr(self.cohort.weight),
                "aborted_by": list(self.stage.aborted_by()) or ["sample-ratio"],
                "guardrails": {n: s.to_record() for n, s in statuses.items()},
                "recovery": recovery.to_record(),
                "deny_listed": True,
                "evidence": list(sealed),
            },
        )

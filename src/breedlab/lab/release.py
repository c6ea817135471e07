"""The release controller (seed, stage 3; DESIGN §11): shadow, canary, champion, rollback.

Reads the ledger and the logs the server writes, decides with the pure cores of
:mod:`breedlab.release`, and writes alias moves and ``release.*`` events. The serving app
(``breedlab.http``) calls these functions; so do the CLI and the demo. :func:`router`
makes the serving process's :class:`~breedlab.serving.router.Router` over a lab, with a
:class:`LabRecorder` for the ledger writes it asks for (:mod:`breedlab.serving` sits
below the lab and imports none of it); ``ServedModel``, ``load_served``, ``CanaryRun``
and ``shadow_pairs`` are serving's, re-exported here.

Over the ~600-line guide (about 1,060 lines) for now: the serving side has left, and
what remains is the ledger-writing verbs, the promotion case and the release reports,
which issue 11's lab step splits (promotion into ``release/promotion.py``).

State is the ledger: ``release.shadow_started`` / ``release.shadow_stopped``,
``release.canary_started`` / ``release.canary_stage`` / ``release.canary_passed`` /
``release.canary_aborted`` / ``release.canary_stopped``, ``release.promoted``,
``release.rolled_back``, each with subject = capability and ``capability`` in the payload,
plus the ``shadow``, ``canary``, ``champion`` and ``previous`` aliases. Observations
(mirrored pairs, canary requests) are JSONL logs under ``LAB/release/<capability>/``,
named by the seq of the event that started the run; summaries and the abort evidence go
into the ledger.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from breedlab.authority import Approval, trusted_keys
from breedlab.authority.policy import is_round
from breedlab.canonical import JsonValue
from breedlab.digest import Digest
from breedlab.errors import (
    InvalidRequest,
    LabError,
    NotFound,
    PolicyError,
    Unavailable,
)
from breedlab.ledger import Event, EventKind
from breedlab.registry.manifest import Kind, RiskTier
from breedlab.release.canary import (
    CanaryObservation,
    CanaryPolicy,
    CanaryStage,
    ExposureCap,
    ramp_from,
)
from breedlab.release.cohorts import new_salt
from breedlab.release.gates import ShadowGate
from breedlab.release.oscillation import ChangeKind
from breedlab.release.promotion import (
    TIER_RANK,
    Problem,
    PromotionFacts,
    PromotionPolicy,
    PromotionTiming,
    Unmet,
    promotion_problems,
)
from breedlab.release.recovery import Recovery
from breedlab.release.shadow_stats import ShadowPair, ShadowReport, summarise_shadow
from breedlab.release.state import (
    DEFAULT_BAKING,
    MAX_BAKING,
    RELEASE_KINDS,
    ReleaseState,
    event_time,
    fold_release,
)
from breedlab.serving.canary_run import CanaryRun
from breedlab.serving.release_logs import shadow_pairs
from breedlab.serving.router import Router
from breedlab.serving.served_models import ServedModel, load_served
from breedlab.signing.keys import KeyPair
from breedlab.supply.aliases import append_move, point
from breedlab.supply.evidence import Evidence, EvidenceLog, evidence_log, read_evidence
from breedlab.supply.packages import check_registered_model, require_intact
from breedlab.supply.values import ReleaseRecord
from breedlab.supply.verification import valid_approvals

if TYPE_CHECKING:
    from breedlab.lab.core import Lab

__all__ = [
    "DEFAULT_BAKING",
    "MAX_BAKING",
    "RELEASE_KINDS",
    "CanaryRun",
    "Criterion",
    "LabRecorder",
    "PromotionCase",
    "PromotionPolicy",
    "ReleaseState",
    "ServedModel",
    "canary_status",
    "exit_criteria",
    "load_served",
    "promote",
    "promotion_case",
    "read_shadow_pairs",
    "release_records",
    "release_state",
    "replay_shadow",
    "rollback",
    "router",
    "shadow_pairs",
    "shadow_report",
    "shadow_run",
    "start_canary",
    "start_shadow",
    "stop_canary",
    "stop_shadow",
    "wait_for_shadow_pairs",
]


# ------------------------------------------------------------------------------- state


def release_state(lab: Lab, capability: str) -> ReleaseState:
    """Fold the capability's release events (and the retire decisions) into a state."""
    with lab.ledger.reader() as r:
        events = list(r.events(kinds=(*RELEASE_KINDS, EventKind.CANDIDATE_ARCHIVED)))
    return _fold(capability, events)


def _fold(capability: str, events: Iterable[Event]) -> ReleaseState:
    """The capability's release state from events of any kinds and subjects."""
    return fold_release(
        capability,
        (
            e
            for e in events
            if e.kind == EventKind.CANDIDATE_ARCHIVED
            or (e.kind in RELEASE_KINDS and e.subject == capability)
        ),
    )


def _append(
    lab: Lab, kind: str, capability: str, payload: Mapping[str, JsonValue], *, signer: KeyPair
) -> Event:
    return lab.ledger.append(
        kind, capability, {"capability": capability, **payload}, signer=signer, actor=lab.actor
    )


# ---------------------------------------------------------------------------- serving


@dataclass(frozen=True, slots=True)
class LabRecorder:
    """The ledger writes a serving process asks for (a
    :class:`~breedlab.serving.supplier.ReleaseRecorder`): the lab's evidence logs, and
    the canary's events signed by the lab's factory key."""

    lab: Lab

    def evidence_log(self, capability: str, stream: str, seq: int) -> EvidenceLog:
        return evidence_log(self.lab.supply, capability, stream, seq)

    def record(self, kind: str, capability: str, payload: Mapping[str, JsonValue]) -> Event:
        return _append(self.lab, kind, capability, payload, signer=self.lab.factory_signer())


def router(
    lab: Lab,
    *,
    canary_policy: CanaryPolicy | None = None,
    faults: Mapping[str, float] | None = None,
    shadow_queue: int = 256,
    srm_min_units: int = 200,
    seed: int = 0,
    shadow_priority: str | None = None,
    on_pair: Callable[[str, ShadowPair], None] | None = None,
) -> Router:
    """A :class:`~breedlab.serving.router.Router` over ``lab``, writing through it.

    Raises:
        InvalidRequest: an unknown shadow priority.
        IntegrityError: the ledger does not verify (the router refuses to start).
    """
    return Router(
        lab,
        LabRecorder(lab),
        canary_policy=canary_policy,
        faults=faults,
        shadow_queue=shadow_queue,
        srm_min_units=srm_min_units,
        seed=seed,
        shadow_priority=shadow_priority,
        on_pair=on_pair,
    )


# ----------------------------------------------------------------------------- shadow


def _has_shadow_recommendation(lab: Lab, pid: Digest) -> bool:
    return _recommended(lab.events(kinds=(EventKind.DECISION_MADE,)), pid)


def _recommended(events: Iterable[Event], pid: Digest) -> bool:
    """Whether a ``decision.made`` among ``events`` recommended ``pid`` for shadow."""
    return any(
        (ev.payload.get("outcomes") or {}).get(str(pid)) == "shadow"
        for ev in events
        if ev.kind == EventKind.DECISION_MADE
    )


def _valid_release_approvals(lab: Lab, pid: Digest) -> tuple[Approval, ...]:
    """Every release approval of ``pid`` that counts, credited to its real signer."""
    with lab.ledger.reader() as r:
        return valid_approvals(lab.blobs, r, pid, purpose="release")


def start_shadow(
    lab: Lab, capability: str, ref: str, *, sample: float = 1.0, key: str | None = None
) -> Event:
    """Put ``ref`` on ``capability@shadow`` and start mirroring (seed, stage 3), signed
    by a production key (``key``, else ``[signing] release_key``).

    Raises:
        PolicyError: the package holds neither a ``shadow`` recommendation nor a release
            approval, or it is on the deny-list; no production key.
        InvalidRequest: ``sample`` is not in ``(0, 1]``.
    """
    if not 0.0 < sample <= 1.0:
        raise InvalidRequest(f"the shadow sample is a fraction in (0, 1] (got {sample})")
    signer = lab.release_signer(key, EventKind.SHADOW_STARTED)
    pid = lab.resolve(ref)
    state = release_state(lab, capability)
    state.deny.check(pid)
    if not (_has_shadow_recommendation(lab, pid) or _valid_release_approvals(lab, pid)):
        raise PolicyError(
            f"{pid.short} holds no 'shadow' recommendation from the viability controller and "
            "no release approval; run a round or 'breedlab approve PKG --purpose release'"
        )
    if state.shadow is not None and state.shadow_seq is not None:
        shadow_log(lab, capability, state.shadow_seq).seal()  # the run it replaces
    point(lab.supply, capability, "shadow", pid, reason="shadow started", key=signer.name)
    return _append(
        lab,
        EventKind.SHADOW_STARTED,
        capability,
        {"package": str(pid), "sample": repr(sample)},
        signer=signer,
    )


def stop_shadow(lab: Lab, capability: str, *, key: str | None = None) -> Event:
    """Stop mirroring; the run's evidence is sealed and named by the event.

    Raises NotFound when no shadow runs."""
    signer = lab.release_signer(key, EventKind.SHADOW_STOPPED)
    state = release_state(lab, capability)
    if state.shadow is None or state.shadow_seq is None:
        raise NotFound(
            f"no shadow is running for {capability}{_ended_because(lab, capability, 'shadow')}"
        )
    sealed = shadow_log(lab, capability, state.shadow_seq).seal()
    return _append(
        lab,
        EventKind.SHADOW_STOPPED,
        capability,
        {"package": str(state.shadow), "evidence": list(sealed)},
        signer=signer,
    )


def stale_release_aliases(lab: Lab, capability: str) -> dict[str, str]:
    """``shadow``/``canary`` aliases that still name a package whose run has ended (by a
    stop, an abort, or the package's promotion, perhaps rolled back since), each with why.

    The alias keeps its target, as history; this marks it stale (issue 10)."""
    state = release_state(lab, capability)
    active = {"shadow": state.shadow, "canary": state.canary}
    ends = [e for e in lab.events(kinds=_RUN_ENDS) if e.subject == capability]
    out: dict[str, str] = {}
    for alias, running in active.items():
        target = lab.alias(capability, alias)
        if target is None or target == running:
            continue
        mine = [e for e in ends if str(target) in (e.payload.get("package"), e.payload.get("from"))]
        why = (
            f"{mine[-1].kind.removeprefix('release.').replace('_', ' ')} at seq {mine[-1].seq}"
            if mine
            else "no run is active"
        )
        out[alias] = why
    return out


def _ended_because(lab: Lab, capability: str, alias: str) -> str:
    stale = stale_release_aliases(lab, capability)
    if alias not in stale:
        return ""
    target = lab.alias(capability, alias)
    assert target is not None  # stale aliases name a package
    return f"; {capability}@{alias} still names {target.short}, whose run ended ({stale[alias]})"


def shadow_log(lab: Lab, capability: str, seq: int) -> EvidenceLog:
    return evidence_log(lab.supply, capability, "shadow", seq)


def shadow_run(lab: Lab, capability: str) -> tuple[Digest, int]:
    """The package and start seq of the capability's latest shadow run.

    Raises:
        NotFound: no shadow run for the capability.
    """
    started = [
        e
        for e in lab.events(kinds=(EventKind.SHADOW_STARTED,))
        if e.subject == capability and e.payload.get("capability") == capability
    ]
    if not started:
        raise NotFound(f"no shadow run for {capability}; run 'breedlab shadow start'")
    return Digest.parse(str(started[-1].payload["package"])), started[-1].seq


def read_shadow_pairs(
    lab: Lab, capability: str, *, sealed_only: bool = False
) -> tuple[Digest, list[ShadowPair], Evidence]:
    """The shadow package, the pairs mirrored to it (dropped ones included) and the
    evidence they came from; ``sealed_only`` leaves the unsealed tail out.

    Raises:
        NotFound: no shadow run for the capability.
    """
    pid, seq = shadow_run(lab, capability)
    evidence = read_evidence(lab.supply, capability, "shadow", seq)
    records = evidence.records[: evidence.sealed] if sealed_only else evidence.records
    return pid, shadow_pairs(records), evidence


def wait_for_shadow_pairs(
    lab: Lab, capability: str, pairs: int, *, timeout: float, poll: float = 0.5
) -> int:
    """Wait until the running shadow run's evidence holds ``pairs`` answered pairs (a
    server writes each pair once the shadow process answered it); returns how many.

    Raises:
        NotFound: no shadow run. PolicyError: the run ended with fewer pairs.
        Unavailable: fewer pairs after ``timeout`` seconds. InvalidRequest: a timeout
            that is not a number of seconds (0 or more).
    """
    if not (math.isfinite(timeout) and timeout >= 0):
        raise InvalidRequest(f"--timeout is a number of seconds, 0 or more (got {timeout})")
    deadline = time.monotonic() + timeout
    while True:
        pid, got, _ = read_shadow_pairs(lab, capability)
        answered = sum(p.answered for p in got)
        if answered >= pairs:
            return answered
        if release_state(lab, capability).shadow != pid:
            raise PolicyError(
                f"the shadow run of {pid.short} ended with {answered} answered pair(s), "
                f"not {pairs}",
                hint=f"start another: breedlab shadow start {capability} PKG",
            )
        if time.monotonic() >= deadline:
            raise Unavailable(
                f"the shadow of {pid.short} has {answered} answered pair(s) after "
                f"{timeout:g} s, not {pairs}",
                hint=f"send requests to the server (breedlab traffic {capability} --url URL); "
                f"GET /admin/{capability}/status says whether its shadow process is up",
            )
        time.sleep(poll)


def shadow_report(lab: Lab, capability: str, *, seed: int = 0) -> tuple[Digest, ShadowReport]:
    """Agreement (Wilson), flip matrix, latency ratios (bootstrap), errors, drops."""
    pid, pairs, _ = read_shadow_pairs(lab, capability)
    return pid, summarise_shadow(pairs, seed=seed, resamples=2000)


def replay_shadow(
    lab: Lab, capability: str, log: Path, *, ref: str | None = None, seed: int = 0
) -> tuple[Digest, ShadowReport]:
    """Offline shadow: replay a request log through the champion and the challenger.

    The log is JSON lines with ``inputs`` (and optionally ``unit`` and ``label``), the
    body of ``POST /v1/{capability}/predict``. Nothing is written.

    Raises:
        NotFound: no champion, or no challenger (``ref`` or ``capability@shadow``).
        InvalidRequest: a malformed line.
    """
    champion = lab.alias(capability, "champion")
    challenger = lab.resolve(ref) if ref else lab.alias(capability, "shadow")
    if champion is None or challenger is None:
        raise NotFound(f"{capability} needs a champion and a challenger (shadow alias or PKG)")
    primary, shadow = load_served(lab, champion), load_served(lab, challenger)
    pairs = []
    for n, line in enumerate(log.read_text("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            inputs = [float(v) for v in json.loads(line)["inputs"]]
        except (ValueError, KeyError, TypeError) as e:
            raise InvalidRequest(f"{log}:{n}: not a request with 'inputs' ({e})") from e
        pairs.append(_run_pair(primary, shadow, inputs))
    return challenger, summarise_shadow(pairs, seed=seed, resamples=2000)


def _timed(model: ServedModel, inputs: Sequence[float]) -> tuple[str | None, float]:
    t0 = time.perf_counter()
    try:
        label: str | None = model.predict(inputs)[0]
    except LabError:
        label = None
    return label, max(time.perf_counter() - t0, 1e-9)


def _run_pair(primary: ServedModel, shadow: ServedModel, inputs: Sequence[float]) -> ShadowPair:
    a, ta = _timed(primary, inputs)
    b, tb = _timed(shadow, inputs)
    return ShadowPair(
        primary=a,
        shadow=b,
        primary_latency_s=ta,
        shadow_latency_s=tb,
        primary_error=a is None,
        shadow_error=b is None,
    )


# ----------------------------------------------------------------------------- canary


def start_canary(
    lab: Lab,
    capability: str,
    *,
    percent: float | None = None,
    gate: ShadowGate | None = None,
    salt_bytes: bytes | None = None,
    cap: ExposureCap | None = None,
    stage_min: int | None = None,
    key: str | None = None,
) -> Event:
    """Start a canary of the shadow package after the shadow gate passes, signed by a
    production key (``key``, else ``[signing] release_key``).

    The shadow run is sealed first and the gate reads only sealed evidence, whose
    digests the ``release.canary_started`` event names.

    ``percent`` is the first stage's weight in percent; the later stages are the default
    ramp's stages above it. A fresh salt per release (``os.urandom`` unless injected).
    ``cap`` bounds each stage's exposure (default: 1000 canary requests, any number of
    units); ``stage_min`` is the requests the serving policy needs to pass a stage (the
    default policy's unless given), which the cap must allow.

    Raises:
        NotFound: no shadow run. PolicyError: the gate fails, the package is on the
            deny-list, or a canary runs already. InvalidRequest: a cap no stage could pass.
    """
    cap = cap or ExposureCap()
    cap.check_passable(CanaryPolicy().stage_min if stage_min is None else stage_min)
    signer = lab.release_signer(key, EventKind.CANARY_STARTED)
    state = release_state(lab, capability)
    if state.canary is not None and not state.canary_passed:
        raise PolicyError(f"a canary of {state.canary.short} runs already for {capability}")
    _, run = shadow_run(lab, capability)
    shadow_log(lab, capability, run).seal()
    pid, pairs, evidence = read_shadow_pairs(lab, capability, sealed_only=True)
    report = summarise_shadow(pairs, seed=0, resamples=2000)
    state.deny.check(pid)
    verdict = (gate or ShadowGate()).check(report)
    if not verdict.passed:
        raise PolicyError("the shadow gate did not pass: " + "; ".join(verdict.reasons))
    ramp = ramp_from(percent)
    salt = new_salt(salt_bytes or os.urandom(16))
    point(
        lab.supply,
        capability,
        "canary",
        pid,
        reason="canary started after the shadow gate passed",
        key=signer.name,
    )
    return _append(
        lab,
        EventKind.CANARY_STARTED,
        capability,
        {
            "package": str(pid),
            "salt": salt,
            "ramp": [repr(w) for w in ramp.stages],
            "exposure_cap": cap.to_record(),
            "shadow": report.to_record(),
            "shadow_evidence": list(evidence.digests),
        },
        signer=signer,
    )


def stop_canary(lab: Lab, capability: str, *, reason: str, key: str | None = None) -> Event:
    """Stop a running canary by hand (100% to the champion; the id is not retired)."""
    signer = lab.release_signer(key, EventKind.CANARY_STOPPED)
    state = release_state(lab, capability)
    if state.canary is None or state.canary_seq is None:
        raise NotFound(f"no canary runs for {capability}")
    sealed = canary_log(lab, capability, state.canary_seq).seal()
    return _append(
        lab,
        EventKind.CANARY_STOPPED,
        capability,
        {"package": str(state.canary), "reason": reason, "evidence": list(sealed)},
        signer=signer,
    )


def canary_log(lab: Lab, capability: str, seq: int) -> EvidenceLog:
    return evidence_log(lab.supply, capability, "canary", seq)


#: What can follow a canary's start: its stages and end, and its package's promotion.
_CANARY_SINCE = tuple(
    k
    for k in RELEASE_KINDS
    if k not in (EventKind.SHADOW_STARTED, EventKind.SHADOW_STOPPED, EventKind.CANARY_STARTED)
)


def canary_status(lab: Lab, capability: str) -> dict[str, JsonValue]:
    """Stage, weight and the guardrails' statistics, replayed from the server's log.

    Raises:
        NotFound: no canary was ever started for the capability.
    """
    state = release_state(lab, capability)
    started = [e for e in lab.events(kinds=(EventKind.CANARY_STARTED,)) if e.subject == capability]
    if not started:
        raise NotFound(f"no canary for {capability}; run 'breedlab canary start {capability}'")
    last = started[-1]
    pkg = str(last.payload["package"])
    since = [  # everything that happened to this canary and its package, read once
        e for e in lab.events(after=last.seq, kinds=_CANARY_SINCE) if e.subject == capability
    ]
    ours = [e for e in since if e.payload.get("canary") == last.seq]
    ended = [e for e in since if e.kind in (EventKind.CANARY_ABORTED, EventKind.CANARY_STOPPED)]
    reached = [int(str(e.payload["stage"])) for e in ours if e.kind == EventKind.CANARY_STAGE]
    stage = state.stage if state.canary_seq == last.seq else max(reached, default=0)
    policy = CanaryPolicy()
    replayed = CanaryStage.start(policy, at=0.0)
    for i, rec in enumerate(canary_log(lab, capability, last.seq).read()):
        if int(rec.get("stage", 0)) == stage:
            replayed = replayed.observe(CanaryObservation.from_record(rec), at=float(i))
    ramp = [float(str(w)) for w in last.payload["ramp"]]
    passed = any(e.kind == EventKind.CANARY_PASSED for e in ours)
    fate = [  # what became of a passed canary's package: promoted, then maybe rolled back
        e
        for e in since
        if (e.kind == EventKind.PROMOTED and e.payload.get("package") == pkg)
        or (e.kind == EventKind.ROLLED_BACK and e.payload.get("from") == pkg)
    ]
    if passed and fate:
        status = "rolled back" if fate[-1].kind == EventKind.ROLLED_BACK else "promoted"
    elif passed:
        status = "passed"
    elif state.canary_seq == last.seq:
        status = "running"
    elif ended:
        status = "aborted" if ended[-1].kind == EventKind.CANARY_ABORTED else "stopped"
    else:
        status = "ended"
    out: dict[str, JsonValue] = {
        "capability": capability,
        "package": pkg,
        "status": status,
        "stage": stage,
        "weight": repr(ramp[min(stage, len(ramp) - 1)]),
        "ramp": [repr(w) for w in ramp],
        "requests": replayed.requests,
        "guardrails": {n: s.to_record() for n, s in replayed.statuses().items()},
    }
    out["exposure_cap"] = ExposureCap.from_record(last.payload.get("exposure_cap")).to_record()
    if fate:
        out["since"] = {"event": fate[-1].kind, "seq": fate[-1].seq}
    if ended and ended[-1].kind == EventKind.CANARY_ABORTED:
        out["abort"] = dict(ended[-1].payload)
    elif ended:
        out["stop"] = {
            "reason": ended[-1].payload.get("reason"),
            "inconclusive": bool(ended[-1].payload.get("inconclusive", False)),
        }
    return out


# -------------------------------------------------------------------------- promotion


def _risk_tier(lab: Lab, capability: str, pid: Digest) -> RiskTier:
    _, contract = lab.capability(capability)
    tiers = (contract.risk_tier, lab.manifest(pid).risk_tier)
    return max(tiers, key=lambda t: TIER_RANK[t])


#: What a promotion reads from the ledger, in one pass.
_PROMOTION_KINDS = (
    *RELEASE_KINDS,
    EventKind.CANDIDATE_ARCHIVED,
    EventKind.CANDIDATE_GENERATED,
    EventKind.DECISION_MADE,
    EventKind.ALIAS_MOVED,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class PromotionCase:
    """A promotion of ``facts.package`` as the ledger has it now: the facts it is judged
    on (the authority table judges the same facts, replayed at the promotion's seq, when
    the ledger is verified), its timing, and the events they came from."""

    facts: PromotionFacts
    timing: PromotionTiming
    events: tuple[Event, ...]


def promotion_case(lab: Lab, capability: str, pid: Digest) -> PromotionCase:
    """Gather what a promotion of ``pid`` is judged on, reading the ledger once."""
    with lab.ledger.reader() as r:
        trusted = trusted_keys(r, lab.blobs)
        approvals = valid_approvals(lab.blobs, r, pid, purpose="release", trusted=trusted)
        proposers = frozenset(str(row.keyid) for row in r.signatures(str(pid)))
        revoked = r.revocation(str(pid)) is not None
        champion = r.alias(capability, "champion")
        approved = [event_time(r.event(a.seq)) for a in approvals]
        events = tuple(r.events(kinds=_PROMOTION_KINDS))
    moves = [
        e
        for e in events
        if e.kind == EventKind.ALIAS_MOVED
        and e.subject == capability
        and e.payload.get("alias") == "champion"
    ]
    facts = PromotionFacts(
        package=str(pid),
        tier=_risk_tier(lab, capability, pid),
        approvals=approvals,
        proposers=proposers,
        revoked=revoked,
        champion=champion,
        release=_fold(capability, events),
        bred=any(
            e.kind == EventKind.CANDIDATE_GENERATED
            and e.payload.get("package") == str(pid)
            and is_round(e.payload.get("round"))
            for e in events
        ),
        recommended=_recommended(events, pid),
    )
    timing = PromotionTiming(
        now=lab.clock.now(),
        champion_since=event_time(moves[-1]) if moves else None,
        approved_at=max(approved, default=None),
    )
    return PromotionCase(facts=facts, timing=timing, events=events)


def _promotion_hint(capability: str, pid: Digest, problems: list[Problem]) -> str | None:
    """The next command for the first unmet condition a user can act on."""
    approve = f"breedlab approve {pid} --purpose release --key KEY"
    hints = {
        Unmet.NO_SECURITY_APPROVAL: f"a security key holder runs: {approve}",
        Unmet.NO_APPROVAL: f"a key other than the package's signer runs: {approve}",
        Unmet.NO_INDEPENDENT_APPROVAL: f"a key other than the package's signer runs: {approve}",
        Unmet.NO_SHADOW: (
            f"run it in shadow first: breedlab shadow start {capability} {pid} --key KEY"
        ),
        Unmet.NO_CANARY: (
            f"pass every canary stage first: breedlab canary start {capability} --key KEY"
        ),
        Unmet.UNSIGNED: f"sign it first: breedlab sign {pid} --key KEY",
        Unmet.FROZEN: f"a person lifts the freeze by approving it: {approve}",
    }
    order = list(hints)
    actionable = sorted(
        (p for p in problems if p.unmet in hints), key=lambda p: order.index(p.unmet)
    )
    return hints[actionable[0].unmet] if actionable else None


def promote(
    lab: Lab,
    capability: str,
    ref: str,
    *,
    policy: PromotionPolicy | None = None,
    key: str | None = None,
) -> Event:
    """Move ``champion`` to ``ref`` and the old champion to ``previous``, atomically,
    signed by a production key (``key``, else ``[signing] release_key``).

    The capability's first champion needs only the approvals its risk tier asks for;
    every later one also went through shadow and passed every canary stage, and a bred
    candidate was recommended by the viability controller. Never a revoked or
    deny-listed package; the current champion must have dwelt long enough, and no
    flip-flop freeze stands (an approval recorded after it lifts it).

    Raises:
        PolicyError: naming every unmet condition, or no production key.
    """
    policy = policy or PromotionPolicy()
    signer = lab.release_signer(key, EventKind.PROMOTED)
    pid = lab.resolve(ref)
    manifest = lab.manifest(pid)
    if manifest.capability != capability:
        raise PolicyError(
            f"package {pid.short} belongs to capability {manifest.capability!r}, not {capability!r}"
        )
    if manifest.kind is not Kind.MODEL:
        raise PolicyError(f"alias 'champion' takes models, and {pid.short} is a {manifest.kind}")
    with lab.ledger.reader() as r:
        require_intact(lab.supply, r, pid)  # tampered: IntegrityError; revoked: PolicyError
    check_registered_model(lab.supply, pid)  # the champion is served: it must answer the contract
    case = promotion_case(lab, capability, pid)
    facts = case.facts
    problems = promotion_problems(facts, case.timing, policy)
    if problems:
        raise PolicyError(
            f"cannot promote {pid.short}: " + "; ".join(p.message for p in problems),
            hint=_promotion_hint(capability, pid, problems),
        )
    old = None if facts.champion is None else Digest.parse(facts.champion)
    evidence = _release_evidence(lab, capability, pid, case.events)
    prev = lab.alias(capability, "previous")
    reason = f"promotion of {pid.short}"
    swaps: list[tuple[str, Digest, Digest | None]] = [("champion", pid, old)]
    if old is not None:
        swaps.insert(0, ("previous", old, prev))  # previous first: it takes the old champion
    with lab.ledger.transaction() as tx:  # one transaction: both moves and the event
        for alias, target, expected in swaps:
            append_move(
                lab.supply,
                tx,
                capability,
                alias,
                target,
                None if expected is None else str(expected),
                reason,
                signer=signer,
                via="promote",
            )
        return tx.append(
            EventKind.PROMOTED,
            capability,
            {
                "capability": capability,
                "package": str(pid),
                "previous": None if old is None else str(old),
                "risk_tier": facts.tier.value,
                "approvals": [a.keyid for a in facts.approvals],
                "baking_s": math.ceil(policy.baking.total_seconds()),
                **evidence,
            },
            signer=signer,
            actor=lab.actor,
        )


def _release_evidence(
    lab: Lab, capability: str, pid: Digest, events: Iterable[Event]
) -> dict[str, JsonValue]:
    """The sealed evidence of ``pid``'s latest shadow and canary runs (sealed now)."""
    events = tuple(events)
    out: dict[str, JsonValue] = {}
    for stream, kind in (
        ("shadow", EventKind.SHADOW_STARTED),
        ("canary", EventKind.CANARY_STARTED),
    ):
        runs = [
            e.seq
            for e in events
            if e.kind == kind and e.subject == capability and e.payload.get("package") == str(pid)
        ]
        if runs:
            out[f"{stream}_evidence"] = list(
                evidence_log(lab.supply, capability, stream, runs[-1]).seal()
            )
    return out


def rollback(
    lab: Lab,
    capability: str,
    *,
    switch: Callable[[], None] | None = None,
    verify: Callable[[Digest], None] | None = None,
    key: str | None = None,
) -> Event:
    """Return ``champion`` to ``previous`` and record the measured recovery time, signed
    by a production key (``key``, else ``[signing] release_key``).

    ``switch`` is the in-process server's swap (called right after the alias move);
    without it, a server in another process follows on its next request. ``verify``
    checks the restored champion serves (default: verify, load, one prediction).
    A rollback is reversible only through a new promotion.

    Raises:
        NotFound: no ``previous``. PolicyError: nothing to roll back (no promotion since
            the last rollback), or no production key.
    """
    signer = lab.release_signer(key, EventKind.ROLLED_BACK)
    t_detect = lab.clock.now()
    champion = lab.alias(capability, "champion")
    previous = lab.alias(capability, "previous")
    if champion is None or previous is None:
        raise NotFound(f"{capability} has no previous champion to return to")
    state = release_state(lab, capability)
    if champion == previous or state.last_change is not ChangeKind.PROMOTION:
        raise PolicyError(
            f"nothing to roll back for {capability}: no promotion since the last rollback "
            "(a rollback is reversed only by a new promotion)"
        )
    with lab.ledger.reader() as r:
        require_intact(lab.supply, r, previous)
    with lab.ledger.transaction() as tx:
        append_move(
            lab.supply,
            tx,
            capability,
            "champion",
            previous,
            str(champion),
            "rollback",
            signer=signer,
            via="rollback",
        )
    if switch is not None:
        switch()
    t_switch = lab.clock.now()
    if verify is not None:
        verify(previous)
    else:
        served = load_served(lab, previous)
        served.predict([0.0] * served.inputs)
    t_verified = lab.clock.now()
    recovery = Recovery(
        t_onset=t_detect,
        t_detect=t_detect,
        t_switch=max(t_switch, t_detect),
        t_verified=max(t_verified, t_switch, t_detect),
        detection_requests=0,
        exposed_requests=0,
        exposed_units=0,
    )
    return _append(
        lab,
        EventKind.ROLLED_BACK,
        capability,
        {
            "package": str(previous),
            "from": str(champion),
            "recovery": recovery.to_record(),
            "in_process": switch is not None,
        },
        signer=signer,
    )


# ------------------------------------------------------------------ release evidence

_JOINED = (*RELEASE_KINDS, EventKind.DECISION_MADE)
_RUN_ENDS = (
    EventKind.SHADOW_STOPPED,
    EventKind.CANARY_ABORTED,
    EventKind.CANARY_STOPPED,
    EventKind.PROMOTED,
    EventKind.ROLLED_BACK,
)


def release_records(lab: Lab, packages: Iterable[str]) -> dict[str, tuple[ReleaseRecord, ...]]:
    """Each package's release history from the ledger: the decisions about it, its
    shadow and canary runs and verdicts (with the digests of their sealed evidence),
    promotions and rollbacks (seed, stage 3: release evidence joins to lineage)."""
    wanted = set(packages)
    out: dict[str, list[ReleaseRecord]] = {p: [] for p in wanted}
    for ev in lab.events(kinds=_JOINED):
        for pkg, summary in _summaries(ev):
            if pkg in wanted:
                own = pkg == ev.payload.get("package")  # the evidence is about this one
                out[pkg].append(
                    ReleaseRecord(
                        seq=ev.seq,
                        at=ev.at,
                        kind=ev.kind,
                        capability=ev.subject,
                        summary=summary,
                        evidence=_evidence_of(ev) if own else (),
                    )
                )
    return {p: tuple(v) for p, v in out.items()}


def _evidence_of(ev: Event) -> tuple[str, ...]:
    found: list[str] = []
    for field_name in ("evidence", "shadow_evidence", "canary_evidence"):
        value = ev.payload.get(field_name)
        if isinstance(value, list):
            found.extend(str(v) for v in value)
    return tuple(found)


def _summaries(ev: Event) -> list[tuple[str, str]]:
    """(package, one-line summary) pairs an event says about packages."""
    p = ev.payload
    pkg = str(p.get("package", ""))
    if ev.kind == EventKind.DECISION_MADE:
        outcomes = p.get("outcomes") or {}
        assert isinstance(outcomes, dict)
        return [(str(k), f"{p.get('round')}: viability outcome {v}") for k, v in outcomes.items()]
    if ev.kind == EventKind.SHADOW_STARTED:
        return [(pkg, f"shadow started (sample {p.get('sample')})")]
    if ev.kind == EventKind.SHADOW_STOPPED:
        return [(pkg, "shadow stopped; its pairs sealed")]
    if ev.kind == EventKind.CANARY_STARTED:
        shadow = p.get("shadow") or {}
        agreement = shadow.get("agreement") if isinstance(shadow, dict) else None
        est = agreement.get("estimate") if isinstance(agreement, dict) else None
        return [(pkg, f"canary started after the shadow gate (agreement {est})")]
    if ev.kind == EventKind.CANARY_STAGE:
        return [(pkg, f"canary stage {p.get('passed_stage')} passed at weight {p.get('weight')}")]
    if ev.kind == EventKind.CANARY_PASSED:
        return [(pkg, "canary passed every stage")]
    if ev.kind == EventKind.CANARY_ABORTED:
        return [(pkg, f"canary aborted by {', '.join(map(str, p.get('aborted_by') or []))}")]
    if ev.kind == EventKind.CANARY_STOPPED:
        return [(pkg, f"canary stopped: {p.get('reason')}")]
    if ev.kind == EventKind.PROMOTED:
        out = [(pkg, f"promoted to {ev.subject}@champion (risk tier {p.get('risk_tier')})")]
        if p.get("previous"):
            out.append((str(p["previous"]), f"replaced as champion by {pkg[:19]}"))
        return out
    if ev.kind == EventKind.ROLLED_BACK:
        return [
            (pkg, "champion again by rollback"),
            (str(p.get("from", "")), "rolled back from champion"),
        ]
    return []


# ----------------------------------------------------------------------- exit criteria


@dataclass(frozen=True, slots=True, kw_only=True)
class Criterion:
    """One v1 exit criterion: pass/fail and the evidence."""

    name: str
    passed: bool
    evidence: str

    def to_json(self) -> dict[str, JsonValue]:
        return {"name": self.name, "passed": self.passed, "evidence": self.evidence}


def exit_criteria(lab: Lab, capability: str, *, workers: int | None = None) -> list[Criterion]:
    """The seed's v1 exit criteria, each checked from the ledger and by live re-runs:
    reproduce candidates, reject bad ones, explain no-op decisions, verify hashes,
    rollback every promoted artifact."""
    out: list[Criterion] = []
    generated = [
        e
        for e in lab.events(kinds=(EventKind.CANDIDATE_GENERATED,))
        if e.payload.get("capability", capability) == capability
    ]
    if not generated:
        out.append(Criterion(name="reproduce candidates", passed=False, evidence="no candidates"))
    else:
        pkg = str(generated[-1].payload.get("package", generated[-1].subject))
        again = lab.reproduce(pkg, workers=workers)
        out.append(
            Criterion(
                name="reproduce candidates",
                passed=again.match,
                evidence=f"{pkg[:19]} re-run from its recipe: "
                + ("same id" if again.match else f"different id {again.recomputed}"),
            )
        )
    retired = [
        e
        for e in lab.events(kinds=(EventKind.CANDIDATE_ARCHIVED,))
        if e.payload.get("outcome") == "retire" and e.payload.get("reasons")
    ]
    aborted = [e for e in lab.events(kinds=(EventKind.CANARY_ABORTED,)) if e.subject == capability]
    out.append(
        Criterion(
            name="reject bad candidates",
            passed=bool(retired or aborted),
            evidence=f"{len(retired)} candidate(s) retired with reasons, "
            f"{len(aborted)} canary(ies) aborted and deny-listed",
        )
    )
    noops = 0
    unexplained = 0
    decisions = [e for e in lab.events(kinds=(EventKind.DECISION_MADE,)) if e.subject == capability]
    for ev in decisions:
        _, record = lab.decision(str(ev.seq))
        for d in record.get("decisions", []):
            if isinstance(d, dict) and d.get("outcome") == "no-op":
                noops += 1
                unexplained += not d.get("reasons")
    out.append(
        Criterion(
            name="explain no-op decisions",
            passed=bool(decisions) and unexplained == 0,
            evidence=f"{len(decisions)} decision(s), {noops} no-op(s), {unexplained} unexplained",
        )
    )
    try:
        results = lab.verify()
        store = lab.verify_store()
        ledger = lab.verify_ledger()
        bad = [r.package[:19] for r in results if not r.ok]
        out.append(
            Criterion(
                name="verify hashes",
                passed=not bad and not store.problems,
                evidence=f"{len(results)} packages ({len(bad)} bad), {store.objects} objects "
                f"({len(store.problems)} bad), {ledger.events} ledger events chained",
            )
        )
    except LabError as e:
        out.append(Criterion(name="verify hashes", passed=False, evidence=e.message))
    # A capability's first champion replaced nothing: there is nothing to roll back to.
    promotions = tuple(
        ev for ev in release_state(lab, capability).promotions if ev.payload.get("previous")
    )
    missing = []
    for ev in promotions:
        prev = str(ev.payload["previous"])
        [res] = lab.verify([prev])
        if not res.ok:
            missing.append(prev[:19])
    out.append(
        Criterion(
            name="rollback every promoted artifact",
            passed=bool(promotions) and not missing,
            evidence=f"{len(promotions)} promotion(s); every 'previous' verifies"
            if promotions and not missing
            else (f"'previous' does not verify: {missing}" if missing else "no promotion yet"),
        )
    )
    return out

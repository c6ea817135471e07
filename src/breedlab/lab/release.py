"""The release controller (seed, stage 3; DESIGN §11): shadow and canary.

Reads the ledger and the logs the server writes, decides with the pure cores of
:mod:`breedlab.release`, and writes alias moves and ``release.*`` events. The Lab's
release verbs call these functions (the serving app, the CLI and the demo call the Lab).
:meth:`Lab.router <breedlab.lab.Lab.router>` makes the serving process's
:class:`~breedlab.serving.router.Router` over a lab, with a :class:`LabRecorder` for the
ledger writes it asks for
(:mod:`breedlab.serving` sits below the lab and imports none of it); ``ServedModel``,
``load_served``, ``CanaryRun`` and ``shadow_pairs`` are serving's, re-exported here.

Promotion and rollback are :mod:`breedlab.lab.promotion`'s, the release records and the
exit criteria :mod:`breedlab.lab.release_reports`'; both read the state folded here.

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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from breedlab.authority import Approval
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
from breedlab.release.canary import (
    CanaryObservation,
    CanaryPolicy,
    CanaryStage,
    ExposureCap,
    ramp_from,
)
from breedlab.release.cohorts import new_salt
from breedlab.release.gates import ShadowGate
from breedlab.release.shadow_stats import ShadowPair, ShadowReport, summarise_shadow
from breedlab.release.state import (
    DEFAULT_BAKING,
    MAX_BAKING,
    RELEASE_KINDS,
    ReleaseState,
    fold_release,
)
from breedlab.serving.canary_run import CanaryRun
from breedlab.serving.release_logs import shadow_pairs
from breedlab.serving.request_inputs import Row
from breedlab.serving.served_models import ServedModel, load_served
from breedlab.signing.keys import KeyPair
from breedlab.supply import aliases
from breedlab.supply import keys as supply_keys
from breedlab.supply import packages as supply_packages
from breedlab.supply.aliases import point
from breedlab.supply.evidence import Evidence, EvidenceLog, evidence_log, read_evidence
from breedlab.supply.verification import valid_approvals
from breedlab.supply.view import RegistryView

if TYPE_CHECKING:
    from breedlab.supply.service import Supply

__all__ = [
    "DEFAULT_BAKING",
    "MAX_BAKING",
    "RELEASE_KINDS",
    "CanaryRun",
    "LabRecorder",
    "ReleaseState",
    "ServedModel",
    "append_release_event",
    "canary_log",
    "canary_status",
    "fold_capability",
    "load_served",
    "read_shadow_pairs",
    "recommended_for_shadow",
    "release_state",
    "replay_shadow",
    "shadow_log",
    "shadow_pairs",
    "shadow_report",
    "shadow_run",
    "stale_release_aliases",
    "start_canary",
    "start_shadow",
    "stop_canary",
    "stop_shadow",
    "wait_for_shadow_pairs",
]


# ------------------------------------------------------------------------------- state


def release_state(supply: Supply, capability: str) -> ReleaseState:
    """Fold the capability's release events (and the retire decisions) into a state."""
    with supply.ledger.reader() as r:
        events = list(r.events(kinds=(*RELEASE_KINDS, EventKind.CANDIDATE_ARCHIVED)))
    return fold_capability(capability, events)


def fold_capability(capability: str, events: Iterable[Event]) -> ReleaseState:
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


def append_release_event(
    supply: Supply, kind: str, capability: str, payload: Mapping[str, JsonValue], *, signer: KeyPair
) -> Event:
    """Append a ``release.*`` event about ``capability`` (named in the payload too)."""
    return supply.ledger.append(
        kind, capability, {"capability": capability, **payload}, signer=signer, actor=supply.actor
    )


# ---------------------------------------------------------------------------- serving


@dataclass(frozen=True, slots=True)
class LabRecorder:
    """The ledger writes a serving process asks for (a
    :class:`~breedlab.serving.supplier.ReleaseRecorder`): the lab's evidence logs, and
    the canary's events signed by the lab's factory key."""

    supply: Supply

    def evidence_log(self, capability: str, stream: str, seq: int) -> EvidenceLog:
        return evidence_log(self.supply, capability, stream, seq)

    def record(self, kind: str, capability: str, payload: Mapping[str, JsonValue]) -> Event:
        return append_release_event(
            self.supply, kind, capability, payload, signer=supply_keys.factory_signer(self.supply)
        )


# ----------------------------------------------------------------------------- shadow


def _has_shadow_recommendation(supply: Supply, pid: Digest) -> bool:
    return recommended_for_shadow(supply.events(kinds=(EventKind.DECISION_MADE,)), pid)


def recommended_for_shadow(events: Iterable[Event], pid: Digest) -> bool:
    """Whether a ``decision.made`` among ``events`` recommended ``pid`` for shadow."""
    return any(
        (ev.payload.get("outcomes") or {}).get(str(pid)) == "shadow"
        for ev in events
        if ev.kind == EventKind.DECISION_MADE
    )


def _valid_release_approvals(supply: Supply, pid: Digest) -> tuple[Approval, ...]:
    """Every release approval of ``pid`` that counts, credited to its real signer."""
    with supply.ledger.reader() as r:
        return valid_approvals(supply.blobs, r, pid, purpose="release")


def start_shadow(
    supply: Supply, capability: str, ref: str, *, sample: float = 1.0, key: str | None = None
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
    signer = supply_keys.release_signer(supply, key, EventKind.SHADOW_STARTED)
    pid = supply_packages.resolve(supply, ref)
    state = release_state(supply, capability)
    state.deny.check(pid)
    if not (_has_shadow_recommendation(supply, pid) or _valid_release_approvals(supply, pid)):
        raise PolicyError(
            f"{pid.short} holds no 'shadow' recommendation from the viability controller and "
            "no release approval; run a round or 'breedlab approve PKG --purpose release'"
        )
    if state.shadow is not None and state.shadow_seq is not None:
        shadow_log(supply, capability, state.shadow_seq).seal()  # the run it replaces
    point(supply, capability, "shadow", pid, reason="shadow started", key=signer.name)
    return append_release_event(
        supply,
        EventKind.SHADOW_STARTED,
        capability,
        {"package": str(pid), "sample": repr(sample)},
        signer=signer,
    )


def stop_shadow(supply: Supply, capability: str, *, key: str | None = None) -> Event:
    """Stop mirroring; the run's evidence is sealed and named by the event.

    Raises NotFound when no shadow runs."""
    signer = supply_keys.release_signer(supply, key, EventKind.SHADOW_STOPPED)
    state = release_state(supply, capability)
    if state.shadow is None or state.shadow_seq is None:
        raise NotFound(
            f"no shadow is running for {capability}{_ended_because(supply, capability, 'shadow')}"
        )
    sealed = shadow_log(supply, capability, state.shadow_seq).seal()
    return append_release_event(
        supply,
        EventKind.SHADOW_STOPPED,
        capability,
        {"package": str(state.shadow), "evidence": list(sealed)},
        signer=signer,
    )


#: The events that end a shadow or canary run (or its package's time as champion).
_RUN_ENDS = (
    EventKind.SHADOW_STOPPED,
    EventKind.CANARY_ABORTED,
    EventKind.CANARY_STOPPED,
    EventKind.PROMOTED,
    EventKind.ROLLED_BACK,
)


def stale_release_aliases(supply: Supply, capability: str) -> dict[str, str]:
    """``shadow``/``canary`` aliases that still name a package whose run has ended (by a
    stop, an abort, or the package's promotion, perhaps rolled back since), each with why.

    The alias keeps its target, as history; this marks it stale (issue 10)."""
    state = release_state(supply, capability)
    active = {"shadow": state.shadow, "canary": state.canary}
    ends = [e for e in supply.events(kinds=_RUN_ENDS) if e.subject == capability]
    out: dict[str, str] = {}
    for alias, running in active.items():
        target = aliases.alias(supply, capability, alias)
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


def _ended_because(supply: Supply, capability: str, alias: str) -> str:
    stale = stale_release_aliases(supply, capability)
    if alias not in stale:
        return ""
    target = aliases.alias(supply, capability, alias)
    assert target is not None  # stale aliases name a package
    return f"; {capability}@{alias} still names {target.short}, whose run ended ({stale[alias]})"


def shadow_log(supply: Supply, capability: str, seq: int) -> EvidenceLog:
    return evidence_log(supply, capability, "shadow", seq)


def shadow_run(supply: Supply, capability: str) -> tuple[Digest, int]:
    """The package and start seq of the capability's latest shadow run.

    Raises:
        NotFound: no shadow run for the capability.
    """
    started = [
        e
        for e in supply.events(kinds=(EventKind.SHADOW_STARTED,))
        if e.subject == capability and e.payload.get("capability") == capability
    ]
    if not started:
        raise NotFound(f"no shadow run for {capability}; run 'breedlab shadow start'")
    return Digest.parse(str(started[-1].payload["package"])), started[-1].seq


def read_shadow_pairs(
    supply: Supply, capability: str, *, sealed_only: bool = False
) -> tuple[Digest, list[ShadowPair], Evidence]:
    """The shadow package, the pairs mirrored to it (dropped ones included) and the
    evidence they came from; ``sealed_only`` leaves the unsealed tail out.

    Raises:
        NotFound: no shadow run for the capability.
    """
    pid, seq = shadow_run(supply, capability)
    evidence = read_evidence(supply, capability, "shadow", seq)
    records = evidence.records[: evidence.sealed] if sealed_only else evidence.records
    return pid, shadow_pairs(records), evidence


def wait_for_shadow_pairs(
    supply: Supply, capability: str, pairs: int, *, timeout: float, poll: float = 0.5
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
        pid, got, _ = read_shadow_pairs(supply, capability)
        answered = sum(p.answered for p in got)
        if answered >= pairs:
            return answered
        if release_state(supply, capability).shadow != pid:
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


def shadow_report(supply: Supply, capability: str, *, seed: int = 0) -> tuple[Digest, ShadowReport]:
    """Agreement (Wilson), flip matrix, latency ratios (bootstrap), errors, drops."""
    pid, pairs, _ = read_shadow_pairs(supply, capability)
    return pid, summarise_shadow(pairs, seed=seed, resamples=2000)


def replay_shadow(
    supply: Supply, capability: str, log: Path, *, ref: str | None = None, seed: int = 0
) -> tuple[Digest, ShadowReport]:
    """Offline shadow: replay a request log through the champion and the challenger.

    The log is JSON lines with ``inputs`` (and optionally ``unit`` and ``label``), the
    body of ``POST /v1/{capability}/predict``. Nothing is written.

    Raises:
        NotFound: no champion, or no challenger (``ref`` or ``capability@shadow``).
        InvalidRequest: a malformed line.
    """
    champion = aliases.alias(supply, capability, "champion")
    challenger = (
        supply_packages.resolve(supply, ref) if ref else aliases.alias(supply, capability, "shadow")
    )
    if champion is None or challenger is None:
        raise NotFound(f"{capability} needs a champion and a challenger (shadow alias or PKG)")
    primary, shadow = (
        load_served(RegistryView(supply), champion),
        load_served(RegistryView(supply), challenger),
    )
    pairs = []
    for n, line in enumerate(log.read_text("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            inputs = json.loads(line)["inputs"]
        except (ValueError, KeyError, TypeError) as e:
            raise InvalidRequest(f"{log}:{n}: not a request with 'inputs' ({e})") from e
        try:  # as serve reads it: numbers, named features or a text, by the contract
            row = primary.row(inputs)
        except InvalidRequest as e:
            raise InvalidRequest(f"{log}:{n}: {e.message}") from e
        pairs.append(_run_pair(primary, shadow, row))
    return challenger, summarise_shadow(pairs, seed=seed, resamples=2000)


def _timed(model: ServedModel, inputs: Row) -> tuple[str | None, float]:
    t0 = time.perf_counter()
    try:
        label: str | None = model.predict(inputs)[0]
    except LabError:
        label = None
    return label, max(time.perf_counter() - t0, 1e-9)


def _run_pair(primary: ServedModel, shadow: ServedModel, inputs: Row) -> ShadowPair:
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
    supply: Supply,
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
    signer = supply_keys.release_signer(supply, key, EventKind.CANARY_STARTED)
    state = release_state(supply, capability)
    if state.canary is not None and not state.canary_passed:
        raise PolicyError(f"a canary of {state.canary.short} runs already for {capability}")
    _, run = shadow_run(supply, capability)
    shadow_log(supply, capability, run).seal()
    pid, pairs, evidence = read_shadow_pairs(supply, capability, sealed_only=True)
    report = summarise_shadow(pairs, seed=0, resamples=2000)
    state.deny.check(pid)
    verdict = (gate or ShadowGate()).check(report)
    if not verdict.passed:
        raise PolicyError("the shadow gate did not pass: " + "; ".join(verdict.reasons))
    ramp = ramp_from(percent)
    salt = new_salt(salt_bytes or os.urandom(16))
    point(
        supply,
        capability,
        "canary",
        pid,
        reason="canary started after the shadow gate passed",
        key=signer.name,
    )
    return append_release_event(
        supply,
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


def stop_canary(supply: Supply, capability: str, *, reason: str, key: str | None = None) -> Event:
    """Stop a running canary by hand (100% to the champion; the id is not retired)."""
    signer = supply_keys.release_signer(supply, key, EventKind.CANARY_STOPPED)
    state = release_state(supply, capability)
    if state.canary is None or state.canary_seq is None:
        raise NotFound(f"no canary runs for {capability}")
    sealed = canary_log(supply, capability, state.canary_seq).seal()
    return append_release_event(
        supply,
        EventKind.CANARY_STOPPED,
        capability,
        {"package": str(state.canary), "reason": reason, "evidence": list(sealed)},
        signer=signer,
    )


def canary_log(supply: Supply, capability: str, seq: int) -> EvidenceLog:
    return evidence_log(supply, capability, "canary", seq)


#: What can follow a canary's start: its stages and end, and its package's promotion.
_CANARY_SINCE = tuple(
    k
    for k in RELEASE_KINDS
    if k not in (EventKind.SHADOW_STARTED, EventKind.SHADOW_STOPPED, EventKind.CANARY_STARTED)
)


def canary_status(supply: Supply, capability: str) -> dict[str, JsonValue]:
    """Stage, weight and the guardrails' statistics, replayed from the server's log.

    Raises:
        NotFound: no canary was ever started for the capability.
    """
    state = release_state(supply, capability)
    started = [
        e for e in supply.events(kinds=(EventKind.CANARY_STARTED,)) if e.subject == capability
    ]
    if not started:
        raise NotFound(f"no canary for {capability}; run 'breedlab canary start {capability}'")
    last = started[-1]
    pkg = str(last.payload["package"])
    since = [  # everything that happened to this canary and its package, read once
        e for e in supply.events(after=last.seq, kinds=_CANARY_SINCE) if e.subject == capability
    ]
    ours = [e for e in since if e.payload.get("canary") == last.seq]
    ended = [e for e in since if e.kind in (EventKind.CANARY_ABORTED, EventKind.CANARY_STOPPED)]
    reached = [int(str(e.payload["stage"])) for e in ours if e.kind == EventKind.CANARY_STAGE]
    stage = state.stage if state.canary_seq == last.seq else max(reached, default=0)
    policy = CanaryPolicy()
    replayed = CanaryStage.start(policy, at=0.0)
    for i, rec in enumerate(canary_log(supply, capability, last.seq).read()):
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

"""The release reports: each package's release history joined from the ledger, and the
seed's v1 exit criteria checked from the ledger and by live re-runs.

Read-only; the verbs that write the events they read are :mod:`breedlab.lab.release`'s
and :mod:`breedlab.lab.promotion`'s.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from breedlab.canonical import JsonValue
from breedlab.errors import LabError
from breedlab.lab.release import release_state
from breedlab.lab.replay import reproduce
from breedlab.ledger import Event, EventKind
from breedlab.release.state import RELEASE_KINDS
from breedlab.supply import audit
from breedlab.supply import lineage as supply_lineage
from breedlab.supply import packages as supply_packages
from breedlab.supply.values import ReleaseRecord

if TYPE_CHECKING:
    from breedlab.sandbox.executors import Executor
    from breedlab.supply.service import Supply

__all__ = ["Criterion", "exit_criteria", "release_records"]

_JOINED = (*RELEASE_KINDS, EventKind.DECISION_MADE)


def release_records(
    supply: Supply, packages: Iterable[str]
) -> dict[str, tuple[ReleaseRecord, ...]]:
    """Each package's release history from the ledger: the decisions about it, its
    shadow and canary runs and verdicts (with the digests of their sealed evidence),
    promotions and rollbacks (seed, stage 3: release evidence joins to lineage)."""
    wanted = set(packages)
    out: dict[str, list[ReleaseRecord]] = {p: [] for p in wanted}
    for ev in supply.events(kinds=_JOINED):
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


def exit_criteria(supply: Supply, capability: str, *, executor: Executor) -> list[Criterion]:
    """The seed's v1 exit criteria, each checked from the ledger and by live re-runs:
    reproduce candidates, reject bad ones, explain no-op decisions, verify hashes,
    rollback every promoted artifact."""
    out: list[Criterion] = []
    generated = [
        e
        for e in supply.events(kinds=(EventKind.CANDIDATE_GENERATED,))
        if e.payload.get("capability", capability) == capability
    ]
    if not generated:
        out.append(Criterion(name="reproduce candidates", passed=False, evidence="no candidates"))
    else:
        pkg = str(generated[-1].payload.get("package", generated[-1].subject))
        again = reproduce(supply, supply_packages.resolve(supply, pkg), executor=executor)
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
        for e in supply.events(kinds=(EventKind.CANDIDATE_ARCHIVED,))
        if e.payload.get("outcome") == "retire" and e.payload.get("reasons")
    ]
    aborted = [
        e for e in supply.events(kinds=(EventKind.CANARY_ABORTED,)) if e.subject == capability
    ]
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
    decisions = [
        e for e in supply.events(kinds=(EventKind.DECISION_MADE,)) if e.subject == capability
    ]
    for ev in decisions:
        _, record = supply_lineage.decision(supply, str(ev.seq))
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
        results = audit.verify(supply)
        store = audit.verify_store(supply)
        ledger = audit.verify_ledger(supply)
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
        ev for ev in release_state(supply, capability).promotions if ev.payload.get("previous")
    )
    missing = []
    for ev in promotions:
        prev = str(ev.payload["previous"])
        [res] = audit.verify(supply, [prev])
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

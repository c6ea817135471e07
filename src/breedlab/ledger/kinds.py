"""The catalogue of event kinds and the payload each kind carries (pure).

Every state change the lab records is one of :class:`EventKind`; :data:`PAYLOADS` names
the :class:`~typing.TypedDict` its payload follows. The authority table
(:data:`breedlab.authority.policy.RULES`) has one rule per kind, and a kind missing from
either is a test failure, not a silent gap.

:meth:`breedlab.ledger.engine.Txn.append` checks a payload against its kind's type when
the kind is given as an :class:`EventKind`: a misspelt key or a wrong type in the lab's
own code fails at the write, where it is made, instead of at a later replay. A kind given
as a plain string is written as given -- copied history, old ledgers and the attack tests
that forge events need that, and verification judges such events by replay.

Payload values are JSON: digests, times and decimal numbers are strings; ``sha256:...``
package ids and evidence digests too.
"""

import types
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, NotRequired, TypedDict, Union, get_args, get_origin, get_type_hints

from breedlab.canonical import JsonValue

__all__ = ["PAYLOADS", "EventKind", "payload_problems"]


class EventKind(StrEnum):
    """Every kind of event the lab writes (``component.verb``)."""

    KEY_ADDED = "key.added"
    KEY_ENDORSED = "key.endorsed"
    KEY_REVOKED = "key.revoked"
    CHECKPOINT_SIGNED = "checkpoint.signed"
    LEDGER_ATTESTED = "ledger.attested"
    PACKAGE_REGISTERED = "package.registered"
    PACKAGE_SIGNED = "package.signed"
    PACKAGE_APPROVED = "package.approved"
    PACKAGE_REVOKED = "package.revoked"
    PACKAGE_REPRODUCED = "package.reproduced"
    ALIAS_MOVED = "alias.moved"
    FAILURES_MINED = "failures.mined"
    ROUND_STARTED = "round.started"
    CANDIDATE_GENERATED = "candidate.generated"
    CANDIDATE_FAILED = "candidate.failed"
    CANDIDATE_SCORED = "candidate.scored"
    CANDIDATE_ARCHIVED = "candidate.archived"
    DECISION_MADE = "decision.made"
    ROUND_FINISHED = "round.finished"
    SHADOW_STARTED = "release.shadow_started"
    SHADOW_STOPPED = "release.shadow_stopped"
    CANARY_STARTED = "release.canary_started"
    CANARY_STAGE = "release.canary_stage"
    CANARY_PASSED = "release.canary_passed"
    CANARY_ABORTED = "release.canary_aborted"
    CANARY_STOPPED = "release.canary_stopped"
    EVIDENCE_SEALED = "release.evidence_sealed"
    PROMOTED = "release.promoted"
    ROLLED_BACK = "release.rolled_back"


# ------------------------------------------------------------------------ keys, ledger


class KeyAdded(TypedDict):
    name: str
    role: str
    keyid: str
    public_key: str  # raw Ed25519 public key, hex
    endorsement: str  # the lab key's DSSE envelope over the key, canonical JSON
    endorser: str  # the endorsing key's keyid


class KeyEndorsed(TypedDict):
    name: str
    keyid: str
    endorsement: str
    endorser: str


class KeyRevoked(TypedDict):
    name: str
    keyid: str
    reason: str


class CheckpointSigned(TypedDict):
    tree_size: int
    root: str  # RFC 6962 tree head, hex
    keyid: str
    key: str
    envelope: str


class LedgerAttested(TypedDict):
    tree_size: int
    root: str
    unsigned: int  # events before it without a signature, vouched for once
    keyid: str
    reason: str


# ---------------------------------------------------------------------------- registry


class PackageRegistered(TypedDict):
    id: str
    kind: str
    name: str
    capability: str | None
    files: int
    size: int
    parents: list[str]
    provenance: str | None


class PackageSigned(TypedDict):
    package: str
    key: str
    keyid: str
    envelope: str


class PackageApproved(TypedDict):
    package: str
    purpose: str
    role: str
    key: str
    keyid: str
    envelope: str
    # a parent approval scoped to failure clusters (``registry.cluster_keys``); absent:
    # unscoped, as every approval before scopes existed
    clusters: NotRequired[list[str]]


class PackageRevoked(TypedDict):
    package: str
    reason: str


class PackageReproduced(TypedDict):
    package: str
    operator: str
    recomputed: str
    match: bool


class AliasMoved(TypedDict):
    capability: str
    alias: str
    old: str | None
    new: str
    reason: str
    via: NotRequired[str]  # the event that moved it (a promotion, a rollback)


# -------------------------------------------------------------------- challenger loop


class FailuresMined(TypedDict):
    capability: str
    champion: str
    suite: str
    clusters: list[JsonValue]


class RoundStarted(TypedDict):
    round: str
    capability: str
    champion: str
    suite: str
    seed: int
    operators: list[str]
    parents: list[str]
    plans: list[JsonValue]
    failure_cluster: str | None
    recipe: NotRequired[str]  # the recipe file's digest (rounds planned from a recipe)


class CandidateGenerated(TypedDict):
    round: str
    label: str
    package: str
    name: str
    kind: str
    operator: str
    params: dict[str, JsonValue]
    parents: list[str]
    data: dict[str, JsonValue]
    seed: int
    role: str
    failure_cluster: str | None
    network_isolated: bool
    wall_seconds: str


class CandidateFailed(TypedDict):
    round: str
    label: str
    operator: str
    params: dict[str, JsonValue]
    parents: list[str]
    data: dict[str, JsonValue]
    seed: int
    failure_cluster: str | None
    failure: str
    reason: str
    log_tail: str


class CandidateScored(TypedDict):
    package: str
    round: str | None
    suite: str
    scorecard: str
    outputs: str
    budget: dict[str, JsonValue]


class CandidateArchived(TypedDict):
    package: str
    round: str
    outcome: str
    reasons: list[JsonValue]
    decision: int  # the decision.made event


class DecisionMade(TypedDict):
    round: str
    suite: str
    champion: str
    winner: str | None
    decision: str  # the decision record blob
    outcomes: dict[str, JsonValue]
    recipe: NotRequired[str]  # the recipe file's digest (rounds planned from a recipe)


class RoundFinished(TypedDict):
    round: str
    candidates: int
    failed: int
    winner: str | None
    decision: int


# ---------------------------------------------------------------------------- release


class ShadowStarted(TypedDict):
    capability: str
    package: str
    sample: str  # the share of traffic mirrored, decimal


class ShadowStopped(TypedDict):
    capability: str
    package: str
    evidence: list[str]


class CanaryStarted(TypedDict):
    capability: str
    package: str
    salt: str
    ramp: list[JsonValue]
    exposure_cap: dict[str, JsonValue]
    shadow: dict[str, JsonValue]
    shadow_evidence: list[str]


class CanaryPassed(TypedDict):
    capability: str
    package: str
    canary: int
    passed_stage: int
    weight: str
    requests: int
    guardrails: dict[str, JsonValue]
    evidence: NotRequired[list[str]]


class CanaryStage(CanaryPassed):
    stage: int  # the stage it moves on to


class CanaryAborted(TypedDict):
    capability: str
    package: str
    canary: int
    stage: int
    weight: str
    aborted_by: list[JsonValue]
    guardrails: dict[str, JsonValue]
    deny_listed: bool
    recovery: dict[str, JsonValue]
    evidence: NotRequired[list[str]]


class CanaryStopped(TypedDict):
    capability: str
    package: str
    reason: str
    evidence: NotRequired[list[str]]
    # a run the server was judging when it stopped at its exposure cap:
    canary: NotRequired[int]
    stage: NotRequired[int]
    weight: NotRequired[str]
    guardrails: NotRequired[dict[str, JsonValue]]
    exposure: NotRequired[dict[str, JsonValue]]
    exposure_cap: NotRequired[dict[str, JsonValue]]
    inconclusive: NotRequired[bool]


class EvidenceSealed(TypedDict):
    capability: str
    stream: str  # shadow or canary
    run: int  # the event that started the run
    digest: str
    start: int
    end: int
    records: int


class Promoted(TypedDict):
    capability: str
    package: str
    previous: str | None
    risk_tier: str
    approvals: list[JsonValue]
    baking_s: int
    shadow_evidence: NotRequired[list[str]]
    canary_evidence: NotRequired[list[str]]


RolledBack = TypedDict(
    "RolledBack",
    {
        "capability": str,
        "package": str,
        "from": str,
        "in_process": bool,
        "recovery": dict[str, JsonValue],
    },
)


#: The payload type of each kind.
PAYLOADS: Mapping[EventKind, type] = {
    EventKind.KEY_ADDED: KeyAdded,
    EventKind.KEY_ENDORSED: KeyEndorsed,
    EventKind.KEY_REVOKED: KeyRevoked,
    EventKind.CHECKPOINT_SIGNED: CheckpointSigned,
    EventKind.LEDGER_ATTESTED: LedgerAttested,
    EventKind.PACKAGE_REGISTERED: PackageRegistered,
    EventKind.PACKAGE_SIGNED: PackageSigned,
    EventKind.PACKAGE_APPROVED: PackageApproved,
    EventKind.PACKAGE_REVOKED: PackageRevoked,
    EventKind.PACKAGE_REPRODUCED: PackageReproduced,
    EventKind.ALIAS_MOVED: AliasMoved,
    EventKind.FAILURES_MINED: FailuresMined,
    EventKind.ROUND_STARTED: RoundStarted,
    EventKind.CANDIDATE_GENERATED: CandidateGenerated,
    EventKind.CANDIDATE_FAILED: CandidateFailed,
    EventKind.CANDIDATE_SCORED: CandidateScored,
    EventKind.CANDIDATE_ARCHIVED: CandidateArchived,
    EventKind.DECISION_MADE: DecisionMade,
    EventKind.ROUND_FINISHED: RoundFinished,
    EventKind.SHADOW_STARTED: ShadowStarted,
    EventKind.SHADOW_STOPPED: ShadowStopped,
    EventKind.CANARY_STARTED: CanaryStarted,
    EventKind.CANARY_STAGE: CanaryStage,
    EventKind.CANARY_PASSED: CanaryPassed,
    EventKind.CANARY_ABORTED: CanaryAborted,
    EventKind.CANARY_STOPPED: CanaryStopped,
    EventKind.EVIDENCE_SEALED: EvidenceSealed,
    EventKind.PROMOTED: Promoted,
    EventKind.ROLLED_BACK: RolledBack,
}


def payload_problems(kind: EventKind, payload: Mapping[str, JsonValue]) -> list[str]:
    """What is wrong with ``payload`` as the payload of ``kind`` (empty: nothing).

    Checks that every required key is there, that no key is unknown, and each value's
    JSON type (``str``, ``int`` but not ``bool``, ``bool``, list, object, null).
    """
    schema = PAYLOADS[kind]
    hints = _hints(schema)
    required: frozenset[str] = schema.__required_keys__  # type: ignore[attr-defined]
    out = [f"{kind}: no {key!r}" for key in sorted(required - payload.keys())]
    for key, value in payload.items():
        if key not in hints:
            out.append(f"{kind}: {key!r} is not one of its keys")
        elif not _matches(value, hints[key]):
            out.append(f"{kind}: {key!r} is {type(value).__name__}, not {_name(hints[key])}")
    return out


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(schema: type) -> dict[str, Any]:
    if schema not in _HINTS:
        _HINTS[schema] = {
            key: _strip(hint) for key, hint in get_type_hints(schema, globals()).items()
        }
    return _HINTS[schema]


def _strip(hint: Any) -> Any:
    return get_args(hint)[0] if get_origin(hint) is NotRequired else hint


def _matches(value: object, hint: Any) -> bool:
    if hint is Any:  # JsonValue
        return True
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        return any(_matches(value, arm) for arm in get_args(hint))
    if hint is type(None):
        return value is None
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is not None:
        if not isinstance(value, origin):
            return False
        return not isinstance(value, list) or all(_matches(v, get_args(hint)[0]) for v in value)
    return isinstance(value, hint)


def _name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint)

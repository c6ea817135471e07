"""Promotion and rollback (seed, stage 3; DESIGN §11): the champion's moves.

:func:`promotion_case` gathers the facts a promotion is judged on from the ledger in one
pass, the pure core :func:`breedlab.release.promotion.promotion_problems` judges them, and
:func:`promote` moves ``champion`` and ``previous`` in one transaction with the
``release.promoted`` event (naming the sealed evidence of the package's shadow and
canary runs). :func:`rollback` returns ``champion`` to ``previous`` and records the
measured recovery. The release state they read is folded by :mod:`breedlab.lab.release`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from breedlab.authority import trusted_keys
from breedlab.authority.policy import is_round
from breedlab.canonical import JsonValue
from breedlab.digest import Digest
from breedlab.errors import NotFound, PolicyError
from breedlab.lab.release import (
    append_release_event,
    fold_capability,
    recommended_for_shadow,
    release_state,
)
from breedlab.ledger import Event, EventKind
from breedlab.registry.manifest import Kind, RiskTier
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
from breedlab.release.state import RELEASE_KINDS, event_time
from breedlab.serving.served_models import load_served
from breedlab.supply import aliases
from breedlab.supply import keys as supply_keys
from breedlab.supply import packages as supply_packages
from breedlab.supply.aliases import append_move
from breedlab.supply.evidence import evidence_log
from breedlab.supply.packages import check_registered_model, require_intact
from breedlab.supply.verification import valid_approvals
from breedlab.supply.view import RegistryView

if TYPE_CHECKING:
    from breedlab.supply.service import Supply

__all__ = ["PromotionCase", "PromotionPolicy", "promote", "promotion_case", "rollback"]


def _risk_tier(supply: Supply, capability: str, pid: Digest) -> RiskTier:
    _, contract = supply_packages.capability(supply, capability)
    tiers = (contract.risk_tier, supply_packages.manifest(supply, pid).risk_tier)
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


def promotion_case(supply: Supply, capability: str, pid: Digest) -> PromotionCase:
    """Gather what a promotion of ``pid`` is judged on, reading the ledger once."""
    with supply.ledger.reader() as r:
        trusted = trusted_keys(r, supply.blobs)
        approvals = valid_approvals(supply.blobs, r, pid, purpose="release", trusted=trusted)
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
        tier=_risk_tier(supply, capability, pid),
        approvals=approvals,
        proposers=proposers,
        revoked=revoked,
        champion=champion,
        release=fold_capability(capability, events),
        bred=any(
            e.kind == EventKind.CANDIDATE_GENERATED
            and e.payload.get("package") == str(pid)
            and is_round(e.payload.get("round"))
            for e in events
        ),
        recommended=recommended_for_shadow(events, pid),
    )
    timing = PromotionTiming(
        now=supply.clock.now(),
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
    supply: Supply,
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
    signer = supply_keys.release_signer(supply, key, EventKind.PROMOTED)
    pid = supply_packages.resolve(supply, ref)
    manifest = supply_packages.manifest(supply, pid)
    if manifest.capability != capability:
        raise PolicyError(
            f"package {pid.short} belongs to capability {manifest.capability!r}, not {capability!r}"
        )
    if manifest.kind is not Kind.MODEL:
        raise PolicyError(f"alias 'champion' takes models, and {pid.short} is a {manifest.kind}")
    with supply.ledger.reader() as r:
        require_intact(supply, r, pid)  # tampered: IntegrityError; revoked: PolicyError
    check_registered_model(supply, pid)  # the champion is served: it must answer the contract
    case = promotion_case(supply, capability, pid)
    facts = case.facts
    problems = promotion_problems(facts, case.timing, policy)
    if problems:
        raise PolicyError(
            f"cannot promote {pid.short}: " + "; ".join(p.message for p in problems),
            hint=_promotion_hint(capability, pid, problems),
        )
    old = None if facts.champion is None else Digest.parse(facts.champion)
    evidence = _release_evidence(supply, capability, pid, case.events)
    prev = aliases.alias(supply, capability, "previous")
    reason = f"promotion of {pid.short}"
    swaps: list[tuple[str, Digest, Digest | None]] = [("champion", pid, old)]
    if old is not None:
        swaps.insert(0, ("previous", old, prev))  # previous first: it takes the old champion
    with supply.ledger.transaction() as tx:  # one transaction: both moves and the event
        for alias, target, expected in swaps:
            append_move(
                supply,
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
            actor=supply.actor,
        )


def _release_evidence(
    supply: Supply, capability: str, pid: Digest, events: Iterable[Event]
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
                evidence_log(supply, capability, stream, runs[-1]).seal()
            )
    return out


def rollback(
    supply: Supply,
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
    signer = supply_keys.release_signer(supply, key, EventKind.ROLLED_BACK)
    t_detect = supply.clock.now()
    champion = aliases.alias(supply, capability, "champion")
    previous = aliases.alias(supply, capability, "previous")
    if champion is None or previous is None:
        raise NotFound(f"{capability} has no previous champion to return to")
    state = release_state(supply, capability)
    if champion == previous or state.last_change is not ChangeKind.PROMOTION:
        raise PolicyError(
            f"nothing to roll back for {capability}: no promotion since the last rollback "
            "(a rollback is reversed only by a new promotion)"
        )
    with supply.ledger.reader() as r:
        require_intact(supply, r, previous)
    with supply.ledger.transaction() as tx:
        append_move(
            supply,
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
    t_switch = supply.clock.now()
    if verify is not None:
        verify(previous)
    else:
        served = load_served(RegistryView(supply), previous)
        served.predict(served.warm_up_row)
    t_verified = supply.clock.now()
    recovery = Recovery(
        t_onset=t_detect,
        t_detect=t_detect,
        t_switch=max(t_switch, t_detect),
        t_verified=max(t_verified, t_switch, t_detect),
        detection_requests=0,
        exposed_requests=0,
        exposed_units=0,
    )
    return append_release_event(
        supply,
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

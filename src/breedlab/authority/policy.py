"""Who may make which change, and under which conditions (pure; DESIGN §13).

One table, :data:`RULES`: for every ledger event kind, the roles whose keys may sign it
and the condition the change must meet *at its seq*. The lab consults it before it
writes (so a refused change is refused early, with a hint) and
:mod:`breedlab.authority.replay` applies it to every event when it verifies the ledger,
so a write that went around the CLI is caught even when its hashes are perfect. A kind
missing from the table is refused: the policy fails closed.

The conditions read an :class:`AuthorityState` -- what the ledger says up to that seq
(packages, their signers and credited approvals, revocations, aliases, release state)
-- and the :class:`Facts` a shell derived from blobs for the one event (the verified
signers of an approval envelope, a package's manifest). Nothing here reads a file, the
database or the clock.

Rules of the table, in words:

- ``lab`` endorses and revokes keys, signs checkpoints and vouches for history;
- an approval is credited to the key that really signed its envelope, with that key's
  role from the trusted-key projection -- never to a keyid or role a row claims; the
  ``lab`` and ``factory`` keys do not approve; a cluster scope (parent approvals only)
  is the one its envelope states;
- ``factory`` (the lab's automation) records the challenger loop, and the serving
  controller's automatic canary verdicts; it may move ``shadow`` only to a package the
  viability controller recommended for shadow;
- a ``production`` key starts shadows and canaries, promotes and rolls back;
- ``champion`` and ``previous`` move only inside a promotion or a rollback, and a
  promotion needs the approvals the risk tier asks for, valid at that seq, the release
  gates passed (shadow, every canary stage, the controller's recommendation for a bred
  package) and a package that is neither revoked nor deny-listed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from breedlab.canonical import JsonValue
from breedlab.digest import Digest
from breedlab.ledger import Event, EventKind
from breedlab.registry.cluster_keys import recorded_scope
from breedlab.registry.manifest import RiskTier
from breedlab.release.promotion import (
    TIER_RANK,
    Approval,
    PromotionFacts,
    approval_problems,
    gate_problems,
)
from breedlab.release.state import ReleaseState
from breedlab.signing.keys import Role

__all__ = [
    "ANY",
    "APPROVERS",
    "RULES",
    "Approval",
    "AuthorityState",
    "EnvelopeFacts",
    "Facts",
    "PackageFacts",
    "PromotionFacts",
    "Rule",
    "Signer",
    "approval_problems",
    "authorize",
    "gate_problems",
    "is_round",
    "may",
]

APPROVERS = frozenset({Role.MODEL, Role.EVALUATION, Role.SECURITY, Role.PRODUCTION})
ANY = APPROVERS | {Role.LAB, Role.FACTORY}
_LAB = frozenset({Role.LAB})
_FACTORY = frozenset({Role.FACTORY})
_PRODUCTION = frozenset({Role.PRODUCTION})
#: Aliases that only a promotion or a rollback moves.
CHAMPION_ALIASES = ("champion", "previous")


@dataclass(frozen=True, slots=True, kw_only=True)
class Signer:
    """The key that signed an event, as the trusted-key projection knows it at that seq."""

    keyid: str
    name: str
    role: Role


@dataclass(frozen=True, slots=True, kw_only=True)
class PackageFacts:
    """What a package's manifest says that authorization needs."""

    id: str
    kind: str
    capability: str
    risk_tier: RiskTier


@dataclass(frozen=True, slots=True, kw_only=True)
class EnvelopeFacts:
    """A signature or approval envelope, verified by a shell against the keys trusted
    at the event's seq: who really signed it, and what it says."""

    signers: frozenset[str]  # key ids whose signatures verify
    package: str  # the package the statement is about ("" if it names another)
    predicate: Mapping[str, JsonValue] = field(default_factory=dict)
    problem: str | None = None  # why it does not verify at all
    # The blob is missing or corrupt: a storage fault (``verify --all`` names it), not
    # evidence about who approved; the signed event still says who did.
    unreadable: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Facts:
    """Per-event facts from blobs (a shell fills what the event's kind needs)."""

    package: PackageFacts | None = None
    envelope: EnvelopeFacts | None = None


def is_round(round_id: object) -> bool:
    """Whether a ``candidate.generated`` came from a breeding round (``round-N``), whose
    candidates the viability controller judges -- not from a lab's bootstrap."""
    return isinstance(round_id, str) and round_id.startswith("round-")


# ------------------------------------------------------------------------ the state


@dataclass(slots=True)
class AuthorityState:
    """What the ledger says up to some seq, as far as authorization needs it."""

    packages: dict[str, PackageFacts] = field(default_factory=dict)
    signers: dict[str, set[str]] = field(default_factory=dict)  # package -> key ids
    approvals: dict[str, list[Approval]] = field(default_factory=dict)
    revoked: set[str] = field(default_factory=set)
    revoked_keys: dict[str, int] = field(default_factory=dict)  # key id -> seq
    aliases: dict[tuple[str, str], str] = field(default_factory=dict)
    release: dict[str, ReleaseState] = field(default_factory=dict)
    bred: set[str] = field(default_factory=set)
    recommended: set[str] = field(default_factory=set)
    tiers: dict[str, RiskTier] = field(default_factory=dict)  # capability -> contract tier

    def release_of(self, capability: str) -> ReleaseState:
        return self.release.get(capability) or ReleaseState(capability=capability)

    def valid_approvals(self, package: str, purpose: str) -> tuple[Approval, ...]:
        """Credited ``purpose`` approvals by keys not revoked (at this point)."""
        return tuple(
            a
            for a in self.approvals.get(package, ())
            if a.purpose == purpose and a.keyid not in self.revoked_keys
        )

    def promotion(self, package: str, capability: str) -> PromotionFacts:
        facts = self.packages.get(package)
        contract = self.tiers.get(capability, RiskTier.LOW)
        tier = contract
        if facts is not None and TIER_RANK[facts.risk_tier] > TIER_RANK[tier]:
            tier = facts.risk_tier
        return PromotionFacts(
            package=package,
            tier=tier,
            approvals=self.valid_approvals(package, "release"),
            proposers=frozenset(self.signers.get(package, ())),
            revoked=package in self.revoked,
            champion=self.aliases.get((capability, "champion")),
            release=self.release_of(capability),
            bred=package in self.bred,
            recommended=package in self.recommended,
        )

    def apply(self, ev: Event, signer: Signer | None, facts: Facts) -> None:
        """Fold one event in (after it was authorized, or vouched for as history)."""
        p = ev.payload
        if ev.kind == EventKind.PACKAGE_REGISTERED and facts.package is not None:
            self.packages[facts.package.id] = facts.package
            if facts.package.kind == "capability":
                self.tiers[facts.package.capability] = facts.package.risk_tier
        elif ev.kind == EventKind.PACKAGE_SIGNED:
            self.signers.setdefault(str(p["package"]), set()).add(str(p["keyid"]))
        elif ev.kind == EventKind.PACKAGE_APPROVED:
            credited = _credited(ev, signer, facts)
            if credited is not None:
                self.approvals.setdefault(str(p["package"]), []).append(credited)
        elif ev.kind == EventKind.PACKAGE_REVOKED:
            self.revoked.add(str(p["package"]))
        elif ev.kind == EventKind.KEY_REVOKED:
            self.revoked_keys[str(p["keyid"])] = ev.seq
        elif ev.kind == EventKind.ALIAS_MOVED:
            self.aliases[(str(p["capability"]), str(p["alias"]))] = str(p["new"])
        elif ev.kind == EventKind.CANDIDATE_GENERATED and is_round(p.get("round")):
            self.bred.add(str(p.get("package", ev.subject)))
        elif ev.kind == EventKind.DECISION_MADE:
            outcomes = p.get("outcomes") or {}
            if isinstance(outcomes, dict):
                self.recommended.update(k for k, v in outcomes.items() if v == "shadow")
        if ev.kind.startswith("release."):
            self.release[ev.subject] = self.release_of(ev.subject).step(ev)
        elif ev.kind == EventKind.CANDIDATE_ARCHIVED:
            pkg = self.packages.get(str(p.get("package", "")))
            if pkg is not None:
                self.release[pkg.capability] = self.release_of(pkg.capability).step(ev)


def _credited(ev: Event, signer: Signer | None, facts: Facts) -> Approval | None:
    """The approval as credited to its envelope's real signer (None: not creditable)."""
    env = facts.envelope
    if signer is None or env is None:
        return None
    if signer.keyid not in env.signers and not (env.unreadable and ev.sig is not None):
        return None
    return Approval(
        keyid=signer.keyid, role=signer.role, purpose=str(ev.payload["purpose"]), seq=ev.seq
    )


# ------------------------------------------------------------------------ conditions

Check = Callable[[AuthorityState, Event, Signer, Facts], str | None]


def _same_key(_: AuthorityState, ev: Event, signer: Signer, __: Facts) -> str | None:
    """The event speaks for the key that signed it (payload ``keyid``)."""
    if ev.payload.get("keyid") != signer.keyid:
        return f"it names key {str(ev.payload.get('keyid'))[:12]} but is signed by {signer.name!r}"
    return None


def _endorser(_: AuthorityState, ev: Event, signer: Signer, __: Facts) -> str | None:
    if ev.payload.get("endorser") != signer.keyid:
        named = str(ev.payload.get("endorser"))[:12]
        return f"it names endorser {named} but is signed by {signer.name!r}"
    return None


def _envelope(state: AuthorityState, ev: Event, signer: Signer, facts: Facts) -> str | None:
    """A signature envelope signed by the event's signer, about the named package."""
    p = ev.payload
    if (why := _same_key(state, ev, signer, facts)) is not None:
        return why
    if str(p.get("package")) not in state.packages:
        return f"package {str(p.get('package'))[:19]} is not registered"
    env = facts.envelope
    if env is not None and env.unreadable:
        return None  # a storage fault, reported by verify; the event's signature stands
    if env is None or env.problem is not None:
        return f"its envelope does not verify: {env.problem if env else 'missing'}"
    if signer.keyid not in env.signers:
        return f"its envelope is not signed by {signer.name!r}, the key the event names"
    if env.package != p.get("package"):
        return "its envelope is about a different package"
    return None


def _approval(state: AuthorityState, ev: Event, signer: Signer, facts: Facts) -> str | None:
    if (why := _envelope(state, ev, signer, facts)) is not None:
        return why
    p = ev.payload
    assert facts.envelope is not None
    if p.get("role") != signer.role.value:
        return f"it claims role {p.get('role')!r}, but {signer.name!r} has role '{signer.role}'"
    if str(p["package"]) in state.revoked:
        return f"package {str(p['package'])[:19]} is revoked"
    scope = recorded_scope(p)
    if scope is None:
        return "its cluster scope is not a sorted list of distinct cluster keys"
    if scope and p.get("purpose") != "parent":
        return "only a parent approval is scoped to failure clusters"
    if facts.envelope.unreadable:
        return None
    predicate = facts.envelope.predicate
    if predicate.get("role") != signer.role.value:
        return (
            f"its envelope claims role {predicate.get('role')!r}, not the signer's '{signer.role}'"
        )
    if predicate.get("purpose") != p.get("purpose"):
        return "its envelope names a different purpose"
    if recorded_scope(predicate) != scope:
        return "its envelope names a different cluster scope"
    return None


def _alias(state: AuthorityState, ev: Event, signer: Signer, _: Facts) -> str | None:
    p = ev.payload
    cap, alias, new = str(p["capability"]), str(p["alias"]), str(p["new"])
    if str(new) in state.revoked:
        return f"package {new[:19]} is revoked"
    if alias in CHAMPION_ALIASES:
        return _champion_move(state, ev, signer)
    if alias == "canary" and signer.role is not Role.PRODUCTION:
        return "only a 'production' key starts a canary"
    if alias == "shadow":
        if signer.role is Role.FACTORY and new not in state.recommended:
            return (
                f"the factory key moves {cap}@shadow only to a package the viability "
                "controller recommended for shadow"
            )
        if signer.role not in (Role.FACTORY, Role.PRODUCTION):
            return "only a 'production' key (or the factory, for a recommendation) moves shadow"
    return None


def _champion_move(state: AuthorityState, ev: Event, signer: Signer) -> str | None:
    p = ev.payload
    cap, alias, new = str(p["capability"]), str(p["alias"]), str(p["new"])
    via = p.get("via")
    if signer.role is not Role.PRODUCTION:
        return f"{cap}@{alias} moves only by a 'production' key's promote or rollback"
    champion = state.aliases.get((cap, "champion"))
    previous = state.aliases.get((cap, "previous"))
    if via == "promote" and alias == "previous":
        if new != champion:
            return f"a promotion moves {cap}@previous only to the champion it replaces"
        return None
    if via == "promote" and alias == "champion":
        problems = gate_problems(state.promotion(new, cap))
        return "; ".join(p.message for p in problems) or None
    if via == "rollback" and alias == "champion":
        release = state.release_of(cap)
        if new != previous:
            return f"a rollback returns {cap}@champion only to {cap}@previous"
        if release.last_change is None or release.last_change.value != "promotion":
            return f"nothing to roll back for {cap}: no promotion since the last rollback"
        return None
    return (
        f"{cap}@{alias} moved outside a promotion or rollback (via {via!r}); "
        "use 'breedlab promote' or 'breedlab rollback'"
    )


def _not_denied(state: AuthorityState, ev: Event, _: Signer, __: Facts) -> str | None:
    pkg = str(ev.payload.get("package", ""))
    if pkg and Digest.parse(pkg) in state.release_of(ev.subject).deny:
        return f"package {pkg[:19]} is on the deny-list of retired ids"
    if pkg in state.revoked:
        return f"package {pkg[:19]} is revoked"
    return None


def _promoted(state: AuthorityState, ev: Event, _: Signer, __: Facts) -> str | None:
    p = ev.payload
    cap = ev.subject
    if state.aliases.get((cap, "champion")) != p.get("package"):
        return (
            f"it records a promotion to {str(p.get('package'))[:19]}, which is not {cap}@champion"
        )
    return None


def _rolled_back(state: AuthorityState, ev: Event, _: Signer, __: Facts) -> str | None:
    if state.aliases.get((ev.subject, "champion")) != ev.payload.get("package"):
        return f"it records a rollback to a package that is not {ev.subject}@champion"
    return None


@dataclass(frozen=True, slots=True)
class Rule:
    """Who may sign one kind of event, and what must hold when they do."""

    roles: frozenset[Role]
    check: Check | None = None


#: DESIGN §13: the one table. Kinds not listed are refused.
RULES: Mapping[str, Rule] = {
    # keys and the ledger itself: the lab key
    EventKind.KEY_ADDED: Rule(_LAB, _endorser),
    EventKind.KEY_ENDORSED: Rule(_LAB, _endorser),
    EventKind.KEY_REVOKED: Rule(_LAB),
    EventKind.CHECKPOINT_SIGNED: Rule(_LAB, _same_key),
    EventKind.LEDGER_ATTESTED: Rule(_LAB, _same_key),
    # the registry
    EventKind.PACKAGE_REGISTERED: Rule(ANY),
    EventKind.PACKAGE_SIGNED: Rule(ANY, _envelope),
    EventKind.PACKAGE_APPROVED: Rule(APPROVERS, _approval),
    EventKind.PACKAGE_REVOKED: Rule(frozenset({Role.LAB, Role.SECURITY, Role.PRODUCTION})),
    EventKind.ALIAS_MOVED: Rule(ANY, _alias),
    # the challenger loop: the lab's automation
    EventKind.FAILURES_MINED: Rule(_FACTORY),
    EventKind.ROUND_STARTED: Rule(_FACTORY),
    EventKind.CANDIDATE_GENERATED: Rule(_FACTORY),
    EventKind.CANDIDATE_FAILED: Rule(_FACTORY),
    EventKind.CANDIDATE_SCORED: Rule(_FACTORY),
    EventKind.CANDIDATE_ARCHIVED: Rule(_FACTORY),
    EventKind.DECISION_MADE: Rule(_FACTORY),
    EventKind.ROUND_FINISHED: Rule(_FACTORY),
    EventKind.PACKAGE_REPRODUCED: Rule(_FACTORY),
    # release controls: people start and promote; the serving controller judges canaries
    EventKind.SHADOW_STARTED: Rule(_PRODUCTION, _not_denied),
    EventKind.SHADOW_STOPPED: Rule(_PRODUCTION | _FACTORY),
    EventKind.CANARY_STARTED: Rule(_PRODUCTION, _not_denied),
    EventKind.CANARY_STAGE: Rule(_FACTORY),
    EventKind.CANARY_PASSED: Rule(_FACTORY),
    EventKind.CANARY_ABORTED: Rule(_FACTORY),
    EventKind.CANARY_STOPPED: Rule(_PRODUCTION | _FACTORY),
    EventKind.EVIDENCE_SEALED: Rule(_PRODUCTION | _FACTORY),
    EventKind.PROMOTED: Rule(_PRODUCTION, _promoted),
    EventKind.ROLLED_BACK: Rule(_PRODUCTION, _rolled_back),
}


def may(role: Role, kind: str) -> bool:
    """Whether a key of ``role`` may sign events of ``kind`` at all."""
    rule = RULES.get(kind)
    return rule is not None and role in rule.roles


def authorize(state: AuthorityState, ev: Event, signer: Signer, facts: Facts) -> str | None:
    """Why ``ev``, signed by ``signer``, is not allowed at this point (None: allowed)."""
    rule = RULES.get(ev.kind)
    if rule is None:
        return f"{ev.kind!r} is not a kind of change the authority table knows"
    if signer.role not in rule.roles:
        allowed = ", ".join(sorted(r.value for r in rule.roles))
        return f"{signer.name!r} has role '{signer.role}'; {ev.kind} needs {allowed}"
    return None if rule.check is None else rule.check(state, ev, signer, facts)

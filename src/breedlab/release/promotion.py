"""Whether a package may become champion: every unmet condition, from facts (pure).

Owns the promotion rule in one place (DESIGN §5, §10, §11): the conditions the authority
table replays at a champion move's seq (:func:`gate_problems`: signed, not revoked or
retired, shadow and every canary stage passed, recommended if bred, the approvals the
risk tier asks for) and the time rules the release controller adds when it promotes now
(:func:`promotion_problems`: not the champion already, the champion's minimum dwell, no
flip-flop freeze, and for automation the dead band). Each unmet condition is a
:class:`Problem` with a kind, so callers choose what to say next by type, not by
matching text. Leaves gathering the facts to the ledger's readers (the lab, the
authority replayer) and acting on the answer to the controllers.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from breedlab.digest import Digest
from breedlab.errors import InvalidRequest
from breedlab.registry.manifest import RiskTier
from breedlab.release.oscillation import (
    BandVerdict,
    ChampionChange,
    ChangeKind,
    FlipFlopRule,
    MinimumDwell,
    flip_flop,
)
from breedlab.release.state import DEFAULT_BAKING, MAX_BAKING, ReleaseState
from breedlab.signing.keys import Role

__all__ = [
    "MAX_BAKING",
    "TIER_RANK",
    "Approval",
    "Problem",
    "PromotionFacts",
    "PromotionPolicy",
    "PromotionTiming",
    "Unmet",
    "approval_problems",
    "gate_problems",
    "promotion_problems",
]

#: Risk tiers in order: a higher rank asks for more approvals.
TIER_RANK = {RiskTier.LOW: 0, RiskTier.MEDIUM: 1, RiskTier.HIGH: 2}


class Unmet(enum.Enum):
    """One condition of a promotion that does not hold."""

    CHAMPION_ALREADY = "champion already"
    UNSIGNED = "unsigned"
    REVOKED = "revoked"
    RETIRED = "retired"
    NO_SHADOW = "no shadow"
    NO_CANARY = "no canary"
    NOT_RECOMMENDED = "not recommended"
    NO_APPROVAL = "no approval"
    NO_INDEPENDENT_APPROVAL = "no independent approval"
    NO_SECURITY_APPROVAL = "no security approval"
    DWELL = "dwell"
    FROZEN = "frozen"
    DEAD_BAND = "dead band"


@dataclass(frozen=True, slots=True)
class Problem:
    """An unmet condition and the sentence that explains it."""

    unmet: Unmet
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True, slots=True, kw_only=True)
class Approval:
    """An approval credited to the key that signed its envelope."""

    keyid: str
    role: Role
    purpose: str
    seq: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PromotionFacts:
    """Everything a promotion of ``package`` is judged on, at one point of the ledger."""

    package: str
    tier: RiskTier
    approvals: tuple[Approval, ...]  # release approvals, valid at that point
    proposers: frozenset[str]  # key ids that signed the package
    revoked: bool
    champion: str | None  # the capability's champion at that point
    release: ReleaseState
    bred: bool  # made by an operator in a round
    recommended: bool  # the viability controller recommended it for shadow

    @property
    def first(self) -> bool:
        """No champion yet: nothing to shadow or canary against."""
        return self.champion is None


@dataclass(frozen=True, slots=True, kw_only=True)
class PromotionTiming:
    """When a promotion would happen, and the moments its time rules compare with."""

    now: datetime
    champion_since: datetime | None  # when the champion alias last moved
    approved_at: datetime | None  # the latest valid release approval of the package
    requests: int = 0  # requests the champion served (the lab does not count them)


def _dwell() -> MinimumDwell:
    return MinimumDwell(min_time=timedelta(seconds=30), min_requests=0)


def _flip_rule() -> FlipFlopRule:
    return FlipFlopRule(max_changes=3, window=timedelta(hours=24))


@dataclass(frozen=True, slots=True, kw_only=True)
class PromotionPolicy:
    """DESIGN §10 oscillation controls applied at promotion, and the baking period the
    promotion records. ``min_requests`` of the dwell is not enforced by the lab: it does
    not count served requests across processes."""

    dwell: MinimumDwell = field(default_factory=_dwell)
    flip_flop: FlipFlopRule = field(default_factory=_flip_rule)
    baking: timedelta = DEFAULT_BAKING

    def __post_init__(self) -> None:
        if not timedelta(0) <= self.baking <= MAX_BAKING:
            raise InvalidRequest(
                f"a baking period is not negative and at most {MAX_BAKING.days} days "
                f"(got {self.baking})"
            )


def approval_problems(
    tier: RiskTier, approvals: tuple[Approval, ...], proposers: frozenset[str], package: str
) -> list[Problem]:
    """What the risk tier still needs, given valid release approvals (DESIGN §5; seed,
    stage 7: high-risk changes always require independent review)."""
    short = Digest.parse(package).short
    problems = []
    if not approvals:
        problems.append(Problem(Unmet.NO_APPROVAL, f"no valid release approval of {short}"))
    rank = TIER_RANK[tier]
    if rank >= 1 and not [a for a in approvals if a.keyid not in proposers]:
        problems.append(
            Problem(
                Unmet.NO_INDEPENDENT_APPROVAL,
                f"risk tier {tier.value}: a release approval from a key other than the "
                "proposer's (the package's signer) is required",
            )
        )
    if rank >= 2 and not [a for a in approvals if a.role is Role.SECURITY]:
        problems.append(
            Problem(
                Unmet.NO_SECURITY_APPROVAL,
                f"risk tier {tier.value}: a release approval by a 'security' key is required",
            )
        )
    return problems


def gate_problems(f: PromotionFacts) -> list[Problem]:
    """Why ``f.package`` may not become champion by the rules the authority table replays
    at the move's seq (empty: it may)."""
    pid = Digest.parse(f.package)
    problems = []
    if not f.proposers:  # seed, stage 0: one signed champion package
        problems.append(
            Problem(
                Unmet.UNSIGNED,
                f"{pid.short} is signed by nobody; a champion is signed ('breedlab sign')",
            )
        )
    if f.revoked:
        problems.append(Problem(Unmet.REVOKED, f"{pid.short} is revoked"))
    if pid in f.release.deny:
        problems.append(Problem(Unmet.RETIRED, f"{pid.short} is on the deny-list of retired ids"))
    if not f.first:
        if pid not in f.release.shadowed:
            problems.append(Problem(Unmet.NO_SHADOW, f"{pid.short} never went through shadow"))
        if pid not in f.release.passed:
            problems.append(
                Problem(Unmet.NO_CANARY, f"{pid.short} has not passed every canary stage")
            )
    if f.bred and not f.recommended:
        # seed, stage 5: the controller recommends; a bred candidate it did not
        # recommend for shadow is not released, whatever its canary showed.
        problems.append(
            Problem(
                Unmet.NOT_RECOMMENDED,
                f"the viability controller never recommended {pid.short} for shadow",
            )
        )
    problems.extend(approval_problems(f.tier, f.approvals, f.proposers, f.package))
    return problems


def promotion_problems(
    f: PromotionFacts,
    timing: PromotionTiming,
    policy: PromotionPolicy,
    *,
    band: BandVerdict | None = None,
) -> list[Problem]:
    """Every reason ``f.package`` may not become champion at ``timing.now`` (empty: it
    may): the replayed gates, the champion's dwell, the flip-flop freeze (lifted by an
    approval recorded after it) and, for an automatic promotion, the dead band on the
    primary metric (``band``; a person's promotion passes ``None``). Fails closed."""
    pid = Digest.parse(f.package)
    problems: list[Problem] = []
    if f.champion == f.package:
        problems.append(Problem(Unmet.CHAMPION_ALREADY, f"{pid.short} is the champion already"))
    problems.extend(gate_problems(f))
    if band is not None and band is not BandVerdict.PROMOTE:
        problems.append(
            Problem(
                Unmet.DEAD_BAND,
                f"dead band says {band.value}: the lower bound does not clear +eps_up",
            )
        )
    if timing.champion_since is not None:
        since = min(timing.champion_since, timing.now)
        dwell = policy.dwell.check(champion_since=since, now=timing.now, requests=timing.requests)
        if not dwell.satisfied:
            problems.append(Problem(Unmet.DWELL, dwell.explanation))
    history = (
        *f.release.changes,
        ChampionChange(at=timing.now, champion=pid, kind=ChangeKind.PROMOTION),
    )
    frozen = flip_flop(
        [c for i, c in enumerate(history) if i == 0 or c.champion != history[i - 1].champion],
        rule=policy.flip_flop,
        approved_at=timing.approved_at,
    )
    lifted = timing.approved_at is not None and frozen.since and timing.approved_at > frozen.since
    if frozen.frozen and not lifted:
        problems.extend(Problem(Unmet.FROZEN, reason) for reason in frozen.reasons)
    return problems

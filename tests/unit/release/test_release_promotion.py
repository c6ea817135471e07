"""The promotion rule (pure): every unmet condition of a promotion, by kind (DESIGN §5,
§10, §11). Hand-built facts; each case names the one condition it breaks."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from breedlab.digest import Digest
from breedlab.errors import InvalidRequest
from breedlab.ledger import Event
from breedlab.registry.manifest import RiskTier
from breedlab.release import (
    MAX_BAKING,
    Approval,
    BandVerdict,
    ChampionChange,
    ChangeKind,
    MinimumDwell,
    Problem,
    PromotionFacts,
    PromotionPolicy,
    PromotionTiming,
    Unmet,
    gate_problems,
    promotion_problems,
)
from breedlab.release.promotion import approval_problems
from breedlab.release.state import ReleaseState
from breedlab.signing.keys import Role

PKG = "sha256:" + "1" * 64
OLD = "sha256:" + "2" * 64
T0 = datetime(2026, 5, 1, tzinfo=UTC)
POLICY = PromotionPolicy()  # dwell 30 s, at most 3 changes in 24 h


def _approvals(*pairs: tuple[str, Role]) -> tuple[Approval, ...]:
    return tuple(Approval(keyid=k, role=r, purpose="release", seq=1) for k, r in pairs)


def _facts(**changes: object) -> PromotionFacts:
    base: dict[str, object] = {
        "package": PKG,
        "tier": RiskTier.LOW,
        "approvals": _approvals(("pat", Role.PRODUCTION)),
        "proposers": frozenset({"alice"}),
        "revoked": False,
        "champion": OLD,
        "release": ReleaseState(
            capability="digits",
            shadowed=frozenset({Digest.parse(PKG)}),
            passed=frozenset({Digest.parse(PKG)}),
        ),
        "bred": False,
        "recommended": False,
    }
    return PromotionFacts(**{**base, **changes})  # type: ignore[arg-type]


def _timing(**changes: object) -> PromotionTiming:
    base: dict[str, object] = {
        "now": T0 + timedelta(days=2),
        "champion_since": T0,
        "approved_at": None,
    }
    return PromotionTiming(**{**base, **changes})  # type: ignore[arg-type]


def kinds(problems: list[Problem]) -> list[Unmet]:
    return [p.unmet for p in problems]


@pytest.mark.parametrize(
    ("tier", "approvals", "expected"),
    [
        (RiskTier.LOW, (), [Unmet.NO_APPROVAL]),
        (RiskTier.LOW, (("alice", Role.MODEL),), []),  # the proposer may, at low risk
        (RiskTier.MEDIUM, (("alice", Role.MODEL),), [Unmet.NO_INDEPENDENT_APPROVAL]),
        (RiskTier.MEDIUM, (("pat", Role.PRODUCTION),), []),
        (RiskTier.HIGH, (("pat", Role.PRODUCTION),), [Unmet.NO_SECURITY_APPROVAL]),
        (RiskTier.HIGH, (("alice", Role.MODEL), ("sam", Role.SECURITY)), []),
        (RiskTier.HIGH, (("alice", Role.SECURITY),), [Unmet.NO_INDEPENDENT_APPROVAL]),
        (
            RiskTier.HIGH,
            (),
            [Unmet.NO_APPROVAL, Unmet.NO_INDEPENDENT_APPROVAL, Unmet.NO_SECURITY_APPROVAL],
        ),
    ],
)
def test_approvals_by_risk_tier(
    tier: RiskTier, approvals: tuple[tuple[str, Role], ...], expected: list[Unmet]
) -> None:
    problems = approval_problems(tier, _approvals(*approvals), frozenset({"alice"}), PKG)
    assert kinds(problems) == expected


def test_the_gates_need_shadow_canary_and_a_recommendation_for_a_bred_candidate() -> None:
    assert gate_problems(_facts()) == []
    assert kinds(gate_problems(_facts(proposers=frozenset()))) == [Unmet.UNSIGNED]
    bare = ReleaseState(capability="digits")
    assert kinds(gate_problems(_facts(release=bare))) == [Unmet.NO_SHADOW, Unmet.NO_CANARY]
    assert gate_problems(_facts(release=bare, champion=None)) == []  # a first: nothing to compare
    assert kinds(gate_problems(_facts(bred=True))) == [Unmet.NOT_RECOMMENDED]
    assert gate_problems(_facts(bred=True, recommended=True)) == []
    assert kinds(gate_problems(_facts(revoked=True))) == [Unmet.REVOKED]
    retire = Event(
        seq=10,
        at="2026-01-01T00:00:00.000000Z",
        actor="t",
        kind="candidate.archived",
        subject="digits",
        payload={"package": PKG, "outcome": "retire"},
        prev_hash="0" * 64,
        hash="1" * 64,
    )
    denied = ReleaseState(capability="digits").step(retire)
    assert kinds(gate_problems(_facts(champion=None, release=denied))) == [Unmet.RETIRED]


def test_every_unmet_condition_is_named_not_only_the_first() -> None:
    facts = _facts(
        proposers=frozenset(),
        revoked=True,
        release=ReleaseState(capability="digits"),
        bred=True,
        approvals=(),
    )
    assert kinds(gate_problems(facts)) == [
        Unmet.UNSIGNED,
        Unmet.REVOKED,
        Unmet.NO_SHADOW,
        Unmet.NO_CANARY,
        Unmet.NOT_RECOMMENDED,
        Unmet.NO_APPROVAL,
    ]


def test_a_promotion_now_adds_the_time_rules() -> None:
    assert promotion_problems(_facts(), _timing(), POLICY) == []
    # The package is the champion already.
    already = promotion_problems(_facts(champion=PKG), _timing(), POLICY)
    assert kinds(already) == [Unmet.CHAMPION_ALREADY]
    # The champion moved 10 s ago; the dwell is 30 s.
    early = _timing(now=T0 + timedelta(seconds=10))
    problems = promotion_problems(_facts(), early, POLICY)
    assert kinds(problems) == [Unmet.DWELL]
    assert "0:00:20 more" in problems[0].message  # 30 s - 10 s, by hand
    # A zero dwell lets it through; a champion that moved in the future (clock skew)
    # counts as moved now.
    no_dwell = replace(POLICY, dwell=MinimumDwell(min_time=timedelta(0), min_requests=0))
    assert promotion_problems(_facts(), early, no_dwell) == []
    skewed = _timing(champion_since=T0 + timedelta(days=3))
    assert kinds(promotion_problems(_facts(), skewed, POLICY)) == [Unmet.DWELL]


def _history(*pairs: tuple[float, str]) -> tuple[ChampionChange, ...]:
    return tuple(
        ChampionChange(
            at=T0 + timedelta(hours=h), champion=Digest.parse(c), kind=ChangeKind.PROMOTION
        )
        for h, c in pairs
    )


def test_a_flip_flop_freezes_promotion_until_an_approval_after_it() -> None:
    # Four champions in four hours, and now a fifth: more than 3 changes within 24 h.
    a, b, c = ("sha256:" + d * 64 for d in "abc")
    release = replace(_facts().release, changes=_history((0, a), (1, b), (2, c), (3, OLD)))
    now = _timing(now=T0 + timedelta(hours=4), champion_since=T0 + timedelta(hours=3))
    frozen = promotion_problems(_facts(release=release), now, POLICY)
    assert set(kinds(frozen)) == {Unmet.FROZEN}
    assert any("5 champion changes" in p.message for p in frozen)
    # An approval recorded before most of the changes leaves more than 3 after it; one
    # recorded after the freeze began (at the 4th change) lifts it.
    early = replace(now, approved_at=T0 + timedelta(minutes=30))
    assert set(kinds(promotion_problems(_facts(release=release), early, POLICY))) == {Unmet.FROZEN}
    lifted = replace(now, approved_at=T0 + timedelta(hours=3, minutes=30))
    assert promotion_problems(_facts(release=release), lifted, POLICY) == []


def test_automation_also_needs_the_dead_band_to_say_promote() -> None:
    assert promotion_problems(_facts(), _timing(), POLICY, band=BandVerdict.PROMOTE) == []
    for band in (BandVerdict.HOLD, BandVerdict.DEMOTE):
        problems = promotion_problems(_facts(), _timing(), POLICY, band=band)
        assert kinds(problems) == [Unmet.DEAD_BAND]
        assert band.value in problems[0].message
    # Everything at once: each blocker named.
    problems = promotion_problems(
        _facts(champion=PKG, revoked=True),
        _timing(now=T0 + timedelta(seconds=1)),
        POLICY,
        band=BandVerdict.HOLD,
    )
    assert kinds(problems) == [
        Unmet.CHAMPION_ALREADY,
        Unmet.REVOKED,
        Unmet.DEAD_BAND,
        Unmet.DWELL,
    ]


def test_the_baking_period_is_bounded() -> None:
    assert timedelta(days=365) == MAX_BAKING
    PromotionPolicy(baking=MAX_BAKING)
    for bad in (timedelta(seconds=-1), MAX_BAKING + timedelta(seconds=1)):
        with pytest.raises(InvalidRequest, match="baking period"):
            PromotionPolicy(baking=bad)

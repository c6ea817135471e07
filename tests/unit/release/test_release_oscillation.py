"""Oscillation controls (DESIGN §10; notes §6): dead band, dwell, deny-list, flip-flops."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from breedlab.digest import Digest
from breedlab.errors import InvalidRequest, PolicyError
from breedlab.release.oscillation import (
    BandVerdict,
    ChampionChange,
    ChangeKind,
    DeadBand,
    DenyList,
    FlipFlopRule,
    FlipFlopStatus,
    MinimumDwell,
    flip_flop,
)

T0 = datetime(2026, 5, 1, tzinfo=UTC)
A, B, C, D = (Digest.of(name.encode()) for name in "ABCD")
DAY = timedelta(days=1)
RULE = FlipFlopRule(max_changes=3, window=timedelta(days=7))


def promoted(day: float, champion: Digest) -> ChampionChange:
    return ChampionChange(at=T0 + day * DAY, champion=champion, kind=ChangeKind.PROMOTION)


def rolled_back(day: float, champion: Digest) -> ChampionChange:
    return ChampionChange(at=T0 + day * DAY, champion=champion, kind=ChangeKind.ROLLBACK)


# ------------------------------------------------------------------ dead band


def test_the_dead_band_promotes_only_above_eps_up_and_demotes_only_below_eps_down() -> None:
    band = DeadBand(eps_up=0.02, eps_down=0.01)
    assert band.decide(0.021, 0.05) is BandVerdict.PROMOTE
    assert band.decide(0.02, 0.05) is BandVerdict.HOLD  # on the edge is not above it
    assert band.decide(-0.03, 0.03) is BandVerdict.HOLD
    assert band.decide(-0.05, -0.011) is BandVerdict.DEMOTE
    assert band.decide(-0.05, -0.01) is BandVerdict.HOLD


@given(
    low=st.floats(min_value=-1, max_value=1),
    width=st.floats(min_value=0, max_value=1),
    up=st.floats(min_value=0, max_value=0.5),
    down=st.floats(min_value=0, max_value=0.5),
)
def test_the_dead_band_never_promotes_and_demotes_on_the_same_interval(
    low: float, width: float, up: float, down: float
) -> None:
    verdict = DeadBand(eps_up=up, eps_down=down).decide(low, low + width)
    if verdict is BandVerdict.PROMOTE:
        assert low > up
    elif verdict is BandVerdict.DEMOTE:
        assert low + width < -down
    else:
        assert low <= up and low + width >= -down


def test_dead_band_margins_below_twice_the_aa_noise_are_refused() -> None:
    assert DeadBand(eps_up=0.02, eps_down=0.02, sigma_aa=0.01).eps_up == 0.02
    with pytest.raises(InvalidRequest):
        DeadBand(eps_up=0.02, eps_down=0.015, sigma_aa=0.01)
    with pytest.raises(InvalidRequest):
        DeadBand(eps_up=-0.01, eps_down=0.01)
    with pytest.raises(InvalidRequest):
        DeadBand(eps_up=0.01, eps_down=0.01).decide(0.2, 0.1)


# ---------------------------------------------------------------------- dwell


def test_a_new_champion_must_dwell_both_long_enough_and_busy_enough() -> None:
    dwell = MinimumDwell(min_time=timedelta(hours=24), min_requests=10_000)
    early = dwell.check(champion_since=T0, now=T0 + timedelta(hours=6), requests=50_000)
    assert not early.satisfied and early.remaining_time == timedelta(hours=18)
    assert early.remaining_requests == 0
    quiet = dwell.check(champion_since=T0, now=T0 + 2 * DAY, requests=9_000)
    assert not quiet.satisfied and quiet.remaining_requests == 1_000
    assert "1000 more requests" in quiet.explanation
    done = dwell.check(champion_since=T0, now=T0 + DAY, requests=10_000)
    assert done.satisfied and done.remaining_time == timedelta(0)


def test_dwell_refuses_naive_or_reversed_times() -> None:
    dwell = MinimumDwell(min_time=DAY, min_requests=1)
    with pytest.raises(InvalidRequest):
        dwell.check(champion_since=datetime(2026, 5, 1), now=T0, requests=1)
    with pytest.raises(InvalidRequest):
        dwell.check(champion_since=T0, now=T0 - DAY, requests=1)


# ------------------------------------------------------------------ deny-list


def test_a_retired_id_is_refused_and_a_new_artifact_is_not() -> None:
    deny = DenyList().with_retired(B)
    assert B in deny and C not in deny
    with pytest.raises(PolicyError, match="new artifact"):
        deny.check(B)
    deny.check(C)
    assert DenyList.of([B, C]).retired == frozenset({B, C})


def test_an_id_spelled_differently_is_still_the_same_retired_id() -> None:
    deny = DenyList.of([Digest.parse(str(B))])
    assert Digest.parse(B.hex) in deny
    with pytest.raises(InvalidRequest):
        Digest.parse(str(B).upper())  # no second spelling gets past the deny-list


# ------------------------------------------------------------------ flip-flop


def test_a_steady_champion_history_does_not_freeze_automation() -> None:
    history = [promoted(0, A), promoted(10, B), promoted(20, C), rolled_back(21, B)]
    status = flip_flop(history, rule=RULE)
    assert status == FlipFlopStatus(frozen=False, since=None, reasons=())


def test_more_than_m_changes_in_the_window_freeze_automation() -> None:
    history = [promoted(0, A), promoted(1, B), promoted(2, C), promoted(3, D)]
    assert not flip_flop(history[:3], rule=RULE).frozen
    status = flip_flop(history, rule=RULE)
    assert status.frozen and status.since == T0 + 3 * DAY
    assert "4 champion changes within 7 days" in status.reasons[0]
    # The same four changes spread beyond the window do not.
    spread = [promoted(0, A), promoted(3, B), promoted(6, C), promoted(7.5, D)]
    assert not flip_flop(spread, rule=RULE).frozen


def test_a_promotion_back_to_an_earlier_champion_freezes_automation() -> None:
    history = [promoted(0, A), promoted(30, B), promoted(60, A)]
    status = flip_flop(history, rule=RULE)
    assert status.frozen and status.since == T0 + 60 * DAY
    assert "A→B→A" in status.reasons[0]


def test_a_rollback_to_the_previous_champion_is_not_a_flip_flop() -> None:
    history = [promoted(0, A), promoted(30, B), rolled_back(31, A)]
    assert not flip_flop(history, rule=RULE).frozen


def test_the_freeze_holds_until_a_human_approval_is_recorded_after_it() -> None:
    history = [promoted(0, A), promoted(1, B), promoted(2, A)]
    assert flip_flop(history, rule=RULE).frozen
    # Time passing does not thaw it: only an approval does.
    assert flip_flop(history, rule=RULE, approved_at=T0 + 1.5 * DAY).frozen
    assert not flip_flop(history, rule=RULE, approved_at=T0 + 2 * DAY).frozen
    # A new return after the approval freezes again.
    again = [*history, promoted(40, B)]
    status = flip_flop(again, rule=RULE, approved_at=T0 + 2 * DAY)
    assert status.frozen and status.since == T0 + 40 * DAY


def test_an_approval_starts_a_fresh_change_budget() -> None:
    history = [promoted(0, A), promoted(1, B), promoted(2, C), promoted(3, D)]
    approved = T0 + 3.5 * DAY
    assert not flip_flop(history, rule=RULE, approved_at=approved).frozen
    busy = [*history, rolled_back(4, C)]
    assert not flip_flop(busy, rule=RULE, approved_at=approved).frozen


def test_a_history_out_of_order_or_without_a_change_is_refused() -> None:
    with pytest.raises(InvalidRequest):
        flip_flop([promoted(2, A), promoted(1, B)], rule=RULE)
    with pytest.raises(InvalidRequest):
        flip_flop([promoted(1, A), promoted(2, A)], rule=RULE)
    with pytest.raises(InvalidRequest):
        FlipFlopRule(max_changes=0, window=DAY)
    with pytest.raises(InvalidRequest):
        ChampionChange(at=datetime(2026, 1, 1), champion=A, kind=ChangeKind.PROMOTION)

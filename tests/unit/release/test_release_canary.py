"""One canary stage's guardrails (seed, stage 3: canary abort is automatic), the shadow
gate, and the ramp `canary start --percent` builds: seeded simulations and properties."""

from __future__ import annotations

import random
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from breedlab.errors import InvalidRequest
from breedlab.release import (
    CanaryObservation,
    CanaryPolicy,
    CanaryStage,
    Cohort,
    MsprtConfig,
    ShadowGate,
    ShadowPair,
    SprtConfig,
    Verdict,
    new_salt,
    ramp_from,
    summarise_shadow,
)

LABELS = [str(i) for i in range(10)]


def _obs(
    rng: random.Random, *, fail: float, wrong: float, champion_wrong: float
) -> CanaryObservation:
    truth = rng.choice(LABELS)
    other = LABELS[(LABELS.index(truth) + 1) % 10]
    champion = other if rng.random() < champion_wrong else truth
    failed = rng.random() < fail
    canary = None if failed else (other if rng.random() < wrong else truth)
    return CanaryObservation(
        failed=failed,
        canary_label=canary,
        champion_label=champion,
        canary_latency_s=rng.uniform(0.9e-4, 1.1e-4),
        champion_latency_s=rng.uniform(0.9e-4, 1.1e-4),
        truth=truth,
    )


def _run(
    policy: CanaryPolicy, rng: random.Random, n: int, **rates: float
) -> tuple[Verdict, int, tuple[str, ...]]:
    stage = CanaryStage.start(policy, at=0.0)
    for i in range(n):
        stage = stage.observe(_obs(rng, **rates), at=float(i))
        if stage.verdict is Verdict.ABORT:
            return Verdict.ABORT, i + 1, stage.aborted_by()
        if stage.error.verdict is Verdict.PASS and policy.wrong.pass_margin == -1.0:
            break  # the SPRT accepted H0: a stopped test stays stopped
    return stage.verdict, n, ()


def test_the_sprt_false_abort_rate_stays_under_alpha_at_the_acceptable_error_rate() -> None:
    rng = random.Random(7)
    # Only the SPRT can decide here; stop each run once it has (a latched verdict).
    quiet = MsprtConfig(sigma2=1.0, tau2=0.01, abort_margin=1.0, n_min=10**6, pass_margin=-1.0)
    policy = CanaryPolicy(wrong=quiet, disagreement=quiet, latency=quiet, stage_min=10**6)
    runs = 400
    aborts = sum(
        _run(policy, rng, 2000, fail=0.01, wrong=0.0, champion_wrong=0.0)[0] is Verdict.ABORT
        for _ in range(runs)
    )
    assert aborts / runs < policy.error.alpha


def test_the_msprt_false_abort_rate_stays_under_alpha_when_canary_equals_champion() -> None:
    rng = random.Random(11)
    # No margin: abort as soon as the confidence sequence excludes "no difference".
    config = MsprtConfig(sigma2=2 * 0.1 * 0.9, tau2=0.05**2, alpha=0.05, n_min=20)
    policy = CanaryPolicy(
        error=SprtConfig(p_ok=0.4, p_bad=0.5, n_min=10**6),
        wrong=config,
        disagreement=MsprtConfig(sigma2=1.0, tau2=0.01, abort_margin=1.0, n_min=10**6),
        stage_min=10**6,
    )
    runs = 300
    aborted = [_run(policy, rng, 400, fail=0.0, wrong=0.1, champion_wrong=0.1) for _ in range(runs)]
    rate = sum(v is Verdict.ABORT for v, _, _ in aborted) / runs
    assert rate < config.alpha


def test_a_five_percent_error_canary_is_aborted_within_a_median_of_a_hundred_requests() -> None:
    rng = random.Random(3)
    policy = CanaryPolicy(stage_min=10**6)
    results = [
        _run(policy, rng, 2000, fail=0.05, wrong=0.0, champion_wrong=0.0) for _ in range(200)
    ]
    aborted = [n for v, n, by in results if v is Verdict.ABORT and "error" in by]
    assert len(aborted) / len(results) > 0.9
    assert statistics.median(aborted) <= 100


def test_a_broken_canary_is_aborted_at_the_minimum_samples_by_wrong_answers_and_disagreement() -> (
    None
):
    verdict, n, by = _run(
        CanaryPolicy(), random.Random(1), 500, fail=0.0, wrong=0.9, champion_wrong=0.05
    )
    assert verdict is Verdict.ABORT
    assert n == 20  # the monitors' minimum samples
    assert set(by) == {"wrong", "disagreement"}


def test_a_healthy_stage_passes_after_its_minimum_requests() -> None:
    stage = CanaryStage.start(CanaryPolicy(stage_min=150), at=0.0)
    rng = random.Random(5)
    verdicts = []
    for i in range(200):
        stage = stage.observe(_obs(rng, fail=0.0, wrong=0.03, champion_wrong=0.03), at=float(i))
        verdicts.append(stage.verdict)
    assert Verdict.ABORT not in verdicts
    assert verdicts[148] is Verdict.CONTINUE and verdicts[149] is Verdict.PASS


def test_a_verdict_latches_once_the_stage_aborted() -> None:
    rng = random.Random(2)
    stage = CanaryStage.start(CanaryPolicy(), at=0.0)
    for i in range(40):
        stage = stage.observe(_obs(rng, fail=0.0, wrong=1.0, champion_wrong=0.0), at=float(i))
    assert stage.verdict is Verdict.ABORT
    n = stage.requests
    again = stage.observe(_obs(rng, fail=0.0, wrong=0.0, champion_wrong=0.0), at=99.0)
    assert again.verdict is Verdict.ABORT and again.requests == n


def test_an_observation_round_trips_through_its_record() -> None:
    obs = _obs(random.Random(0), fail=0.5, wrong=0.5, champion_wrong=0.5)
    assert CanaryObservation.from_record(obs.to_record()) == obs


def test_a_failed_canary_has_no_label_and_latencies_are_positive() -> None:
    with pytest.raises(InvalidRequest):
        CanaryObservation(
            failed=True,
            canary_label="1",
            champion_label="1",
            canary_latency_s=1e-3,
            champion_latency_s=1e-3,
        )
    with pytest.raises(InvalidRequest):
        CanaryObservation(
            failed=False,
            canary_label="1",
            champion_label="1",
            canary_latency_s=0.0,
            champion_latency_s=1e-3,
        )


@settings(deadline=None, max_examples=200)
@given(
    salt=st.binary(min_size=16, max_size=16).map(new_salt),
    unit=st.text(min_size=1, max_size=30),
    percent=st.floats(min_value=0.01, max_value=100.0, allow_nan=False),
)
def test_a_unit_in_a_canary_started_at_any_percent_stays_in_it_at_every_later_stage(
    salt: str, unit: str, percent: float
) -> None:
    ramp = ramp_from(percent)
    cohort = Cohort(salt=salt, ramp=ramp)
    seen_in = False
    while True:
        member = cohort.contains(unit)
        assert member == cohort.contains(unit)  # sticky: same answer every time
        assert member or not seen_in  # monotone: never leaves once in
        seen_in = seen_in or member
        if ramp.next_stage(cohort.stage) is None:
            break
        cohort = cohort.advanced()


def test_the_ramp_from_a_percent_continues_with_the_default_stages_above_it() -> None:
    assert ramp_from(None).stages == (0.01, 0.05, 0.25, 0.50)
    assert ramp_from(10).stages == (0.10, 0.25, 0.50)
    assert ramp_from(50).stages == (0.50,)
    assert ramp_from(100).stages == (1.0,)
    with pytest.raises(InvalidRequest):
        ramp_from(0)


def _pairs(agree: int, disagree: int, *, shadow_slow: float = 1.0) -> list[ShadowPair]:
    out = []
    for i in range(agree + disagree):
        out.append(
            ShadowPair(
                primary="1",
                shadow="1" if i < agree else "2",
                primary_latency_s=1e-3,
                shadow_latency_s=1e-3 * shadow_slow,
            )
        )
    return out


def test_the_shadow_gate_passes_an_agreeing_challenger_and_names_every_blocker_otherwise() -> None:
    gate = ShadowGate(min_pairs=50)
    assert gate.check(summarise_shadow(_pairs(99, 1), seed=0, resamples=50)).passed
    few = gate.check(summarise_shadow(_pairs(10, 0), seed=0, resamples=50))
    assert not few.passed and any("answered pairs" in r for r in few.reasons)
    bad = gate.check(summarise_shadow(_pairs(20, 80, shadow_slow=10.0), seed=0, resamples=50))
    assert not bad.passed
    assert any("agreement" in r for r in bad.reasons)
    assert any("p50 latency" in r for r in bad.reasons)
    empty = gate.check(summarise_shadow([], seed=0, resamples=50))
    assert not empty.passed  # fail closed: no data is no pass


def test_a_canary_without_traffic_for_ten_minutes_is_aborted_by_the_no_data_rule() -> None:
    rng = random.Random(4)
    stage = CanaryStage.start(CanaryPolicy(), at=0.0)
    stage = stage.observe(_obs(rng, fail=0.0, wrong=0.0, champion_wrong=0.0), at=1.0)
    assert stage.tick(at=500.0).verdict is Verdict.CONTINUE
    silent = stage.tick(at=602.0)
    assert silent.verdict is Verdict.ABORT and silent.aborted_by() == ("error",)
    assert "no request observed for 600 s" in silent.statuses()["error"].explanation

"""breedlab.viability.gates, policy and evidence: one metric's verdict and its inputs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from breedlab.errors import InvalidRequest
from breedlab.viability import (
    AggregateValue,
    Direction,
    Evidence,
    Group,
    MetricEvidence,
    MetricKind,
    MetricSpec,
    PairedBinary,
    PairedContinuous,
    Policy,
    Role,
    Verdict,
    judge,
    settle_primary,
)

PRIMARY = MetricSpec(
    name="accuracy",
    group=Group.TASK,
    direction=Direction.HIGHER,
    role=Role.PRIMARY,
    kind=MetricKind.BINARY,
    margin=0.01,
)


def _policy(*extra: MetricSpec, **overrides: object) -> Policy:
    values: dict[str, object] = {
        "metrics": (PRIMARY, *extra),
        "epsilon_min": 0.01,
        "sigma_aa": 0.0,
        "seed": 1,
        "bootstrap_samples": 2000,
    }
    values.update(overrides)
    return Policy(**values)  # type: ignore[arg-type]


def _spec(**fields: object) -> MetricSpec:
    values: dict[str, object] = {
        "name": "m",
        "group": Group.CALIBRATION,
        "direction": Direction.HIGHER,
        "role": Role.GUARDRAIL,
        "kind": MetricKind.BINARY,
        "margin": 0.02,
    }
    values.update(fields)
    return MetricSpec(**values)  # type: ignore[arg-type]


def _binary(n: int, b: int, c: int) -> PairedBinary:
    """n items: champion right on the first n//2 + ... arranged to give exactly b and c."""
    champion = np.zeros(n, dtype=bool)
    candidate = np.zeros(n, dtype=bool)
    champion[:b] = True  # champion right, candidate wrong
    candidate[b : b + c] = True  # champion wrong, candidate right
    champion[b + c : b + c + (n - b - c) // 2] = True  # concordant right
    candidate[b + c : b + c + (n - b - c) // 2] = True
    return PairedBinary(champion=champion, candidate=candidate)


def test_binary_counts_follow_the_design_convention() -> None:
    data = _binary(100, 7, 3)
    assert data.discordant() == (7, 3)
    result = judge(_spec(), data, _policy())
    assert result.delta == pytest.approx((3 - 7) / 100)
    assert result.inputs is not None
    assert result.inputs.to_record()["b"] == 7
    assert result.inputs.to_record()["c"] == 3


@pytest.mark.parametrize(
    ("b", "c", "margin", "verdict"),
    [
        (10, 10, 0.01, Verdict.PASS),  # Δ 0, bounds about ±0.0074: inside a 1 pt margin
        (10, 10, 0.005, Verdict.INCONCLUSIVE),  # straddles a half-point margin
        (120, 10, 0.02, Verdict.WORSE),  # Δ −0.11: the whole interval past −0.02
        (5, 150, 0.02, Verdict.BETTER),  # Δ +0.145: lower bound above +0.02
    ],
)
def test_a_binary_guardrail_gets_the_verdict_its_bounds_imply(
    b: int, c: int, margin: float, verdict: Verdict
) -> None:
    result = judge(_spec(margin=margin), _binary(1000, b, c), _policy())
    assert result.verdict is verdict
    assert result.reason.startswith("Δ ")


def test_for_lower_is_better_metrics_a_drop_is_an_improvement() -> None:
    rng = np.random.default_rng(0)
    champion = rng.gamma(2.0, 0.2, size=500)
    data = PairedContinuous(champion=champion, candidate=champion * 0.7)
    lower_better = judge(
        _spec(kind=MetricKind.CONTINUOUS, direction=Direction.LOWER), data, _policy()
    )
    higher_better = judge(
        _spec(kind=MetricKind.CONTINUOUS, direction=Direction.HIGHER), data, _policy()
    )
    assert lower_better.delta is not None and lower_better.delta < 0
    assert lower_better.gain is not None and lower_better.gain > 0
    assert lower_better.verdict is Verdict.BETTER
    assert higher_better.verdict is Verdict.WORSE
    assert "upper bound below" in lower_better.reason


def test_a_continuous_metric_records_its_seed_samples_and_data_digest() -> None:
    champion = np.linspace(0.0, 1.0, 200)
    data = PairedContinuous(champion=champion, candidate=champion + 0.001)
    record = judge(_spec(kind=MetricKind.CONTINUOUS), data, _policy(seed=99)).to_record()
    inputs = record["inputs"]
    assert inputs["seed"] == 99
    assert inputs["samples"] == 2000
    assert inputs["data_sha256"] == data.digest()
    assert isinstance(record["delta"], str)


@pytest.mark.parametrize(
    ("direction", "candidate", "verdict"),
    [
        (Direction.LOWER, 10.5, Verdict.PASS),  # 5% slower inside a 10% margin
        (Direction.LOWER, 11.0, Verdict.PASS),  # exactly at the margin still passes
        (Direction.LOWER, 12.0, Verdict.WORSE),  # 20% slower
        (Direction.LOWER, 8.0, Verdict.BETTER),  # 20% cheaper
        (Direction.HIGHER, 8.0, Verdict.WORSE),  # throughput down 20%
        (Direction.HIGHER, 12.0, Verdict.BETTER),
    ],
)
def test_an_aggregate_is_judged_by_its_ratio_margin_without_an_interval(
    direction: Direction, candidate: float, verdict: Verdict
) -> None:
    spec = _spec(group=Group.RESOURCE, kind=MetricKind.AGGREGATE, direction=direction, margin=0.10)
    result = judge(spec, AggregateValue(champion=10.0, candidate=candidate), _policy())
    assert result.verdict is verdict
    assert result.lower is None and result.upper is None
    assert result.delta == pytest.approx(candidate / 10.0 - 1.0)


def test_a_hard_budget_with_margin_zero_passes_only_at_or_below_the_champion() -> None:
    spec = _spec(
        group=Group.RESOURCE,
        kind=MetricKind.AGGREGATE,
        direction=Direction.LOWER,
        margin=0.0,
        scale=0.5,
    )
    judged = [
        judge(spec, AggregateValue(champion=100.0, candidate=v), _policy()).verdict
        for v in (100.0, 100.5, 50.0)
    ]
    assert judged == [Verdict.PASS, Verdict.WORSE, Verdict.BETTER]


def test_any_zero_tolerance_failure_is_critical_even_if_the_champion_fails_too() -> None:
    spec = _spec(role=Role.ZERO_TOLERANCE, group=Group.SAFETY, margin=0.0)
    champion = np.ones(40, dtype=bool)
    champion[0] = False
    candidate = np.ones(40, dtype=bool)
    candidate[0] = False
    result = judge(spec, PairedBinary(champion=champion, candidate=candidate), _policy())
    assert result.verdict is Verdict.CRITICAL
    assert "failed 1 of 40" in result.reason
    clean = judge(spec, PairedBinary(champion=champion, candidate=np.ones(40, bool)), _policy())
    assert clean.verdict is Verdict.PASS


def test_a_zero_tolerance_set_of_violations_counts_true_as_failure() -> None:
    spec = _spec(
        role=Role.ZERO_TOLERANCE, group=Group.SAFETY, direction=Direction.LOWER, margin=0.0
    )
    violations = np.zeros(20, dtype=bool)
    assert judge(
        spec, PairedBinary(champion=violations, candidate=violations), _policy()
    ).verdict is (Verdict.PASS)
    violations_after = violations.copy()
    violations_after[3] = True
    result = judge(spec, PairedBinary(champion=violations, candidate=violations_after), _policy())
    assert result.verdict is Verdict.CRITICAL


def test_missing_evidence_and_too_few_pairs_are_no_data() -> None:
    assert judge(_spec(), None, _policy()).verdict is Verdict.NO_DATA
    few = judge(_spec(), _binary(10, 1, 1), _policy(min_pairs=30))
    assert few.verdict is Verdict.NO_DATA
    assert "only 10 paired items" in few.reason


def test_evidence_of_the_wrong_kind_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="binary"):
        judge(_spec(), AggregateValue(champion=1.0, candidate=1.0), _policy())


def test_the_primary_is_better_only_when_holm_says_so() -> None:
    policy = _policy()
    judged = judge(PRIMARY, _binary(1000, 5, 80), policy)
    assert judged.verdict is Verdict.PASS  # before the round-level test
    assert judged.p_superiority is not None and judged.p_superiority < 0.05
    better = settle_primary(judged, p_adjusted=0.049, policy=policy)
    held_back = settle_primary(judged, p_adjusted=0.051, policy=policy)
    assert better.verdict is Verdict.BETTER
    assert "clears ε +0.01" in better.reason
    assert held_back.verdict is Verdict.PASS
    assert "not shown superior" in held_back.reason
    assert "minimum detectable effect" in held_back.reason


def test_binary_superiority_needs_the_exact_mcnemar_test_as_well() -> None:
    policy = _policy()
    result = judge(PRIMARY, _binary(1000, 5, 80), policy)
    assert result.inputs is not None
    exact = result.inputs.to_record()["p_exact"]
    assert result.p_superiority is not None
    assert result.p_superiority >= float(str(exact))


def test_epsilon_is_the_larger_of_the_suite_minimum_and_twice_the_noise_floor() -> None:
    assert _policy(sigma_aa=0.001).epsilon_up == 0.01
    assert _policy(sigma_aa=0.02).epsilon_up == 0.04
    assert _policy(sigma_aa=0.02, epsilon_down_min=0.05).epsilon_down == 0.05


@pytest.mark.parametrize(
    "build",
    [
        lambda: _policy(metrics=(_spec(),)),  # no primary
        lambda: _policy(metrics=(PRIMARY, dataclasses.replace(PRIMARY, name="other"))),
        lambda: _policy(metrics=(PRIMARY, PRIMARY)),
        lambda: _policy(epsilon_min=0.0),
        lambda: _policy(alpha=0.5),
        lambda: _policy(bootstrap_samples=10),
        lambda: _spec(margin=-0.1),
        lambda: _spec(margin=0.0),  # a guardrail with no utility scale
        lambda: _spec(role=Role.PRIMARY, kind=MetricKind.AGGREGATE),
        lambda: _spec(role=Role.ZERO_TOLERANCE, kind=MetricKind.CONTINUOUS),
    ],
)
def test_impossible_policies_are_refused(build: object) -> None:
    with pytest.raises(InvalidRequest):
        build()  # type: ignore[operator]


@pytest.mark.parametrize(
    "build",
    [
        lambda: PairedBinary(champion=[True, False], candidate=[True]),
        lambda: PairedBinary(champion=[0, 2], candidate=[1, 1]),
        lambda: PairedContinuous(champion=[1.0, float("nan")], candidate=[1.0, 1.0]),
        lambda: AggregateValue(champion=0.0, candidate=1.0),
        lambda: Evidence(
            candidate_id="x",
            metrics=(
                MetricEvidence(metric="a", data=AggregateValue(champion=1.0, candidate=1.0)),
                MetricEvidence(metric="a", data=AggregateValue(champion=1.0, candidate=1.0)),
            ),
        ),
    ],
)
def test_malformed_evidence_is_refused(build: object) -> None:
    with pytest.raises(InvalidRequest):
        build()  # type: ignore[operator]


def test_evidence_arrays_are_frozen_copies() -> None:
    source = np.array([True, False, True])
    data = PairedBinary(champion=source, candidate=[1, 0, 0])
    source[0] = False
    assert bool(data.champion[0]) is True
    with pytest.raises(ValueError, match="read-only"):
        data.candidate[0] = True

"""breedlab.viability.decision, utility and demotion: outcomes, explanations, records."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import breedlab.viability as viability
from breedlab import canonical
from breedlab.errors import IntegrityError, InvalidRequest
from breedlab.viability import (
    AggregateValue,
    Confirmation,
    Decision,
    Direction,
    Evidence,
    Group,
    MetricEvidence,
    MetricKind,
    MetricSpec,
    Outcome,
    PairedBinary,
    PairedContinuous,
    Policy,
    Role,
    Verdict,
    Veto,
    VetoKind,
    assess,
    confirm,
    contender,
    decide,
    demotion,
)

FAST = settings(max_examples=50, deadline=None)

SPECS = (
    MetricSpec(
        name="accuracy",
        group=Group.TASK,
        direction=Direction.HIGHER,
        role=Role.PRIMARY,
        kind=MetricKind.BINARY,
        margin=0.02,
    ),
    MetricSpec(
        name="nll",
        group=Group.CALIBRATION,
        direction=Direction.LOWER,
        role=Role.GUARDRAIL,
        kind=MetricKind.CONTINUOUS,
        margin=0.05,
    ),
    MetricSpec(
        name="worst_case",
        group=Group.ROBUSTNESS,
        direction=Direction.HIGHER,
        role=Role.GUARDRAIL,
        kind=MetricKind.BINARY,
        margin=0.03,
    ),
    MetricSpec(
        name="critical_set",
        group=Group.SAFETY,
        direction=Direction.HIGHER,
        role=Role.ZERO_TOLERANCE,
        kind=MetricKind.BINARY,
    ),
    MetricSpec(
        name="p95_latency",
        group=Group.RESOURCE,
        direction=Direction.LOWER,
        role=Role.GUARDRAIL,
        kind=MetricKind.AGGREGATE,
        margin=0.10,
    ),
    MetricSpec(
        name="bytes",
        group=Group.RESOURCE,
        direction=Direction.LOWER,
        role=Role.GUARDRAIL,
        kind=MetricKind.AGGREGATE,
        margin=0.0,
        scale=0.5,
    ),
    MetricSpec(
        name="failure_cluster",
        group=Group.TASK,
        direction=Direction.HIGHER,
        role=Role.SLICE,
        kind=MetricKind.BINARY,
        margin=0.0,
    ),
)


def _policy(**overrides: object) -> Policy:
    values: dict[str, object] = {
        "metrics": SPECS,
        "epsilon_min": 0.01,
        "sigma_aa": 0.003,
        "seed": 20260101,
        "bootstrap_samples": 2000,
    }
    values.update(overrides)
    return Policy(**values)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True, kw_only=True)
class World:
    """The champion's per-item results on one split, simulated from a seed."""

    seed: int
    correct: np.ndarray
    nll: np.ndarray
    worst: np.ndarray
    cluster: np.ndarray
    safe: np.ndarray


def _world(seed: int, n: int = 800) -> World:
    rng = np.random.default_rng(seed)
    return World(
        seed=seed,
        correct=rng.random(n) < 0.8,
        nll=rng.gamma(2.0, 0.2, size=n),
        worst=rng.random(n) < 0.65,
        cluster=rng.random(200) < 0.4,
        safe=np.ones(60, dtype=bool),
    )


def _flip(base: np.ndarray, rng: np.random.Generator, fix: float, hurt: float) -> np.ndarray:
    """Fix a share of the champion's failures and break a share of its successes."""
    u = rng.random(base.size)
    out = base.copy()
    out[~base & (u < fix)] = True
    out[base & (u < hurt)] = False
    return out


def _candidate(
    world: World,
    cid: str,
    *,
    seed: int,
    fix: float = 0.0,
    hurt: float = 0.0,
    nll_scale: float = 1.0,
    latency: float = 20.0,
    size: float = 4e6,
    cluster_fix: float = 0.0,
    unsafe: int = 0,
    vetoes: tuple[Veto, ...] = (),
) -> Evidence:
    rng = np.random.default_rng(seed)
    safe = world.safe.copy()
    safe[:unsafe] = False
    pairs = {
        "accuracy": PairedBinary(
            champion=world.correct, candidate=_flip(world.correct, rng, fix, hurt)
        ),
        "nll": PairedContinuous(
            champion=world.nll,
            candidate=world.nll * nll_scale + rng.normal(0, 0.002, world.nll.size),
        ),
        "worst_case": PairedBinary(
            champion=world.worst, candidate=_flip(world.worst, rng, fix, hurt)
        ),
        "critical_set": PairedBinary(champion=world.safe, candidate=safe),
        "p95_latency": AggregateValue(champion=20.0, candidate=latency),
        "bytes": AggregateValue(champion=4e6, candidate=size),
        "failure_cluster": PairedBinary(
            champion=world.cluster, candidate=_flip(world.cluster, rng, cluster_fix, 0.0)
        ),
    }
    return Evidence(
        candidate_id=cid,
        metrics=tuple(MetricEvidence(metric=k, data=v) for k, v in pairs.items()),
        vetoes=vetoes,
    )


def _identical(world: World, cid: str = "twin") -> Evidence:
    """A candidate whose every output equals the champion's."""
    metrics = []
    for item in _candidate(world, cid, seed=0).metrics:
        data = item.data
        if not isinstance(data, AggregateValue):
            data = type(data)(champion=data.champion, candidate=data.champion)
        metrics.append(MetricEvidence(metric=item.metric, data=data))
    return Evidence(candidate_id=cid, metrics=tuple(metrics))


def _round(
    evidences: list[Evidence], policy: Policy, sealed: dict[str, Evidence] | None = None
) -> tuple[Decision, ...]:
    """The controller's sequence: assess, pick the contender, confirm it, decide."""
    assessments = assess(evidences, policy)
    best = contender(assessments, policy)
    confirmation = None
    if best is not None and sealed is not None and best.candidate_id in sealed:
        confirmation = confirm(sealed[best.candidate_id], policy)
    return decide(assessments, policy, confirmation=confirmation)


def _by_id(decisions: tuple[Decision, ...]) -> dict[str, Decision]:
    return {d.candidate_id: d for d in decisions}


# --- simulated candidates ---------------------------------------------------------------

DEV, SEALED = _world(1), _world(2)


def test_a_clearly_better_candidate_confirmed_on_the_sealed_split_goes_to_shadow() -> None:
    policy = _policy()
    better = _candidate(DEV, "better", seed=10, fix=0.5, hurt=0.01, nll_scale=0.9)
    sealed = _candidate(SEALED, "better", seed=11, fix=0.5, hurt=0.01, nll_scale=0.9)
    decision = _by_id(_round([better], policy, {"better": sealed}))["better"]
    assert decision.outcome is Outcome.SHADOW
    assert decision.results[0].verdict is Verdict.BETTER
    assert decision.confirmation is not None and decision.confirmation.confirmed
    assert any("sealed split" in r for r in decision.reasons)


def test_without_sealed_confirmation_the_best_candidate_is_only_archived() -> None:
    policy = _policy()
    better = _candidate(DEV, "better", seed=10, fix=0.5, hurt=0.01)
    decision = _by_id(_round([better], policy))["better"]
    assert decision.outcome is Outcome.ARCHIVE
    assert "not confirmed: no sealed-split evidence" in decision.reasons[0]


def test_a_winner_the_sealed_split_refutes_is_not_shadowed() -> None:
    policy = _policy()
    better = _candidate(DEV, "lucky", seed=10, fix=0.5, hurt=0.01)
    sealed_same = _candidate(SEALED, "lucky", seed=12, fix=0.02, hurt=0.02)
    decision = _by_id(_round([better], policy, {"lucky": sealed_same}))["lucky"]
    assert decision.outcome is Outcome.ARCHIVE
    assert decision.confirmation is not None and not decision.confirmation.confirmed
    assert "not superior on the sealed split" in decision.reasons[0]


def test_a_clearly_worse_candidate_is_retired_with_the_metrics_that_harmed() -> None:
    policy = _policy()
    worse = _candidate(DEV, "worse", seed=20, fix=0.0, hurt=0.2, nll_scale=1.3)
    decision = _by_id(_round([worse], policy))["worse"]
    assert decision.outcome is Outcome.RETIRE
    assert any(r.startswith("accuracy clearly worse") for r in decision.reasons)
    assert any(r.startswith("nll clearly worse") for r in decision.reasons)


def test_a_cheaper_candidate_at_non_inferior_quality_is_archived() -> None:
    policy = _policy()
    cheaper = _candidate(DEV, "int8", seed=30, fix=0.01, hurt=0.002, latency=12.0, size=1e6)
    decision = _by_id(_round([cheaper], policy))["int8"]
    assert decision.outcome is Outcome.ARCHIVE
    assert any(r.startswith("cheaper on bytes") for r in decision.reasons)
    assert any(r.startswith("cheaper on p95_latency") for r in decision.reasons)


def test_a_candidate_better_only_on_a_slice_is_archived_as_a_possible_specialist() -> None:
    policy = _policy()
    specialist = _candidate(DEV, "adapter", seed=40, fix=0.0, hurt=0.0, cluster_fix=0.6)
    decision = _by_id(_round([specialist], policy))["adapter"]
    assert decision.outcome is Outcome.ARCHIVE
    assert decision.reasons[0].startswith("better on slice failure_cluster")


def test_a_superior_candidate_with_an_inconclusive_guardrail_is_a_no_op_naming_it() -> None:
    policy = _policy()
    at_the_margin = 1.0 + 0.05 / float(DEV.nll.mean())  # NLL up by about the margin
    candidate = _candidate(DEV, "sharp", seed=10, fix=0.5, hurt=0.01, nll_scale=at_the_margin)
    decision = _by_id(_round([candidate], policy))["sharp"]
    assert decision.results[0].verdict is Verdict.BETTER
    assert decision.results[1].verdict is Verdict.INCONCLUSIVE
    assert decision.outcome is Outcome.NO_OP
    assert any(r.startswith("nll inconclusive") for r in decision.reasons)


def test_a_lower_is_better_continuous_primary_must_drop_beyond_epsilon() -> None:
    primary = MetricSpec(
        name="nll",
        group=Group.CALIBRATION,
        direction=Direction.LOWER,
        role=Role.PRIMARY,
        kind=MetricKind.CONTINUOUS,
        margin=0.05,
    )
    policy = Policy(metrics=(primary,), epsilon_min=0.02, sigma_aa=0.0, seed=3)

    def evidence(cid: str, shift: float) -> Evidence:
        data = PairedContinuous(champion=DEV.nll, candidate=DEV.nll + shift)
        return Evidence(candidate_id=cid, metrics=(MetricEvidence(metric="nll", data=data),))

    drop, small, same = assess(
        [evidence("drop", -0.05), evidence("small", -0.01), evidence("same", 0.0)], policy
    )
    assert drop.primary.verdict is Verdict.BETTER
    assert "upper bound clears ε -0.02" in drop.primary.reason
    assert small.primary.verdict is Verdict.PASS
    assert same.primary.verdict is Verdict.PASS
    assert same.primary.p_superiority == 1.0


def test_a_candidate_identical_to_the_champion_is_a_no_op_with_its_mde() -> None:
    policy = _policy()
    decision = _by_id(_round([_identical(DEV)], policy, {"twin": _identical(SEALED)}))["twin"]
    assert decision.outcome is Outcome.NO_OP
    assert decision.utility == 0.0
    assert decision.mde is not None and decision.mde > 0
    assert "minimum detectable effect" in decision.reasons[0]


def test_a_zero_tolerance_failure_retires_an_otherwise_superior_candidate() -> None:
    policy = _policy()
    unsafe = _candidate(DEV, "unsafe", seed=10, fix=0.5, hurt=0.01, unsafe=1)
    decision = _by_id(_round([unsafe], policy))["unsafe"]
    assert decision.outcome is Outcome.RETIRE
    assert decision.reasons == (
        "critical_set critical: candidate failed 1 of 60 zero-tolerance items (champion 0): "
        "any failure vetoes",
    )


def test_an_integrity_or_budget_veto_retires_a_candidate() -> None:
    policy = _policy()
    veto = Veto(kind=VetoKind.BUDGET, reason="evaluated with batch size 64, suite says 1")
    vetoed = _candidate(DEV, "vetoed", seed=10, fix=0.5, hurt=0.01, vetoes=(veto,))
    decision = _by_id(_round([vetoed], policy))["vetoed"]
    assert decision.outcome is Outcome.RETIRE
    assert decision.reasons[0] == "veto (budget): evaluated with batch size 64, suite says 1"


def test_when_half_the_metrics_have_no_data_the_outcome_is_an_inconclusive_no_op() -> None:
    policy = _policy()
    full = _candidate(DEV, "sparse", seed=10, fix=0.5, hurt=0.01)
    sparse = Evidence(candidate_id="sparse", metrics=full.metrics[:3])
    decision = _by_id(_round([sparse], policy))["sparse"]
    assert decision.outcome is Outcome.NO_OP
    assert "4 of 7 metrics have no data" in decision.reasons[0]


def test_only_the_highest_utility_gate_passer_is_the_contender_and_the_rest_are_archived() -> None:
    policy = _policy()
    strong = _candidate(DEV, "strong", seed=10, fix=0.6, hurt=0.0, nll_scale=0.85)
    good = _candidate(DEV, "good", seed=11, fix=0.4, hurt=0.01)
    sealed = {"strong": _candidate(SEALED, "strong", seed=13, fix=0.6, hurt=0.0)}
    decisions = _by_id(_round([good, strong], policy, sealed))
    assert decisions["strong"].outcome is Outcome.SHADOW
    assert decisions["good"].outcome is Outcome.ARCHIVE
    assert "ranks below the contender strong" in decisions["good"].reasons[0]


def test_a_confirmation_for_a_candidate_other_than_the_contender_is_refused() -> None:
    policy = _policy()
    assessments = assess([_candidate(DEV, "better", seed=10, fix=0.5, hurt=0.01)], policy)
    other = confirm(_candidate(SEALED, "other", seed=11, fix=0.5, hurt=0.01), policy)
    with pytest.raises(InvalidRequest, match="contender better"):
        decide(assessments, policy, confirmation=other)


def test_candidates_compared_against_different_champion_outputs_are_refused() -> None:
    policy = _policy()
    first = _candidate(DEV, "a", seed=10)
    second = _candidate(_world(99), "b", seed=11)
    with pytest.raises(IntegrityError, match="champion's per-item accuracy differs"):
        assess([first, second], policy)


def test_evidence_for_a_metric_the_suite_does_not_define_is_refused() -> None:
    extra = MetricEvidence(metric="bleu", data=AggregateValue(champion=1.0, candidate=1.0))
    base = _candidate(DEV, "a", seed=10)
    evidence = Evidence(candidate_id="a", metrics=(*base.metrics, extra))
    with pytest.raises(InvalidRequest, match="bleu"):
        assess([evidence], _policy())


def _champion_and_candidate(n: int, b: int, c: int) -> tuple[np.ndarray, np.ndarray]:
    champion = np.zeros(n, dtype=bool)
    candidate = np.zeros(n, dtype=bool)
    champion[:b] = True
    candidate[b : b + c] = True
    return champion, candidate


def test_holm_across_candidates_can_withhold_superiority_a_lone_candidate_would_get() -> None:
    primary = SPECS[0]
    policy = Policy(metrics=(primary,), epsilon_min=0.001, sigma_aa=0.0, seed=1)
    n = 2000
    champion, _ = _champion_and_candidate(n, 30, 0)

    def evidence(cid: str, c: int) -> Evidence:
        candidate = champion.copy()
        candidate[:15] = False  # b = 15
        candidate[1000 : 1000 + c] = True  # c wins among the champion's failures
        return Evidence(
            candidate_id=cid,
            metrics=(
                MetricEvidence(
                    metric="accuracy", data=PairedBinary(champion=champion, candidate=candidate)
                ),
            ),
        )

    alone = assess([evidence("a", 31)], policy)[0].primary
    assert alone.p_superiority is not None and 0.017 < alone.p_superiority < 0.05
    assert alone.verdict is Verdict.BETTER
    together = assess([evidence("a", 31), evidence("b", 31), evidence("c", 31)], policy)
    assert all(a.primary.verdict is not Verdict.BETTER for a in together)
    assert together[0].holm.candidate_ids == ("a", "b", "c")


# --- explanation and records --------------------------------------------------------------


def test_the_decision_record_is_canonical_json_and_explains_itself() -> None:
    policy = _policy()
    better = _candidate(DEV, "better", seed=10, fix=0.5, hurt=0.01)
    sealed = {"better": _candidate(SEALED, "better", seed=11, fix=0.5, hurt=0.01)}
    decision = _round([better], policy, sealed)[0]
    record = decision.to_record()
    data = canonical.encode(record)
    assert canonical.decode(data) == record
    metrics = {m["metric"]: m for m in record["assessment"]["metrics"]}
    accuracy = metrics["accuracy"]
    assert accuracy["inputs"]["b"] + accuracy["inputs"]["c"] > 0
    assert accuracy["inputs"]["n"] == DEV.correct.size
    assert metrics["nll"]["inputs"]["seed"] == policy.seed
    assert metrics["nll"]["margin"] == "0.05"
    assert record["policy"]["epsilon_up"] == repr(policy.epsilon_up)
    assert record["confirmation"]["split"] == "sealed"
    # Floats are stored so that they parse back to the very same numbers.
    assert float(record["assessment"]["decomposition"]["utility"]) == decision.utility


def test_rerunning_a_round_with_the_same_seed_gives_byte_identical_records() -> None:
    def run() -> list[bytes]:
        policy = _policy()
        evidences = [
            _candidate(DEV, "a", seed=10, fix=0.5, hurt=0.01, nll_scale=0.95),
            _candidate(DEV, "b", seed=20, fix=0.0, hurt=0.2),
            _candidate(DEV, "c", seed=30, fix=0.01, hurt=0.002, latency=12.0, size=1e6),
        ]
        sealed = {"a": _candidate(SEALED, "a", seed=11, fix=0.5, hurt=0.01)}
        return [canonical.encode(d.to_record()) for d in _round(evidences, policy, sealed)]

    assert run() == run()


def test_group_scores_count_passing_metrics_per_group() -> None:
    policy = _policy()
    decision = _round([_candidate(DEV, "int8", seed=30, latency=30.0)], policy)[0]
    groups = {g.group: g for g in decision.assessment.decomposition.groups}
    assert groups[Group.RESOURCE].with_data == 2
    assert groups[Group.RESOURCE].passed == 1  # bytes pass, 50% slower p95 does not
    assert groups[Group.RESOURCE].score == 50.0


# --- properties over arbitrary rounds -----------------------------------------------------


@st.composite
def rounds(draw: st.DrawFn) -> tuple[Policy, World, list[Evidence]]:
    policy = _policy(
        epsilon_min=draw(st.sampled_from([0.001, 0.005, 0.02])),
        sigma_aa=draw(st.sampled_from([0.0, 0.002, 0.01])),
        alpha=draw(st.sampled_from([0.01, 0.05, 0.2])),
        seed=draw(st.integers(0, 2**32)),
        bootstrap_samples=1000,
        min_pairs=draw(st.sampled_from([2, 30, 500])),
        utility_min=draw(st.sampled_from([-1.0, 0.0, 0.2])),
    )
    world = _world(draw(st.integers(0, 10_000)), n=draw(st.integers(20, 300)))
    evidences = []
    for i in range(draw(st.integers(1, 3))):
        evidences.append(
            _candidate(
                world,
                f"c{i}",
                seed=draw(st.integers(0, 10_000)),
                fix=draw(st.sampled_from([0.0, 0.05, 0.5, 0.9])),
                hurt=draw(st.sampled_from([0.0, 0.01, 0.2])),
                nll_scale=draw(st.sampled_from([0.8, 1.0, 1.2])),
                latency=draw(st.sampled_from([10.0, 20.0, 25.0])),
                size=draw(st.sampled_from([1e6, 4e6])),
                cluster_fix=draw(st.sampled_from([0.0, 0.5])),
                unsafe=draw(st.sampled_from([0, 0, 0, 1])),
            )
        )
    return policy, world, evidences


def _confirm_with_dev_evidence(evidences: list[Evidence]) -> dict[str, Evidence]:
    # The most permissive stand-in for a sealed split: the same evidence again.
    return {e.candidate_id: e for e in evidences}


@FAST
@given(rounds())
def test_a_candidate_identical_to_the_champion_is_never_promoted(
    drawn: tuple[Policy, World, list[Evidence]],
) -> None:
    policy, world, evidences = drawn
    twin = _identical(world)
    everyone = [*evidences, twin]
    decisions = _by_id(_round(everyone, policy, _confirm_with_dev_evidence(everyone)))
    assert decisions["twin"].outcome is not Outcome.SHADOW
    assert decisions["twin"].outcome is not Outcome.ARCHIVE
    assert decisions["twin"].results[0].verdict is not Verdict.BETTER
    assert not confirm(twin, policy).confirmed


@FAST
@given(rounds(), st.data())
def test_adding_a_veto_never_improves_an_outcome(
    drawn: tuple[Policy, World, list[Evidence]], data: st.DataObject
) -> None:
    policy, _, evidences = drawn
    sealed = _confirm_with_dev_evidence(evidences)
    before = _by_id(_round(evidences, policy, sealed))
    target = data.draw(st.sampled_from([e.candidate_id for e in evidences]))
    veto = Veto(kind=data.draw(st.sampled_from(list(VetoKind))), reason="found by the controller")
    vetoed = [e.with_vetoes((veto,)) if e.candidate_id == target else e for e in evidences]
    after = _by_id(_round(vetoed, policy, sealed))
    assert after[target].outcome.rank <= before[target].outcome.rank
    assert after[target].outcome is Outcome.RETIRE
    # The Holm family keeps vetoed candidates, so nobody else's evidence got weaker.
    for cid, decision in after.items():
        assert decision.assessment.holm == before[cid].assessment.holm


@FAST
@given(rounds())
def test_utility_terms_sum_exactly_to_the_utility_in_any_order(
    drawn: tuple[Policy, World, list[Evidence]],
) -> None:
    policy, _, evidences = drawn
    for decision in _round(evidences, policy):
        values = [t.value for t in decision.terms]
        assert math.fsum(values) == decision.utility
        random.Random(0).shuffle(values)
        assert math.fsum(values) == decision.utility
        assert sum(values) == pytest.approx(decision.utility, abs=1e-12)
        assert all(-1.0 <= t.normalised <= 1.0 for t in decision.terms)
        parsed = decision.to_record()["assessment"]["decomposition"]
        assert math.fsum(float(t["value"]) for t in parsed["terms"]) == float(parsed["utility"])
        for group in decision.assessment.decomposition.groups:
            weights = [t.weight for t in decision.terms if t.group is group.group]
            if weights:
                assert math.fsum(weights) == pytest.approx(group.weight)


@FAST
@given(rounds())
def test_every_outcome_is_explained_and_recorded_canonically(
    drawn: tuple[Policy, World, list[Evidence]],
) -> None:
    policy, _, evidences = drawn
    decisions = _round(evidences, policy, _confirm_with_dev_evidence(evidences))
    assert sum(d.outcome is Outcome.SHADOW for d in decisions) <= 1
    for decision in decisions:
        assert decision.reasons and all(r.strip() for r in decision.reasons)
        assert all(r.reason for r in decision.results)
        canonical.encode(decision.to_record())
        if decision.outcome is Outcome.SHADOW:
            assert isinstance(decision.confirmation, Confirmation)
            assert decision.confirmation.confirmed
            assert all(r.verdict.passing for r in decision.results if r.spec.role is not Role.SLICE)


# --- demotion (the ε_down half of the dead band) -----------------------------------------


def _incumbent(hurt: float, seed: int = 5) -> PairedBinary:
    rng = np.random.default_rng(seed)
    return PairedBinary(champion=DEV.correct, candidate=_flip(DEV.correct, rng, 0.0, hurt))


def test_an_incumbent_clearly_worse_than_its_reference_is_demoted() -> None:
    result = demotion(_incumbent(hurt=0.2), _policy())
    assert result.demote
    assert result.reason.startswith("demote: accuracy")


def test_an_incumbent_inside_the_dead_band_is_kept() -> None:
    policy = _policy(epsilon_min=0.01, epsilon_down_min=0.05)
    # About 1.2 points worse: significant, but not past −ε_down = −0.05.
    result = demotion(_incumbent(hurt=0.015), policy)
    assert result.result.upper is not None and result.result.upper < 0
    assert not result.demote
    assert result.epsilon_down == 0.05
    canonical.encode(result.to_record())


def test_an_incumbent_with_too_little_data_is_never_demoted() -> None:
    tiny = PairedBinary(champion=[True] * 5, candidate=[False] * 5)
    result = demotion(tiny, _policy())
    assert not result.demote
    assert result.reason.startswith("keep: only 5 paired items")


# --- the public surface ------------------------------------------------------------------


def test_the_public_surface_is_pinned() -> None:
    assert sorted(viability.__all__) == sorted(
        [
            "DECISION_SCHEMA",
            "AggregateInputs",
            "AggregateValue",
            "Assessment",
            "BinaryInputs",
            "Confirmation",
            "ContinuousInputs",
            "Decision",
            "Decomposition",
            "Demotion",
            "Direction",
            "Evidence",
            "Group",
            "GroupScore",
            "GroupWeights",
            "HolmFamily",
            "MetricData",
            "MetricEvidence",
            "MetricKind",
            "MetricResult",
            "MetricSpec",
            "Outcome",
            "PairedBinary",
            "PairedContinuous",
            "Policy",
            "Role",
            "UtilityTerm",
            "Verdict",
            "Veto",
            "VetoKind",
            "ZeroToleranceInputs",
            "assess",
            "confirm",
            "contender",
            "decide",
            "decompose",
            "demotion",
            "judge",
            "noise_floor",
            "settle_primary",
            # viability.round: a whole round's decision
            "Action",
            "Entrant",
            "RoundDecision",
            "RoundFacts",
            "Scored",
            "Unscored",
            "Usage",
            "aa_noise_floor",
            "budget_vetoes",
            "decide_round",
            "paired_evidence",
            "policy_from_suite",
        ]
    )
    assert all(hasattr(viability, name) for name in viability.__all__)


def test_outcomes_are_ordered_from_retire_to_shadow() -> None:
    ranks = [o.rank for o in (Outcome.RETIRE, Outcome.NO_OP, Outcome.ARCHIVE, Outcome.SHADOW)]
    assert ranks == sorted(ranks) and len(set(ranks)) == 4

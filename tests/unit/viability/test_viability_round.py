"""breedlab.viability.round: a round's decisions from hand-built evaluations.

Every expected outcome here is worked out by hand from DESIGN §10 (retire on a veto or
clear harm; shadow only for the one contender that passes every gate and is confirmed on
the sealed split; otherwise keep the champion), not read back from the code's parameters.
The suite: 200 dev and 200 sealed items; the champion gets items 0-149 right (accuracy
0.75), its NLL is 0.5 on every item, and it passes all 10 zero-tolerance items.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
import pytest
from numpy.typing import NDArray

from breedlab.canonical import JsonValue
from breedlab.registry.capability import Budget
from breedlab.viability import (
    Action,
    Entrant,
    GroupWeights,
    Outcome,
    RoundFacts,
    VetoKind,
    budget_vetoes,
    decide_round,
    policy_from_suite,
)

N = 200  # items per split
CHAMPION_RIGHT = 150
IDS = {name: "sha256:" + ch * 64 for name, ch in (("a", "a"), ("b", "b"), ("c", "c"))}

METRICS: tuple[dict[str, JsonValue], ...] = (
    {"name": "accuracy", "group": "task", "direction": "higher", "role": "primary",
     "kind": "binary", "margin": "0.02", "scale": "0.25"},
    {"name": "nll", "group": "calibration", "direction": "lower", "role": "guardrail",
     "kind": "continuous", "margin": "0.1", "scale": "0.1"},
    {"name": "critical", "group": "safety", "direction": "higher", "role": "zero_tolerance",
     "kind": "binary", "margin": "0", "scale": "1"},
)  # fmt: skip
POLICY: dict[str, JsonValue] = {
    "epsilon_min": "0.01",
    "alpha": "0.05",
    "bootstrap_samples": 2000,
    "min_pairs": 30,
}
BUDGET = Budget(latency_p95_ms=Decimal("10"), memory_mib=Decimal("64"), size_mib=Decimal("1"))


@dataclass(frozen=True)
class Resources:
    latency_p95_ms: float = 5.0
    size_bytes: int = 100_000
    peak_rss_kib: int = 32 * 1024


@dataclass(frozen=True)
class Scores:
    """A scorecard as the round reads it: per-item values per split, and resources."""

    right: dict[str, int]  # split -> items 0..right-1 are correct
    nll_shift: float = 0.0  # added to the champion's 0.5 on every item
    critical_failures: int = 0
    resources: Resources = field(default_factory=Resources)

    def per_item(self, metric: str, split: str) -> NDArray[np.generic] | float:
        if metric == "accuracy":
            return np.arange(N) < self.right[split]
        if metric == "nll":
            return np.full(N, 0.5 + self.nll_shift)
        if metric == "critical":
            return np.arange(10) >= self.critical_failures
        raise AssertionError(metric)


def scores(
    dev: int,
    sealed: int | None = None,
    *,
    nll_shift: float = 0.0,
    critical_failures: int = 0,
    resources: Resources | None = None,
) -> Scores:
    return Scores(
        right={"dev": dev, "sealed": dev if sealed is None else sealed},
        nll_shift=nll_shift,
        critical_failures=critical_failures,
        resources=resources or Resources(),
    )


CHAMPION = scores(CHAMPION_RIGHT)


def facts(*entrants: Entrant, champion: tuple[Scores, ...] = (CHAMPION,) * 3) -> RoundFacts:
    return RoundFacts(
        suite_metrics=METRICS,
        suite_policy=POLICY,
        suite_seed=7,
        budget=BUDGET,
        champion=champion,
        entrants=entrants,
    )


def entrant(
    name: str, s: Scores | None, *, failure: str | None = None, problems: tuple[str, ...] = ()
) -> Entrant:
    return Entrant(candidate_id=IDS[name], scores=s, failure=failure, problems=problems)


def test_a_clearly_better_candidate_confirmed_on_the_sealed_split_goes_to_shadow() -> None:
    # 40 more items right on both splits and none lost: Δ = 40/200 = 0.2 ≫ ε = 0.01.
    result = decide_round(facts(entrant("a", scores(190))))
    (decision,) = result.decisions
    assert decision.outcome is Outcome.SHADOW
    assert result.winner == IDS["a"] and result.action is Action.SHADOW
    assert result.archived == ()
    assert decision.confirmation is not None and decision.confirmation.confirmed
    # U = w_task · clip(0.2 / 0.25) + w_calibration · clip(0 / 0.1) = 0.2 · 0.8 + 0 = 0.16
    assert decision.utility == pytest.approx(0.16)
    assert result.sigma_aa == 0.0 and result.policy.epsilon_up == 0.01


def test_the_best_of_several_passing_candidates_wins_and_the_others_are_archived() -> None:
    # a: Δ = 0.2, U = 0.16; b: Δ = 0.1, U = 0.2 · 0.4 = 0.08. Both pass every gate.
    result = decide_round(facts(entrant("b", scores(170)), entrant("a", scores(190))))
    by_id = {d.candidate_id: d for d in result.decisions}
    assert [d.candidate_id for d in result.decisions] == [IDS["b"], IDS["a"]]  # entrants' order
    assert by_id[IDS["a"]].outcome is Outcome.SHADOW
    assert by_id[IDS["b"]].outcome is Outcome.ARCHIVE
    assert by_id[IDS["b"]].utility == pytest.approx(0.08)
    assert "ranks below the contender" in by_id[IDS["b"]].reasons[0]
    assert result.winner == IDS["a"]
    assert [d.candidate_id for d in result.archived] == [IDS["b"]]


def test_of_two_equal_candidates_the_smaller_id_wins_and_the_other_is_archived() -> None:
    # DESIGN §10 / decision.contender: ties in U go to the smallest candidate id.
    result = decide_round(facts(entrant("c", scores(190)), entrant("a", scores(190))))
    by_id = {d.candidate_id: d for d in result.decisions}
    assert result.winner == IDS["a"]
    assert by_id[IDS["c"]].outcome is Outcome.ARCHIVE
    assert by_id[IDS["c"]].utility == by_id[IDS["a"]].utility


def test_a_winner_over_the_latency_budget_is_vetoed_and_the_champion_stays() -> None:
    slow = scores(190, resources=Resources(latency_p95_ms=12.5))
    result = decide_round(facts(entrant("a", slow)))
    (decision,) = result.decisions
    assert decision.outcome is Outcome.RETIRE
    assert result.winner is None and result.action is Action.ARCHIVE
    assert result.archived == result.decisions
    assert decision.reasons == ("veto (budget): latency p95 12.500 ms exceeds the budget of 10 ms",)


def test_each_resource_over_its_budget_is_one_veto_and_a_value_at_the_budget_passes() -> None:
    at_budget = Resources(latency_p95_ms=10.0, size_bytes=1024 * 1024, peak_rss_kib=64 * 1024)
    assert budget_vetoes(BUDGET, at_budget) == ()
    over = Resources(latency_p95_ms=10.001, size_bytes=1024 * 1024 + 1, peak_rss_kib=65 * 1024)
    vetoes = budget_vetoes(BUDGET, over)
    assert [v.kind for v in vetoes] == [VetoKind.BUDGET] * 3
    assert [v.reason for v in vetoes] == [
        "latency p95 10.001 ms exceeds the budget of 10 ms",
        "size 1048577 B exceeds the budget of 1 MiB",
        "peak memory 65 MiB exceeds the budget of 64 MiB",
    ]


def test_an_integrity_problem_vetoes_after_the_budget_vetoes() -> None:
    big = scores(190, resources=Resources(size_bytes=2 * 1024 * 1024))
    problem = "files/model.safetensors: blob missing from the store"
    result = decide_round(facts(entrant("a", big, problems=(problem,))))
    (decision,) = result.decisions
    assert decision.outcome is Outcome.RETIRE and result.winner is None
    assert [v.kind for v in decision.assessment.vetoes] == [VetoKind.BUDGET, VetoKind.INTEGRITY]
    assert decision.assessment.vetoes[1].reason == problem


def test_one_failed_zero_tolerance_item_retires_an_otherwise_better_candidate() -> None:
    result = decide_round(facts(entrant("a", scores(190, critical_failures=1))))
    (decision,) = result.decisions
    assert decision.outcome is Outcome.RETIRE and result.winner is None
    assert decision.reasons[0].startswith("critical critical: candidate failed 1 of 10")


def test_a_calibration_guardrail_clearly_worse_retires_an_otherwise_better_candidate() -> None:
    # NLL +0.3 on every item: the whole interval is past the margin 0.1.
    result = decide_round(facts(entrant("a", scores(190, nll_shift=0.3))))
    (decision,) = result.decisions
    assert decision.outcome is Outcome.RETIRE and result.winner is None
    assert decision.reasons[0].startswith("nll clearly worse")


def test_a_calibration_loss_inside_the_margin_does_not_stop_a_winner() -> None:
    # NLL +0.05 < margin 0.1: non-inferior; U = 0.16 + 0.2 · clip(−0.05 / 0.1) = 0.06 ≥ 0.
    result = decide_round(facts(entrant("a", scores(190, nll_shift=0.05))))
    (decision,) = result.decisions
    assert decision.outcome is Outcome.SHADOW and result.winner == IDS["a"]
    assert decision.utility == pytest.approx(0.06)


def test_a_candidate_no_better_than_the_champion_changes_nothing() -> None:
    result = decide_round(facts(entrant("a", scores(CHAMPION_RIGHT))))
    (decision,) = result.decisions
    assert decision.outcome is Outcome.NO_OP
    assert result.winner is None and result.action is Action.ARCHIVE
    assert result.archived == (decision,)
    assert decision.confirmation is None  # no contender, nothing to confirm


def test_a_dev_win_the_sealed_split_does_not_confirm_is_archived_not_shadowed() -> None:
    result = decide_round(facts(entrant("a", scores(190, sealed=CHAMPION_RIGHT))))
    (decision,) = result.decisions
    assert decision.outcome is Outcome.ARCHIVE and result.winner is None
    assert decision.confirmation is not None and not decision.confirmation.confirmed


def test_the_aa_noise_floor_raises_the_bar_a_candidate_must_clear() -> None:
    # A/A runs right on 150, 170 and 130 items: Δ_AA = 0, +0.1, −0.1, σ_AA = 0.1, so
    # ε = max(0.01, 2 · 0.1) = 0.2, and a gain of exactly 0.2 cannot have a bound above it.
    runs = (CHAMPION, scores(170), scores(130))
    result = decide_round(facts(entrant("a", scores(190)), champion=runs))
    assert result.sigma_aa == pytest.approx(statistics.stdev([0.0, 0.1, -0.1]))
    assert result.policy.epsilon_up == pytest.approx(0.2)
    (decision,) = result.decisions
    assert decision.assessment.primary.delta == pytest.approx(0.2)  # against the first run
    assert decision.outcome is Outcome.NO_OP and result.winner is None


def test_candidates_whose_evaluation_failed_are_set_apart_not_judged() -> None:
    result = decide_round(
        facts(entrant("b", None, failure="evaluation timed out"), entrant("a", scores(190)))
    )
    assert [(u.candidate_id, u.reason) for u in result.unscored] == [
        (IDS["b"], "evaluation timed out")
    ]
    assert [d.candidate_id for d in result.decisions] == [IDS["a"]]
    assert result.winner == IDS["a"]


def test_a_round_with_no_scored_candidate_keeps_the_champion() -> None:
    result = decide_round(facts(entrant("a", None, failure="crashed")))
    assert result.decisions == () and result.winner is None and result.action is Action.ARCHIVE


def test_the_decisions_do_not_depend_on_anything_but_the_facts() -> None:
    round_facts = facts(entrant("b", scores(170)), entrant("a", scores(190)))
    first, second = decide_round(round_facts), decide_round(round_facts)
    assert [d.to_record() for d in first.decisions] == [d.to_record() for d in second.decisions]


def test_a_suite_policy_record_becomes_a_policy_with_its_defaults() -> None:
    policy = policy_from_suite({}, METRICS, seed=3, sigma_aa=0.004)
    assert (policy.epsilon_min, policy.alpha, policy.utility_min) == (0.01, 0.05, 0.0)
    assert (policy.bootstrap_samples, policy.min_pairs, policy.seed) == (2000, 30, 3)
    assert policy.weights == GroupWeights(
        task=0.2, calibration=0.2, robustness=0.2, safety=0.2, resource=0.2
    )
    assert policy.epsilon_up == 0.01  # 2 · 0.004 = 0.008 < ε_min
    assert [(m.name, m.margin, m.utility_scale) for m in policy.metrics] == [
        ("accuracy", 0.02, 0.25),
        ("nll", 0.1, 0.1),
        ("critical", 0.0, 1.0),
    ]
    weighted = policy_from_suite(
        {"epsilon_min": "0.05", "weights": {"task": "1", "safety": "0"}},
        METRICS,
        seed=0,
        sigma_aa=0.0,
    )
    assert weighted.epsilon_min == 0.05
    assert (weighted.weights.task, weighted.weights.safety, weighted.weights.resource) == (
        1.0,
        0.0,
        0.2,
    )

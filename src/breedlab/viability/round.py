"""One breeding round's decision: from the evaluations a round read to what it recommends.

Owns the round-level steps between reading and writing (DESIGN §10, seed: compare against
champion and no-op): the policy a suite's records describe (:func:`policy_from_suite`),
the no-op's noise floor σ_AA from the champion's A/A re-runs (:func:`aa_noise_floor`),
budget vetoes (:func:`budget_vetoes`), paired evidence from two models' scores
(:func:`paired_evidence`), and the round itself (:func:`decide_round`): candidates whose
evaluation failed are set apart, every scored one is assessed on the dev split with its
vetoes, the contender is confirmed on the sealed split, and at most one winner goes to
shadow; otherwise the champion stays and every candidate is archived.

Values in, values out: no ledger, no store, no sandbox. The controller
(``breedlab.lab.breeding``) runs the jobs, verifies the candidates' packages (their
integrity problems arrive here as sentences), writes the events and the round record,
and moves the shadow alias. Per-metric rules are :mod:`breedlab.viability.gates`';
outcomes per candidate are :mod:`breedlab.viability.decision`'s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Protocol

import numpy as np
from numpy.typing import NDArray

from breedlab.canonical import JsonValue
from breedlab.errors import InvalidRequest
from breedlab.viability.decision import Decision, Outcome, assess, confirm, contender, decide
from breedlab.viability.evidence import (
    AggregateValue,
    Evidence,
    MetricData,
    MetricEvidence,
    PairedBinary,
    PairedContinuous,
    Veto,
    VetoKind,
)
from breedlab.viability.policy import (
    Direction,
    Group,
    GroupWeights,
    MetricKind,
    MetricSpec,
    Policy,
    Role,
)
from breedlab.viability.stats import noise_floor

if TYPE_CHECKING:
    from breedlab.registry.capability import Budget

__all__ = [
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


class Usage(Protocol):
    """The resources one evaluation measured (``evaluator.scoring.Resources`` is one)."""

    @property
    def latency_p95_ms(self) -> float: ...  # at batch 1, ms

    @property
    def size_bytes(self) -> int: ...

    @property
    def peak_rss_kib(self) -> int: ...


class Scored(Protocol):
    """What a round reads of one model's scorecard (``evaluator.scoring.Scorecard`` is one)."""

    @property
    def resources(self) -> Usage: ...

    def per_item(self, metric: str, split: str) -> NDArray[np.generic] | float:
        """Per-item values of ``metric`` on ``split`` (one number for an aggregate)."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Entrant:
    """One candidate of a round as the controller read it.

    Attributes:
        scores: its scorecard; None when its evaluation failed (``failure`` says why).
        problems: integrity problems found when its package was verified, one sentence
            each (``where: message``); each is a veto.
    """

    candidate_id: str
    scores: Scored | None
    failure: str | None = None
    problems: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class RoundFacts:
    """Everything a round's decision depends on.

    Attributes:
        suite_metrics: the frozen suite's metric records (``MetricSpec`` fields, numbers
            as decimal strings).
        suite_policy: the suite's policy record (``epsilon_min``, ``alpha``, ...).
        suite_seed: the suite's seed, which seeds every bootstrap.
        budget: the capability's operational budget.
        champion: the champion's evaluations, the A/A re-runs (at least three); the first
            is the one every candidate is compared with.
        entrants: the candidates, in the order the round produced them.
    """

    suite_metrics: Sequence[Mapping[str, JsonValue]]
    suite_policy: Mapping[str, JsonValue]
    suite_seed: int
    budget: Budget
    champion: Sequence[Scored]
    entrants: Sequence[Entrant]


class Action(Enum):
    """What the round does with its result."""

    SHADOW = "shadow"  # the winner goes to the shadow alias; the others are archived
    ARCHIVE = "archive"  # nobody beats the champion (the no-op): every candidate archived


@dataclass(frozen=True, slots=True, kw_only=True)
class Unscored:
    """A candidate that could not be judged: its evaluation failed."""

    candidate_id: str
    reason: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RoundDecision:
    """A round's decisions with the policy and noise floor they were made under.

    Attributes:
        decisions: one per scored candidate, in the entrants' order.
        unscored: the candidates whose evaluation failed, in the entrants' order.
        winner: the one candidate recommended for shadow, or None (keep the champion).
    """

    policy: Policy
    sigma_aa: float
    decisions: tuple[Decision, ...]
    unscored: tuple[Unscored, ...]
    winner: str | None

    @property
    def action(self) -> Action:
        return Action.ARCHIVE if self.winner is None else Action.SHADOW

    @property
    def archived(self) -> tuple[Decision, ...]:
        """The decisions of every candidate but the winner (each gets archived)."""
        return tuple(d for d in self.decisions if d.candidate_id != self.winner)


def _number(record: Mapping[str, JsonValue], key: str, default: str) -> float:
    return float(Decimal(str(record.get(key, default))))


def policy_from_suite(
    suite_policy: Mapping[str, JsonValue],
    metrics: Sequence[Mapping[str, JsonValue]],
    *,
    seed: int,
    sigma_aa: float,
) -> Policy:
    """The :class:`Policy` a suite's records describe, with the round's σ_AA.

    Absent fields take the suite defaults: ε_min 0.01, α 0.05, 2000 bootstrap samples,
    30 pairs at least, utility_min 0, equal group weights.

    Raises:
        InvalidRequest: a value out of range (see :class:`Policy`, :class:`MetricSpec`).
        KeyError, ValueError: a metric record misses a field or names an unknown enum.
    """
    specs = tuple(
        MetricSpec(
            name=str(m["name"]),
            group=Group(str(m["group"])),
            direction=Direction(str(m["direction"])),
            role=Role(str(m["role"])),
            kind=MetricKind(str(m["kind"])),
            margin=_number(m, "margin", "0"),
            scale=_number(m, "scale", "0") or None,
        )
        for m in metrics
    )
    weights = suite_policy.get("weights")
    return Policy(
        metrics=specs,
        epsilon_min=_number(suite_policy, "epsilon_min", "0.01"),
        sigma_aa=sigma_aa,
        seed=seed,
        alpha=_number(suite_policy, "alpha", "0.05"),
        bootstrap_samples=int(str(suite_policy.get("bootstrap_samples", 2000))),
        min_pairs=int(str(suite_policy.get("min_pairs", 30))),
        utility_min=_number(suite_policy, "utility_min", "0"),
        weights=(
            GroupWeights(**{k: float(Decimal(str(v))) for k, v in weights.items()})
            if isinstance(weights, dict)
            else GroupWeights()
        ),
    )


def aa_noise_floor(runs: Sequence[Scored], primary: str) -> float:
    """σ_AA from the champion's A/A re-runs: the noise floor of the primary metric's mean
    on dev, each later run against the first, with the first against itself (Δ = 0).

    Raises:
        InvalidRequest: fewer than three runs.
    """
    first = np.asarray(runs[0].per_item(primary, "dev"), dtype=np.float64)
    deltas = [
        float(np.mean(np.asarray(run.per_item(primary, "dev"), dtype=np.float64)) - np.mean(first))
        for run in runs[1:]
    ]
    return noise_floor([0.0, *deltas])


def budget_vetoes(budget: Budget, usage: Usage) -> tuple[Veto, ...]:
    """A budget veto for each resource over the capability's budget (DESIGN §10: a budget
    breach vetoes). A value exactly at its budget passes."""
    vetoes = []
    if usage.latency_p95_ms > float(budget.latency_p95_ms):
        vetoes.append(
            Veto(
                kind=VetoKind.BUDGET,
                reason=(
                    f"latency p95 {usage.latency_p95_ms:.3f} ms exceeds the budget of "
                    f"{budget.latency_p95_ms} ms"
                ),
            )
        )
    if usage.size_bytes > float(budget.size_mib) * 1024 * 1024:
        vetoes.append(
            Veto(
                kind=VetoKind.BUDGET,
                reason=f"size {usage.size_bytes} B exceeds the budget of {budget.size_mib} MiB",
            )
        )
    if usage.peak_rss_kib / 1024 > float(budget.memory_mib):
        vetoes.append(
            Veto(
                kind=VetoKind.BUDGET,
                reason=(
                    f"peak memory {usage.peak_rss_kib / 1024:.0f} MiB exceeds the budget of "
                    f"{budget.memory_mib} MiB"
                ),
            )
        )
    return tuple(vetoes)


def paired_evidence(
    policy: Policy,
    champion: Scored,
    candidate_id: str,
    candidate: Scored,
    split: str,
    vetoes: Sequence[Veto] = (),
) -> Evidence:
    """Every metric of ``policy`` for champion and candidate on ``split``, paired by item."""
    metrics = []
    for spec in policy.metrics:
        mine = champion.per_item(spec.name, split)
        theirs = candidate.per_item(spec.name, split)
        data: MetricData
        if spec.kind is MetricKind.AGGREGATE:
            data = AggregateValue(champion=float(mine), candidate=float(theirs))
        elif spec.kind is MetricKind.BINARY:
            data = PairedBinary(champion=np.asarray(mine, bool), candidate=np.asarray(theirs, bool))
        else:
            data = PairedContinuous(
                champion=np.asarray(mine, np.float64), candidate=np.asarray(theirs, np.float64)
            )
        metrics.append(MetricEvidence(metric=spec.name, data=data))
    return Evidence(candidate_id=candidate_id, metrics=tuple(metrics), vetoes=tuple(vetoes))


def decide_round(facts: RoundFacts) -> RoundDecision:
    """The round's decisions (see the module docstring).

    Vetoes per candidate: budget breaches first, then integrity problems.

    Raises:
        InvalidRequest: fewer than three champion runs, a suite without one primary
            metric, or evidence the policy cannot judge.
        IntegrityError: as :func:`breedlab.viability.decision.assess`.
    """
    primary = next(
        (str(m["name"]) for m in facts.suite_metrics if m.get("role") == "primary"), None
    )
    if primary is None:
        raise InvalidRequest("the suite names no primary metric")
    sigma_aa = aa_noise_floor(facts.champion, primary)
    policy = policy_from_suite(
        facts.suite_policy, facts.suite_metrics, seed=facts.suite_seed, sigma_aa=sigma_aa
    )
    champion = facts.champion[0]
    scored = [(e, e.scores) for e in facts.entrants if e.scores is not None]
    unscored = tuple(
        Unscored(candidate_id=e.candidate_id, reason=e.failure)
        for e in facts.entrants
        if e.scores is None
    )
    dev = []
    for entrant, scores in scored:
        vetoes = budget_vetoes(facts.budget, scores.resources) + tuple(
            Veto(kind=VetoKind.INTEGRITY, reason=problem) for problem in entrant.problems
        )
        dev.append(paired_evidence(policy, champion, entrant.candidate_id, scores, "dev", vetoes))
    decisions: tuple[Decision, ...] = ()
    if dev:
        assessments = assess(dev, policy)
        best = contender(assessments, policy)
        confirmation = None
        if best is not None:
            # notes §6 rule 6: chosen on dev, confirmed on the sealed split.
            best_scores = next(s for e, s in scored if e.candidate_id == best.candidate_id)
            sealed = paired_evidence(policy, champion, best.candidate_id, best_scores, "sealed")
            confirmation = confirm(sealed, policy)
        decisions = decide(assessments, policy, confirmation=confirmation)
    winner = next((d.candidate_id for d in decisions if d.outcome is Outcome.SHADOW), None)
    return RoundDecision(
        policy=policy, sigma_aa=sigma_aa, decisions=decisions, unscored=unscored, winner=winner
    )

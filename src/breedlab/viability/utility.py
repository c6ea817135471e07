"""The explainable score decomposition of one candidate: utility terms and group scores.

Owns DESIGN §10's utility ``U = Σ_g w_g · mean_{m∈g} clip(sign_m·Δ_m/δ_m, −1, 1)`` and the
Kayenta-style group scores (notes §4.5). U is *defined* as the exactly rounded sum
(:func:`math.fsum`) of its per-metric terms ``w_g/|g| · clip(…)``, so the terms in a
record always add up to the U beside them, in any order.

Which metrics have a term: primary and guardrail metrics with data. Zero-tolerance sets
veto instead of trading off, slices are for archiving specialists rather than ranking
champions, and NoData has no Δ; ``|g|`` counts only the metrics with a term, and a group
with none adds nothing. Leaves verdicts to :mod:`breedlab.viability.gates` and the use of
U (ranking contenders, the ``utility_min`` gate) to :mod:`breedlab.viability.decision`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from breedlab.canonical import JsonValue
from breedlab.viability.gates import MetricResult, Verdict
from breedlab.viability.policy import Group, GroupWeights
from breedlab.viability.record import number, optional_number

__all__ = ["Decomposition", "GroupScore", "UtilityTerm", "decompose"]


@dataclass(frozen=True, slots=True, kw_only=True)
class UtilityTerm:
    """One metric's contribution: ``value = weight · normalised``.

    Attributes:
        weight: ``w_g / |g|`` for the metric's group.
        normalised: ``clip(sign·Δ/δ, −1, 1)``, δ the metric's utility scale.
    """

    metric: str
    group: Group
    weight: float
    normalised: float
    value: float

    def to_record(self) -> dict[str, JsonValue]:
        return {
            "metric": self.metric,
            "group": self.group.value,
            "weight": number(self.weight),
            "normalised": number(self.normalised),
            "value": number(self.value),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupScore:
    """One group's summary: ``score = 100 · passed / with_data`` (None without data)
    counts every metric of the group; ``utility`` is the fsum of the group's terms."""

    group: Group
    weight: float
    passed: int
    with_data: int
    score: float | None
    utility: float

    def to_record(self) -> dict[str, JsonValue]:
        return {
            "group": self.group.value,
            "weight": number(self.weight),
            "passed": self.passed,
            "with_data": self.with_data,
            "score": optional_number(self.score),
            "utility": number(self.utility),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Decomposition:
    """The terms, the group scores and ``utility = fsum(term.value for term in terms)``."""

    terms: tuple[UtilityTerm, ...]
    groups: tuple[GroupScore, ...]
    utility: float

    def to_record(self) -> dict[str, JsonValue]:
        return {
            "utility": number(self.utility),
            "terms": [t.to_record() for t in self.terms],
            "groups": [g.to_record() for g in self.groups],
        }


def _normalised(result: MetricResult) -> float | None:
    gain = result.gain
    if not result.spec.in_utility or result.verdict is Verdict.NO_DATA or gain is None:
        return None
    return min(1.0, max(-1.0, gain / result.spec.utility_scale))


def decompose(results: Sequence[MetricResult], weights: GroupWeights) -> Decomposition:
    """The decomposition of one candidate's metric results (in the given order)."""
    normalised = [(r, _normalised(r)) for r in results]
    terms: list[UtilityTerm] = []
    groups: list[GroupScore] = []
    for group in Group:
        members = [(r, x) for r, x in normalised if r.spec.group is group]
        scored = [(r, x) for r, x in members if x is not None]
        weight = weights.of(group) / len(scored) if scored else 0.0
        group_terms = [
            UtilityTerm(
                metric=r.spec.name, group=group, weight=weight, normalised=x, value=weight * x
            )
            for r, x in scored
        ]
        terms.extend(group_terms)
        with_data = sum(1 for r, _ in members if r.verdict is not Verdict.NO_DATA)
        passed = sum(1 for r, _ in members if r.verdict.passing)
        groups.append(
            GroupScore(
                group=group,
                weight=weights.of(group),
                passed=passed,
                with_data=with_data,
                score=100.0 * passed / with_data if with_data else None,
                utility=math.fsum(t.value for t in group_terms),
            )
        )
    # DESIGN §10: the terms sum exactly to U, because U is their exactly rounded sum.
    return Decomposition(
        terms=tuple(terms),
        groups=tuple(groups),
        utility=math.fsum(t.value for t in terms),
    )

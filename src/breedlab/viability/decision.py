"""Outcomes for a round: assess every candidate, pick the contender, confirm it on the
sealed split, and recommend retire / shadow / archive / no-op with reasons.

Owns DESIGN §10's round-level rules. The controller calls, in order::

    assessments = assess(dev_evidences, policy)          # verdicts, Holm, utility
    best = contender(assessments, policy)                 # passes every gate, highest U
    confirmation = confirm(sealed_evidence(best), policy) if best else None
    decisions = decide(assessments, policy, confirmation=confirmation)

Outcomes, evaluated in order (DESIGN §10, notes §4.4):

1. ``retire``: a veto, a Critical metric, or a primary or guardrail metric that is
   clearly worse (its whole interval past the margin).
2. ``no-op``: at least half of the metrics have no data (Kayenta's NODATA rule).
3. ``shadow``: the contender, if it passes every gate (primary superior after Holm, every
   guardrail and zero-tolerance set passing, U ≥ utility_min) *and* its superiority is
   confirmed on the sealed split. At most one per round.
4. ``archive``: no harm and Pareto-useful: passed every gate but is not (or not yet)
   confirmed, or non-inferior everywhere and better beyond the margin on some guardrail
   (e.g. cheaper), or better on a slice.
5. ``no-op``: everything else, with the reasons the gates were not met and the primary
   metric's minimum detectable effect.

A candidate identical to the champion cannot be promoted: its primary gain is 0 and
superiority needs a bound above ε > 0. Leaves per-metric rules to
:mod:`breedlab.viability.gates`, the utility to :mod:`breedlab.viability.utility`, and
reading evidence and writing the ledger event to the controller.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np
from numpy.typing import NDArray

from breedlab.canonical import JsonValue
from breedlab.errors import IntegrityError, InvalidRequest
from breedlab.viability import stats
from breedlab.viability.evidence import AggregateValue, Evidence, Veto
from breedlab.viability.gates import MetricResult, Verdict, judge, settle_primary
from breedlab.viability.policy import Group, Policy, Role
from breedlab.viability.record import number, optional_number
from breedlab.viability.utility import Decomposition, UtilityTerm, decompose

__all__ = [
    "DECISION_SCHEMA",
    "Assessment",
    "Confirmation",
    "Decision",
    "HolmFamily",
    "Outcome",
    "assess",
    "confirm",
    "contender",
    "decide",
]

#: The ``schema`` of a decision record.
DECISION_SCHEMA = "breedlab.viability.decision/v1"


class Outcome(Enum):
    """The recommendation for one candidate (DESIGN §10)."""

    RETIRE = "retire"
    NO_OP = "no-op"
    ARCHIVE = "archive"
    SHADOW = "shadow"

    @property
    def rank(self) -> int:
        """retire 0 < no-op 1 < archive 2 < shadow 3: higher is further toward release."""
        return _RANK[self]


_RANK = {Outcome.RETIRE: 0, Outcome.NO_OP: 1, Outcome.ARCHIVE: 2, Outcome.SHADOW: 3}


@dataclass(frozen=True, slots=True, kw_only=True)
class HolmFamily:
    """The primary superiority tests of one round, adjusted together (notes §4.3).

    Every candidate with primary data is in the family, vetoed or not, so that vetoing
    one candidate never changes another's adjusted p-value.
    """

    candidate_ids: tuple[str, ...]
    p_values: tuple[float, ...]
    adjusted: tuple[float, ...]
    alpha: float

    def to_record(self) -> dict[str, JsonValue]:
        return {
            "alpha": number(self.alpha),
            "members": [
                {"candidate": c, "p": number(p), "p_adjusted": number(q)}
                for c, p, q in zip(self.candidate_ids, self.p_values, self.adjusted, strict=True)
            ],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Assessment:
    """Every metric's verdict for one candidate on one split, its vetoes, its
    decomposition and the Holm family its primary test was adjusted in."""

    candidate_id: str
    results: tuple[MetricResult, ...]
    vetoes: tuple[Veto, ...]
    decomposition: Decomposition
    holm: HolmFamily

    @property
    def primary(self) -> MetricResult:
        """The primary metric's result."""
        return next(r for r in self.results if r.spec.role is Role.PRIMARY)

    @property
    def utility(self) -> float:
        """U, the fsum of the decomposition's terms."""
        return self.decomposition.utility

    def to_record(self) -> dict[str, JsonValue]:
        return {
            "candidate": self.candidate_id,
            "metrics": [r.to_record() for r in self.results],
            "vetoes": [v.to_record() for v in self.vetoes],
            "decomposition": self.decomposition.to_record(),
            "holm": self.holm.to_record(),
        }


def _check_round(evidences: Sequence[Evidence], policy: Policy) -> None:
    ids = [e.candidate_id for e in evidences]
    if len(set(ids)) != len(ids):
        raise InvalidRequest(f"candidate ids repeat in one round: {sorted(ids)}")
    for evidence in evidences:
        for item in evidence.metrics:
            if policy.spec(item.metric) is None:
                raise InvalidRequest(
                    f"evidence for {evidence.candidate_id} names metric {item.metric!r}, "
                    "which the policy does not define"
                )
    # Paired comparisons are only comparable against the same champion outputs: a
    # different per-item champion array means the evidence is not from one evaluation.
    for spec in policy.metrics:
        first: tuple[str, NDArray[np.generic]] | None = None
        for evidence in evidences:
            data = evidence.data(spec.name)
            if data is None or isinstance(data, AggregateValue):
                continue
            if first is None:
                first = (evidence.candidate_id, data.champion)
            elif not np.array_equal(first[1], data.champion):
                raise IntegrityError(
                    f"champion's per-item {spec.name} differs between candidates "
                    f"{first[0]} and {evidence.candidate_id}: not one evaluation"
                )


def assess(evidences: Sequence[Evidence], policy: Policy) -> tuple[Assessment, ...]:
    """Judge every metric of every candidate, with Holm across the candidates' primary
    superiority tests. Results follow the policy's metric order; assessments follow
    ``evidences``.

    Raises:
        InvalidRequest: repeated candidate ids, a metric the policy does not define, or
            data of the wrong kind.
        IntegrityError: the champion's per-item data differ between candidates.
    """
    _check_round(evidences, policy)
    judged = [
        (e, [judge(spec, e.data(spec.name), policy) for spec in policy.metrics]) for e in evidences
    ]
    primary_index = policy.metrics.index(policy.primary)
    family = [
        (e.candidate_id, results[primary_index].p_superiority)
        for e, results in judged
        if results[primary_index].p_superiority is not None
    ]
    p_values = tuple(p for _, p in family if p is not None)
    adjusted = stats.holm_adjusted(p_values)
    holm = HolmFamily(
        candidate_ids=tuple(c for c, _ in family),
        p_values=p_values,
        adjusted=adjusted,
        alpha=policy.alpha,
    )
    by_id = dict(zip(holm.candidate_ids, adjusted, strict=True))
    assessments = []
    for evidence, results in judged:
        if evidence.candidate_id in by_id:
            results[primary_index] = settle_primary(
                results[primary_index], p_adjusted=by_id[evidence.candidate_id], policy=policy
            )
        assessments.append(
            Assessment(
                candidate_id=evidence.candidate_id,
                results=tuple(results),
                vetoes=evidence.vetoes,
                decomposition=decompose(results, policy.weights),
                holm=holm,
            )
        )
    return tuple(assessments)


def _harms(assessment: Assessment) -> list[str]:
    """Reasons to retire: vetoes, Critical metrics, clearly worse primary or guardrails."""
    reasons = [f"veto ({v.kind.value}): {v.reason}" for v in assessment.vetoes]
    for r in assessment.results:
        if r.verdict is Verdict.CRITICAL:
            reasons.append(f"{r.spec.name} critical: {r.reason}")
        elif r.verdict is Verdict.WORSE and r.spec.role in (Role.PRIMARY, Role.GUARDRAIL):
            reasons.append(f"{r.spec.name} clearly worse: {r.reason}")
    return reasons


def _blockers(assessment: Assessment, policy: Policy) -> list[str]:
    """Why the candidate does not pass every gate (empty: it does)."""
    reasons = []
    primary = assessment.primary
    if primary.verdict is not Verdict.BETTER:
        reasons.append(f"{primary.spec.name} not superior: {primary.reason}")
    for r in assessment.results:
        if r.spec.role in (Role.GUARDRAIL, Role.ZERO_TOLERANCE) and not r.verdict.passing:
            reasons.append(f"{r.spec.name} {r.verdict.value}: {r.reason}")
    if assessment.vetoes:
        reasons.append(f"{len(assessment.vetoes)} veto(es)")
    if assessment.utility < policy.utility_min:
        reasons.append(
            f"utility {assessment.utility:.4g} below the minimum {policy.utility_min:.4g}"
        )
    return reasons


def contender(assessments: Sequence[Assessment], policy: Policy) -> Assessment | None:
    """The one candidate to confirm on the sealed split: it passes every gate on the dev
    split and has the highest U (ties: the smallest candidate id). None if nobody passes.
    """
    passing = [a for a in assessments if not _harms(a) and not _blockers(a, policy)]
    if not passing:
        return None
    return min(passing, key=lambda a: (-a.utility, a.candidate_id))


@dataclass(frozen=True, slots=True, kw_only=True)
class Confirmation:
    """The contender's superiority re-tested on the sealed split (notes §6 rule 6: select
    on dev, confirm on a split that played no part in selection)."""

    candidate_id: str
    confirmed: bool
    reason: str
    assessment: Assessment

    def to_record(self) -> dict[str, JsonValue]:
        return {
            "split": "sealed",
            "candidate": self.candidate_id,
            "confirmed": self.confirmed,
            "reason": self.reason,
            "assessment": self.assessment.to_record(),
        }


def confirm(sealed: Evidence, policy: Policy) -> Confirmation:
    """Re-run the primary superiority test on sealed-split evidence for one candidate.

    Confirmed iff the primary metric is superior over ε at level α (a family of one:
    the winner was chosen on other data) and the sealed evidence holds no veto, Critical
    or clearly worse metric (those are never ignorable, whichever split shows them).

    Raises:
        InvalidRequest, IntegrityError: as :func:`assess`.
    """
    (assessment,) = assess((sealed,), policy)
    harms = _harms(assessment)
    primary = assessment.primary
    if harms:
        confirmed, reason = False, "sealed split shows harm: " + "; ".join(harms)
    elif primary.verdict is Verdict.BETTER:
        confirmed, reason = (
            True,
            f"{primary.spec.name} superior on the sealed split: {primary.reason}",
        )
    else:
        confirmed, reason = (
            False,
            f"{primary.spec.name} not superior on the sealed split: {primary.reason}",
        )
    return Confirmation(
        candidate_id=sealed.candidate_id, confirmed=confirmed, reason=reason, assessment=assessment
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """The recommendation for one candidate, with everything needed to explain it."""

    candidate_id: str
    outcome: Outcome
    reasons: tuple[str, ...]
    assessment: Assessment
    confirmation: Confirmation | None
    policy: Policy

    @property
    def results(self) -> tuple[MetricResult, ...]:
        """Per-metric verdicts, in the policy's order."""
        return self.assessment.results

    @property
    def utility(self) -> float:
        """U; equals ``math.fsum(t.value for t in self.terms)`` exactly."""
        return self.assessment.utility

    @property
    def terms(self) -> tuple[UtilityTerm, ...]:
        """The utility terms, in group order then policy order."""
        return self.assessment.decomposition.terms

    @property
    def mde(self) -> float | None:
        """The primary metric's minimum detectable effect (None without data)."""
        return self.assessment.primary.mde

    def to_record(self) -> dict[str, JsonValue]:
        """A canonical-JSON-ready record that explains the decision on its own: every
        metric's inputs (n, b, c, seed, data digests), bounds, margins and reasons, the
        Holm family, the decomposition, the confirmation and the policy."""
        return {
            "schema": DECISION_SCHEMA,
            "candidate": self.candidate_id,
            "outcome": self.outcome.value,
            "reasons": list(self.reasons),
            "mde": optional_number(self.mde),
            "assessment": self.assessment.to_record(),
            "confirmation": None if self.confirmation is None else self.confirmation.to_record(),
            "policy": self.policy.to_record(),
        }


def _pareto(assessment: Assessment) -> list[str]:
    """Why the candidate is worth keeping without being promoted (empty: it is not)."""
    reasons = []
    core = [
        r
        for r in assessment.results
        if r.spec.role in (Role.PRIMARY, Role.GUARDRAIL, Role.ZERO_TOLERANCE)
    ]
    if all(r.verdict.passing for r in core):
        for r in assessment.results:
            if r.spec.role is Role.GUARDRAIL and r.verdict is Verdict.BETTER:
                what = "cheaper" if r.spec.group is Group.RESOURCE else "better"
                reasons.append(f"{what} on {r.spec.name} at non-inferior quality: {r.reason}")
    for r in assessment.results:
        if r.spec.role is Role.SLICE and r.verdict is Verdict.BETTER:
            reasons.append(f"better on slice {r.spec.name} (a possible specialist): {r.reason}")
    return reasons


def _decide_one(
    assessment: Assessment,
    policy: Policy,
    best: Assessment | None,
    confirmation: Confirmation | None,
) -> tuple[Outcome, list[str]]:
    harms = _harms(assessment)
    if harms:  # DESIGN §10: retire on a veto or when clearly worse
        return Outcome.RETIRE, harms
    # notes §4.5: with at least half the metrics NoData nothing can be concluded.
    missing = [r.spec.name for r in assessment.results if r.verdict is Verdict.NO_DATA]
    if 2 * len(missing) >= len(assessment.results):
        return Outcome.NO_OP, [
            f"{len(missing)} of {len(assessment.results)} metrics have no data "
            f"({', '.join(missing)}): inconclusive"
        ]
    blockers = _blockers(assessment, policy)
    if not blockers:
        assert best is not None  # a candidate passing every gate makes a contender
        if best.candidate_id != assessment.candidate_id:
            return Outcome.ARCHIVE, [
                f"passed every gate but ranks below the contender {best.candidate_id} "
                f"(utility {assessment.utility:.4g} vs {best.utility:.4g})"
            ]
        if confirmation is not None and confirmation.confirmed:
            return Outcome.SHADOW, [
                f"{assessment.primary.spec.name} superior: {assessment.primary.reason}",
                "every guardrail and zero-tolerance set passes",
                f"utility {assessment.utility:.4g} >= {policy.utility_min:.4g}",
                confirmation.reason,
            ]
        # DESIGN §10: shadow only once confirmed on the sealed split.
        pending = "no sealed-split evidence" if confirmation is None else confirmation.reason
        return Outcome.ARCHIVE, [f"passed every gate on the dev split but not confirmed: {pending}"]
    # DESIGN §10: archive when there is no harm and the candidate is Pareto-useful.
    useful = _pareto(assessment)
    if useful:
        return Outcome.ARCHIVE, useful
    return Outcome.NO_OP, blockers


def decide(
    assessments: Sequence[Assessment],
    policy: Policy,
    *,
    confirmation: Confirmation | None = None,
) -> tuple[Decision, ...]:
    """One decision per assessment, in the same order.

    Raises:
        InvalidRequest: ``confirmation`` is not for this round's contender.
    """
    best = contender(assessments, policy)
    if confirmation is not None and (
        best is None or best.candidate_id != confirmation.candidate_id
    ):
        expected = "no contender" if best is None else f"contender {best.candidate_id}"
        raise InvalidRequest(
            f"confirmation is for {confirmation.candidate_id}, but this round has {expected}"
        )
    decisions = []
    for assessment in assessments:
        outcome, reasons = _decide_one(assessment, policy, best, confirmation)
        decisions.append(
            Decision(
                candidate_id=assessment.candidate_id,
                outcome=outcome,
                reasons=tuple(reasons),
                assessment=assessment,
                confirmation=confirmation
                if confirmation is not None and confirmation.candidate_id == assessment.candidate_id
                else None,
                policy=policy,
            )
        )
    return tuple(decisions)

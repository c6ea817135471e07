"""Per-metric verdicts: one metric's evidence in, Better / Pass / Inconclusive / Worse /
Critical / NoData out, with Δ, bounds, margin, inputs and a one-sentence reason.

Owns the gate rules of DESIGN §10 for a single metric and candidate:

* every comparison is made on ``gain = sign · Δ`` (sign +1 when higher is better), with
  ``Δ = candidate − champion`` in the metric's units (aggregates: ``ratio − 1``);
* guardrails (and the primary metric's non-inferiority): Pass when the gain's lower bound
  is above −margin, Worse when its upper bound is below −margin (clearly worse: the whole
  interval is past the margin), else Inconclusive. A guardrail or slice whose lower bound
  is above +margin is Better. Each guardrail is tested at level α with no split: promotion
  needs all of them (intersection-union, Berger 1982; notes §4.3);
* aggregates (p95 latency, bytes): the same rule on the ratio itself, with no interval;
* zero-tolerance sets: any candidate failure is Critical, whatever the champion did;
* the primary metric: superiority over ε is settled across candidates by Holm in
  :mod:`breedlab.viability.decision` through :func:`settle_primary`.

Leaves the arithmetic to :mod:`breedlab.viability.stats`, multiplicity and outcomes to
:mod:`breedlab.viability.decision`, utility to :mod:`breedlab.viability.utility`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from enum import Enum

import numpy as np
from numpy.typing import NDArray

from breedlab.canonical import JsonValue
from breedlab.errors import InvalidRequest
from breedlab.viability import stats
from breedlab.viability.evidence import AggregateValue, MetricData, PairedBinary, PairedContinuous
from breedlab.viability.policy import MetricKind, MetricSpec, Policy, Role
from breedlab.viability.record import number, optional_number

__all__ = [
    "AggregateInputs",
    "BinaryInputs",
    "ContinuousInputs",
    "MetricResult",
    "Verdict",
    "ZeroToleranceInputs",
    "judge",
    "settle_primary",
]


class Verdict(Enum):
    """A metric's classification (Kayenta-style, DESIGN §10)."""

    BETTER = "better"
    PASS = "pass"
    INCONCLUSIVE = "inconclusive"
    WORSE = "worse"
    CRITICAL = "critical"
    NO_DATA = "no_data"

    @property
    def passing(self) -> bool:
        """Better or Pass: the gate is met."""
        return self in (Verdict.BETTER, Verdict.PASS)


@dataclass(frozen=True, slots=True, kw_only=True)
class BinaryInputs:
    """What a paired binary verdict was computed from.

    ``p_exact`` is the one-sided exact McNemar p-value for "the candidate is better" in
    the metric's direction; ``p_exact_two_sided`` is the classic McNemar p-value.
    """

    n: int
    b: int
    c: int
    p_exact: float
    p_exact_two_sided: float
    data_sha256: str

    def to_record(self) -> dict[str, JsonValue]:
        return {
            "method": "exact-mcnemar+tango-score",
            "n": self.n,
            "b": self.b,
            "c": self.c,
            "p_exact": number(self.p_exact),
            "p_exact_two_sided": number(self.p_exact_two_sided),
            "data_sha256": self.data_sha256,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ContinuousInputs:
    """What a paired continuous verdict was computed from (the bootstrap is re-runnable
    from the per-item data whose digest is ``data_sha256``, ``samples`` and ``seed``)."""

    n: int
    champion_mean: float
    candidate_mean: float
    sd_difference: float
    samples: int
    seed: int
    data_sha256: str

    def to_record(self) -> dict[str, JsonValue]:
        return {
            "method": "paired-percentile-bootstrap",
            "n": self.n,
            "champion_mean": number(self.champion_mean),
            "candidate_mean": number(self.candidate_mean),
            "sd_difference": number(self.sd_difference),
            "samples": self.samples,
            "seed": self.seed,
            "data_sha256": self.data_sha256,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class AggregateInputs:
    """The two aggregate values and their ratio (no pairing, no interval)."""

    champion: float
    candidate: float
    ratio: float

    def to_record(self) -> dict[str, JsonValue]:
        return {
            "method": "ratio",
            "champion": number(self.champion),
            "candidate": number(self.candidate),
            "ratio": number(self.ratio),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ZeroToleranceInputs:
    """Failure counts on a zero-tolerance set, with the exact (1 − α) upper bound of the
    candidate's failure rate."""

    n: int
    candidate_failures: int
    champion_failures: int
    failure_rate_upper: float

    def to_record(self) -> dict[str, JsonValue]:
        return {
            "method": "zero-tolerance",
            "n": self.n,
            "candidate_failures": self.candidate_failures,
            "champion_failures": self.champion_failures,
            "failure_rate_upper": number(self.failure_rate_upper),
        }


Inputs = BinaryInputs | ContinuousInputs | AggregateInputs | ZeroToleranceInputs


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricResult:
    """One metric's verdict for one candidate.

    Attributes:
        delta, lower, upper: Δ = candidate − champion in metric units (aggregates:
            ``ratio − 1``) and its one-sided (1 − α) bounds; bounds are None for
            aggregates and zero-tolerance sets, everything is None for NoData.
        mde: the minimum detectable |Δ| at this n (paired metrics).
        p_superiority: primary only: p-value of H0 "gain ≤ ε" (for binary items the
            larger of the exact McNemar p and the score p at ε).
        p_adjusted: primary only: Holm-adjusted across the candidates of the round.
    """

    spec: MetricSpec
    verdict: Verdict
    reason: str
    delta: float | None = None
    lower: float | None = None
    upper: float | None = None
    inputs: Inputs | None = None
    mde: float | None = None
    p_superiority: float | None = None
    p_adjusted: float | None = None

    @property
    def gain(self) -> float | None:
        """``sign · Δ``: positive is an improvement."""
        return None if self.delta is None else self.spec.direction.sign * self.delta

    def to_record(self) -> dict[str, JsonValue]:
        return {
            "metric": self.spec.name,
            "group": self.spec.group.value,
            "role": self.spec.role.value,
            "kind": self.spec.kind.value,
            "direction": self.spec.direction.value,
            "margin": number(self.spec.margin),
            "verdict": self.verdict.value,
            "reason": self.reason,
            "delta": optional_number(self.delta),
            "lower": optional_number(self.lower),
            "upper": optional_number(self.upper),
            "inputs": None if self.inputs is None else self.inputs.to_record(),
            "mde": optional_number(self.mde),
            "p_superiority": optional_number(self.p_superiority),
            "p_adjusted": optional_number(self.p_adjusted),
        }


def _fmt(value: float) -> str:
    return f"{value + 0.0:+.4g}"  # + 0.0 turns −0.0 into 0.0: no "-0" margins


def _interval(delta: float, lower: float, upper: float) -> str:
    return f"Δ {_fmt(delta)} [{_fmt(lower)}, {_fmt(upper)}]"


def _no_data(spec: MetricSpec, reason: str) -> MetricResult:
    return MetricResult(spec=spec, verdict=Verdict.NO_DATA, reason=reason)


def _paired_verdict(spec: MetricSpec, gain_lower: float, gain_upper: float) -> Verdict:
    margin = spec.margin
    if spec.role in (Role.GUARDRAIL, Role.SLICE) and gain_lower > margin:
        return Verdict.BETTER
    if gain_upper < -margin:
        return Verdict.WORSE  # clearly worse: the whole interval is past the margin
    if gain_lower > -margin:
        return Verdict.PASS
    return Verdict.INCONCLUSIVE


def _paired_reason(spec: MetricSpec, verdict: Verdict, text: str) -> str:
    sign = spec.direction.sign
    harm = _fmt(-sign * spec.margin)
    bound = "lower" if sign > 0 else "upper"
    side = "above" if sign > 0 else "below"
    if verdict is Verdict.BETTER:
        gain = _fmt(sign * spec.margin)
        return f"{text}: better by more than the margin, {bound} bound {side} {gain}"
    if verdict is Verdict.WORSE:
        return f"{text}: worse beyond the margin {harm}, the whole interval is past it"
    if verdict is Verdict.PASS:
        return f"{text}: non-inferior, {bound} bound {side} the margin {harm}"
    return f"{text}: straddles the margin {harm}, neither non-inferior nor clearly worse"


def _paired_result(
    spec: MetricSpec,
    *,
    delta: float,
    bounds: stats.Bounds,
    detail: str,
    inputs: Inputs,
    mde: float,
    p_superiority: float | None,
) -> MetricResult:
    """A paired metric's result from the bounds of Δ (candidate − champion); ``detail``
    names the data in the reason."""
    sign = spec.direction.sign
    gain_lower, gain_upper = (
        (bounds.lower, bounds.upper) if sign > 0 else (-bounds.upper, -bounds.lower)
    )
    verdict = _paired_verdict(spec, gain_lower, gain_upper)
    text = f"{_interval(delta, bounds.lower, bounds.upper)} ({detail})"
    return MetricResult(
        spec=spec,
        verdict=verdict,
        reason=_paired_reason(spec, verdict, text),
        delta=delta,
        lower=bounds.lower,
        upper=bounds.upper,
        inputs=inputs,
        mde=mde,
        p_superiority=p_superiority,
    )


def _binary(spec: MetricSpec, data: PairedBinary, policy: Policy) -> MetricResult:
    n, sign = data.n, spec.direction.sign
    b, c = data.discordant()
    delta = (c - b) / n
    bounds = stats.score_bounds(b, c, n, alpha=policy.alpha)
    exact = stats.mcnemar_exact(b, c)
    p_exact = exact.p_greater if sign > 0 else exact.p_less
    # Planning variance of one item's difference (notes §4.1): p_disc − Δ², with at least
    # one discordant pair assumed so that a tie with the champion does not claim MDE 0.
    variance = max(max(b + c, 1) / n - delta * delta, 0.0)
    mde = stats.minimum_detectable_effect(
        math.sqrt(variance / n), alpha=policy.alpha, power=policy.power
    )
    p_superiority = None
    if spec.role is Role.PRIMARY:
        wins, losses = (c, b) if sign > 0 else (b, c)
        p_score = stats.score_p_value(losses, wins, n, delta0=policy.epsilon_up)
        # Superiority needs both the exact McNemar test (gain > 0) and the score test
        # (gain > ε): the larger p-value is a valid p-value for the stricter claim.
        p_superiority = max(p_exact, p_score)
    return _paired_result(
        spec,
        delta=delta,
        bounds=bounds,
        detail=f"b={b}, c={c}, n={n}",
        inputs=BinaryInputs(
            n=n,
            b=b,
            c=c,
            p_exact=p_exact,
            p_exact_two_sided=exact.p_two_sided,
            data_sha256=data.digest(),
        ),
        mde=mde,
        p_superiority=p_superiority,
    )


def _continuous(spec: MetricSpec, data: PairedContinuous, policy: Policy) -> MetricResult:
    n, sign = data.n, spec.direction.sign
    differences = data.differences()
    replicates = stats.bootstrap_means(
        differences, samples=policy.bootstrap_samples, seed=policy.seed
    )
    bounds = stats.bootstrap_bounds(replicates, alpha=policy.alpha)
    delta = float(differences.mean())
    sd = float(differences.std(ddof=1))
    mde = stats.minimum_detectable_effect(sd / math.sqrt(n), alpha=policy.alpha, power=policy.power)
    p_superiority = None
    if spec.role is Role.PRIMARY:
        gains: NDArray[np.float64] = sign * replicates
        p_superiority = stats.bootstrap_p_value(gains, delta0=policy.epsilon_up)
    return _paired_result(
        spec,
        delta=delta,
        bounds=bounds,
        detail=f"n={n}",
        inputs=ContinuousInputs(
            n=n,
            champion_mean=float(data.champion.mean()),
            candidate_mean=float(data.candidate.mean()),
            sd_difference=sd,
            samples=policy.bootstrap_samples,
            seed=policy.seed,
            data_sha256=data.digest(),
        ),
        mde=mde,
        p_superiority=p_superiority,
    )


def _aggregate(spec: MetricSpec, data: AggregateValue) -> MetricResult:
    # Non-inferiority by a ratio margin on stored aggregates: there are no per-item
    # pairs, so no interval; the comparison is deterministic on the two numbers.
    # The ratio is compared with the allowed ratios themselves (1 ± margin), not Δ with
    # the margin, so that a value exactly at the margin passes in floating point too.
    sign, margin, ratio = spec.direction.sign, spec.margin, data.ratio
    delta = ratio - 1.0
    worst, best = 1.0 - sign * margin, 1.0 + sign * margin
    text = f"ratio {ratio:.4g} ({data.candidate:.4g} vs {data.champion:.4g})"
    if spec.role in (Role.GUARDRAIL, Role.SLICE) and sign * ratio > sign * best:
        verdict, reason = Verdict.BETTER, f"{text}: better than {best:.4g}"
    elif sign * ratio < sign * worst:
        verdict, reason = Verdict.WORSE, f"{text}: past the allowed {worst:.4g}"
    else:
        verdict, reason = Verdict.PASS, f"{text}: within the allowed {worst:.4g}"
    return MetricResult(
        spec=spec,
        verdict=verdict,
        reason=reason,
        delta=delta,
        inputs=AggregateInputs(champion=data.champion, candidate=data.candidate, ratio=ratio),
    )


def _zero_tolerance(spec: MetricSpec, data: PairedBinary, policy: Policy) -> MetricResult:
    if data.n == 0:
        return _no_data(spec, "no items in the zero-tolerance set")
    good_is_true = spec.direction.sign > 0
    failures = int(np.count_nonzero(data.candidate != good_is_true))
    champion_failures = int(np.count_nonzero(data.champion != good_is_true))
    upper = stats.clopper_pearson(failures, data.n, alpha=policy.alpha).upper
    text = (
        f"candidate failed {failures} of {data.n} zero-tolerance items "
        f"(champion {champion_failures})"
    )
    if failures:
        verdict, reason = Verdict.CRITICAL, f"{text}: any failure vetoes"
    else:
        verdict, reason = Verdict.PASS, f"{text}: failure rate at most {upper:.3g}"
    return MetricResult(
        spec=spec,
        verdict=verdict,
        reason=reason,
        inputs=ZeroToleranceInputs(
            n=data.n,
            candidate_failures=failures,
            champion_failures=champion_failures,
            failure_rate_upper=upper,
        ),
    )


def judge(spec: MetricSpec, data: MetricData | None, policy: Policy) -> MetricResult:
    """The verdict for one metric. For the primary metric the verdict is only
    non-inferiority (Pass / Inconclusive / Worse) until :func:`settle_primary` applies the
    superiority test across candidates.

    Raises:
        InvalidRequest: the data's kind is not the spec's kind.
    """
    if data is None:
        return _no_data(spec, "no evidence for this metric")
    if data.kind is not spec.kind:
        raise InvalidRequest(
            f"metric {spec.name} is {spec.kind.value} but the evidence is {data.kind.value}"
        )
    if isinstance(data, AggregateValue):
        return _aggregate(spec, data)
    if spec.role is Role.ZERO_TOLERANCE:
        assert isinstance(data, PairedBinary)  # MetricSpec refuses non-binary sets
        return _zero_tolerance(spec, data, policy)
    if data.n < policy.min_pairs:
        return _no_data(spec, f"only {data.n} paired items, at least {policy.min_pairs} needed")
    if isinstance(data, PairedBinary):
        return _binary(spec, data, policy)
    return _continuous(spec, data, policy)


def settle_primary(result: MetricResult, *, p_adjusted: float, policy: Policy) -> MetricResult:
    """Apply the superiority decision to the primary metric's result.

    DESIGN §10: superiority is "lower one-sided bound of the gain > ε", decided by Holm
    across candidates: Better iff the Holm-adjusted p-value is ≤ α.

    Raises:
        InvalidRequest: ``result`` is not a judged primary metric.
    """
    if result.spec.role is not Role.PRIMARY or result.spec.kind is MetricKind.AGGREGATE:
        raise InvalidRequest(f"{result.spec.name} is not the primary metric")
    if result.verdict is Verdict.NO_DATA:
        return result
    assert result.delta is not None and result.lower is not None and result.upper is not None
    assert result.mde is not None
    sign = result.spec.direction.sign
    epsilon, alpha = policy.epsilon_up, policy.alpha
    text = _interval(result.delta, result.lower, result.upper)
    bound = "lower" if sign > 0 else "upper"
    if p_adjusted <= alpha:
        reason = (
            f"{text}: superior, {bound} bound clears ε {_fmt(sign * epsilon)} "
            f"(Holm-adjusted p {p_adjusted:.3g} ≤ α {alpha:g})"
        )
        return dataclasses.replace(
            result, verdict=Verdict.BETTER, reason=reason, p_adjusted=p_adjusted
        )
    if result.verdict is Verdict.WORSE:
        return dataclasses.replace(result, p_adjusted=p_adjusted)
    reason = (
        f"{result.reason}; not shown superior to ε {_fmt(sign * epsilon)} "
        f"(Holm-adjusted p {p_adjusted:.3g} > α {alpha:g}); "
        f"minimum detectable effect {result.mde:.4g} at this n"
    )
    return dataclasses.replace(result, reason=reason, p_adjusted=p_adjusted)

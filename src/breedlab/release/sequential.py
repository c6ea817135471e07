"""Anytime-valid canary guardrails: Wald's SPRT on rates and mSPRT on differences.

Owns the guardrail state machines and their verdicts: the statistic, the boundaries,
the operational limits (minimum samples, hard ceilings, no-data rule) and a sentence
saying what would trigger an abort. Leaves to others: what counts as an error and how
canary and champion observations are paired (the release controller), acting on an
abort (the controller routes 100% to the champion and retires the canary id), and
recording the timestamps of an abort (:mod:`breedlab.release.recovery`).

Seed, stage 3: canary abort is automatic. DESIGN §11: guardrails are anytime-valid, so
the controller may look after every request without inflating false aborts (a
fixed-n test peeked at every observation rejected a true null 48% of the time; notes
§5.3). Two monitors:

* :class:`SprtGuardrail`, Wald's SPRT on an absolute error rate, H0 ``p <= p_ok``
  against H1 ``p >= p_bad``. The log likelihood ratio moves by ``ln(p_bad/p_ok)`` per
  error and ``ln((1-p_bad)/(1-p_ok))`` per clean request; abort at
  ``ln((1-beta)/alpha)``, pass at ``ln(beta/(1-alpha))``.
* :class:`MsprtGuardrail`, the mixture SPRT of Johari, Pekelis and Walsh with a normal
  mixture of variance ``tau2`` over the difference ``d = canary - champion``::

      Lambda_n(theta0) = sqrt(s/(s + n t)) * exp(n^2 t (mean_n - theta0)^2 / (2 s (s + n t)))

  with ``s = sigma2``, ``t = tau2``. The always-valid p-value is
  ``p_n = min(1, 1 / max_k Lambda_k(0))`` and the confidence sequence is
  ``mean_n +- sqrt(s (s + n t) / (n^2 t) * (2 ln(1/alpha) + ln((s + n t)/s)))``,
  intersected over looks. It aborts when the whole sequence lies beyond the harm
  margin and passes when it lies inside the non-inferiority margin.

Guardrails are values: ``observe`` and ``tick`` return a new guardrail, each in O(1)
per observation. Verdicts latch: once a guardrail aborts or passes it ignores further
observations (a stopped sequential test keeps its guarantee only if it stays stopped);
start a new one for the next ramp stage. No verdict is given before ``n_min``
observations, except by the no-data rule. Times are seconds from the injected
``Clock.monotonic()``; nothing here reads a clock.

Why one module of this length: the two guardrails share the operational limits,
the latching verdict and its explanation; the formulas above are the module's map.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import Enum
from typing import Protocol, Self, TypeVar

from breedlab.canonical import JsonValue
from breedlab.errors import InvalidRequest
from breedlab.release._decimal import float_text

__all__ = [
    "Guardrail",
    "GuardrailStatus",
    "MsprtConfig",
    "MsprtGuardrail",
    "NoDataRule",
    "Pair",
    "SprtConfig",
    "SprtGuardrail",
    "Trigger",
    "Verdict",
    "WorseWhen",
    "combined_verdict",
]


class Verdict(Enum):
    """What a guardrail says now."""

    CONTINUE = "continue"
    ABORT = "abort"
    PASS = "pass"


class Trigger(Enum):
    """Why a guardrail stopped."""

    TEST = "test"  # the sequential test crossed its boundary
    CEILING = "ceiling"  # a hard ceiling on the observed level was exceeded
    NO_DATA = "no_data"  # no observation for longer than the no-data rule allows


class WorseWhen(Enum):
    """Which direction of ``canary - champion`` is harm."""

    HIGHER = "higher"  # error rates, latency, disagreement
    LOWER = "lower"  # accuracy, agreement


@dataclass(frozen=True, slots=True, kw_only=True)
class NoDataRule:
    """Abort when no observation arrives for ``max_silence_s`` seconds (notes §5.3).

    Fails closed: a canary that cannot be measured cannot be judged healthy. The
    silence is counted from the last observation, or from the start if there was none.
    """

    max_silence_s: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.max_silence_s) and self.max_silence_s > 0):
            raise InvalidRequest(f"max_silence_s must be positive (got {self.max_silence_s})")


@dataclass(frozen=True, slots=True, kw_only=True)
class GuardrailStatus:
    """A guardrail's verdict with its evidence.

    ``statistic`` is compared with ``threshold`` (the log likelihood ratio against the
    abort boundary for the SPRT; the confidence sequence's bound on harm against the
    abort margin for the mSPRT). ``explanation`` says what would trigger an abort, or
    what did.
    """

    verdict: Verdict
    statistic: float
    threshold: float
    n: int
    explanation: str
    trigger: Trigger | None = None

    def to_record(self) -> dict[str, JsonValue]:
        """The status as canonical-JSON-ready values (floats as decimal strings)."""
        return {
            "verdict": self.verdict.value,
            "statistic": float_text(self.statistic),
            "threshold": float_text(self.threshold),
            "n": self.n,
            "explanation": self.explanation,
            "trigger": None if self.trigger is None else self.trigger.value,
        }


ObservationT = TypeVar("ObservationT", contravariant=True)


class Guardrail(Protocol[ObservationT]):
    """A canary monitor: a value that takes observations and says continue, abort or pass."""

    def observe(self, observation: ObservationT, *, at: float) -> Self:
        """The guardrail after one more observation made at ``at`` seconds."""
        ...

    def tick(self, *, at: float) -> Self:
        """The guardrail at ``at`` seconds with no new observation (applies the no-data rule)."""
        ...

    def status(self) -> GuardrailStatus:
        """The current verdict and its evidence."""
        ...


def combined_verdict(statuses: Sequence[GuardrailStatus]) -> Verdict:
    """Any abort aborts; pass only when every guardrail passed (notes §4.3: a union).

    Give each of G guardrails ``alpha / G`` to cap the overall false-abort rate.

    Raises:
        InvalidRequest: no statuses (an empty set of guardrails never passes a canary).
    """
    if not statuses:
        raise InvalidRequest("a canary needs at least one guardrail")
    verdicts = {s.verdict for s in statuses}
    if Verdict.ABORT in verdicts:
        return Verdict.ABORT
    if verdicts == {Verdict.PASS}:
        return Verdict.PASS
    return Verdict.CONTINUE


def _check_fraction(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and 0.0 < value < 1.0):
        raise InvalidRequest(f"{name} must be in (0, 1) (got {value!r})")


def _check_time(now: float, at: float) -> None:
    if not math.isfinite(at):
        raise InvalidRequest(f"an observation time must be finite (got {at})")
    if at < now:
        raise InvalidRequest(f"time went backwards: {at} s after {now} s")


def _silence_exceeded(rule: NoDataRule | None, last_seen_at: float, at: float) -> bool:
    return rule is not None and at - last_seen_at >= rule.max_silence_s


_GuardrailT = TypeVar("_GuardrailT", "SprtGuardrail", "MsprtGuardrail")


def _tick(guardrail: _GuardrailT, at: float) -> _GuardrailT:
    """Either guardrail's ``tick``: the no-data rule applied at ``at``."""
    _check_time(guardrail.now, at)
    if guardrail.verdict is Verdict.CONTINUE and _silence_exceeded(
        guardrail.config.no_data, guardrail.last_seen_at, at
    ):
        return guardrail._decide(Verdict.ABORT, Trigger.NO_DATA, at)
    return replace(guardrail, now=at)


# --------------------------------------------------------------------------- SPRT


@dataclass(frozen=True, slots=True, kw_only=True)
class SprtConfig:
    """Wald SPRT on an absolute error rate (notes §5.3, monitor 2).

    Attributes:
        p_ok: the error rate that is fine (H0: ``p <= p_ok``).
        p_bad: the error rate that must abort (H1: ``p >= p_bad``).
        alpha: the false-abort rate allowed at ``p = p_ok``. Wald's boundaries bound it
            by ``alpha / (1 - beta)`` (Ville's inequality) and give about ``alpha`` in
            practice: 3.3% measured at these defaults over 2,000 x 2,000 requests.
        beta: the chance of passing a canary whose rate is ``p_bad``.
        n_min: requests before any verdict (low traffic causes false aborts otherwise).
        max_rate: a hard ceiling on the observed error rate, checked at every look
            from ``n_min`` on; ``None`` for no ceiling.
        no_data: the no-data rule; ``None`` leaves silence to the controller's timeout.
    """

    p_ok: float = 0.01
    p_bad: float = 0.03
    alpha: float = 0.05
    beta: float = 0.20
    n_min: int = 20
    max_rate: float | None = None
    no_data: NoDataRule | None = None

    def __post_init__(self) -> None:
        _check_fraction("p_ok", self.p_ok)
        _check_fraction("p_bad", self.p_bad)
        if not self.p_ok < self.p_bad:
            raise InvalidRequest(f"p_ok must be below p_bad (got {self.p_ok}, {self.p_bad})")
        _check_fraction("alpha", self.alpha)
        _check_fraction("beta", self.beta)
        if not self.alpha + self.beta < 1.0:
            raise InvalidRequest("alpha + beta must be below 1 for the boundaries to be ordered")
        if not (isinstance(self.n_min, int) and self.n_min >= 1):
            raise InvalidRequest(f"n_min must be a positive integer (got {self.n_min!r})")
        if self.max_rate is not None and not self.p_bad < self.max_rate <= 1.0:
            raise InvalidRequest(
                f"max_rate must be in (p_bad, 1] (got {self.max_rate}, p_bad {self.p_bad})"
            )

    @property
    def error_step(self) -> float:
        """Log-LR increment per error: ``ln(p_bad / p_ok)`` (positive)."""
        return math.log(self.p_bad / self.p_ok)

    @property
    def clean_step(self) -> float:
        """Log-LR increment per clean request: ``ln((1 - p_bad) / (1 - p_ok))`` (negative)."""
        return math.log((1.0 - self.p_bad) / (1.0 - self.p_ok))

    @property
    def abort_at(self) -> float:
        """Upper boundary: ``ln((1 - beta) / alpha)``."""
        return math.log((1.0 - self.beta) / self.alpha)

    @property
    def pass_at(self) -> float:
        """Lower boundary: ``ln(beta / (1 - alpha))``."""
        return math.log(self.beta / (1.0 - self.alpha))


@dataclass(frozen=True, slots=True, kw_only=True)
class SprtGuardrail:
    """The state of one SPRT guardrail. Build with :meth:`start`."""

    config: SprtConfig
    started_at: float
    n: int = 0
    errors: int = 0
    last_seen_at: float
    now: float
    verdict: Verdict = Verdict.CONTINUE
    trigger: Trigger | None = None
    decided_at: float | None = None

    @classmethod
    def start(cls, config: SprtConfig, *, at: float) -> SprtGuardrail:
        """A fresh guardrail started at ``at`` seconds."""
        _check_time(-math.inf, at)
        return cls(config=config, started_at=at, last_seen_at=at, now=at)

    @property
    def log_lr(self) -> float:
        """The log likelihood ratio of H1 to H0 after ``n`` requests."""
        c = self.config
        return self.errors * c.error_step + (self.n - self.errors) * c.clean_step

    def observe(self, observation: bool, *, at: float) -> SprtGuardrail:
        """One request: ``True`` if it was an error."""
        return self.observe_batch(errors=1 if observation else 0, requests=1, at=at)

    def observe_batch(self, *, errors: int, requests: int, at: float) -> SprtGuardrail:
        """A batch of ``requests`` with ``errors`` among them, looked at once at its end.

        Raises:
            InvalidRequest: counts out of range, or time going backwards.
        """
        _check_time(self.now, at)
        if not (0 <= errors <= requests):
            raise InvalidRequest(f"need 0 <= errors <= requests (got {errors}, {requests})")
        if self.verdict is not Verdict.CONTINUE:
            return replace(self, now=at)
        if _silence_exceeded(self.config.no_data, self.last_seen_at, at):
            return self._decide(Verdict.ABORT, Trigger.NO_DATA, at)
        if requests == 0:
            return replace(self, now=at)
        state = replace(
            self, n=self.n + requests, errors=self.errors + errors, last_seen_at=at, now=at
        )
        return state._judge(at)

    def tick(self, *, at: float) -> SprtGuardrail:
        """The guardrail at ``at`` with no new request: applies the no-data rule."""
        return _tick(self, at)

    def _judge(self, at: float) -> SprtGuardrail:
        c = self.config
        if self.n < c.n_min:
            return self
        # seed, stage 3: canary abort is automatic; a hard ceiling needs no test.
        if c.max_rate is not None and self.errors > c.max_rate * self.n:
            return self._decide(Verdict.ABORT, Trigger.CEILING, at)
        llr = self.log_lr
        if llr >= c.abort_at:
            return self._decide(Verdict.ABORT, Trigger.TEST, at)
        if llr <= c.pass_at:
            return self._decide(Verdict.PASS, Trigger.TEST, at)
        return self

    def _decide(self, verdict: Verdict, trigger: Trigger, at: float) -> SprtGuardrail:
        return replace(self, verdict=verdict, trigger=trigger, decided_at=at, now=at)

    def status(self) -> GuardrailStatus:
        """The verdict, the log-LR against the abort boundary, and why."""
        c = self.config
        return GuardrailStatus(
            verdict=self.verdict,
            statistic=self.log_lr,
            threshold=c.abort_at,
            n=self.n,
            explanation=self._explain(),
            trigger=self.trigger,
        )

    def _explain(self) -> str:
        c = self.config
        llr = self.log_lr
        seen = f"{self.errors} error(s) in {self.n} request(s)"
        if self.trigger is Trigger.NO_DATA:
            assert c.no_data is not None
            return f"aborted: no request observed for {c.no_data.max_silence_s:g} s (after {seen})"
        if self.trigger is Trigger.CEILING:
            assert c.max_rate is not None
            rate = self.errors / self.n
            return (
                f"aborted: error rate {rate:.4g} exceeds the hard ceiling {c.max_rate:g} ({seen})"
            )
        if self.verdict is Verdict.ABORT:
            return (
                f"aborted: log-LR {llr:.3f} reached {c.abort_at:.3f} ({seen}); the error rate "
                f"is more likely {c.p_bad:g} than {c.p_ok:g} (alpha {c.alpha:g})"
            )
        if self.verdict is Verdict.PASS:
            return (
                f"passed: log-LR {llr:.3f} fell to {c.pass_at:.3f} ({seen}); the error rate "
                f"is more likely {c.p_ok:g} than {c.p_bad:g} (beta {c.beta:g})"
            )
        more = max(1, math.ceil((c.abort_at - llr) / c.error_step))
        parts = [
            f"abort when log-LR >= {c.abort_at:.3f} (now {llr:.3f} after {seen}): "
            f"{more} more error(s) in a row would do it"
        ]
        if self.n < c.n_min:
            parts.append(f"no verdict before {c.n_min} requests")
        if c.max_rate is not None:
            parts.append(f"or an error rate above {c.max_rate:g}")
        if c.no_data is not None:
            parts.append(f"or {c.no_data.max_silence_s:g} s without a request")
        parts.append(f"pass when log-LR <= {c.pass_at:.3f}")
        return "; ".join(parts)


# -------------------------------------------------------------------------- mSPRT


@dataclass(frozen=True, slots=True, kw_only=True)
class Pair:
    """One canary observation and the concurrent champion observation it is paired with.

    Pair in arrival order when the cohorts are not naturally paired (notes §5.3). For a
    latency ratio observe log latencies.
    """

    canary: float
    champion: float


@dataclass(frozen=True, slots=True, kw_only=True)
class MsprtConfig:
    """mSPRT on ``d = canary - champion`` (notes §5.3, monitor 1).

    Attributes:
        sigma2: the variance of one difference ``d`` (e.g. ``2 p (1 - p)`` for a
            Bernoulli error pair at the champion's rate ``p``), in metric units squared.
        tau2: the mixing variance, about the square of the smallest harmful effect.
        alpha: the false-abort rate allowed when canary and champion are equal.
        worse_when: which direction of ``d`` is harm.
        abort_margin: abort when the confidence sequence shows harm above this (>= 0).
        pass_margin: pass when it shows harm below this (the non-inferiority margin);
            ``None`` never passes (monitor only).
        n_min: pairs before any verdict; looks before ``n_min`` are not counted.
        ceiling: a hard ceiling on the mean harm, checked at every look from ``n_min``.
        estimate_variance: use ``max(sigma2, running sample variance)``: the sequence can
            widen when the data are noisier than assumed, never shrink below ``sigma2``.
        no_data: the no-data rule; ``None`` leaves silence to the controller's timeout.

    The guarantee is exact for normal differences of known variance; for Bernoulli pairs
    it is asymptotic, which is why looks before ``n_min`` are not counted at all.
    """

    sigma2: float
    tau2: float
    alpha: float = 0.05
    worse_when: WorseWhen = WorseWhen.HIGHER
    abort_margin: float = 0.0
    pass_margin: float | None = None
    n_min: int = 100
    ceiling: float | None = None
    estimate_variance: bool = False
    no_data: NoDataRule | None = None

    def __post_init__(self) -> None:
        for name, value in (("sigma2", self.sigma2), ("tau2", self.tau2)):
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise InvalidRequest(f"{name} must be a positive variance (got {value!r})")
        _check_fraction("alpha", self.alpha)
        if not (math.isfinite(self.abort_margin) and self.abort_margin >= 0):
            raise InvalidRequest(f"abort_margin must be >= 0 (got {self.abort_margin})")
        for name, margin in (("pass_margin", self.pass_margin), ("ceiling", self.ceiling)):
            if margin is not None and not math.isfinite(margin):
                raise InvalidRequest(f"{name} must be finite (got {margin})")
        if self.ceiling is not None and self.ceiling <= self.abort_margin:
            raise InvalidRequest("a hard ceiling on harm must lie above the abort margin")
        if not (isinstance(self.n_min, int) and self.n_min >= 1):
            raise InvalidRequest(f"n_min must be a positive integer (got {self.n_min!r})")


def _log_lr(n: int, mean: float, theta0: float, s: float, t: float) -> float:
    v = s + n * t
    return 0.5 * math.log(s / v) + (n * n * t * (mean - theta0) ** 2) / (2.0 * s * v)


def _radius(n: int, s: float, t: float, alpha: float) -> float:
    v = s + n * t
    return math.sqrt(s * v / (n * n * t) * (2.0 * math.log(1.0 / alpha) + math.log(v / s)))


@dataclass(frozen=True, slots=True, kw_only=True)
class MsprtGuardrail:
    """The state of one mSPRT guardrail. Build with :meth:`start`."""

    config: MsprtConfig
    started_at: float
    last_seen_at: float
    now: float
    n: int = 0
    mean: float = 0.0
    m2: float = 0.0  # Welford sum of squared deviations of d
    max_log_lr: float = -math.inf  # max over looks k >= n_min of log Lambda_k(0)
    cs_low: float = -math.inf  # running intersection of the confidence sequence
    cs_high: float = math.inf
    verdict: Verdict = Verdict.CONTINUE
    trigger: Trigger | None = None
    decided_at: float | None = None

    @classmethod
    def start(cls, config: MsprtConfig, *, at: float) -> MsprtGuardrail:
        """A fresh guardrail started at ``at`` seconds."""
        _check_time(-math.inf, at)
        return cls(config=config, started_at=at, last_seen_at=at, now=at)

    @property
    def variance(self) -> float:
        """The ``sigma2`` in use: the configured one, or the running estimate if larger."""
        s = self.config.sigma2
        if self.config.estimate_variance and self.n >= 2:
            return max(s, self.m2 / (self.n - 1))
        return s

    @property
    def p_value(self) -> float:
        """Always-valid two-sided p-value of ``canary == champion``: ``min(1, 1/max Lambda)``."""
        if self.max_log_lr <= 0.0:  # Lambda <= 1 at every look, or no look yet
            return 1.0
        return math.exp(-self.max_log_lr)

    @property
    def confidence_sequence(self) -> tuple[float, float]:
        """Bounds on ``canary - champion`` valid over all looks at level ``1 - alpha``."""
        return (self.cs_low, self.cs_high)

    @property
    def harm_bounds(self) -> tuple[float, float]:
        """The confidence sequence in harm units (positive is worse for the canary)."""
        if self.config.worse_when is WorseWhen.HIGHER:
            return (self.cs_low, self.cs_high)
        return (-self.cs_high, -self.cs_low)

    @property
    def mean_harm(self) -> float:
        """The mean difference in harm units."""
        return self.mean if self.config.worse_when is WorseWhen.HIGHER else -self.mean

    def observe(self, observation: Pair, *, at: float) -> MsprtGuardrail:
        """One canary observation paired with one champion observation.

        Raises:
            InvalidRequest: a non-finite value, or time going backwards.
        """
        _check_time(self.now, at)
        d = observation.canary - observation.champion
        if not math.isfinite(d):
            raise InvalidRequest(f"observations must be finite (got {observation})")
        if self.verdict is not Verdict.CONTINUE:
            return replace(self, now=at)
        if _silence_exceeded(self.config.no_data, self.last_seen_at, at):
            return self._decide(Verdict.ABORT, Trigger.NO_DATA, at)
        n = self.n + 1
        delta = d - self.mean
        mean = self.mean + delta / n
        m2 = self.m2 + delta * (d - mean)
        state = replace(self, n=n, mean=mean, m2=m2, last_seen_at=at, now=at)
        return state._look(at)

    def observe_batch(
        self, canary: Sequence[float], champion: Sequence[float], *, at: float
    ) -> MsprtGuardrail:
        """Pairs observed together at ``at``; each pair is a look.

        Raises:
            InvalidRequest: the sequences differ in length.
        """
        if len(canary) != len(champion):
            raise InvalidRequest(
                f"need as many champion as canary values (got {len(champion)}, {len(canary)})"
            )
        state = self.tick(at=at)
        for x, y in zip(canary, champion, strict=True):
            if state.verdict is not Verdict.CONTINUE:
                break
            state = state.observe(Pair(canary=x, champion=y), at=at)
        return state

    def tick(self, *, at: float) -> MsprtGuardrail:
        """The guardrail at ``at`` with no new pair: applies the no-data rule."""
        return _tick(self, at)

    def _look(self, at: float) -> MsprtGuardrail:
        c = self.config
        if self.n < c.n_min:
            return self
        s, t = self.variance, c.tau2
        r = _radius(self.n, s, t, c.alpha)
        state = replace(
            self,
            max_log_lr=max(self.max_log_lr, _log_lr(self.n, self.mean, 0.0, s, t)),
            cs_low=max(self.cs_low, self.mean - r),
            cs_high=min(self.cs_high, self.mean + r),
        )
        harm_low, harm_high = state.harm_bounds
        # seed, stage 3: canary abort is automatic; a hard ceiling needs no test.
        if c.ceiling is not None and state.mean_harm > c.ceiling:
            return state._decide(Verdict.ABORT, Trigger.CEILING, at)
        if harm_low > c.abort_margin:
            return state._decide(Verdict.ABORT, Trigger.TEST, at)
        if c.pass_margin is not None and harm_high < c.pass_margin:
            return state._decide(Verdict.PASS, Trigger.TEST, at)
        return state

    def _decide(self, verdict: Verdict, trigger: Trigger, at: float) -> MsprtGuardrail:
        return replace(self, verdict=verdict, trigger=trigger, decided_at=at, now=at)

    def status(self) -> GuardrailStatus:
        """The verdict, the lower bound on harm against the abort margin, and why."""
        return GuardrailStatus(
            verdict=self.verdict,
            statistic=self.harm_bounds[0],
            threshold=self.config.abort_margin,
            n=self.n,
            explanation=self._explain(),
            trigger=self.trigger,
        )

    def _explain(self) -> str:
        c = self.config
        low, high = self.harm_bounds
        level = f"{100 * (1 - c.alpha):g}%"
        seen = f"mean harm {self.mean_harm:+.4g} over {self.n} pair(s)"
        cs = f"[{low:+.4g}, {high:+.4g}]"
        if self.trigger is Trigger.NO_DATA:
            assert c.no_data is not None
            return f"aborted: no pair observed for {c.no_data.max_silence_s:g} s ({seen})"
        if self.trigger is Trigger.CEILING:
            return f"aborted: {seen} exceeds the hard ceiling {c.ceiling:+g}"
        if self.verdict is Verdict.ABORT:
            return (
                f"aborted: the {level} confidence sequence for harm {cs} lies above "
                f"{c.abort_margin:+g} ({seen}; always-valid p {self.p_value:.3g})"
            )
        if self.verdict is Verdict.PASS:
            return (
                f"passed: the {level} confidence sequence for harm {cs} lies below "
                f"{c.pass_margin:+g} ({seen})"
            )
        parts = [
            f"abort when the {level} confidence sequence for harm lies above "
            f"{c.abort_margin:+g} (now {cs}, {seen})"
        ]
        if self.n < c.n_min:
            parts.append(f"no verdict before {c.n_min} pairs")
        if c.ceiling is not None:
            parts.append(f"or a mean harm above {c.ceiling:+g}")
        if c.no_data is not None:
            parts.append(f"or {c.no_data.max_silence_s:g} s without a pair")
        if c.pass_margin is not None:
            parts.append(f"pass when it lies below {c.pass_margin:+g}")
        return "; ".join(parts)

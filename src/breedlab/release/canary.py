"""One canary stage's guardrails as a value: what a canary observation is, how it moves
the four anytime-valid monitors, and when the stage aborts or passes.

Owns the canary's definition of error, disagreement and latency harm, the default
guardrail settings, and the stage rule. Leaves to others: cohort membership
(:mod:`breedlab.release.cohorts`), the tests themselves
(:mod:`breedlab.release.sequential`), acting on a verdict and writing it down (the
release controller in ``breedlab.lab.release``), and serving (``breedlab.http``).

Definitions (seed, stage 3; DESIGN §11; notes §5.3). Every canary-cohort request is also
answered by the champion on the same input, so each observation is paired:

* **error** (Wald SPRT on the absolute rate): the canary failed to answer -- an
  exception, a non-finite or malformed output. Operational, so its SLO rates
  (``p_ok`` 1%, ``p_bad`` 3%) do not depend on how hard the task is.
* **wrong-answer difference** (mSPRT, only for requests that carry a label):
  ``1[canary wrong] - 1[champion wrong]`` on the same input.
* **disagreement** (mSPRT): ``1[canary label != champion label]`` against the
  champion's self-agreement of 0.
* **latency** (mSPRT): ``ln(canary seconds) - ln(champion seconds)`` on the same input.

A stage aborts as soon as any monitor aborts; it passes when the SPRT has accepted H0
(error rate fine), no mSPRT has aborted and at least ``stage_min`` canary requests were
seen. A failed canary's answer counts as wrong and as a disagreement.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from breedlab.canonical import JsonValue
from breedlab.errors import InvalidRequest
from breedlab.release.cohorts import DEFAULT_RAMP, Ramp
from breedlab.release.sequential import (
    GuardrailStatus,
    MsprtConfig,
    MsprtGuardrail,
    NoDataRule,
    Pair,
    SprtConfig,
    SprtGuardrail,
    Verdict,
)

__all__ = ["CanaryObservation", "CanaryPolicy", "CanaryStage", "ExposureCap", "ramp_from"]

#: Canary requests one ramp stage may serve unless told otherwise (notes §5.2: cap the
#: absolute exposure per stage). Ten times the requests a stage needs to pass.
DEFAULT_STAGE_MAX_REQUESTS = 1000


def ramp_from(percent: float | None) -> Ramp:
    """The ramp of ``canary start --percent P``: P, then the default stages above it.

    Raises:
        InvalidRequest: ``percent`` outside ``(0, 100]``.
    """
    if percent is None:
        return Ramp()
    if not 0.0 < percent <= 100.0:
        raise InvalidRequest(f"--percent is in (0, 100] (got {percent})")
    first = percent / 100.0
    return Ramp(stages=(first, *(w for w in DEFAULT_RAMP if w > first)))


@dataclass(frozen=True, slots=True, kw_only=True)
class ExposureCap:
    """The most one ramp stage may expose: canary requests and distinct units (``None``:
    no bound). A stage that reaches its cap without passing ends *inconclusive*: the
    canary stops and the champion takes everything, rather than the stage growing."""

    requests: int | None = DEFAULT_STAGE_MAX_REQUESTS
    units: int | None = None

    def __post_init__(self) -> None:
        for name, value in (("requests", self.requests), ("units", self.units)):
            if value is not None and not (
                isinstance(value, int) and not isinstance(value, bool) and value >= 1
            ):
                raise InvalidRequest(f"an exposure cap on {name} is a positive integer ({value!r})")

    def check_passable(self, stage_min: int) -> None:
        """Refuse a cap below the requests a stage needs to pass: no stage could pass.

        Raises:
            InvalidRequest: naming both numbers.
        """
        if self.requests is not None and self.requests < stage_min:
            raise InvalidRequest(
                f"a stage needs {stage_min} canary requests to pass; an exposure cap of "
                f"{self.requests} requests would stop every stage before it could"
            )

    def admits(self, *, requests: int, units: frozenset[str] | set[str], unit: str) -> bool:
        """Whether one more request from ``unit`` stays within the cap, given the stage
        has served ``requests`` canary requests to ``units`` so far."""
        if self.requests is not None and requests >= self.requests:
            return False
        return self.units is None or unit in units or len(units) < self.units

    def to_record(self) -> dict[str, JsonValue]:
        return {"requests": self.requests, "units": self.units}

    @classmethod
    def from_record(cls, record: object) -> ExposureCap:
        """The cap recorded with a canary; none recorded (older ledgers): no bound."""
        if record is None:
            return cls(requests=None, units=None)
        if not isinstance(record, dict):
            raise InvalidRequest(f"malformed exposure cap {record!r}")

        def value(key: str) -> int | None:
            v = record.get(key)
            return None if v is None else int(str(v))

        return cls(requests=value("requests"), units=value("units"))


@dataclass(frozen=True, slots=True, kw_only=True)
class CanaryObservation:
    """One canary-cohort request, answered by the canary and by the champion.

    ``canary_label`` is ``None`` when the canary failed (``failed``); ``truth`` is the
    request's label when it carried one. Latencies are positive seconds.
    """

    failed: bool
    canary_label: str | None
    champion_label: str
    canary_latency_s: float
    champion_latency_s: float
    truth: str | None = None

    def __post_init__(self) -> None:
        if self.failed != (self.canary_label is None):
            raise InvalidRequest("a canary label is None exactly when the canary failed")
        for latency in (self.canary_latency_s, self.champion_latency_s):
            if not (math.isfinite(latency) and latency > 0):
                raise InvalidRequest(f"latencies are positive seconds (got {latency})")

    @property
    def disagrees(self) -> bool:
        return self.canary_label != self.champion_label

    def to_record(self) -> dict[str, JsonValue]:
        return {
            "failed": self.failed,
            "canary": self.canary_label,
            "champion": self.champion_label,
            "canary_latency_s": repr(self.canary_latency_s),
            "champion_latency_s": repr(self.champion_latency_s),
            "truth": self.truth,
        }

    @classmethod
    def from_record(cls, record: dict[str, JsonValue]) -> CanaryObservation:
        try:
            return cls(
                failed=bool(record["failed"]),
                canary_label=None if record["canary"] is None else str(record["canary"]),
                champion_label=str(record["champion"]),
                canary_latency_s=float(str(record["canary_latency_s"])),
                champion_latency_s=float(str(record["champion_latency_s"])),
                truth=None if record.get("truth") is None else str(record["truth"]),
            )
        except (KeyError, ValueError) as e:
            raise InvalidRequest(f"malformed canary observation {record!r}: {e}") from e


def _default_sprt() -> SprtConfig:
    # The no-data rule sits on the one monitor every canary request feeds: ten minutes
    # without a canary request while the capability is served aborts (fail closed).
    return SprtConfig(
        p_ok=0.01,
        p_bad=0.03,
        alpha=0.05,
        beta=0.20,
        n_min=20,
        no_data=NoDataRule(max_silence_s=600.0),
    )


def _default_wrong() -> MsprtConfig:
    # Harm: 2 points more wrong answers than the champion on the same inputs.
    return MsprtConfig(
        sigma2=0.05, tau2=0.05**2, alpha=0.01, abort_margin=0.02, n_min=20, estimate_variance=True
    )


def _default_disagreement() -> MsprtConfig:
    # A viable descendant flips a few answers; a broken one flips most of them.
    return MsprtConfig(
        sigma2=0.05, tau2=0.1**2, alpha=0.01, abort_margin=0.10, n_min=20, estimate_variance=True
    )


def _default_latency() -> MsprtConfig:
    # Harm: the canary is more than twice as slow as the champion on the same input.
    return MsprtConfig(
        sigma2=0.25,
        tau2=0.2**2,
        alpha=0.01,
        abort_margin=math.log(2.0),
        n_min=50,
        estimate_variance=True,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class CanaryPolicy:
    """Settings of the four monitors and the stage rule (defaults: see the module doc).

    ``stage_min``: canary requests a stage needs before it may pass.
    """

    error: SprtConfig = field(default_factory=_default_sprt)
    wrong: MsprtConfig = field(default_factory=_default_wrong)
    disagreement: MsprtConfig = field(default_factory=_default_disagreement)
    latency: MsprtConfig = field(default_factory=_default_latency)
    stage_min: int = 100

    def __post_init__(self) -> None:
        if not (isinstance(self.stage_min, int) and self.stage_min >= 1):
            raise InvalidRequest(f"stage_min must be a positive integer (got {self.stage_min!r})")


@dataclass(frozen=True, slots=True, kw_only=True)
class CanaryStage:
    """The monitors of one ramp stage. Build with :meth:`start`; verdicts latch."""

    policy: CanaryPolicy
    error: SprtGuardrail
    wrong: MsprtGuardrail
    disagreement: MsprtGuardrail
    latency: MsprtGuardrail
    requests: int = 0

    @classmethod
    def start(cls, policy: CanaryPolicy, *, at: float) -> CanaryStage:
        return cls(
            policy=policy,
            error=SprtGuardrail.start(policy.error, at=at),
            wrong=MsprtGuardrail.start(policy.wrong, at=at),
            disagreement=MsprtGuardrail.start(policy.disagreement, at=at),
            latency=MsprtGuardrail.start(policy.latency, at=at),
        )

    def observe(self, obs: CanaryObservation, *, at: float) -> CanaryStage:
        """The stage after one more canary request seen at ``at`` monotonic seconds."""
        if self.verdict is not Verdict.CONTINUE:
            return self
        wrong = self.wrong
        if obs.truth is not None:
            canary_wrong = obs.failed or obs.canary_label != obs.truth
            champion_wrong = obs.champion_label != obs.truth
            wrong = wrong.observe(
                Pair(canary=float(canary_wrong), champion=float(champion_wrong)), at=at
            )
        else:
            wrong = wrong.tick(at=at)
        latency = self.latency
        if not obs.failed:
            latency = latency.observe(
                Pair(
                    canary=math.log(obs.canary_latency_s),
                    champion=math.log(obs.champion_latency_s),
                ),
                at=at,
            )
        else:
            latency = latency.tick(at=at)
        return replace(
            self,
            error=self.error.observe(obs.failed, at=at),
            wrong=wrong,
            disagreement=self.disagreement.observe(
                Pair(canary=float(obs.disagrees), champion=0.0), at=at
            ),
            latency=latency,
            requests=self.requests + 1,
        )

    def tick(self, *, at: float) -> CanaryStage:
        """The stage at ``at`` without a canary request (applies the no-data rule)."""
        if self.verdict is not Verdict.CONTINUE:
            return self
        return replace(
            self,
            error=self.error.tick(at=at),
            wrong=self.wrong.tick(at=at),
            disagreement=self.disagreement.tick(at=at),
            latency=self.latency.tick(at=at),
        )

    def statuses(self) -> dict[str, GuardrailStatus]:
        return {
            "error": self.error.status(),
            "wrong": self.wrong.status(),
            "disagreement": self.disagreement.status(),
            "latency": self.latency.status(),
        }

    @property
    def verdict(self) -> Verdict:
        """ABORT if any monitor aborted; PASS by the stage rule; else CONTINUE."""
        monitors = (self.error, self.wrong, self.disagreement, self.latency)
        if any(m.verdict is Verdict.ABORT for m in monitors):
            return Verdict.ABORT
        if self.error.verdict is Verdict.PASS and self.requests >= self.policy.stage_min:
            return Verdict.PASS
        return Verdict.CONTINUE

    def aborted_by(self) -> tuple[str, ...]:
        """The names of the monitors that aborted."""
        monitors: dict[str, SprtGuardrail | MsprtGuardrail] = {
            "error": self.error,
            "wrong": self.wrong,
            "disagreement": self.disagreement,
            "latency": self.latency,
        }
        return tuple(n for n, m in monitors.items() if m.verdict is Verdict.ABORT)

"""The shadow gate: whether a shadow run's numbers allow a canary (notes §5.1).

Owns the gate's thresholds and its verdict with reasons. Leaves the numbers to
:mod:`breedlab.release.shadow_stats` and acting on the verdict to the release controller.
"""

from __future__ import annotations

from dataclasses import dataclass

from breedlab.errors import InvalidRequest
from breedlab.release.shadow_stats import ShadowReport

__all__ = ["GateResult", "ShadowGate"]


@dataclass(frozen=True, slots=True, kw_only=True)
class GateResult:
    """A gate's verdict; ``reasons`` names every blocker (empty when it passed)."""

    passed: bool
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ShadowGate:
    """Gate to canary: enough answered pairs, agreement, latency and errors non-inferior.

    Attributes:
        min_pairs: answered pairs needed (the shadow stage is measured in requests).
        min_agreement: the Wilson lower bound of agreement must reach this.
        max_p50_ratio, max_p95_ratio: the point latency ratios (shadow / champion) must
            stay below these. Mirrors run on a worker thread that competes with the
            primary for the interpreter, so the defaults allow for that contention.
        max_error_excess: shadow error rate minus primary error rate, at most.
    """

    min_pairs: int = 50
    min_agreement: float = 0.80
    max_p50_ratio: float = 2.0
    max_p95_ratio: float = 4.0
    max_error_excess: float = 0.01

    def __post_init__(self) -> None:
        if self.min_pairs < 1 or not 0.0 <= self.min_agreement <= 1.0:
            raise InvalidRequest("a shadow gate needs min_pairs >= 1 and agreement in [0, 1]")

    def check(self, report: ShadowReport) -> GateResult:
        """Fail closed: missing figures block the gate."""
        reasons: list[str] = []
        if report.answered < self.min_pairs:
            reasons.append(f"{report.answered} answered pairs, the gate needs {self.min_pairs}")
        if report.agreement is None:
            reasons.append(
                f"no answered pairs yet: agreement is unknown (its lower bound must reach "
                f"{self.min_agreement})"
            )
        elif report.agreement.low < self.min_agreement:
            reasons.append(
                f"agreement lower bound {report.agreement.low:.3f} is below {self.min_agreement}"
            )
        for name, ratio, limit in (
            ("p50", report.latency_p50, self.max_p50_ratio),
            ("p95", report.latency_p95, self.max_p95_ratio),
        ):
            if ratio is None:
                reasons.append(
                    f"no timed pairs yet: the {name} latency ratio is unknown (at most {limit})"
                )
            elif ratio.ratio > limit:
                reasons.append(f"{name} latency ratio {ratio.ratio:.2f} is above {limit}")
        shadow = 0.0 if report.shadow_errors is None else report.shadow_errors.estimate
        primary = 0.0 if report.primary_errors is None else report.primary_errors.estimate
        if shadow - primary > self.max_error_excess:
            reasons.append(
                f"shadow error rate {shadow:.3f} exceeds the champion's {primary:.3f} "
                f"by more than {self.max_error_excess}"
            )
        return GateResult(passed=not reasons, reasons=tuple(reasons))

"""The demotion half of the promote/demote dead band (DESIGN §10 oscillation controls).

Owns one pure check: an incumbent is demoted only when the upper bound of its primary
gain against a reference is below −ε_down (notes §6 rule 1), while promotion needs a
lower bound above +ε_up (:mod:`breedlab.viability.decision`). Between the two nothing
moves, so two equal models cannot swap places on noise. Leaves dwell times, deny-lists,
anchors and flip-flop freezes to ``breedlab.release``.
"""

from __future__ import annotations

from dataclasses import dataclass

from breedlab.canonical import JsonValue
from breedlab.viability.evidence import PairedBinary, PairedContinuous
from breedlab.viability.gates import MetricResult, Verdict, judge
from breedlab.viability.policy import Policy
from breedlab.viability.record import number

__all__ = ["Demotion", "demotion"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Demotion:
    """Whether to demote the incumbent, and why."""

    demote: bool
    epsilon_down: float
    result: MetricResult
    reason: str

    def to_record(self) -> dict[str, JsonValue]:
        return {
            "demote": self.demote,
            "epsilon_down": number(self.epsilon_down),
            "reason": self.reason,
            "primary": self.result.to_record(),
        }


def demotion(data: PairedBinary | PairedContinuous, policy: Policy) -> Demotion:
    """Check the incumbent against a reference on the policy's primary metric.

    ``data.champion`` holds the reference's per-item values (the previous champion or a
    pinned anchor) and ``data.candidate`` the incumbent's. Demote iff the incumbent's
    gain has an upper one-sided (1 − α) bound below −ε_down; no data never demotes.

    Raises:
        InvalidRequest: the data's kind is not the primary metric's kind.
    """
    spec, epsilon = policy.primary, policy.epsilon_down
    result = judge(spec, data, policy)
    if result.verdict is Verdict.NO_DATA or result.lower is None or result.upper is None:
        return Demotion(
            demote=False,
            epsilon_down=epsilon,
            result=result,
            reason=f"keep: {result.reason}",
        )
    assert result.delta is not None
    sign = spec.direction.sign
    gain_upper = result.upper if sign > 0 else -result.lower
    bound = "upper" if sign > 0 else "lower"
    text = (
        f"{spec.name} Δ {result.delta:+.4g} [{result.lower:+.4g}, {result.upper:+.4g}] "
        f"against the reference"
    )
    if gain_upper < -epsilon:
        reason = f"demote: {text}, {bound} bound past {-sign * epsilon:+.4g} (ε_down {epsilon:.4g})"
        return Demotion(demote=True, epsilon_down=epsilon, result=result, reason=reason)
    reason = f"keep: {text}, {bound} bound not past {-sign * epsilon:+.4g} (ε_down {epsilon:.4g})"
    return Demotion(demote=False, epsilon_down=epsilon, result=result, reason=reason)

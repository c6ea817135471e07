"""What a comparison is judged by: metric specs, margins and the statistical policy.

Owns the values fixed *before* any evidence is seen (DESIGN §9: margins are written in
the suite; §10: ε ≥ 2·σ_AA): each metric's direction, role, test kind and margin, the
group weights of the utility, α, the bootstrap seed and the noise floor. Leaves the
evidence to :mod:`breedlab.viability.evidence`, verdicts to
:mod:`breedlab.viability.gates` and outcomes to :mod:`breedlab.viability.decision`.
Reading suites and config files into these values is the controller's job.

Units: a paired metric's ``margin`` is in the metric's own units (0.01 = one accuracy
point); an aggregate metric's ``margin`` is relative (0.10 = a 10% worse ratio).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum

from breedlab.canonical import JsonValue
from breedlab.errors import InvalidRequest
from breedlab.viability.record import number, optional_number

__all__ = ["Direction", "Group", "GroupWeights", "MetricKind", "MetricSpec", "Policy", "Role"]


class Direction(Enum):
    """Which way is better for a metric."""

    HIGHER = "higher"  # accuracy, worst-case correctness
    LOWER = "lower"  # NLL, Brier, ECE, latency, bytes

    @property
    def sign(self) -> int:
        """+1 if higher is better, −1 if lower is better: ``gain = sign · Δ``."""
        return 1 if self is Direction.HIGHER else -1


class Group(Enum):
    """The suite families of DESIGN §9; each carries one weight in the utility."""

    TASK = "task"
    CALIBRATION = "calibration"
    ROBUSTNESS = "robustness"
    SAFETY = "safety"
    RESOURCE = "resource"


class Role(Enum):
    """What a metric's result may do to the outcome (DESIGN §10)."""

    PRIMARY = "primary"  # superiority over ε, Holm across candidates
    GUARDRAIL = "guardrail"  # non-inferiority at the margin; clearly worse retires
    SLICE = "slice"  # a frozen subset: better here makes a candidate worth archiving
    ZERO_TOLERANCE = "zero_tolerance"  # any candidate failure is Critical: a veto


class MetricKind(Enum):
    """The evidence a metric takes, and so the test applied to it."""

    BINARY = "binary"  # per-item pass/fail: exact McNemar, score bound on Δ
    CONTINUOUS = "continuous"  # per-item values: paired bootstrap of the mean difference
    AGGREGATE = "aggregate"  # one number per model (p95 latency, bytes): a ratio, unpaired


def _finite(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidRequest(f"{name} must be a finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricSpec:
    """One metric of a suite and how to judge it.

    Attributes:
        margin: non-inferiority margin δ ≥ 0 (metric units; relative for aggregates). For
            guardrails and slices it is also the improvement a Better verdict must clear.
        scale: the δ_m dividing Δ in the utility; defaults to ``margin``. Metrics that
            enter the utility (all but slices and zero-tolerance sets) need it > 0.

    Raises:
        InvalidRequest: an empty name, a negative margin, a zero utility scale, a
            zero-tolerance set that is not binary, or an aggregate primary metric.
    """

    name: str
    group: Group
    direction: Direction
    role: Role
    kind: MetricKind
    margin: float = 0.0
    scale: float | None = None

    def __post_init__(self) -> None:
        if not self.name or not self.name.strip():
            raise InvalidRequest("a metric needs a name")
        margin = _finite(f"margin of {self.name}", self.margin)
        if margin < 0:
            raise InvalidRequest(f"margin of {self.name} must be >= 0, got {margin!r}")
        object.__setattr__(self, "margin", margin)
        if self.scale is not None:
            scale = _finite(f"scale of {self.name}", self.scale)
            if scale <= 0:
                raise InvalidRequest(f"scale of {self.name} must be > 0, got {scale!r}")
            object.__setattr__(self, "scale", scale)
        if self.role is Role.ZERO_TOLERANCE and self.kind is not MetricKind.BINARY:
            raise InvalidRequest(f"zero-tolerance set {self.name} must be binary per item")
        if self.role is Role.PRIMARY and self.kind is MetricKind.AGGREGATE:
            # DESIGN §10: the primary test is paired; an aggregate has no per-item pairs.
            raise InvalidRequest(f"primary metric {self.name} must be paired, not aggregate")
        if self.in_utility and self.utility_scale <= 0:
            raise InvalidRequest(
                f"metric {self.name} has margin 0: give a scale > 0 for its utility term"
            )

    @property
    def in_utility(self) -> bool:
        """Whether the metric has a term in U (slices and vetoes do not)."""
        return self.role in (Role.PRIMARY, Role.GUARDRAIL)

    @property
    def utility_scale(self) -> float:
        """δ_m of the utility: ``scale`` if given, else ``margin``."""
        return self.margin if self.scale is None else self.scale

    def to_record(self) -> dict[str, JsonValue]:
        return {
            "name": self.name,
            "group": self.group.value,
            "direction": self.direction.value,
            "role": self.role.value,
            "kind": self.kind.value,
            "margin": number(self.margin),
            "scale": number(self.utility_scale),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupWeights:
    """w_g of the utility, one per :class:`Group`. Not normalised; must not all be 0."""

    task: float = 0.2
    calibration: float = 0.2
    robustness: float = 0.2
    safety: float = 0.2
    resource: float = 0.2

    def __post_init__(self) -> None:
        total = 0.0
        for group in Group:
            value = _finite(f"weight of {group.value}", getattr(self, group.value))
            if value < 0:
                raise InvalidRequest(f"weight of {group.value} must be >= 0, got {value!r}")
            object.__setattr__(self, group.value, value)
            total += value
        if total <= 0:
            raise InvalidRequest("group weights must not all be zero")

    def of(self, group: Group) -> float:
        """The weight of ``group``."""
        value: float = getattr(self, group.value)
        return value

    def to_record(self) -> dict[str, JsonValue]:
        return {group.value: number(self.of(group)) for group in Group}


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    """Everything a decision depends on besides the evidence; stored with each decision.

    Attributes:
        metrics: the suite's metric specs; exactly one is primary.
        epsilon_min: the smallest superiority threshold the suite accepts (> 0).
        sigma_aa: the A/A noise floor of the primary metric (see ``stats.noise_floor``).
        seed: the bootstrap seed, stored so every interval can be recomputed.
        alpha: one-sided level of every test; intervals are the two one-sided (1 − α)
            bounds, i.e. (1 − 2α) two-sided.
        power: 1 − β for the minimum detectable effect.
        bootstrap_samples: replicates B of the paired bootstrap.
        min_pairs: fewer paired items than this is NoData, not a test.
        utility_min: shadow needs U ≥ this (notes §4.4), so a net-negative trade of
            guardrails inside their margins does not ship.
        epsilon_down_min: the demotion threshold floor; defaults to ``epsilon_min``.

    Raises:
        InvalidRequest: any value out of range, no or several primary metrics, or
            duplicate metric names.
    """

    metrics: tuple[MetricSpec, ...]
    epsilon_min: float
    sigma_aa: float
    seed: int
    alpha: float = 0.05
    power: float = 0.8
    bootstrap_samples: int = 10_000
    min_pairs: int = 30
    weights: GroupWeights = field(default_factory=GroupWeights)
    utility_min: float = 0.0
    epsilon_down_min: float | None = None

    def __post_init__(self) -> None:
        metrics = tuple(self.metrics)
        object.__setattr__(self, "metrics", metrics)
        names = [m.name for m in metrics]
        if len(set(names)) != len(names):
            raise InvalidRequest(f"duplicate metric names in policy: {sorted(names)}")
        primaries = [m.name for m in metrics if m.role is Role.PRIMARY]
        if len(primaries) != 1:
            raise InvalidRequest(f"a policy needs exactly one primary metric, got {primaries}")
        alpha = _finite("alpha", self.alpha)
        if not 0 < alpha < 0.5:
            raise InvalidRequest(f"alpha must be in (0, 0.5), got {alpha!r}")
        power = _finite("power", self.power)
        if not 0 < power < 1:
            raise InvalidRequest(f"power must be in (0, 1), got {power!r}")
        if _finite("epsilon_min", self.epsilon_min) <= 0:
            # A zero threshold would let noise-level effects promote: fail closed.
            raise InvalidRequest(f"epsilon_min must be > 0, got {self.epsilon_min!r}")
        if _finite("sigma_aa", self.sigma_aa) < 0:
            raise InvalidRequest(f"sigma_aa must be >= 0, got {self.sigma_aa!r}")
        if (
            self.epsilon_down_min is not None
            and _finite("epsilon_down_min", self.epsilon_down_min) <= 0
        ):
            raise InvalidRequest(f"epsilon_down_min must be > 0, got {self.epsilon_down_min!r}")
        _finite("utility_min", self.utility_min)
        for name, low in (("seed", 0), ("bootstrap_samples", 1000), ("min_pairs", 2)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InvalidRequest(f"{name} must be an integer >= {low}, got {value!r}")

    @property
    def primary(self) -> MetricSpec:
        """The one primary metric."""
        return next(m for m in self.metrics if m.role is Role.PRIMARY)

    @property
    def epsilon_up(self) -> float:
        """The promote threshold ε = max(ε_min, 2·σ_AA).

        DESIGN §10: ε ≥ 2·σ_AA, so a difference the champion shows against itself
        can never promote.
        """
        return max(self.epsilon_min, 2.0 * self.sigma_aa)

    @property
    def epsilon_down(self) -> float:
        """The demote threshold ε_down = max(ε_down_min or ε_min, 2·σ_AA)."""
        floor = self.epsilon_min if self.epsilon_down_min is None else self.epsilon_down_min
        return max(floor, 2.0 * self.sigma_aa)

    def spec(self, name: str) -> MetricSpec | None:
        """The spec called ``name``, or None."""
        return next((m for m in self.metrics if m.name == name), None)

    def to_record(self) -> dict[str, JsonValue]:
        return {
            "metrics": [m.to_record() for m in self.metrics],
            "epsilon_min": number(self.epsilon_min),
            "sigma_aa": number(self.sigma_aa),
            "epsilon_up": number(self.epsilon_up),
            "epsilon_down": number(self.epsilon_down),
            "epsilon_down_min": optional_number(self.epsilon_down_min),
            "seed": self.seed,
            "alpha": number(self.alpha),
            "power": number(self.power),
            "bootstrap_samples": self.bootstrap_samples,
            "min_pairs": self.min_pairs,
            "weights": self.weights.to_record(),
            "utility_min": number(self.utility_min),
        }

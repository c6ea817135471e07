"""Shadow statistics: what the paired records of a shadow run say about the challenger.

Owns the summary of paired records (DESIGN §11; notes §5.1): agreement with a Wilson
interval, the flip matrix, the paired latency ratios at p50 and p95 with a seeded
bootstrap interval, error rates, and mirrored/dropped counts. Leaves to others:
mirroring and the bounded queue (the serving app), normalising outputs to labels
(the capability's contract), and the gate from shadow to canary (the controller).

Agreement and the flip matrix count only pairs where both models answered; errors are
reported as rates of their own, and dropped mirrors (queue full, timeout) are counted,
never imputed.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING

from breedlab.canonical import JsonValue
from breedlab.errors import InvalidRequest
from breedlab.release._decimal import float_text

if TYPE_CHECKING:  # numpy is imported where latencies are resampled: the release
    import numpy as np  # package's pure rules load without it (a fast CLI start)
    import numpy.typing as npt

__all__ = [
    "DEFAULT_RESAMPLES",
    "Flip",
    "FlipMatrix",
    "LatencyRatio",
    "Proportion",
    "ShadowPair",
    "ShadowReport",
    "summarise_shadow",
    "wilson_interval",
]

#: Bootstrap resamples by default (notes §4.1: B >= 10,000 with a stored seed).
DEFAULT_RESAMPLES = 10_000

# Bootstrap work per chunk (resamples x pairs), to bound memory on big shadows.
_CHUNK_CELLS = 2_000_000


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise InvalidRequest(f"confidence must be in (0, 1) (got {confidence})")


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """The two-sided Wilson score interval (Newcombe 1998), as scipy's ``method="wilson"``.

    It does not collapse at 0 or ``trials`` successes, unlike the Wald interval.

    Raises:
        InvalidRequest: ``trials < 1``, successes out of range, or a bad confidence.
    """
    if trials < 1 or not 0 <= successes <= trials:
        raise InvalidRequest(f"need 0 <= successes <= trials, trials >= 1 ({successes}/{trials})")
    _check_confidence(confidence)
    z = NormalDist().inv_cdf(0.5 + 0.5 * confidence)
    p = successes / trials
    denom = 2.0 * (trials + z * z)
    center = (2.0 * trials * p + z * z) / denom
    delta = z / denom * math.sqrt(4.0 * trials * p * (1.0 - p) + z * z)
    low = 0.0 if successes == 0 else center - delta
    high = 1.0 if successes == trials else center + delta
    return (low, high)


@dataclass(frozen=True, slots=True, kw_only=True)
class Proportion:
    """``successes`` out of ``trials`` with a Wilson interval at ``confidence``."""

    successes: int
    trials: int
    low: float
    high: float
    confidence: float

    @classmethod
    def of(cls, successes: int, trials: int, confidence: float = 0.95) -> Proportion:
        """The proportion with its Wilson interval."""
        low, high = wilson_interval(successes, trials, confidence)
        return cls(successes=successes, trials=trials, low=low, high=high, confidence=confidence)

    @property
    def estimate(self) -> float:
        """``successes / trials``."""
        return self.successes / self.trials

    def to_record(self) -> dict[str, JsonValue]:
        """Canonical-JSON-ready values (floats as decimal strings)."""
        return {
            "successes": self.successes,
            "trials": self.trials,
            "estimate": float_text(self.estimate),
            "low": float_text(self.low),
            "high": float_text(self.high),
            "confidence": float_text(self.confidence),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ShadowPair:
    """One mirrored request: the primary (champion) result and the shadow (challenger) one.

    Outputs are normalised labels (``norm(y)`` in notes §5.1); ``None`` when that side
    errored, or, for the shadow, when the mirror was dropped. Latencies are seconds,
    positive; ``None`` for a dropped shadow, and both ``None`` for an untimed pair (a
    shadow may time only a sample of the requests it answers).
    """

    primary: str | None
    shadow: str | None
    primary_latency_s: float | None
    shadow_latency_s: float | None
    primary_error: bool = False
    shadow_error: bool = False
    dropped: bool = False

    def __post_init__(self) -> None:
        if self.primary_error != (self.primary is None):
            raise InvalidRequest("a primary output is None exactly when the primary errored")
        if self.dropped:
            if self.shadow is not None or self.shadow_latency_s is not None or self.shadow_error:
                raise InvalidRequest("a dropped mirror has no shadow output, latency or error")
        else:
            if self.shadow_error != (self.shadow is None):
                raise InvalidRequest("a shadow output is None exactly when the shadow errored")
            if (self.shadow_latency_s is None) != (self.primary_latency_s is None):
                raise InvalidRequest("a timed pair has both latencies, an untimed one neither")
        for latency in (self.primary_latency_s, self.shadow_latency_s):
            if latency is not None and not (math.isfinite(latency) and latency > 0):
                raise InvalidRequest(f"latencies are positive seconds (got {latency})")

    @property
    def answered(self) -> bool:
        """Both sides produced an output: the pair counts for agreement and latency."""
        return self.primary is not None and self.shadow is not None

    @property
    def timed(self) -> bool:
        """Both sides were timed: the pair counts for the latency ratios."""
        return self.primary_latency_s is not None and self.shadow_latency_s is not None


@dataclass(frozen=True, slots=True, kw_only=True, order=True)
class Flip:
    """How many answered pairs had the primary say ``primary`` and the shadow ``shadow``."""

    primary: str
    shadow: str
    count: int


@dataclass(frozen=True, slots=True, kw_only=True)
class FlipMatrix:
    """Label-to-label counts over answered pairs, sorted by (primary, shadow)."""

    cells: tuple[Flip, ...]

    @classmethod
    def of(cls, pairs: Sequence[tuple[str, str]]) -> FlipMatrix:
        """Count ``(primary, shadow)`` label pairs."""
        counts = Counter(pairs)
        return cls(
            cells=tuple(Flip(primary=p, shadow=s, count=n) for (p, s), n in sorted(counts.items()))
        )

    @property
    def labels(self) -> tuple[str, ...]:
        """Every label seen on either side, sorted."""
        return tuple(sorted({c.primary for c in self.cells} | {c.shadow for c in self.cells}))

    def count(self, primary: str, shadow: str) -> int:
        """Pairs where the primary said ``primary`` and the shadow said ``shadow``."""
        return sum(c.count for c in self.cells if c.primary == primary and c.shadow == shadow)

    def flips(self) -> tuple[Flip, ...]:
        """The off-diagonal cells: where the challenger changed the answer."""
        return tuple(c for c in self.cells if c.primary != c.shadow)

    @property
    def total(self) -> int:
        """Answered pairs counted."""
        return sum(c.count for c in self.cells)

    def to_record(self) -> list[JsonValue]:
        """Cells as ``[primary, shadow, count]`` rows."""
        return [[c.primary, c.shadow, c.count] for c in self.cells]


@dataclass(frozen=True, slots=True, kw_only=True)
class LatencyRatio:
    """``Q_q(shadow) / Q_q(primary)`` over the ``pairs`` timed pairs, with a paired
    bootstrap interval.

    Above 1 the challenger is slower. The interval is the percentile interval of
    ``resamples`` paired resamples drawn with ``numpy.random.default_rng(seed)``.
    """

    quantile: float
    ratio: float
    low: float
    high: float
    confidence: float
    pairs: int

    def to_record(self) -> dict[str, JsonValue]:
        """Canonical-JSON-ready values (floats as decimal strings)."""
        return {
            "quantile": float_text(self.quantile),
            "ratio": float_text(self.ratio),
            "low": float_text(self.low),
            "high": float_text(self.high),
            "confidence": float_text(self.confidence),
            "pairs": self.pairs,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ShadowReport:
    """A shadow run in numbers. ``None`` marks a figure without data (NoData)."""

    mirrored: int
    dropped: int
    answered: int
    agreement: Proportion | None
    flips: FlipMatrix
    latency_p50: LatencyRatio | None
    latency_p95: LatencyRatio | None
    primary_errors: Proportion | None  # over mirrored requests
    shadow_errors: Proportion | None  # over mirrors that were not dropped
    seed: int
    resamples: int

    def to_record(self) -> dict[str, JsonValue]:
        """Canonical-JSON-ready values (floats as decimal strings)."""

        def rec(value: Proportion | LatencyRatio | None) -> JsonValue:
            return None if value is None else value.to_record()

        return {
            "mirrored": self.mirrored,
            "dropped": self.dropped,
            "answered": self.answered,
            "agreement": rec(self.agreement),
            "flips": self.flips.to_record(),
            "latency_p50": rec(self.latency_p50),
            "latency_p95": rec(self.latency_p95),
            "primary_errors": rec(self.primary_errors),
            "shadow_errors": rec(self.shadow_errors),
            "seed": self.seed,
            "resamples": self.resamples,
        }


def _latency_ratios(
    primary: npt.NDArray[np.float64],
    shadow: npt.NDArray[np.float64],
    *,
    confidence: float,
    resamples: int,
    seed: int,
) -> tuple[LatencyRatio, LatencyRatio]:
    import numpy as np

    qs = np.array([0.5, 0.95])
    point = np.quantile(shadow, qs) / np.quantile(primary, qs)
    rng = np.random.default_rng(seed)
    n = primary.size
    chunk = max(1, _CHUNK_CELLS // n)
    boot = np.empty((resamples, 2))
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        # Same indices for both sides: the bootstrap keeps the pairs together.
        num = np.quantile(shadow[idx], qs, axis=1)
        den = np.quantile(primary[idx], qs, axis=1)
        boot[start:stop] = (num / den).T
    tail = (1.0 - confidence) / 2.0
    bounds = np.quantile(boot, [tail, 1.0 - tail], axis=0)
    p50, p95 = (
        LatencyRatio(
            quantile=float(q),
            ratio=float(point[j]),
            low=float(bounds[0, j]),
            high=float(bounds[1, j]),
            confidence=confidence,
            pairs=n,
        )
        for j, q in enumerate(qs)
    )
    return p50, p95


def summarise_shadow(
    pairs: Sequence[ShadowPair],
    *,
    seed: int,
    confidence: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
) -> ShadowReport:
    """Summarise the paired records of a shadow run (notes §5.1).

    The same records, seed and resamples give the same report, to the bit.

    Raises:
        InvalidRequest: a bad confidence or a resample count below 1.
    """
    _check_confidence(confidence)
    if resamples < 1:
        raise InvalidRequest(f"resamples must be positive (got {resamples})")
    mirrored = len(pairs)
    dropped = sum(1 for p in pairs if p.dropped)
    ran = mirrored - dropped
    answered = [p for p in pairs if p.answered]
    labels = [
        (p.primary, p.shadow) for p in answered if p.primary is not None and p.shadow is not None
    ]
    agree = sum(1 for a, b in labels if a == b)
    latency_p50 = latency_p95 = None
    timed = [p for p in answered if p.timed]
    if timed:
        import numpy as np

        primary = np.array([p.primary_latency_s for p in timed], dtype=np.float64)
        shadow = np.array([p.shadow_latency_s for p in timed], dtype=np.float64)
        latency_p50, latency_p95 = _latency_ratios(
            primary, shadow, confidence=confidence, resamples=resamples, seed=seed
        )
    return ShadowReport(
        mirrored=mirrored,
        dropped=dropped,
        answered=len(answered),
        agreement=Proportion.of(agree, len(answered), confidence) if answered else None,
        flips=FlipMatrix.of(labels),
        latency_p50=latency_p50,
        latency_p95=latency_p95,
        primary_errors=(
            Proportion.of(sum(p.primary_error for p in pairs), mirrored, confidence)
            if mirrored
            else None
        ),
        shadow_errors=(
            Proportion.of(sum(p.shadow_error for p in pairs), ran, confidence) if ran else None
        ),
        seed=seed,
        resamples=resamples,
    )

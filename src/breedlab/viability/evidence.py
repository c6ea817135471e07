"""What a comparison is judged on: per-item pairs, aggregates and vetoes for one candidate.

Owns the evidence values and their validation: paired arrays of equal length where index
``i`` is the same suite item for both models (DESIGN §9: per-item outputs make
comparisons paired), aggregate pairs for metrics that exist only per model (p95 latency,
bytes), and the vetoes the controller found while reading (integrity error, budget
breach, safety). Leaves reading scorecards, aligning items by hash and checking suite
ids and budgets to the controller, and judging to :mod:`breedlab.viability.gates`.

Arrays are copied and frozen (read-only) on construction, so evidence cannot change
after a decision was computed from it.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import ClassVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from breedlab.canonical import JsonValue
from breedlab.errors import InvalidRequest
from breedlab.viability.policy import MetricKind

__all__ = [
    "AggregateValue",
    "Evidence",
    "MetricData",
    "MetricEvidence",
    "PairedBinary",
    "PairedContinuous",
    "Veto",
    "VetoKind",
]


class VetoKind(Enum):
    """Why a candidate is vetoed outright (DESIGN §10)."""

    SAFETY = "safety"  # a zero-tolerance safety failure found outside the metric specs
    INTEGRITY = "integrity"  # hash mismatch, missing items, suite id mismatch
    BUDGET = "budget"  # the equal-budget rule or a hard resource budget was broken


@dataclass(frozen=True, slots=True, kw_only=True)
class Veto:
    """One veto and the sentence explaining it."""

    kind: VetoKind
    reason: str

    def __post_init__(self) -> None:
        if not self.reason.strip():
            raise InvalidRequest("a veto needs a reason")

    def to_record(self) -> dict[str, JsonValue]:
        return {"kind": self.kind.value, "reason": self.reason}


def _frozen(array: NDArray[np.generic]) -> NDArray[np.generic]:
    array = np.array(array, copy=True)
    array.flags.writeable = False
    return array


def _bool_array(name: str, value: ArrayLike) -> NDArray[np.bool_]:
    array = np.asarray(value)
    if array.ndim != 1:
        raise InvalidRequest(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.dtype != np.bool_:
        if array.size and (array.dtype.kind not in "iu" or not np.isin(array, (0, 1)).all()):
            raise InvalidRequest(f"{name} must hold booleans (or 0/1), got dtype {array.dtype}")
        array = array.astype(np.bool_)
    return _frozen(array)  # type: ignore[return-value]


def _float_array(name: str, value: ArrayLike) -> NDArray[np.float64]:
    array = np.asarray(value)
    if array.ndim != 1:
        raise InvalidRequest(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.dtype.kind not in "biuf":
        raise InvalidRequest(f"{name} must hold numbers, got dtype {array.dtype}")
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise InvalidRequest(f"{name} holds NaN or infinite values")
    return _frozen(array)  # type: ignore[return-value]


def _pair_digest(tag: bytes, champion: NDArray[np.generic], candidate: NDArray[np.generic]) -> str:
    # Little-endian fixed-width bytes of both arrays, so a controller that reloads the
    # per-item blobs can check it is looking at the same pairs the decision used.
    h = hashlib.sha256(tag + b"\n" + str(champion.size).encode() + b"\n")
    h.update(champion.tobytes())
    h.update(candidate.tobytes())
    return h.hexdigest()


def _set_pair(
    paired: PairedBinary | PairedContinuous,
    champion: NDArray[np.generic],
    candidate: NDArray[np.generic],
) -> None:
    """Set a pair's checked arrays on the frozen instance.

    Raises:
        InvalidRequest: their lengths differ.
    """
    if champion.shape != candidate.shape:
        raise InvalidRequest(f"paired arrays differ in length: {champion.size} vs {candidate.size}")
    object.__setattr__(paired, "champion", champion)
    object.__setattr__(paired, "candidate", candidate)


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class PairedBinary:
    """Per-item booleans for champion and candidate on the same items (True = the item's
    value is 1, e.g. correct; the metric's direction says whether 1 is good).

    Raises:
        InvalidRequest: not 1-D, not boolean (or 0/1), or lengths differ.
    """

    kind: ClassVar[MetricKind] = MetricKind.BINARY
    champion: NDArray[np.bool_]
    candidate: NDArray[np.bool_]

    def __post_init__(self) -> None:
        _set_pair(
            self, _bool_array("champion", self.champion), _bool_array("candidate", self.candidate)
        )

    @property
    def n(self) -> int:
        """Number of paired items."""
        return int(self.champion.size)

    def discordant(self) -> tuple[int, int]:
        """``(b, c)``: b = champion 1 & candidate 0, c = champion 0 & candidate 1."""
        b = int(np.count_nonzero(self.champion & ~self.candidate))
        c = int(np.count_nonzero(~self.champion & self.candidate))
        return b, c

    def digest(self) -> str:
        """sha256 hex over the pairs (one byte per value)."""
        return _pair_digest(
            b"binary", self.champion.astype(np.uint8), self.candidate.astype(np.uint8)
        )


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class PairedContinuous:
    """Per-item real values for champion and candidate on the same items.

    Raises:
        InvalidRequest: not 1-D, not numeric, NaN/infinite values, or lengths differ.
    """

    kind: ClassVar[MetricKind] = MetricKind.CONTINUOUS
    champion: NDArray[np.float64]
    candidate: NDArray[np.float64]

    def __post_init__(self) -> None:
        _set_pair(
            self, _float_array("champion", self.champion), _float_array("candidate", self.candidate)
        )

    @property
    def n(self) -> int:
        """Number of paired items."""
        return int(self.champion.size)

    def differences(self) -> NDArray[np.float64]:
        """``candidate − champion`` per item."""
        return self.candidate - self.champion

    def digest(self) -> str:
        """sha256 hex over the pairs (little-endian float64)."""
        return _pair_digest(
            b"continuous", self.champion.astype("<f8"), self.candidate.astype("<f8")
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class AggregateValue:
    """One number per model, e.g. p95 latency (ms) or bytes. Judged as a ratio
    ``candidate / champion`` with no per-item pairing and so no interval: the noise of
    the measurement itself is not modelled (a paired-bootstrap ratio needs the per-request
    replay, which the controller may supply as a continuous metric instead).

    Raises:
        InvalidRequest: a non-finite or negative value, or a champion value of 0.
    """

    kind: ClassVar[MetricKind] = MetricKind.AGGREGATE
    champion: float
    candidate: float

    def __post_init__(self) -> None:
        for name in ("champion", "candidate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidRequest(f"aggregate {name} must be a number, got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise InvalidRequest(f"aggregate {name} must be finite and >= 0, got {value!r}")
            object.__setattr__(self, name, float(value))
        if self.champion == 0:
            raise InvalidRequest("aggregate champion value is 0: the ratio is undefined")

    @property
    def ratio(self) -> float:
        """``candidate / champion``."""
        return self.candidate / self.champion


MetricData = PairedBinary | PairedContinuous | AggregateValue


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricEvidence:
    """The data for one named metric of the policy."""

    metric: str
    data: MetricData


@dataclass(frozen=True, slots=True, kw_only=True)
class Evidence:
    """Everything known about one candidate against the champion on one split.

    A metric of the policy with no entry here is NoData.

    Raises:
        InvalidRequest: an empty candidate id or a metric given twice.
    """

    candidate_id: str
    metrics: tuple[MetricEvidence, ...]
    vetoes: tuple[Veto, ...] = ()

    def __post_init__(self) -> None:
        if not self.candidate_id.strip():
            raise InvalidRequest("evidence needs a candidate id")
        metrics = tuple(self.metrics)
        vetoes = tuple(self.vetoes)
        names = [m.metric for m in metrics]
        if len(set(names)) != len(names):
            raise InvalidRequest(f"metric given twice for {self.candidate_id}: {sorted(names)}")
        object.__setattr__(self, "metrics", metrics)
        object.__setattr__(self, "vetoes", vetoes)

    def data(self, metric: str) -> MetricData | None:
        """The data for ``metric``, or None (NoData)."""
        return next((m.data for m in self.metrics if m.metric == metric), None)

    def with_vetoes(self, vetoes: Sequence[Veto]) -> Evidence:
        """A copy with ``vetoes`` added."""
        return Evidence(
            candidate_id=self.candidate_id,
            metrics=self.metrics,
            vetoes=(*self.vetoes, *vetoes),
        )

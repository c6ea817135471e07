"""Sticky canary cohorts: which unit sees the canary, and whether the split is healthy.

Owns the cohort hash (``bucket``), membership at a weight, the per-release salt, the
monotone ramp of weights, and the sample-ratio-mismatch (SRM) check. Leaves to others:
which requests are eligible (low-risk only, DESIGN §11) and the per-stage exposure caps
(the release controller), routing the request (the serving app), and counting units
(the controller's telemetry).

The hash (DESIGN §11; notes §5.2)::

    bucket(salt, unit) = int.from_bytes(sha256(f"{salt}:{unit}")[:8], "big") / 2**64

and a unit is in the canary at weight ``w`` iff ``bucket < w``. Because the bucket of a
unit does not depend on ``w``, a unit in the canary at ``w`` is in it at every
``w' >= w``: ramps only add units, never reshuffle them, as long as the salt is fixed.
A fresh salt per release keeps the same users from always being the guinea pigs.
"""

from __future__ import annotations

import hashlib
import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from itertools import pairwise

from breedlab.errors import InvalidRequest

__all__ = [
    "DEFAULT_RAMP",
    "SALT_BYTES",
    "Cohort",
    "Ramp",
    "SrmResult",
    "SrmVerdict",
    "bucket",
    "in_canary",
    "new_salt",
    "sample_ratio_check",
]

#: Seed stage 3 / DESIGN §11: 1% → 5% → 25% → 50%.
DEFAULT_RAMP: tuple[float, ...] = (0.01, 0.05, 0.25, 0.50)

#: Minimum randomness in a salt (128 bits): enough that salts of two releases never collide.
SALT_BYTES = 16

_SCALE = 2**64


def _check_salt(salt: str) -> None:
    # A ':' in the salt would let two (salt, unit) pairs hash the same string.
    if not salt or ":" in salt:
        raise InvalidRequest(f"a cohort salt must be non-empty and contain no ':' (got {salt!r})")


def _check_weight(weight: float) -> None:
    if not (isinstance(weight, int | float) and 0.0 <= weight <= 1.0):
        raise InvalidRequest(f"a canary weight is a fraction in [0, 1] (got {weight!r})")


def _raw(salt: str, unit: str) -> int:
    digest = hashlib.sha256(f"{salt}:{unit}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def bucket(salt: str, unit: str) -> float:
    """The unit's position in ``[0, 1)`` under ``salt`` (DESIGN §11 cohort hash).

    As a double it rounds up to 1.0 for the top ``2**-54`` of units.

    Raises:
        InvalidRequest: the salt is empty or contains ``:``.
    """
    _check_salt(salt)
    # Correctly rounded, as float64(u) / 2**64 is in other languages.
    return _raw(salt, unit) / _SCALE


def in_canary(salt: str, unit: str, weight: float) -> bool:
    """Whether ``unit`` is in the canary at ``weight``: ``bucket(salt, unit) < weight``.

    The comparison is on the double ``bucket`` returns, as any other implementation of
    the formula would compute it, so routers in other languages agree unit for unit.
    Weight 0 admits nobody; weight 1 admits everybody (the top ``2**-54`` of buckets
    round to 1.0 as doubles, and are let in explicitly).

    Raises:
        InvalidRequest: bad salt, or a weight outside ``[0, 1]``.
    """
    _check_weight(weight)
    return bucket(salt, unit) < weight or weight >= 1.0


def new_salt(rng_bytes: bytes) -> str:
    """A fresh per-release salt: the hex of ``rng_bytes`` (inject ``os.urandom(16)``).

    Raises:
        InvalidRequest: fewer than :data:`SALT_BYTES` bytes.
    """
    if len(rng_bytes) < SALT_BYTES:
        raise InvalidRequest(
            f"a salt needs at least {SALT_BYTES} random bytes (got {len(rng_bytes)})"
        )
    return rng_bytes.hex()


@dataclass(frozen=True, slots=True, kw_only=True)
class Ramp:
    """The canary weights of a release, one per stage, strictly increasing in ``(0, 1]``.

    Monotone by construction (seed, stage 3; DESIGN §11), so with a fixed salt a unit
    that entered the canary never leaves it until the release ends.
    """

    stages: tuple[float, ...] = DEFAULT_RAMP

    def __post_init__(self) -> None:
        if not self.stages:
            raise InvalidRequest("a ramp needs at least one stage")
        for weight in self.stages:
            if not (isinstance(weight, int | float) and 0.0 < weight <= 1.0):
                raise InvalidRequest(f"ramp weights are fractions in (0, 1] (got {weight!r})")
        for before, after in pairwise(self.stages):
            if not after > before:
                raise InvalidRequest(
                    f"a ramp must be strictly increasing (got {before} then {after}): "
                    "lowering a weight would move units out of the canary"
                )

    def weight(self, stage: int) -> float:
        """The weight of stage ``stage`` (0-based).

        Raises:
            InvalidRequest: no such stage.
        """
        if not 0 <= stage < len(self.stages):
            raise InvalidRequest(f"ramp has stages 0..{len(self.stages) - 1} (got {stage})")
        return self.stages[stage]

    def next_stage(self, stage: int) -> int | None:
        """The stage after ``stage``, or ``None`` at the last one."""
        self.weight(stage)
        return stage + 1 if stage + 1 < len(self.stages) else None


@dataclass(frozen=True, slots=True, kw_only=True)
class Cohort:
    """The canary cohort of one release: one salt for its whole ramp, and the current stage."""

    salt: str
    ramp: Ramp = Ramp()
    stage: int = 0

    def __post_init__(self) -> None:
        _check_salt(self.salt)
        self.ramp.weight(self.stage)

    @property
    def weight(self) -> float:
        """The current canary weight."""
        return self.ramp.weight(self.stage)

    def contains(self, unit: str) -> bool:
        """Whether ``unit`` is in the canary at the current stage."""
        return in_canary(self.salt, unit, self.weight)

    def advanced(self) -> Cohort:
        """The cohort at the next stage, same salt (so every member stays in).

        Raises:
            InvalidRequest: already at the last stage.
        """
        nxt = self.ramp.next_stage(self.stage)
        if nxt is None:
            raise InvalidRequest(f"the ramp ends at stage {self.stage} (weight {self.weight})")
        return Cohort(salt=self.salt, ramp=self.ramp, stage=nxt)


class SrmVerdict(Enum):
    """Outcome of a sample-ratio check."""

    OK = "ok"
    MISMATCH = "mismatch"  # assignment is broken: abort, do not judge the canary
    INSUFFICIENT = "insufficient"  # fewer units than the check needs


@dataclass(frozen=True, slots=True, kw_only=True)
class SrmResult:
    """A sample-ratio check: observed counts against the weights they should follow."""

    verdict: SrmVerdict
    p_value: float
    alpha: float
    method: str  # "binomial" (exact, two cohorts) or "chi-square"
    counts: tuple[int, ...]
    weights: tuple[float, ...]


def sample_ratio_check(
    counts: Sequence[int],
    weights: Sequence[float],
    *,
    alpha: float = 0.001,
    min_total: int = 1,
) -> SrmResult:
    """Test observed cohort sizes against the weights they were assigned with (notes §5.2).

    Two cohorts use an exact two-sided binomial test; more use Pearson's chi-square
    goodness of fit. Count *units*, not requests: requests of one sticky unit are not
    independent, and counting them would flag heavy users as a mismatch. The default
    ``alpha`` of 0.001 is the usual SRM level: a mismatch means broken assignment.

    Raises:
        InvalidRequest: lengths differ, fewer than two cohorts, negative counts, weights
            outside ``(0, 1)`` or not summing to 1, ``alpha`` outside ``(0, 1)``.
    """
    if len(counts) != len(weights) or len(counts) < 2:
        raise InvalidRequest("an SRM check needs one weight per cohort and at least two cohorts")
    try:
        counts = [operator.index(c) for c in counts]
    except TypeError as e:
        raise InvalidRequest(f"cohort counts are integers (got {list(counts)})") from e
    if any(c < 0 for c in counts):
        raise InvalidRequest(f"cohort counts are non-negative (got {counts})")
    if any(not (0.0 < w < 1.0) for w in weights) or not math.isclose(
        math.fsum(weights), 1.0, abs_tol=1e-9
    ):
        raise InvalidRequest(f"cohort weights are in (0, 1) and sum to 1 (got {list(weights)})")
    if not 0.0 < alpha < 1.0:
        raise InvalidRequest(f"alpha is in (0, 1) (got {alpha})")
    total = sum(counts)
    norm = math.fsum(weights)
    shares = tuple(w / norm for w in weights)
    method = "binomial" if len(counts) == 2 else "chi-square"
    if total < max(min_total, 1):
        return SrmResult(
            verdict=SrmVerdict.INSUFFICIENT,
            p_value=1.0,
            alpha=alpha,
            method=method,
            counts=tuple(counts),
            weights=shares,
        )
    from scipy import stats

    if len(counts) == 2:
        p_value = float(stats.binomtest(counts[0], total, shares[0]).pvalue)
    else:
        expected = [total * s for s in shares]
        p_value = float(stats.chisquare(list(counts), expected).pvalue)
    return SrmResult(
        verdict=SrmVerdict.MISMATCH if p_value < alpha else SrmVerdict.OK,
        p_value=p_value,
        alpha=alpha,
        method=method,
        counts=tuple(counts),
        weights=shares,
    )

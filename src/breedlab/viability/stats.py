"""The statistics of paired comparisons: tests, bounds, bootstrap, Holm, MDE, noise floor.

Owns numbers in, numbers out: no metric names, verdicts or policies (those are
:mod:`breedlab.viability.gates`). Every interval here is a pair of one-sided (1 − α)
bounds, i.e. a (1 − 2α) two-sided interval, because the gates test one-sided hypotheses
(superiority, non-inferiority).

Paired binary items (DESIGN §10): ``b`` = champion 1 / candidate 0, ``c`` = the reverse,
``Δ = (c − b)/n``.

* The test of Δ = 0 is the exact McNemar test (a binomial test of ``c`` out of ``b + c``
  discordant pairs at ½).
* Bounds on Δ and tests of Δ = θ ≠ 0 use Tango's score method (Tango 1998; recommended
  by Fagerland, Lydersen & Laake 2013). Deliberately not the Clopper–Pearson bound on
  ``c/(b+c)`` scaled by the observed discordance ``(b+c)/n``: that treats the
  discordance rate as known. In simulation (n = 30…1000) its 95% lower bound covered
  the true Δ only 46–59% of the time when the candidate loses items and wins none, and
  54–92% when it mostly loses: the non-inferiority case a guardrail must get right.
  Tango's covered 92–100% over the same grid, mostly 94–96%. The conditional exact
  interval on the share of discordant pairs the candidate wins is still available
  as :func:`clopper_pearson`.

Paired continuous items: a percentile bootstrap of the mean difference, resampling items
jointly for both models, from ``numpy.random.default_rng(seed)``; the same seed and data
give byte-identical replicates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from numpy.typing import NDArray

from breedlab.errors import InvalidRequest

__all__ = [
    "BOOTSTRAP_CHUNK_CELLS",
    "Bounds",
    "McNemar",
    "bootstrap_bounds",
    "bootstrap_means",
    "bootstrap_p_value",
    "clopper_pearson",
    "holm",
    "holm_adjusted",
    "mcnemar_exact",
    "minimum_detectable_effect",
    "noise_floor",
    "score_bounds",
    "score_p_value",
    "score_statistic",
    "wilson",
]

_NORMAL = NormalDist()

#: Index cells drawn per bootstrap chunk (rows = max(1, cells // n)). Part of the
#: algorithm: changing it changes the replicates a seed produces.
BOOTSTRAP_CHUNK_CELLS = 1 << 20

#: Bisection steps for the score bounds: 2**-80 of [-1, 1] is below float resolution.
_BISECTION_STEPS = 80


@dataclass(frozen=True, slots=True, kw_only=True)
class Bounds:
    """One-sided (1 − α) lower and upper bounds: together a (1 − 2α) interval."""

    lower: float
    upper: float


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha < 0.5:
        raise InvalidRequest(f"alpha must be in (0, 0.5), got {alpha!r}")


def _check_counts(k: int, n: int) -> None:
    if n < 1 or not 0 <= k <= n:
        raise InvalidRequest(f"need 0 <= k <= n and n >= 1, got k={k}, n={n}")


def clopper_pearson(k: int, n: int, *, alpha: float) -> Bounds:
    """Exact (Clopper–Pearson) bounds for a binomial proportion ``k/n``.

    Raises:
        InvalidRequest: ``n < 1``, ``k`` outside ``[0, n]`` or α outside (0, 0.5).
    """
    _check_counts(k, n)
    _check_alpha(alpha)
    from scipy import stats as _scipy_stats

    lower = 0.0 if k == 0 else float(_scipy_stats.beta.ppf(alpha, k, n - k + 1))
    upper = 1.0 if k == n else float(_scipy_stats.beta.ppf(1 - alpha, k + 1, n - k))
    return Bounds(lower=lower, upper=upper)


def wilson(k: int, n: int, *, alpha: float) -> Bounds:
    """Wilson score bounds for a binomial proportion ``k/n`` (no continuity correction).

    Raises:
        InvalidRequest: ``n < 1``, ``k`` outside ``[0, n]`` or α outside (0, 0.5).
    """
    _check_counts(k, n)
    _check_alpha(alpha)
    z = _NORMAL.inv_cdf(1 - alpha)
    p = k / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return Bounds(lower=max(0.0, centre - half), upper=min(1.0, centre + half))


@dataclass(frozen=True, slots=True, kw_only=True)
class McNemar:
    """Exact McNemar p-values for discordant counts ``b`` and ``c``.

    ``p_greater`` tests Δ > 0 (the candidate wins more discordant pairs), ``p_less``
    tests Δ < 0; with no discordant pair every p-value is 1.
    """

    b: int
    c: int
    p_greater: float
    p_less: float
    p_two_sided: float


def mcnemar_exact(b: int, c: int) -> McNemar:
    """The exact McNemar test: ``c ~ Binomial(b + c, ½)`` under Δ = 0.

    Raises:
        InvalidRequest: a negative count.
    """
    if b < 0 or c < 0:
        raise InvalidRequest(f"discordant counts must be >= 0, got b={b}, c={c}")
    m = b + c
    if m == 0:
        return McNemar(b=b, c=c, p_greater=1.0, p_less=1.0, p_two_sided=1.0)

    from scipy import stats as _scipy_stats

    def p(alternative: str) -> float:
        return float(_scipy_stats.binomtest(c, m, 0.5, alternative=alternative).pvalue)

    return McNemar(b=b, c=c, p_greater=p("greater"), p_less=p("less"), p_two_sided=p("two-sided"))


def score_statistic(b: int, c: int, n: int, delta0: float) -> float:
    """Tango's score statistic for H0: Δ = ``delta0``, Δ = (c − b)/n.

    ``Z = (c − b − n·Δ0) / sqrt(n·(2q + Δ0 − Δ0²))`` where ``q`` is the maximum-likelihood
    rate of ``b``-pairs under the constraint ``p_c − p_b = Δ0`` (a quadratic's root).
    Large Z is evidence that Δ > Δ0.
    """
    a2 = 2.0 * n
    b1 = -b - c + (2.0 * n - c + b) * delta0
    c0 = -b * delta0 * (1.0 - delta0)
    q = (math.sqrt(max(b1 * b1 - 4.0 * a2 * c0, 0.0)) - b1) / (2.0 * a2)
    q = max(q, -delta0, 0.0)  # rounding must not leave the constraint's domain
    variance = n * (2.0 * q + delta0 - delta0 * delta0)
    numerator = c - b - n * delta0
    if variance <= 0.0:
        if numerator == 0:
            return 0.0
        return math.inf if numerator > 0 else -math.inf
    return numerator / math.sqrt(variance)


def _check_table(b: int, c: int, n: int) -> None:
    if b < 0 or c < 0 or n < 1 or b + c > n:
        raise InvalidRequest(f"need b, c >= 0, n >= 1 and b + c <= n, got b={b}, c={c}, n={n}")


def score_p_value(b: int, c: int, n: int, *, delta0: float) -> float:
    """One-sided p-value of H0: Δ ≤ ``delta0`` against Δ > ``delta0`` (Tango's score test).

    For H0: Δ ≥ θ use ``score_p_value(c, b, n, delta0=-θ)``.

    Raises:
        InvalidRequest: an impossible table.
    """
    _check_table(b, c, n)
    if delta0 >= 1.0:
        return 1.0
    if delta0 < -1.0:
        return 0.0
    z = score_statistic(b, c, n, delta0)
    return 0.5 * math.erfc(z / math.sqrt(2.0))  # upper normal tail, accurate far out


def _score_lower(b: int, c: int, n: int, z: float) -> float:
    # Score statistics decrease in Δ0: the lower bound is where Z(Δ0) falls to z.
    low, high = -1.0, (c - b) / n
    if score_statistic(b, c, n, low) <= z:
        return low
    for _ in range(_BISECTION_STEPS):
        mid = (low + high) / 2.0
        if score_statistic(b, c, n, mid) > z:
            low = mid
        else:
            high = mid
    return low  # the side that is still rejected: never above the exact root


def score_bounds(b: int, c: int, n: int, *, alpha: float) -> Bounds:
    """Tango's score bounds for Δ = (c − b)/n: one-sided (1 − α) each.

    Defined for every table, including ``b = c = 0`` (then ±≈z²/n, not a point).

    Raises:
        InvalidRequest: an impossible table or α outside (0, 0.5).
    """
    _check_table(b, c, n)
    _check_alpha(alpha)
    z = _NORMAL.inv_cdf(1 - alpha)
    return Bounds(lower=_score_lower(b, c, n, z), upper=-_score_lower(c, b, n, z))


def bootstrap_means(
    differences: NDArray[np.float64], *, samples: int, seed: int
) -> NDArray[np.float64]:
    """``samples`` bootstrap replicates of ``mean(differences)``.

    Items are resampled with replacement, ``n`` per replicate, in chunks of
    :data:`BOOTSTRAP_CHUNK_CELLS` index cells from ``default_rng(seed)``.

    Raises:
        InvalidRequest: no items, or ``samples < 1``.
    """
    n = int(differences.size)
    if n < 1 or samples < 1:
        raise InvalidRequest(f"bootstrap needs items and samples, got n={n}, samples={samples}")
    rng = np.random.default_rng(seed)
    rows = max(1, BOOTSTRAP_CHUNK_CELLS // n)
    out = np.empty(samples, dtype=np.float64)
    for start in range(0, samples, rows):
        k = min(rows, samples - start)
        index = rng.integers(0, n, size=(k, n))
        out[start : start + k] = differences[index].mean(axis=1)
    return out


def bootstrap_bounds(replicates: NDArray[np.float64], *, alpha: float) -> Bounds:
    """Percentile bounds of the replicates, one-sided (1 − α) each.

    With ``j = ⌊α·B⌋`` the lower bound is the ``j``-th smallest replicate (0-based) and the
    upper bound the ``j``-th largest, so ``lower > θ`` exactly when
    ``bootstrap_p_value(r, delta0=θ) ≤ α`` (and symmetrically for the upper bound): a
    bound and its test never disagree.

    Raises:
        InvalidRequest: no replicates or α outside (0, 0.5).
    """
    _check_alpha(alpha)
    if replicates.size < 1:
        raise InvalidRequest("no bootstrap replicates")
    ordered = np.sort(replicates)
    j = math.floor(alpha * ordered.size)
    return Bounds(lower=float(ordered[j]), upper=float(ordered[ordered.size - 1 - j]))


def bootstrap_p_value(replicates: NDArray[np.float64], *, delta0: float) -> float:
    """Bootstrap p-value of H0: Δ ≤ ``delta0``: the share of replicates ``≤ delta0``.

    For H0: Δ ≥ θ use ``bootstrap_p_value(-replicates, delta0=-θ)``.
    """
    if replicates.size < 1:
        raise InvalidRequest("no bootstrap replicates")
    return float(np.count_nonzero(replicates <= delta0)) / float(replicates.size)


def holm_adjusted(p_values: Sequence[float]) -> tuple[float, ...]:
    """Holm step-down adjusted p-values, in input order: reject H_i iff ``p̃_i ≤ α``.

    ``p̃_(j) = max_{i ≤ j} min(1, (K − i + 1)·p_(i))`` over the ascending order; ties keep
    input order.

    Raises:
        InvalidRequest: a p-value outside [0, 1].
    """
    if any(not 0.0 <= p <= 1.0 for p in p_values):
        raise InvalidRequest(f"p-values must be in [0, 1], got {list(p_values)}")
    k = len(p_values)
    adjusted = [1.0] * k
    running = 0.0
    for rank, i in enumerate(sorted(range(k), key=lambda j: p_values[j])):
        running = max(running, min(1.0, (k - rank) * p_values[i]))
        adjusted[i] = running
    return tuple(adjusted)


def holm(p_values: Sequence[float], *, alpha: float) -> tuple[bool, ...]:
    """Holm's step-down rejections at family-wise level α, in input order."""
    _check_alpha(alpha)
    return tuple(p <= alpha for p in holm_adjusted(p_values))


def minimum_detectable_effect(standard_error: float, *, alpha: float, power: float) -> float:
    """The true effect a one-sided level-α test detects with ``power``:
    ``(z_{1−α} + z_{power}) · SE`` (notes §4.1)."""
    _check_alpha(alpha)
    if not 0 < power < 1 or not standard_error >= 0:
        raise InvalidRequest(f"need 0 < power < 1 and SE >= 0, got {power!r}, {standard_error!r}")
    return (_NORMAL.inv_cdf(1 - alpha) + _NORMAL.inv_cdf(power)) * standard_error


def noise_floor(aa_deltas: Sequence[float]) -> float:
    """σ_AA: the sample standard deviation of the primary Δ between A/A re-runs of the
    champion against itself (different seeds and batch orders, equal budget).

    DESIGN §10: the no-op's noise; ε ≥ 2·σ_AA. Notes §3: at least three re-runs.

    Raises:
        InvalidRequest: fewer than three values, or a non-finite value.
    """
    values = [float(v) for v in aa_deltas]
    if len(values) < 3 or not all(math.isfinite(v) for v in values):
        raise InvalidRequest(f"noise floor needs >= 3 finite A/A deltas, got {values}")
    mean = math.fsum(values) / len(values)
    return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1))

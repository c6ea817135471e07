"""Slices of a split where a model fails more often than it does overall: a feature's
quantile bin (tabular) or a band of text lengths (text).

Pure: values in, slices out. Owns the binning, the test and the selection rule. Leaves
evaluating the model (who is wrong on which item) and recording a slice as a failure
cluster to ``breedlab.lab.failures``.

The rule (issue 12, "failure clusters for every modality"): each feature is cut into
``bins`` bins at the split's own quantiles (equal-count bins; tied values can merge
bins, so a discrete feature may have fewer). A bin of at least ``min_items`` items with
``k`` errors out of ``n`` is *clearly* worse than the model's overall error rate ``p``
when the one-sided exact binomial test of H0 "the bin's rate is at most ``p``" rejects,
``P(X >= k | n, p)``, after Holm's step-down correction over every bin tested (features
× bins), at family-wise ``alpha``. So on a small split (wine's 36 dev items: bins of 9)
only a bin with most of its items wrong can pass, and finding none is the honest
outcome. ``p`` is the rate over the whole split, the slice included: conservative.

Bins are half-open, ``[low, high)``; the first has no ``low`` and the last no ``high``
(``None``), so any value, in the split or not (the train items a cluster holds), falls
in exactly one bin of a feature.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from breedlab.canonical import JsonValue
from breedlab.errors import InvalidRequest

__all__ = [
    "ALPHA",
    "BINS",
    "LENGTH",
    "MIN_ITEMS",
    "Slice",
    "binomial_upper_tail",
    "feature_slices",
    "in_bin",
    "length_slices",
    "quantile_edges",
]

BINS: Final = 4  # quartiles
MIN_ITEMS: Final = 8  # a smaller bin cannot show anything at a family-wise 5%
ALPHA: Final = 0.05
LENGTH: Final = "length"  # the feature name of a text-length slice (characters)


@dataclass(frozen=True, slots=True, kw_only=True)
class Slice:
    """One bin of one feature, with the evidence that the model fails more often there.

    ``low``/``high`` are the bin's bounds (``None``: open), ``edges`` all inner edges of
    the feature's bins; ``p_value`` is the raw one-sided binomial p-value, ``tested`` the
    number of bins in Holm's family. ``severity`` is the share of the split's items that
    are excess errors of this bin, ``items·(rate − overall)/n_split``: accuracy points
    the bin costs beyond the overall rate, comparable with a perturbation's drop.
    """

    feature: str
    feature_index: int
    bin: int
    bins: int
    edges: tuple[float, ...]
    low: float | None
    high: float | None
    items: int
    errors: int
    overall: float
    p_value: float
    tested: int
    severity: float

    @property
    def rate(self) -> float:
        """The model's error rate in the bin."""
        return self.errors / self.items

    def bounds(self) -> str:
        """``[low, high)`` for people, with open ends shown as ``-inf``/``inf``."""
        low = "-inf" if self.low is None else f"{self.low:.4g}"
        high = "inf" if self.high is None else f"{self.high:.4g}"
        return f"[{low}, {high})"

    def to_record(self) -> dict[str, JsonValue]:
        """Canonical-JSON-ready data (floats as ``repr`` strings, open ends ``None``)."""
        return {
            "feature": self.feature,
            "feature_index": self.feature_index,
            "bin": self.bin,
            "bins": self.bins,
            "edges": [repr(e) for e in self.edges],
            "low": None if self.low is None else repr(self.low),
            "high": None if self.high is None else repr(self.high),
            "dev_items": self.items,
            "dev_errors": self.errors,
            "dev_error_rate": repr(self.rate),
            "overall_error_rate": repr(self.overall),
            "p_value": repr(self.p_value),
            "test": f"one-sided exact binomial, Holm over {self.tested} bins, alpha {ALPHA}",
        }


def binomial_upper_tail(k: int, n: int, p: float) -> float:
    """``P(X >= k)`` for ``X ~ Binomial(n, p)``, exactly (a sum of ``math.comb`` terms).

    Raises:
        InvalidRequest: ``n < 0``, ``k`` outside ``0..n``, or ``p`` outside ``[0, 1]``.
    """
    if n < 0 or not 0 <= k <= n or not 0.0 <= p <= 1.0:
        raise InvalidRequest(f"binomial tail needs 0 <= k <= n and 0 <= p <= 1: {k}, {n}, {p}")
    if k == 0:
        return 1.0
    if p in (0.0, 1.0):
        return float(p == 1.0)
    tail = math.fsum(math.comb(n, i) * p**i * (1.0 - p) ** (n - i) for i in range(k, n + 1))
    return min(1.0, tail)


def quantile_edges(values: npt.NDArray[np.generic], bins: int = BINS) -> tuple[float, ...]:
    """The inner edges of ``bins`` equal-count bins of ``values`` (numpy's linear
    quantiles), de-duplicated: ``bins − 1`` edges or fewer when values tie."""
    qs = np.quantile(np.asarray(values, dtype=np.float64), np.arange(1, bins) / bins)
    return tuple(float(v) for v in np.unique(qs))


def _bin_index(values: npt.NDArray[np.generic], edges: Sequence[float]) -> npt.NDArray[np.intp]:
    # side="right": a value equal to an edge belongs to the bin that edge opens.
    return np.searchsorted(np.asarray(edges, dtype=np.float64), values, side="right")


def in_bin(
    values: npt.NDArray[np.generic], low: float | None, high: float | None
) -> npt.NDArray[np.bool_]:
    """Which ``values`` fall in ``[low, high)`` (an open end is ``None``)."""
    v = np.asarray(values, dtype=np.float64)
    keep = np.ones(v.shape, dtype=bool)
    if low is not None:
        keep &= v >= low
    if high is not None:
        keep &= v < high
    return keep


def _holm(p_values: Sequence[float], alpha: float) -> list[bool]:
    """Holm's step-down: which hypotheses are rejected at family-wise ``alpha``."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    rejected = [False] * len(p_values)
    m = len(p_values)
    for rank, i in enumerate(order):
        if p_values[i] > alpha / (m - rank):
            break
        rejected[i] = True
    return rejected


def feature_slices(
    x: npt.NDArray[np.generic],
    wrong: npt.NDArray[np.bool_],
    features: Sequence[str],
    *,
    bins: int = BINS,
    min_items: int = MIN_ITEMS,
    alpha: float = ALPHA,
) -> tuple[Slice, ...]:
    """The bins of ``x``'s features (``(n, d)``, one name per column) where the error
    rate, ``wrong`` ``(n,)``, is clearly above the overall rate (module docstring), most
    severe first (ties by feature, then bin).

    Raises:
        InvalidRequest: shapes that do not agree, ``bins < 2`` or ``min_items < 1``.
    """
    rows = np.asarray(x, dtype=np.float64)
    miss = np.asarray(wrong, dtype=bool)
    if rows.ndim != 2 or miss.shape != (rows.shape[0],) or len(features) != rows.shape[1]:
        raise InvalidRequest(
            f"slices need x (n, d), wrong (n,) and d feature names: {rows.shape}, "
            f"{miss.shape}, {len(features)} names"
        )
    if bins < 2 or min_items < 1:
        raise InvalidRequest(f"slices need bins >= 2 and min_items >= 1: {bins}, {min_items}")
    n = rows.shape[0]
    errors = int(miss.sum())
    if n == 0 or errors == 0:
        return ()
    overall = errors / n
    candidates: list[tuple[int, int, tuple[float, ...], int, int, float]] = []
    for j in range(rows.shape[1]):
        edges = quantile_edges(rows[:, j], bins)
        index = _bin_index(rows[:, j], edges)
        for b in range(len(edges) + 1):
            members = index == b
            size = int(members.sum())
            if size < min_items:
                continue
            k = int(miss[members].sum())
            candidates.append((j, b, edges, size, k, binomial_upper_tail(k, size, overall)))
    rejected = _holm([c[5] for c in candidates], alpha)
    found = [
        Slice(
            feature=features[j],
            feature_index=j,
            bin=b,
            bins=len(edges) + 1,
            edges=edges,
            low=None if b == 0 else edges[b - 1],
            high=None if b == len(edges) else edges[b],
            items=size,
            errors=k,
            overall=overall,
            p_value=p,
            tested=len(candidates),
            severity=(k - size * overall) / n,
        )
        for (j, b, edges, size, k, p), keep in zip(candidates, rejected, strict=True)
        if keep
    ]
    return tuple(sorted(found, key=lambda s: (-s.severity, s.feature_index, s.bin)))


def length_slices(
    texts: Sequence[str],
    wrong: npt.NDArray[np.bool_],
    *,
    bins: int = BINS,
    min_items: int = MIN_ITEMS,
    alpha: float = ALPHA,
) -> tuple[Slice, ...]:
    """:func:`feature_slices` on one feature, each text's length in characters
    (``LENGTH``): short or long inputs where a text model fails more often.
    Failure mining (``lab.failures``) records them as slice clusters of text capabilities.
    """
    lengths = np.asarray([[len(t)] for t in texts], dtype=np.float64).reshape(len(texts), 1)
    return feature_slices(lengths, wrong, (LENGTH,), bins=bins, min_items=min_items, alpha=alpha)

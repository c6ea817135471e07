"""Metric functions: predicted probabilities in, per-item vectors and aggregates out.

Owns the five metric families of a suite (DESIGN.md §9) as pure numpy functions: task
(accuracy, macro-F1), calibration (top-label ECE on 10 equal-mass bins, Brier, NLL),
robustness (per-item worst case over perturbations, gap to clean), safety (zero-tolerance
critical confusions, abstention on OOD inputs) and resource (latency percentiles).
Leaves running models to the suite runner (this module never imports torch), choosing
items and perturbations to the suite, and every comparison, margin and verdict to
``breedlab.viability``.

Conventions:
    * ``labels``: 1-d integer array ``(n,)`` with values in ``0..k-1``.
    * ``probs``: 2-d float array ``(n, k)``, rows on the simplex: entries in [0, 1] and
      row sums within ``ROW_SUM_TOLERANCE`` of 1 (float32 softmax output passes). Rows
      are used as given, never renormalised. Everything is computed in float64.
    * The predicted class is ``argmax`` of a row; an exact tie goes to the lowest class
      index (numpy's first maximum). The top-label confidence is the row's maximum.
    * Per-item arrays in results are read-only, so a frozen result stays frozen.

Why one module of this length: the five families share the conventions above and
the input checks that enforce them; one module keeps a metric next to the rules every
other metric obeys.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, TypeAlias

import numpy as np
import numpy.typing as npt

from breedlab.errors import InvalidRequest

__all__ = [
    "ABSTAIN",
    "ECE_BINS",
    "LATENCY_PERCENTILE_METHOD",
    "NLL_EPSILON",
    "ROW_SUM_TOLERANCE",
    "ClassificationScores",
    "CriticalConfusion",
    "KindAccuracy",
    "Latency",
    "PerItem",
    "ReliabilityBin",
    "Robustness",
    "SafetySpec",
    "Violations",
    "accuracy",
    "brier_per_item",
    "classification_scores",
    "critical_violations",
    "decide",
    "ece_equal_mass",
    "ece_per_item",
    "latency_percentiles",
    "macro_f1",
    "macro_f1_per_item",
    "nll_per_item",
    "ood_violations",
    "per_item",
    "reliability",
    "robustness",
]

FloatArray: TypeAlias = npt.NDArray[np.float64]
IntArray: TypeAlias = npt.NDArray[np.int64]
BoolArray: TypeAlias = npt.NDArray[np.bool_]

#: Equal-mass bins of the suite's ECE: HELM's ``ece_10_bin``.
ECE_BINS: Final = 10
#: The true-class probability is clipped below at this value before the log, so one
#: confidently wrong item costs at most −ln(1e-15) ≈ 34.5 nats (log_loss's historic eps).
NLL_EPSILON: Final = 1e-15
#: How far a row of ``probs`` may sum from 1 (float32 softmax rounding is ~1e-7).
ROW_SUM_TOLERANCE: Final = 1e-4
#: ``numpy.percentile`` method for latency: linear interpolation between order statistics
#: (Hyndman & Fan type 7, numpy's and R's default); p95 of 20 calls interpolates 19th/20th.
LATENCY_PERCENTILE_METHOD: Final = "linear"
#: The decision of an abstaining model (``decide``): never a class index.
ABSTAIN: Final = -1


def _readonly(array: npt.NDArray[np.generic]) -> None:
    array.setflags(write=False)


def _float_text(value: float) -> str:
    # Canonical JSON refuses floats; repr is the shortest text that round-trips exactly.
    return repr(float(value))


def _check_labels(labels: npt.NDArray[np.generic], what: str = "labels") -> IntArray:
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise InvalidRequest(
            f"{what} must be a 1-d integer array, got {labels.dtype} {labels.shape}"
        )
    if labels.shape[0] == 0:
        raise InvalidRequest(f"{what} must not be empty")
    return labels.astype(np.int64, copy=False)


def _check_probs(
    labels: npt.NDArray[np.generic], probs: npt.NDArray[np.generic]
) -> tuple[IntArray, FloatArray]:
    y = _check_labels(labels)
    if probs.ndim != 2 or not np.issubdtype(probs.dtype, np.floating):
        raise InvalidRequest(
            f"probs must be a 2-d float array (n, k), got {probs.dtype} {probs.shape}"
        )
    p = probs.astype(np.float64, copy=False)
    n, k = p.shape
    if n != y.shape[0]:
        raise InvalidRequest(f"{n} rows of probs for {y.shape[0]} labels")
    if k < 2:
        raise InvalidRequest(f"probs need at least 2 classes, got {k}")
    if y.min() < 0 or y.max() >= k:
        raise InvalidRequest(f"labels must be in 0..{k - 1}")
    if not np.all(np.isfinite(p)) or p.min() < 0.0 or p.max() > 1.0:
        raise InvalidRequest("probs must be finite and in [0, 1]")
    if np.max(np.abs(p.sum(axis=1) - 1.0)) > ROW_SUM_TOLERANCE:
        raise InvalidRequest(f"each row of probs must sum to 1 (±{ROW_SUM_TOLERANCE})")
    return y, p


def _check_correct(correct: npt.NDArray[np.generic], what: str = "correct") -> BoolArray:
    if correct.ndim != 1 or correct.dtype != np.bool_:
        raise InvalidRequest(
            f"{what} must be a 1-d bool array, got {correct.dtype} {correct.shape}"
        )
    if correct.shape[0] == 0:
        raise InvalidRequest(f"{what} must not be empty")
    return correct.astype(np.bool_, copy=False)


# ── task ──────────────────────────────────────────────────────────────────────────────


def accuracy(correct: npt.NDArray[np.generic]) -> float:
    """Fraction of items correct. Raises InvalidRequest unless a non-empty 1-d bool array."""
    return float(np.mean(_check_correct(correct)))


def macro_f1(labels: npt.NDArray[np.generic], predicted: npt.NDArray[np.generic]) -> float:
    """Unweighted mean of per-class F1, as ``sklearn.metrics.f1_score(average="macro")``.

    Classes are those present in ``labels`` or in ``predicted`` (sklearn's ``labels=None``):
    a class the model never predicts counts with F1 = 0, and so does a class it predicts
    that never occurs. Per class, ``F1 = 2·TP / (2·TP + FP + FN)``. Its denominator is
    never 0 for a class in that union, so sklearn's ``zero_division`` (which applies only
    to 0/0) never comes into play and the result equals sklearn's for every setting of it.
    Precision and recall are not formed, so there is no 0/0 here either.

    Raises:
        InvalidRequest: not 1-d non-empty integer arrays of equal length.
    """
    y = _check_labels(labels)
    p = _check_labels(predicted, "predicted")
    if y.shape != p.shape:
        raise InvalidRequest(f"{p.shape[0]} predictions for {y.shape[0]} labels")
    classes, inverse = np.unique(np.concatenate([y, p]), return_inverse=True)
    yi, pi = inverse[: y.shape[0]], inverse[y.shape[0] :]
    c = classes.shape[0]
    tp = np.bincount(yi[yi == pi], minlength=c)
    true_count = np.bincount(yi, minlength=c)
    pred_count = np.bincount(pi, minlength=c)
    # 2TP + FP + FN = (TP + FN) + (TP + FP) = true count + predicted count > 0 for the union.
    f1 = 2.0 * tp / (true_count + pred_count)
    return float(np.mean(f1))


def macro_f1_per_item(
    labels: npt.NDArray[np.generic], predicted: npt.NDArray[np.generic]
) -> FloatArray:
    """Per-item terms whose mean is exactly :func:`macro_f1`, for a paired comparison.

    ``F1_c = 2·TP_c / (T_c + P_c)`` is a sum over the items correct in class ``c``, so
    ``macro_f1 = (1/n) Σ_i v_i`` with ``v_i = 1[correct_i] · 2n / (C·(T_{y_i} + P_{y_i}))``
    (``C`` classes in labels ∪ predictions, ``T``/``P`` true and predicted counts). The
    weights are those of the whole split and stay fixed when a bootstrap resamples items
    (a plug-in linearisation): the interval ignores the noise of the class counts
    themselves, so it is somewhat narrower than a bootstrap of the statistic.

    Raises:
        InvalidRequest: as :func:`macro_f1`.
    """
    macro_f1(labels, predicted)  # validates
    y = labels.astype(np.int64, copy=False)
    p = predicted.astype(np.int64, copy=False)
    classes, inverse = np.unique(np.concatenate([y, p]), return_inverse=True)
    yi, pi = inverse[: y.shape[0]], inverse[y.shape[0] :]
    c = classes.shape[0]
    counts = np.bincount(yi, minlength=c) + np.bincount(pi, minlength=c)
    n = y.shape[0]
    out: FloatArray = np.where(yi == pi, 2.0 * n / (c * counts[yi]), 0.0)
    _readonly(out)
    return out


# ── calibration ───────────────────────────────────────────────────────────────────────


def ece_equal_mass(
    confidence: npt.NDArray[np.generic],
    correct: npt.NDArray[np.generic],
    num_bins: int = ECE_BINS,
) -> float:
    """Top-label expected calibration error over equal-mass bins (HELM's ``ece_10_bin``).

    HELM computes ``ece_10_bin = calibration.get_ece_em(max_probs, correct, num_bins=10)``
    (``helm/benchmark/metrics/basic_metrics.py``, ``compute_calibration_metrics``), from
    uncertainty-calibration 0.1.4 (``calibration/utils.py``: ``get_equal_bins``,
    ``fast_bin``, ``plugin_ce`` with p=1). This reproduces that definition exactly:

    1. ``m = min(num_bins, n)``. Sort the confidences and cut them with
       ``numpy.array_split`` into ``m`` runs: when ``n`` is not divisible by ``m`` the
       first ``n mod m`` runs hold one item more (n=105, m=10: five of 11, five of 10).
    2. Each boundary is the midpoint of the last value of a run and the first of the next;
       the last boundary is 1.0; duplicate boundaries are merged.
    3. An item goes to the first bin whose boundary is >= its confidence
       (``searchsorted(side="left")``). Ties therefore never straddle bins: a run of equal
       confidences across a cut lands entirely in the lower bin, which may then hold more
       than ``ceil(n/m)`` items while a later bin holds fewer or none.
    4. ``ECE = Σ_b (|B_b|/n)·|mean(confidence in B_b) − mean(correct in B_b)|``; empty bins
       add 0.

    Differences from the library, all on inputs it refuses: ``n < num_bins`` uses ``n``
    bins (the library caps the same way since 2022), and all-correct or all-wrong inputs
    are scored by the same formula (the library's binary mode demands both outcomes).
    HELM notes ~300 items are needed for a reliable 10-bin estimate.

    Args:
        confidence: top-label probabilities, 1-d floats in [0, 1].
        correct: whether each top-label prediction was right, 1-d bool, same length.
        num_bins: bins before merging, >= 1.

    Raises:
        InvalidRequest: shapes, dtypes or ranges are wrong, or ``num_bins < 1``.
    """
    ok = _check_correct(correct)
    if confidence.ndim != 1 or not np.issubdtype(confidence.dtype, np.floating):
        raise InvalidRequest("confidence must be a 1-d float array")
    conf = confidence.astype(np.float64, copy=False)
    if conf.shape != ok.shape:
        raise InvalidRequest(f"{conf.shape[0]} confidences for {ok.shape[0]} outcomes")
    if not np.all(np.isfinite(conf)) or conf.min() < 0.0 or conf.max() > 1.0:
        raise InvalidRequest("confidence must be finite and in [0, 1]")
    if isinstance(num_bins, bool) or not isinstance(num_bins, int) or num_bins < 1:
        raise InvalidRequest(f"num_bins must be a positive int, got {num_bins!r}")
    n = conf.shape[0]
    size, conf_sum, hit_sum = _equal_mass_bins(conf, ok, num_bins)
    used = size > 0
    gaps = np.abs(conf_sum[used] / size[used] - hit_sum[used] / size[used])
    return float(np.dot(size[used] / n, gaps))


def ece_per_item(
    confidence: npt.NDArray[np.generic],
    correct: npt.NDArray[np.generic],
    num_bins: int = ECE_BINS,
) -> FloatArray:
    """Per-item terms whose mean is exactly :func:`ece_equal_mass`, for a paired comparison.

    ``ECE = (1/n) Σ_b |Σ_{i∈B_b} (conf_i − correct_i)|``, so ``e_i = s_b·(conf_i −
    correct_i)`` with ``s_b`` the sign of item ``i``'s bin sum has mean ECE. Bins and signs
    are those of the whole split and stay fixed when a bootstrap resamples items (a
    plug-in linearisation, as :func:`macro_f1_per_item`); a single item may be negative.

    Raises:
        InvalidRequest: as :func:`ece_equal_mass`.
    """
    ece_equal_mass(confidence, correct, num_bins)  # validates
    conf = confidence.astype(np.float64, copy=False)
    ok = _check_correct(correct)
    n = conf.shape[0]
    runs = np.array_split(np.sort(conf), min(num_bins, n))
    which = np.searchsorted(_bin_edges(runs), conf, side="left")
    gap = conf - ok.astype(np.float64)
    sums = np.bincount(which, weights=gap)
    out: FloatArray = np.where(sums[which] < 0.0, -gap, gap)
    _readonly(out)
    return out


def _bin_edges(runs: Sequence[FloatArray]) -> FloatArray:
    cuts = [(runs[i][-1] + runs[i + 1][0]) / 2.0 for i in range(len(runs) - 1)]
    edges: FloatArray = np.unique(np.array([*cuts, 1.0], dtype=np.float64))
    return edges


def _equal_mass_bins(
    conf: FloatArray, ok: BoolArray, num_bins: int
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per-bin item count, confidence sum and hit sum (the binning of ``ece_equal_mass``)."""
    n = conf.shape[0]
    runs = np.array_split(np.sort(conf), min(num_bins, n))
    edges = _bin_edges(runs)
    which = np.searchsorted(edges, conf, side="left")
    size = np.bincount(which, minlength=edges.shape[0]).astype(np.float64)
    conf_sum = np.bincount(which, weights=conf, minlength=edges.shape[0]).astype(np.float64)
    hit_sum = np.bincount(which, weights=ok.astype(np.float64), minlength=edges.shape[0])
    return size, conf_sum, hit_sum.astype(np.float64)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReliabilityBin:
    """One bin of a reliability diagram: mean confidence, accuracy and item count."""

    confidence: float
    accuracy: float
    count: int

    def to_record(self) -> dict[str, str | int]:
        return {
            "confidence": _float_text(self.confidence),
            "accuracy": _float_text(self.accuracy),
            "count": self.count,
        }


def reliability(
    confidence: npt.NDArray[np.generic],
    correct: npt.NDArray[np.generic],
    num_bins: int = ECE_BINS,
) -> tuple[ReliabilityBin, ...]:
    """The non-empty bins of ``ece_equal_mass``, for a reliability diagram.

    Raises:
        InvalidRequest: as :func:`ece_equal_mass`.
    """
    ece_equal_mass(confidence, correct, num_bins)  # validates
    conf = confidence.astype(np.float64, copy=False)
    size, conf_sum, hit_sum = _equal_mass_bins(conf, _check_correct(correct), num_bins)
    return tuple(
        ReliabilityBin(
            confidence=float(conf_sum[i] / size[i]),
            accuracy=float(hit_sum[i] / size[i]),
            count=int(size[i]),
        )
        for i in range(size.shape[0])
        if size[i] > 0
    )


def brier_per_item(labels: npt.NDArray[np.generic], probs: npt.NDArray[np.generic]) -> FloatArray:
    """Multi-class Brier score per item: ``Σ_j (p_ij − 1[j = y_i])²``, in [0, 2].

    Its mean equals ``sklearn.metrics.brier_score_loss(labels, probs, labels=range(k),
    scale_by_half=False)``; sklearn's default halves the two-class case, this never does.
    Raises InvalidRequest on bad inputs.
    """
    return _brier(*_check_probs(labels, probs))


def _brier(y: IntArray, p: FloatArray) -> FloatArray:
    onehot = np.zeros_like(p)
    onehot[np.arange(y.shape[0]), y] = 1.0
    out: FloatArray = np.sum((p - onehot) ** 2, axis=1)
    return out


def nll_per_item(labels: npt.NDArray[np.generic], probs: npt.NDArray[np.generic]) -> FloatArray:
    """Negative log-likelihood per item in nats: ``−ln(max(p_i,y_i, NLL_EPSILON))``.

    Only the true-class probability is clipped (below, at ``NLL_EPSILON``); rows are not
    renormalised. Away from the clip its mean equals ``sklearn.metrics.log_loss``.
    Raises InvalidRequest on bad inputs.
    """
    return _nll(*_check_probs(labels, probs))


def _nll(y: IntArray, p: FloatArray) -> FloatArray:
    true_p = p[np.arange(y.shape[0]), y]
    out: FloatArray = -np.log(np.maximum(true_p, NLL_EPSILON))
    return out


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class PerItem:
    """Per-item outputs of one model on one item set, in item order (arrays read-only).

    These are what the runner stores as a blob so that comparisons are paired.
    """

    predicted: IntArray  # argmax class
    correct: BoolArray  # predicted == label
    confidence: FloatArray  # top-label probability
    brier: FloatArray
    nll: FloatArray


def per_item(labels: npt.NDArray[np.generic], probs: npt.NDArray[np.generic]) -> PerItem:
    """Per-item predicted class, correctness, confidence, Brier and NLL.

    Raises:
        InvalidRequest: bad shapes, dtypes, label range, or rows off the simplex.
    """
    y, p = _check_probs(labels, probs)
    predicted = np.argmax(p, axis=1).astype(np.int64)
    result = PerItem(
        predicted=predicted,
        correct=predicted == y,
        confidence=np.max(p, axis=1),
        brier=_brier(y, p),
        nll=_nll(y, p),
    )
    for array in (result.predicted, result.correct, result.confidence, result.brier, result.nll):
        _readonly(array)
    return result


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class ClassificationScores:
    """Task and calibration aggregates of one model on one item set, with the per-item rows."""

    items: PerItem
    n: int
    accuracy: float
    macro_f1: float
    ece: float  # top-label, ECE_BINS equal-mass bins
    brier: float  # mean multi-class Brier
    nll: float  # mean NLL, nats

    def to_record(self) -> dict[str, str | int]:
        """The aggregates as canonical-JSON-ready data (floats as exact decimal strings)."""
        return {
            "n": self.n,
            "accuracy": _float_text(self.accuracy),
            "macro_f1": _float_text(self.macro_f1),
            "ece": _float_text(self.ece),
            "brier": _float_text(self.brier),
            "nll": _float_text(self.nll),
        }


def classification_scores(
    labels: npt.NDArray[np.generic], probs: npt.NDArray[np.generic]
) -> ClassificationScores:
    """Accuracy, macro-F1, ECE (10 equal-mass bins), mean Brier and mean NLL.

    Raises:
        InvalidRequest: bad shapes, dtypes, label range, or rows off the simplex.
    """
    items = per_item(labels, probs)
    return ClassificationScores(
        items=items,
        n=int(items.correct.shape[0]),
        accuracy=accuracy(items.correct),
        macro_f1=macro_f1(labels, items.predicted),
        ece=ece_equal_mass(items.confidence, items.correct),
        brier=float(np.mean(items.brier)),
        nll=float(np.mean(items.nll)),
    )


# ── robustness ────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True, kw_only=True)
class KindAccuracy:
    """Accuracy under one perturbation variant (named as the suite names it)."""

    kind: str
    accuracy: float


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Robustness:
    """Worst case over clean and every perturbation, per item and overall."""

    worst_case: BoolArray  # per item: correct on the clean input and under every perturbation
    clean_accuracy: float
    worst_case_accuracy: float
    gap: float  # clean_accuracy − worst_case_accuracy, >= 0
    per_kind: tuple[KindAccuracy, ...]  # sorted by kind

    def to_record(self) -> dict[str, object]:
        """The aggregates as canonical-JSON-ready data (floats as exact decimal strings)."""
        return {
            "clean_accuracy": _float_text(self.clean_accuracy),
            "worst_case_accuracy": _float_text(self.worst_case_accuracy),
            "gap": _float_text(self.gap),
            "per_kind": {k.kind: _float_text(k.accuracy) for k in self.per_kind},
        }


def robustness(
    *, clean: npt.NDArray[np.generic], perturbed: Mapping[str, npt.NDArray[np.generic]]
) -> Robustness:
    """Per-item worst case (HELM ``compute_worst_case_metrics``: min over original + perturbations).

    Correctness is higher-is-better, so the worst case is the logical AND: an item counts
    only if it is right on the clean input and under every perturbation.

    Args:
        clean: per-item correctness on clean inputs, 1-d bool.
        perturbed: variant name (e.g. ``"noise(sigma=0.3)"``) → per-item correctness on the
            same items in the same order.

    Raises:
        InvalidRequest: no perturbations (a robustness score without any proves nothing),
            an empty name, or arrays that are not 1-d bool of the clean length.
    """
    base = _check_correct(clean, "clean")
    if not perturbed:
        raise InvalidRequest("robustness needs at least one perturbation")
    worst = base.copy()
    per_kind = []
    for kind in sorted(perturbed):
        if not kind:
            raise InvalidRequest("perturbation names must be non-empty")
        ok = _check_correct(perturbed[kind], f"correctness under {kind!r}")
        if ok.shape != base.shape:
            raise InvalidRequest(f"{ok.shape[0]} outcomes under {kind!r} for {base.shape[0]} items")
        worst &= ok
        per_kind.append(KindAccuracy(kind=kind, accuracy=float(np.mean(ok))))
    _readonly(worst)
    clean_acc = float(np.mean(base))
    worst_acc = float(np.mean(worst))
    return Robustness(
        worst_case=worst,
        clean_accuracy=clean_acc,
        worst_case_accuracy=worst_acc,
        gap=clean_acc - worst_acc,
        per_kind=tuple(per_kind),
    )


# ── safety ────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True, kw_only=True)
class CriticalConfusion:
    """A confusion never acceptable: an item of ``true_class`` decided as ``predicted_class``."""

    true_class: int
    predicted_class: int

    def __post_init__(self) -> None:
        for value in (self.true_class, self.predicted_class):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidRequest(f"critical confusion classes must be ints >= 0, got {value!r}")
        if self.true_class == self.predicted_class:
            raise InvalidRequest("a critical confusion needs two different classes")


@dataclass(frozen=True, slots=True, kw_only=True)
class SafetySpec:
    """A capability's safety rules: critical confusions and the abstention threshold.

    A model abstains when its top-label probability is strictly below ``abstain_below``.
    """

    critical: tuple[CriticalConfusion, ...]
    abstain_below: float

    def __post_init__(self) -> None:
        if not self.critical:
            raise InvalidRequest("a safety spec needs at least one critical confusion")
        if len(set(self.critical)) != len(self.critical):
            raise InvalidRequest("critical confusions must not repeat")
        if not (math.isfinite(self.abstain_below) and 0.0 <= self.abstain_below <= 1.0):
            raise InvalidRequest(f"abstain_below must be in [0, 1], got {self.abstain_below!r}")

    def to_record(self) -> dict[str, object]:
        """The spec as canonical-JSON-ready data (the threshold as a decimal string)."""
        return {
            "critical": sorted([c.true_class, c.predicted_class] for c in self.critical),
            "abstain_below": _float_text(self.abstain_below),
        }


def decide(probs: npt.NDArray[np.generic], *, abstain_below: float) -> IntArray:
    """Per item: the argmax class, or ``ABSTAIN`` when the top probability < ``abstain_below``.

    Raises:
        InvalidRequest: ``probs`` not a 2-d float array of probabilities, or the threshold
            outside [0, 1] (0 never abstains).
    """
    if probs.ndim != 2 or not np.issubdtype(probs.dtype, np.floating) or probs.shape[0] == 0:
        raise InvalidRequest(f"probs must be a non-empty 2-d float array, got {probs.shape}")
    p = probs.astype(np.float64, copy=False)
    if not np.all(np.isfinite(p)) or p.min() < 0.0 or p.max() > 1.0:
        raise InvalidRequest("probs must be finite and in [0, 1]")
    if not (math.isfinite(abstain_below) and 0.0 <= abstain_below <= 1.0):
        raise InvalidRequest(f"abstain_below must be in [0, 1], got {abstain_below!r}")
    decisions: IntArray = np.argmax(p, axis=1).astype(np.int64)
    decisions[np.max(p, axis=1) < abstain_below] = ABSTAIN
    return decisions


@dataclass(frozen=True, slots=True, kw_only=True)
class Violations:
    """Outcome of a zero-tolerance check: how many items were checked and which failed."""

    checked: int
    failed_ids: tuple[str, ...]  # in item order

    @property
    def count(self) -> int:
        """Number of violations."""
        return len(self.failed_ids)

    @property
    def passed(self) -> bool:
        """Zero tolerance: true only with no violation at all."""
        return not self.failed_ids


def _check_decisions(item_ids: Sequence[str], decisions: npt.NDArray[np.generic]) -> IntArray:
    d = _check_labels(decisions, "decisions")
    if len(item_ids) != d.shape[0]:
        raise InvalidRequest(f"{len(item_ids)} item ids for {d.shape[0]} decisions")
    if len(set(item_ids)) != len(item_ids):
        raise InvalidRequest("item ids must be unique")
    if d.min() < ABSTAIN:
        raise InvalidRequest(f"decisions must be class indices or ABSTAIN ({ABSTAIN})")
    return d


def critical_violations(
    *,
    item_ids: Sequence[str],
    labels: npt.NDArray[np.generic],
    decisions: npt.NDArray[np.generic],
    critical: Iterable[CriticalConfusion],
) -> Violations:
    """Zero-tolerance check of the critical items: which were decided as a critical confusion.

    An abstention is never a violation (declining is the safe outcome). Every listed item
    is checked; choosing which items are critical is the suite's job.

    Raises:
        InvalidRequest: no items or no critical confusions (fail closed: an empty check
            proves nothing), mismatched lengths, or duplicate ids.
    """
    d = _check_decisions(item_ids, decisions)
    y = _check_labels(labels)
    if y.shape != d.shape:
        raise InvalidRequest(f"{y.shape[0]} labels for {d.shape[0]} decisions")
    pairs = {(c.true_class, c.predicted_class) for c in critical}
    if not pairs:
        raise InvalidRequest("no critical confusions given")
    failed = tuple(
        item_id
        for item_id, t, p in zip(item_ids, y.tolist(), d.tolist(), strict=True)
        if (t, p) in pairs
    )
    return Violations(checked=len(item_ids), failed_ids=failed)


def ood_violations(*, item_ids: Sequence[str], decisions: npt.NDArray[np.generic]) -> Violations:
    """Zero-tolerance check of the OOD set: every item must be abstained on.

    Raises:
        InvalidRequest: no items (fail closed), mismatched lengths, or duplicate ids.
    """
    d = _check_decisions(item_ids, decisions)
    failed = tuple(i for i, v in zip(item_ids, d.tolist(), strict=True) if v != ABSTAIN)
    return Violations(checked=len(item_ids), failed_ids=failed)


# ── resource ──────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True, kw_only=True)
class Latency:
    """Latency percentiles of a replay, in the unit of the input durations (seconds)."""

    n: int
    p50: float
    p95: float

    def to_record(self) -> dict[str, str | int]:
        """Canonical-JSON-ready data (floats as exact decimal strings)."""
        return {"n": self.n, "p50": _float_text(self.p50), "p95": _float_text(self.p95)}


def latency_percentiles(durations: Sequence[float] | npt.NDArray[np.generic]) -> Latency:
    """p50 and p95 of per-call durations (``numpy.percentile``, ``LATENCY_PERCENTILE_METHOD``).

    Raises:
        InvalidRequest: no durations, or any negative, NaN or infinite.
    """
    try:
        values = np.asarray(durations, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise InvalidRequest(f"durations must be numbers: {e}") from e
    if values.ndim != 1 or values.shape[0] == 0:
        raise InvalidRequest("latency needs a non-empty 1-d list of durations")
    if not np.all(np.isfinite(values)) or values.min() < 0.0:
        raise InvalidRequest("durations must be finite and >= 0")
    p50, p95 = np.percentile(values, [50.0, 95.0], method=LATENCY_PERCENTILE_METHOD)
    return Latency(n=int(values.shape[0]), p50=float(p50), p95=float(p95))

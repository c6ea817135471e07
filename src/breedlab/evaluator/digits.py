"""The built-in capability's data: scikit-learn's bundled digits, split and mined.

Owns loading the digits (``sklearn.datasets.load_digits``: bundled with scikit-learn,
never downloaded), the fixed stratified splits by seed, the capability's robustness
perturbation set, and failure-cluster mining from confusions. Leaves training to
``breedlab.factory``, suite packaging to the suite builder, and scoring to
``evaluator.metrics``. scikit-learn is imported on first load, not at import time.

Data: 1,797 images of 8×8 pixels, 10 classes (UCI optdigits test set; BSD-3 via
scikit-learn). Inputs are ``data / 16``: float64 in 0..1, shape ``(n, 64)``, the
convention of ``evaluator.perturbations``. Item ids are ``digits-<index in load_digits>``
and never change, whatever the seed.

Splits (``DEFAULT_PERCENTS``, 60/10/15/15): per class, the class's items are shuffled by
a generator derived from the seed and cut at ``round_half_up(n_c·60%)``, ``…70%``, ``…85%``.
Per-split sizes therefore depend only on the class counts, not on the seed; for the full
data they are train 1,078 / fitness 180 / dev 270 / sealed 269. Roles:

    train    operators fit on it
    fitness  operators and selection may look at it during a round (early stopping, picking
             a failure cluster), so it is spent and never scores a decision
    dev      the suite's decision split: candidates vs champion
    sealed   touched only to confirm a winner (DESIGN.md §10)
"""

from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass
from enum import Enum
from typing import Final, TypeAlias

import numpy as np
import numpy.typing as npt

from breedlab.errors import InvalidRequest
from breedlab.evaluator.perturbations import (
    GaussianNoise,
    Occlusion,
    PerturbationSpec,
    PixelDropout,
    PixelShift,
)

__all__ = [
    "DEFAULT_PERCENTS",
    "DIGITS_PERTURBATIONS",
    "NUM_CLASSES",
    "ConfusionPair",
    "DigitsSplit",
    "DigitsSplits",
    "SplitName",
    "SplitPercents",
    "confusion_pairs",
    "digits_splits",
    "load_digits_scaled",
]

FloatArray: TypeAlias = npt.NDArray[np.float64]
IntArray: TypeAlias = npt.NDArray[np.int64]

NUM_CLASSES: Final = 10

#: The robustness variants of the built-in suite. Against a logistic-regression champion
#: each costs well over 5 accuracy points on dev (tests/unit/evaluator, realism check),
#: so breeding has failure clusters to work on; clean digits alone leave almost none.
DIGITS_PERTURBATIONS: Final[tuple[PerturbationSpec, ...]] = (
    GaussianNoise(sigma=0.3),
    PixelShift(pixels=1),
    Occlusion(size=3),
    PixelDropout(fraction=0.2),
)


class SplitName(Enum):
    """The four splits, in allocation order."""

    TRAIN = "train"
    FITNESS = "fitness"
    DEV = "dev"
    SEALED = "sealed"


@dataclass(frozen=True, slots=True, kw_only=True)
class SplitPercents:
    """Whole percentages per split; they must sum to 100 and each be at least 1."""

    train: int = 60
    fitness: int = 10
    dev: int = 15
    sealed: int = 15

    def __post_init__(self) -> None:
        values = (self.train, self.fitness, self.dev, self.sealed)
        if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
            raise InvalidRequest(f"split percentages must be ints >= 1, got {values}")
        if sum(values) != 100:
            raise InvalidRequest(f"split percentages must sum to 100, got {sum(values)}")

    def cumulative(self) -> tuple[int, int, int, int]:
        """Cumulative percentages at the end of each split (the last is 100)."""
        return (
            self.train,
            self.train + self.fitness,
            self.train + self.fitness + self.dev,
            100,
        )

    def to_record(self) -> dict[str, int]:
        """Canonical-JSON-ready data."""
        return {
            "train": self.train,
            "fitness": self.fitness,
            "dev": self.dev,
            "sealed": self.sealed,
        }


DEFAULT_PERCENTS: Final = SplitPercents()


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class DigitsSplit:
    """One split: read-only ``x`` ``(n, 64)`` float64 in 0..1, ``y`` ``(n,)`` int64, ids.

    Items are in ascending original index.
    """

    name: SplitName
    x: FloatArray
    y: IntArray
    item_ids: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.item_ids)


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class DigitsSplits:
    """The four disjoint splits made from one seed."""

    seed: int
    percents: SplitPercents
    train: DigitsSplit
    fitness: DigitsSplit
    dev: DigitsSplit
    sealed: DigitsSplit

    def all(self) -> tuple[DigitsSplit, DigitsSplit, DigitsSplit, DigitsSplit]:
        """The splits in allocation order."""
        return (self.train, self.fitness, self.dev, self.sealed)


@functools.cache
def load_digits_scaled() -> tuple[FloatArray, IntArray]:
    """All 1,797 digits as read-only ``(x / 16, y)``: float64 ``(1797, 64)`` and int64."""
    from sklearn.datasets import load_digits  # bundled data; imported late: it is slow

    bunch = load_digits()
    x = np.asarray(bunch.data, dtype=np.float64) / 16.0
    y = np.asarray(bunch.target, dtype=np.int64)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def _split_rng(seed: int) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}:digits-split".encode()).digest()
    return np.random.Generator(
        np.random.PCG64(np.random.SeedSequence(int.from_bytes(digest, "big")))
    )


def digits_splits(seed: int = 0, *, percents: SplitPercents = DEFAULT_PERCENTS) -> DigitsSplits:
    """Stratified train / fitness / dev / sealed splits of the digits (module docstring).

    Deterministic in ``seed`` across processes and machines (sha256-derived PCG64).

    Raises:
        InvalidRequest: ``seed`` is not an int.
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InvalidRequest(f"seed must be an int, not {type(seed).__name__}")
    x, y = load_digits_scaled()
    rng = _split_rng(seed)
    parts: list[list[npt.NDArray[np.intp]]] = [[], [], [], []]
    for c in range(NUM_CLASSES):
        members = rng.permutation(np.flatnonzero(y == c))
        n_c = members.shape[0]
        cuts = [0, *(math.floor(n_c * pct / 100 + 0.5) for pct in percents.cumulative())]
        for k in range(4):
            parts[k].append(members[cuts[k] : cuts[k + 1]])
    splits = []
    for name, chunks in zip(SplitName, parts, strict=True):
        index = np.sort(np.concatenate(chunks))
        sx, sy = x[index], y[index]
        sx.setflags(write=False)
        sy.setflags(write=False)
        ids = tuple(f"digits-{int(i)}" for i in index)
        splits.append(DigitsSplit(name=name, x=sx, y=sy, item_ids=ids))
    train, fitness, dev, sealed = splits
    return DigitsSplits(
        seed=seed, percents=percents, train=train, fitness=fitness, dev=dev, sealed=sealed
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfusionPair:
    """Items of ``true_class`` predicted as ``predicted_class``, ``count`` times (directed)."""

    true_class: int
    predicted_class: int
    count: int


def confusion_pairs(
    y_true: npt.NDArray[np.generic], y_pred: npt.NDArray[np.generic], top_k: int = 5
) -> tuple[ConfusionPair, ...]:
    """The ``top_k`` most frequent directed confusions, for failure-cluster mining.

    Only off-diagonal pairs that occur are returned (so possibly fewer than ``top_k``),
    by count descending, ties by ``(true_class, predicted_class)`` ascending. (1→8) and
    (8→1) are separate pairs; add them up for an undirected cluster.

    Raises:
        InvalidRequest: not 1-d non-negative integer arrays of one length, or ``top_k < 1``.
    """
    for name, a in (("y_true", y_true), ("y_pred", y_pred)):
        if a.ndim != 1 or not np.issubdtype(a.dtype, np.integer):
            raise InvalidRequest(f"{name} must be a 1-d integer array, got {a.dtype} {a.shape}")
        if a.size and a.min() < 0:
            raise InvalidRequest(f"{name} must hold class indices >= 0 (no abstentions)")
    if y_true.shape != y_pred.shape:
        raise InvalidRequest(f"{y_pred.shape[0]} predictions for {y_true.shape[0]} labels")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise InvalidRequest(f"top_k must be a positive int, got {top_k!r}")
    wrong = y_true != y_pred
    pairs, counts = np.unique(
        np.stack([y_true[wrong], y_pred[wrong]], axis=1).astype(np.int64),
        axis=0,
        return_counts=True,
    )
    ranked = sorted(
        zip(pairs.tolist(), counts.tolist(), strict=True), key=lambda pc: (-pc[1], pc[0])
    )
    return tuple(
        ConfusionPair(true_class=t, predicted_class=p, count=n) for (t, p), n in ranked[:top_k]
    )

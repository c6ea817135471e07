"""The built-in digits data: fixed stratified splits, stable ids, confusion mining."""

from __future__ import annotations

import numpy as np
import pytest

from breedlab.errors import InvalidRequest
from breedlab.evaluator.digits import (
    NUM_CLASSES,
    ConfusionPair,
    SplitName,
    SplitPercents,
    confusion_pairs,
    digits_splits,
    load_digits_scaled,
)


def test_the_bundled_digits_load_scaled_to_unit_range_and_read_only() -> None:
    x, y = load_digits_scaled()
    assert x.shape == (1797, 64)
    assert x.dtype == np.float64
    assert (x.min(), x.max()) == (0.0, 1.0)
    assert sorted(set(y.tolist())) == list(range(NUM_CLASSES))
    assert not x.flags.writeable
    assert not y.flags.writeable


def test_splits_are_disjoint_cover_everything_and_have_the_documented_sizes() -> None:
    splits = digits_splits(0)
    ids = [set(s.item_ids) for s in splits.all()]
    assert [len(s) for s in splits.all()] == [1078, 180, 270, 269]
    assert sum(len(s) for s in ids) == 1797
    assert set().union(*ids) == {f"digits-{i}" for i in range(1797)}
    assert [s.name for s in splits.all()] == list(SplitName)


def test_splits_are_stratified_within_one_item_per_class() -> None:
    _, y = load_digits_scaled()
    totals = np.bincount(y, minlength=NUM_CLASSES)
    splits = digits_splits(3)
    for split, pct in zip(splits.all(), (60, 10, 15, 15), strict=True):
        counts = np.bincount(split.y, minlength=NUM_CLASSES)
        assert np.all(np.abs(counts - totals * pct / 100) <= 1)


def test_splits_are_deterministic_by_seed_and_differ_across_seeds() -> None:
    first, again, other = digits_splits(7), digits_splits(7), digits_splits(8)
    for a, b in zip(first.all(), again.all(), strict=True):
        assert a.item_ids == b.item_ids
        assert a.x.tobytes() == b.x.tobytes()
    assert first.sealed.item_ids != other.sealed.item_ids


def test_item_ids_name_the_row_of_load_digits_they_came_from() -> None:
    x, y = load_digits_scaled()
    dev = digits_splits(0).dev
    index = [int(i.removeprefix("digits-")) for i in dev.item_ids]
    assert index == sorted(index)
    assert np.array_equal(dev.x, x[index])
    assert np.array_equal(dev.y, y[index])
    assert not dev.x.flags.writeable


def test_split_percentages_must_be_whole_positive_and_sum_to_100() -> None:
    assert SplitPercents().to_record() == {"train": 60, "fitness": 10, "dev": 15, "sealed": 15}
    with pytest.raises(InvalidRequest, match="sum to 100"):
        SplitPercents(train=70)
    with pytest.raises(InvalidRequest, match=">= 1"):
        SplitPercents(train=75, fitness=0)
    with pytest.raises(InvalidRequest, match="seed"):
        digits_splits("0")  # type: ignore[arg-type]
    small = digits_splits(0, percents=SplitPercents(train=40, fitness=20, dev=20, sealed=20))
    assert len(small.train) < len(digits_splits(0).train)


def test_confusion_pairs_rank_directed_confusions_by_count_then_classes() -> None:
    y_true = np.array([1, 1, 1, 8, 8, 3, 3, 5, 2])
    y_pred = np.array([8, 8, 1, 1, 1, 5, 5, 3, 2])
    assert confusion_pairs(y_true, y_pred, top_k=3) == (
        ConfusionPair(true_class=1, predicted_class=8, count=2),
        ConfusionPair(true_class=3, predicted_class=5, count=2),
        ConfusionPair(true_class=8, predicted_class=1, count=2),
    )
    assert len(confusion_pairs(y_true, y_pred, top_k=10)) == 4
    assert confusion_pairs(y_true, y_true) == ()
    with pytest.raises(InvalidRequest, match="top_k"):
        confusion_pairs(y_true, y_pred, top_k=0)
    with pytest.raises(InvalidRequest, match="abstentions"):
        confusion_pairs(y_true, np.full(9, -1))

"""Failure slices (issue 12): a feature's quantile bin is a failure cluster only when the
exact binomial test, Holm-corrected over every bin, says its error rate is clearly above
the model's overall rate; hand-computed cases, scipy's binomial test as the oracle."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from breedlab.errors import InvalidRequest
from breedlab.evaluator.slices import (
    LENGTH,
    binomial_upper_tail,
    feature_slices,
    in_bin,
    length_slices,
    quantile_edges,
)


def _hand_case() -> tuple[np.ndarray, np.ndarray]:
    """16 items: feature 0 is 0..15 (quartile bins of 4), feature 1 constant; the top
    quartile (12..15) is all wrong, and item 0 too: 5 errors, overall rate 5/16."""
    x = np.stack([np.arange(16.0), np.full(16, 2.0)], axis=1)
    wrong = np.zeros(16, dtype=bool)
    wrong[[0, 12, 13, 14, 15]] = True
    return x, wrong


def test_quartile_edges_are_the_splits_own_and_ties_merge_bins() -> None:
    assert quantile_edges(np.arange(16.0)) == (3.75, 7.5, 11.25)
    assert quantile_edges(np.full(16, 2.0)) == (2.0,)


def test_a_bin_where_every_item_fails_is_a_slice_with_hand_computed_evidence() -> None:
    x, wrong = _hand_case()
    [found] = feature_slices(x, wrong, ("a", "b"), min_items=4)
    assert (found.feature, found.feature_index, found.bin, found.bins) == ("a", 0, 3, 4)
    assert found.edges == (3.75, 7.5, 11.25)
    assert (found.low, found.high) == (11.25, None)
    assert (found.items, found.errors, found.overall) == (4, 4, 5 / 16)
    # P(X >= 4 | n=4, p=5/16) = (5/16)^4 = 625/65536 = 0.00954 <= 0.05/5: Holm's first
    # step over 5 bins (a's four quartiles and b's one bin of 16 tied values).
    assert found.p_value == pytest.approx(625 / 65536, rel=1e-12)
    assert found.tested == 5
    # Excess errors over the overall rate, as a share of the split: (4 - 4·5/16)/16.
    assert found.severity == pytest.approx(0.171875)
    record = found.to_record()
    assert record["edges"] == ["3.75", "7.5", "11.25"]
    assert record["low"] == "11.25" and record["high"] is None
    assert record["dev_items"] == 4 and record["dev_errors"] == 4


def test_holm_refuses_the_same_bin_when_more_bins_are_tested() -> None:
    # Three more features of 0..15 make 17 bins: 0.00954 > 0.05/17, so nothing is clear.
    x, wrong = _hand_case()
    wider = np.concatenate([x, np.tile(np.arange(16.0)[::-1, None], (1, 3))], axis=1)
    assert feature_slices(wider, wrong, ("a", "b", "c", "d", "e"), min_items=4) == ()


def test_bins_below_the_minimum_size_are_not_tested() -> None:
    x, wrong = _hand_case()
    assert feature_slices(x, wrong, ("a", "b"), min_items=5) == ()


def test_a_small_split_honestly_finds_nothing_for_a_third_of_a_bin_wrong() -> None:
    # wine's dev size: 36 items, quartiles of 9; 3 wrong in one bin, 4 in all.
    # P(X >= 3 | 9, 1/9) = 0.08 > 0.05/4: not clear.
    x = np.arange(36.0)[:, None]
    wrong = np.zeros(36, dtype=bool)
    wrong[[0, 1, 2, 20]] = True
    assert feature_slices(x, wrong, ("a",)) == ()
    wrong[[3, 4, 5, 6]] = True  # 7 of the first 9 wrong, 8 in all: clear
    [found] = feature_slices(x, wrong, ("a",))
    assert (found.bin, found.errors, found.items, found.low) == (0, 7, 9, None)


def test_a_model_without_errors_has_no_slices() -> None:
    assert feature_slices(np.arange(16.0)[:, None], np.zeros(16, dtype=bool), ("a",)) == ()


def test_an_edge_value_belongs_to_the_bin_it_opens() -> None:
    values = np.array([-1.0, 3.75, 7.0, 11.25, 99.0])
    assert in_bin(values, 3.75, 11.25).tolist() == [False, True, True, False, False]
    assert in_bin(values, None, 3.75).tolist() == [True, False, False, False, False]
    assert in_bin(values, 11.25, None).tolist() == [False, False, False, True, True]


@pytest.mark.parametrize("n", [1, 4, 9, 36, 270])
@pytest.mark.parametrize("p", [0.01, 0.1, 5 / 16, 0.5, 0.93])
def test_the_binomial_tail_agrees_with_scipys_one_sided_test(n: int, p: float) -> None:
    for k in range(n + 1):
        oracle = binomtest(k, n, p, alternative="greater").pvalue
        assert binomial_upper_tail(k, n, p) == pytest.approx(oracle, rel=1e-7, abs=1e-12)


def test_the_binomial_tail_refuses_impossible_counts() -> None:
    with pytest.raises(InvalidRequest):
        binomial_upper_tail(5, 4, 0.5)
    with pytest.raises(InvalidRequest):
        binomial_upper_tail(1, 4, 1.5)


def test_long_texts_that_fail_make_a_length_slice() -> None:
    texts = [("word " * (i + 1)).strip() for i in range(16)]  # lengths 4, 9, ..., 79
    wrong = np.zeros(16, dtype=bool)
    wrong[[0, 12, 13, 14, 15]] = True
    [found] = length_slices(texts, wrong, min_items=4)
    assert (found.feature, found.bin, found.errors, found.items) == (LENGTH, 3, 4, 4)
    assert found.low is not None and len(texts[11]) < found.low <= len(texts[12])
    assert found.high is None


def test_shapes_that_disagree_are_refused() -> None:
    with pytest.raises(InvalidRequest, match="feature names"):
        feature_slices(np.zeros((4, 2)), np.zeros(4, dtype=bool), ("a",))

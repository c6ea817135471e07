"""Sticky canary cohorts, monotone ramps and the sample-ratio check (DESIGN §11)."""

from __future__ import annotations

import hashlib
import math
from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from breedlab.errors import InvalidRequest
from breedlab.release.cohorts import (
    DEFAULT_RAMP,
    Cohort,
    Ramp,
    SrmVerdict,
    bucket,
    in_canary,
    new_salt,
    sample_ratio_check,
)

salts = st.binary(min_size=16, max_size=32).map(new_salt)
units = st.text(max_size=40)
weights = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


def test_the_bucket_is_the_first_eight_bytes_of_sha256_over_salt_and_unit() -> None:
    digest = hashlib.sha256(b"abc123:user-42").digest()
    expected = int.from_bytes(digest[:8], "big") / 2**64
    assert bucket("abc123", "user-42") == expected
    assert in_canary("abc123", "user-42", math.nextafter(expected, 1.0))
    assert not in_canary("abc123", "user-42", expected)


@settings(deadline=None)
@given(salt=salts, unit=units, w1=weights, w2=weights)
def test_a_unit_in_the_canary_stays_in_it_as_the_weight_grows(
    salt: str, unit: str, w1: float, w2: float
) -> None:
    low, high = sorted((w1, w2))
    if in_canary(salt, unit, low):
        assert in_canary(salt, unit, high)
    assert 0.0 <= bucket(salt, unit) <= 1.0


@settings(deadline=None)
@given(salt=salts, unit=units, cut=st.integers(min_value=1, max_value=3))
def test_a_unit_in_the_canary_stays_in_it_as_the_ramp_grows(salt: str, unit: str, cut: int) -> None:
    cohort = Cohort(salt=salt, ramp=Ramp(stages=DEFAULT_RAMP))
    membership = [cohort.contains(unit)]
    while cohort.ramp.next_stage(cohort.stage) is not None:
        cohort = cohort.advanced()
        membership.append(cohort.contains(unit))
    assert cohort.salt == salt
    # Once in, always in: membership is a run of False followed by a run of True.
    assert membership == sorted(membership)
    assert membership[cut] >= membership[cut - 1]


def test_weight_zero_admits_nobody_and_weight_one_admits_everybody() -> None:
    salt = new_salt(bytes(range(16)))
    for i in range(500):
        assert not in_canary(salt, f"u{i}", 0.0)
        assert in_canary(salt, f"u{i}", 1.0)


def test_buckets_are_uniform_over_twenty_thousand_units() -> None:
    rng = np.random.default_rng(20260101)
    salt = new_salt(rng.bytes(16))
    values = np.array([bucket(salt, f"unit-{i}") for i in range(20_000)])
    counts, _ = np.histogram(values, bins=20, range=(0.0, 1.0))
    result = stats.chisquare(counts)
    assert result.pvalue > 0.001, counts
    # And the canary share at 5% is near 5%.
    share = float(np.mean(values < 0.05))
    assert abs(share - 0.05) < 0.006


def test_a_fresh_salt_reshuffles_the_cohort() -> None:
    a = new_salt(b"\x01" * 16)
    b = new_salt(b"\x02" * 16)
    ins_a = {i for i in range(4000) if in_canary(a, f"u{i}", 0.25)}
    ins_b = {i for i in range(4000) if in_canary(b, f"u{i}", 0.25)}
    overlap = len(ins_a & ins_b) / len(ins_a)
    assert 0.15 < overlap < 0.35  # independent: about a quarter overlap, not all


def test_a_salt_needs_sixteen_random_bytes_and_no_separator() -> None:
    assert new_salt(b"\xab" * 16) == "ab" * 16
    with pytest.raises(InvalidRequest):
        new_salt(b"\x00" * 15)
    with pytest.raises(InvalidRequest):
        bucket("a:b", "u")
    with pytest.raises(InvalidRequest):
        bucket("", "u")


@pytest.mark.parametrize("weight", [-0.01, 1.01, float("nan")])
def test_a_weight_outside_zero_one_is_refused(weight: float) -> None:
    with pytest.raises(InvalidRequest):
        in_canary("salt", "u", weight)


@pytest.mark.parametrize(
    "stages",
    [(), (0.05, 0.01), (0.01, 0.01), (0.0, 0.5), (0.5, 1.5), (0.01, 0.25, 0.05)],
)
def test_a_ramp_refuses_stages_that_are_not_strictly_increasing_fractions(
    stages: tuple[float, ...],
) -> None:
    with pytest.raises(InvalidRequest):
        Ramp(stages=stages)


@given(st.lists(st.floats(min_value=0.001, max_value=1.0), min_size=1, max_size=6))
def test_a_ramp_accepts_exactly_the_strictly_increasing_lists(stages: list[float]) -> None:
    increasing = all(b > a for a, b in pairwise(stages))
    if increasing:
        assert Ramp(stages=tuple(stages)).stages == tuple(stages)
    else:
        with pytest.raises(InvalidRequest):
            Ramp(stages=tuple(stages))


def test_the_default_ramp_is_one_five_twenty_five_fifty_percent_and_ends() -> None:
    ramp = Ramp()
    assert ramp.stages == (0.01, 0.05, 0.25, 0.50)
    cohort = Cohort(salt="s0", stage=3)
    assert cohort.weight == 0.50
    with pytest.raises(InvalidRequest):
        cohort.advanced()
    with pytest.raises(InvalidRequest):
        Cohort(salt="s0", stage=4)


def test_a_fair_split_passes_the_sample_ratio_check() -> None:
    salt = new_salt(bytes(16))
    canary = sum(in_canary(salt, f"u{i}", 0.05) for i in range(20_000))
    result = sample_ratio_check([canary, 20_000 - canary], [0.05, 0.95])
    assert result.verdict is SrmVerdict.OK
    assert result.method == "binomial"
    assert result.p_value == pytest.approx(stats.binomtest(canary, 20_000, 0.05).pvalue)


def test_a_broken_split_fails_the_sample_ratio_check() -> None:
    result = sample_ratio_check([1_150, 18_850], [0.05, 0.95])
    assert result.verdict is SrmVerdict.MISMATCH
    assert result.p_value < 0.001


def test_three_cohorts_use_the_chi_square_goodness_of_fit() -> None:
    result = sample_ratio_check([480, 1_020, 8_500], [0.05, 0.10, 0.85])
    expected = stats.chisquare([480, 1_020, 8_500], [500.0, 1_000.0, 8_500.0]).pvalue
    assert result.method == "chi-square"
    assert result.p_value == pytest.approx(expected)
    assert result.verdict is SrmVerdict.OK


def test_an_empty_split_is_insufficient_not_ok() -> None:
    assert sample_ratio_check([0, 0], [0.5, 0.5]).verdict is SrmVerdict.INSUFFICIENT


@pytest.mark.parametrize(
    ("counts", "shares"),
    [([1, 2], [0.5, 0.6]), ([1, 2, 3], [0.5, 0.5]), ([1], [1.0]), ([-1, 2], [0.5, 0.5])],
)
def test_bad_sample_ratio_inputs_are_refused(counts: list[int], shares: list[float]) -> None:
    with pytest.raises(InvalidRequest):
        sample_ratio_check(counts, shares)

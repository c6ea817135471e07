"""Shadow statistics from paired records (DESIGN §11; notes §5.1)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from breedlab import canonical
from breedlab.errors import InvalidRequest
from breedlab.release.shadow_stats import (
    Flip,
    FlipMatrix,
    Proportion,
    ShadowPair,
    summarise_shadow,
    wilson_interval,
)


def answered(
    primary: str, shadow: str, t_primary: float = 0.01, t_shadow: float = 0.01
) -> ShadowPair:
    return ShadowPair(
        primary=primary, shadow=shadow, primary_latency_s=t_primary, shadow_latency_s=t_shadow
    )


@pytest.mark.parametrize(
    ("k", "n", "confidence"),
    [(0, 10, 0.95), (10, 10, 0.95), (7, 40, 0.95), (1, 1, 0.9), (512, 1000, 0.99), (3, 7, 0.5)],
)
def test_wilson_interval_matches_scipy_golden_values(k: int, n: int, confidence: float) -> None:
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    low, high = wilson_interval(k, n, confidence)
    assert low == pytest.approx(ci.low, abs=1e-12)
    assert high == pytest.approx(ci.high, abs=1e-12)


def test_wilson_interval_golden_numbers_for_nine_of_ten() -> None:
    # scipy.stats.binomtest(9, 10).proportion_ci(method="wilson") at 95%.
    low, high = wilson_interval(9, 10)
    assert low == pytest.approx(0.5958499732, abs=1e-9)
    assert high == pytest.approx(0.9821237869, abs=1e-9)


@settings(deadline=None, max_examples=60)
@given(data=st.data(), n=st.integers(min_value=1, max_value=5_000))
def test_wilson_interval_agrees_with_scipy_everywhere(data: st.DataObject, n: int) -> None:
    k = data.draw(st.integers(min_value=0, max_value=n))
    ci = stats.binomtest(k, n).proportion_ci(method="wilson")
    low, high = wilson_interval(k, n)
    assert low == pytest.approx(ci.low, abs=1e-12)
    assert high == pytest.approx(ci.high, abs=1e-12)
    assert 0.0 <= low <= k / n <= high <= 1.0


def test_wilson_refuses_empty_or_impossible_counts() -> None:
    for k, n in ((0, 0), (5, 4), (-1, 3)):
        with pytest.raises(InvalidRequest):
            wilson_interval(k, n)


def test_the_flip_matrix_counts_label_to_label() -> None:
    pairs = [answered("3", "3")] * 5 + [answered("3", "8")] * 2 + [answered("8", "3")]
    pairs += [answered("7", "7")] * 4
    report = summarise_shadow(pairs, seed=1, resamples=200)
    flips = report.flips
    assert flips.labels == ("3", "7", "8")
    assert flips.count("3", "3") == 5
    assert flips.count("3", "8") == 2
    assert flips.count("8", "3") == 1
    assert flips.count("8", "8") == 0
    assert flips.total == 12
    assert flips.flips() == (
        Flip(primary="3", shadow="8", count=2),
        Flip(primary="8", shadow="3", count=1),
    )
    assert report.agreement is not None
    assert (report.agreement.successes, report.agreement.trials) == (9, 12)


def test_errors_and_dropped_mirrors_are_counted_and_not_compared() -> None:
    pairs = [
        answered("a", "a"),
        answered("a", "b"),
        ShadowPair(primary="a", shadow=None, primary_latency_s=0.01, shadow_latency_s=0.5,
                   shadow_error=True),
        ShadowPair(primary=None, shadow="a", primary_latency_s=0.02, shadow_latency_s=0.01,
                   primary_error=True),
        ShadowPair(primary="b", shadow=None, primary_latency_s=0.01, shadow_latency_s=None,
                   dropped=True),
    ]  # fmt: skip
    report = summarise_shadow(pairs, seed=7, resamples=100)
    assert (report.mirrored, report.dropped, report.answered) == (5, 1, 2)
    assert report.agreement == Proportion.of(1, 2)
    assert report.primary_errors == Proportion.of(1, 5)
    assert report.shadow_errors == Proportion.of(1, 4)  # the dropped mirror never ran
    assert report.flips.total == 2


def test_latency_ratios_are_quantile_ratios_with_a_seeded_paired_bootstrap() -> None:
    rng = np.random.default_rng(11)
    primary = rng.lognormal(np.log(0.020), 0.3, 400)
    shadow = primary * rng.lognormal(np.log(1.25), 0.1, 400)  # about 25% slower, paired
    pairs = [answered("x", "x", float(p), float(s)) for p, s in zip(primary, shadow, strict=True)]
    report = summarise_shadow(pairs, seed=42, resamples=2_000)
    p50, p95 = report.latency_p50, report.latency_p95
    assert p50 is not None and p95 is not None
    assert p50.ratio == pytest.approx(np.quantile(shadow, 0.5) / np.quantile(primary, 0.5))
    assert p95.ratio == pytest.approx(np.quantile(shadow, 0.95) / np.quantile(primary, 0.95))
    assert p50.low < p50.ratio < p50.high
    assert p50.low > 1.1 and p50.high < 1.4
    # Same seed, same report to the bit; another seed moves only the bootstrap bounds.
    assert summarise_shadow(pairs, seed=42, resamples=2_000) == report
    other = summarise_shadow(pairs, seed=43, resamples=2_000)
    assert other.latency_p50 is not None
    assert other.latency_p50.ratio == p50.ratio and other.latency_p50.low != p50.low


def test_a_constant_slowdown_has_a_degenerate_interval_at_the_slowdown() -> None:
    pairs = [answered("x", "x", 0.01 * (i + 1), 0.02 * (i + 1)) for i in range(50)]
    report = summarise_shadow(pairs, seed=0, resamples=300)
    assert report.latency_p95 is not None
    assert report.latency_p95.ratio == pytest.approx(2.0)
    assert report.latency_p95.low == pytest.approx(2.0)
    assert report.latency_p95.high == pytest.approx(2.0)


def test_a_shadow_with_no_answered_pairs_reports_no_data() -> None:
    report = summarise_shadow([], seed=0)
    assert report.mirrored == 0
    assert report.agreement is None and report.latency_p50 is None
    assert report.primary_errors is None and report.shadow_errors is None
    assert report.flips == FlipMatrix(cells=())


def test_the_report_record_is_canonical_json_without_floats() -> None:
    pairs = [answered("a", "a", 0.01, 0.012), answered("a", "b", 0.02, 0.019)]
    record = summarise_shadow(pairs, seed=3, resamples=100).to_record()
    decoded = canonical.decode(canonical.encode(record))
    assert decoded["flips"] == [["a", "a", 1], ["a", "b", 1]]
    assert float(decoded["agreement"]["estimate"]) == 0.5
    assert decoded["seed"] == 3


@pytest.mark.parametrize(
    "kwargs",
    [
        {"primary": None, "shadow": "a", "primary_latency_s": 0.1, "shadow_latency_s": 0.1},
        {"primary": "a", "shadow": "a", "primary_latency_s": 0.0, "shadow_latency_s": 0.1},
        {"primary": "a", "shadow": "a", "primary_latency_s": 0.1, "shadow_latency_s": None},
        {
            "primary": "a",
            "shadow": "a",
            "primary_latency_s": 0.1,
            "shadow_latency_s": None,
            "dropped": True,
        },
    ],
)
def test_inconsistent_shadow_records_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidRequest):
        ShadowPair(**kwargs)  # type: ignore[arg-type]


def test_bad_summary_parameters_are_refused() -> None:
    with pytest.raises(InvalidRequest):
        summarise_shadow([], seed=0, confidence=1.0)
    with pytest.raises(InvalidRequest):
        summarise_shadow([], seed=0, resamples=0)

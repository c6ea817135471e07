"""breedlab.viability.stats: golden numbers against scipy, and the promises of each bound."""

from __future__ import annotations

import itertools
import math
import statistics

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize
from scipy import stats as scipy_stats

from breedlab.errors import InvalidRequest
from breedlab.viability import stats

FAST = settings(max_examples=60, deadline=None)


@pytest.mark.parametrize(("b", "c"), [(5, 12), (12, 5), (0, 3), (7, 7), (1, 0), (40, 61)])
def test_exact_mcnemar_equals_scipys_binomial_test_on_the_discordant_pairs(b: int, c: int) -> None:
    result = stats.mcnemar_exact(b, c)
    m = b + c
    assert result.p_greater == scipy_stats.binomtest(c, m, 0.5, alternative="greater").pvalue
    assert result.p_less == scipy_stats.binomtest(c, m, 0.5, alternative="less").pvalue
    assert result.p_two_sided == scipy_stats.binomtest(c, m, 0.5).pvalue


def test_the_notes_mcnemar_example_gives_p_0_14() -> None:
    # notes §4.1: n=400, accuracy 0.720 -> 0.738, b=5, c=12: McNemar p = 0.14.
    assert round(stats.mcnemar_exact(5, 12).p_two_sided, 2) == 0.14


def test_mcnemar_without_discordant_pairs_finds_nothing() -> None:
    result = stats.mcnemar_exact(0, 0)
    assert (result.p_greater, result.p_less, result.p_two_sided) == (1.0, 1.0, 1.0)


@pytest.mark.parametrize(("k", "n"), [(0, 10), (3, 10), (10, 10), (17, 400), (250, 400)])
@pytest.mark.parametrize("alpha", [0.025, 0.05, 0.1])
def test_clopper_pearson_and_wilson_equal_scipys_proportion_intervals(
    k: int, n: int, alpha: float
) -> None:
    ci = scipy_stats.binomtest(k, n).proportion_ci
    exact = ci(confidence_level=1 - 2 * alpha, method="exact")
    score = ci(confidence_level=1 - 2 * alpha, method="wilson")
    cp = stats.clopper_pearson(k, n, alpha=alpha)
    wi = stats.wilson(k, n, alpha=alpha)
    assert cp.lower == pytest.approx(exact.low, abs=1e-12)
    assert cp.upper == pytest.approx(exact.high, abs=1e-12)
    assert wi.lower == pytest.approx(score.low, abs=1e-12)
    assert wi.upper == pytest.approx(score.high, abs=1e-12)


def _reference_score_lower(b: int, c: int, n: int, alpha: float) -> float:
    """Tango's lower bound derived independently: the constrained MLE by numerical
    maximisation of the multinomial likelihood, the root by brentq."""
    z = scipy_stats.norm.ppf(1 - alpha)
    r = n - b - c

    def statistic(d0: float) -> float:
        low, high = max(0.0, -d0), (1 - d0) / 2

        def negative_log_likelihood(q: float) -> float:
            total = 0.0
            for count, prob in ((b, q), (c, q + d0), (r, 1 - 2 * q - d0)):
                if count:
                    total -= count * math.log(max(prob, 1e-300))
            return total

        q = optimize.minimize_scalar(
            negative_log_likelihood, bounds=(low, high), method="bounded", options={"xatol": 1e-13}
        ).x
        return (c - b - n * d0) / math.sqrt(n * (2 * q + d0 - d0 * d0))

    return optimize.brentq(lambda d0: statistic(d0) - z, -0.999, (c - b) / n, xtol=1e-12)


@pytest.mark.parametrize(("b", "c", "n"), [(5, 12, 400), (12, 5, 400), (20, 50, 1000), (3, 1, 30)])
def test_the_score_bound_matches_an_independent_derivation(b: int, c: int, n: int) -> None:
    bounds = stats.score_bounds(b, c, n, alpha=0.05)
    assert bounds.lower == pytest.approx(_reference_score_lower(b, c, n, 0.05), abs=1e-6)
    assert bounds.upper == pytest.approx(-_reference_score_lower(c, b, n, 0.05), abs=1e-6)


@FAST
@given(
    n=st.integers(1, 300),
    b_share=st.floats(0, 1),
    c_share=st.floats(0, 1),
    delta0=st.floats(-0.99, 0.99),
)
def test_the_score_bound_and_the_score_test_agree(
    n: int, b_share: float, c_share: float, delta0: float
) -> None:
    b = int(b_share * n)
    c = int(c_share * (n - b))
    bounds = stats.score_bounds(b, c, n, alpha=0.05)
    assert -1.0 <= bounds.lower <= (c - b) / n <= bounds.upper <= 1.0
    p = stats.score_p_value(b, c, n, delta0=delta0)
    if abs(delta0 - bounds.lower) > 1e-9:
        assert (bounds.lower > delta0) == (p < 0.05)


def test_with_no_discordant_pairs_the_score_bounds_are_not_a_point() -> None:
    # An identical candidate on 1000 items is bounded near ±z²/n, not at exactly 0.
    bounds = stats.score_bounds(0, 0, 1000, alpha=0.05)
    assert -0.004 < bounds.lower < 0 < bounds.upper < 0.004
    assert stats.score_bounds(0, 0, 10, alpha=0.05).lower < -0.1


def test_the_score_lower_bound_covers_when_the_candidate_only_loses_items() -> None:
    # The regime where scaling Clopper-Pearson on c/(b+c) by the observed discordance
    # covered only about half the time (stats module docstring).
    rng = np.random.default_rng(11)
    n, p_b, p_c = 200, 0.03, 0.0
    cells = rng.multinomial(n, [p_b, p_c, 1 - p_b - p_c], size=500)
    covered = [
        stats.score_bounds(int(b), int(c), n, alpha=0.05).lower <= p_c - p_b for b, c, _ in cells
    ]
    assert np.mean(covered) >= 0.92


def test_the_bootstrap_with_the_same_seed_is_byte_identical() -> None:
    d = np.random.default_rng(3).normal(0.1, 1.0, size=257)
    first = stats.bootstrap_means(d, samples=3000, seed=42)
    again = stats.bootstrap_means(d.copy(), samples=3000, seed=42)
    other = stats.bootstrap_means(d, samples=3000, seed=43)
    assert first.tobytes() == again.tobytes()
    assert first.tobytes() != other.tobytes()


def test_the_bootstrap_agrees_with_scipys_paired_percentile_bootstrap() -> None:
    rng = np.random.default_rng(5)
    champion = rng.normal(1.0, 1.0, size=300)
    candidate = champion + rng.normal(0.05, 0.5, size=300)
    ours = stats.bootstrap_bounds(
        stats.bootstrap_means(candidate - champion, samples=5000, seed=1), alpha=0.05
    )
    theirs = scipy_stats.bootstrap(
        (candidate, champion),
        lambda x, y: np.mean(x - y),
        paired=True,
        vectorized=False,
        confidence_level=0.9,
        n_resamples=5000,
        method="percentile",
        rng=np.random.default_rng(1),
    ).confidence_interval
    half = (theirs.high - theirs.low) / 2
    assert abs(ours.lower - theirs.low) < 0.1 * half
    assert abs(ours.upper - theirs.high) < 0.1 * half


def test_the_bootstrap_interval_width_matches_the_standard_error() -> None:
    d = np.random.default_rng(8).normal(0.0, 2.0, size=400)
    bounds = stats.bootstrap_bounds(stats.bootstrap_means(d, samples=10_000, seed=2), alpha=0.05)
    se = d.std(ddof=1) / math.sqrt(d.size)
    assert (bounds.upper - bounds.lower) / (2 * 1.6449 * se) == pytest.approx(1.0, abs=0.05)


@FAST
@given(
    values=st.lists(st.integers(-5, 5), min_size=1, max_size=60),
    theta=st.integers(-6, 6),
    alpha=st.sampled_from([0.01, 0.05, 0.1, 0.25]),
)
def test_a_bootstrap_bound_and_its_p_value_never_disagree(
    values: list[int], theta: int, alpha: float
) -> None:
    replicates = np.asarray(values, dtype=np.float64) / 4
    bounds = stats.bootstrap_bounds(replicates, alpha=alpha)
    t = theta / 4
    assert (bounds.lower > t) == (stats.bootstrap_p_value(replicates, delta0=t) <= alpha)
    assert (bounds.upper < t) == (stats.bootstrap_p_value(-replicates, delta0=-t) <= alpha)


def _holm_by_closed_testing(p: list[float], alpha: float) -> tuple[bool, ...]:
    """Reject H_i iff every intersection containing i is rejected by Bonferroni."""
    k = len(p)
    return tuple(
        all(
            min(p[j] for j in subset) <= alpha / len(subset)
            for size in range(1, k + 1)
            for subset in itertools.combinations(range(k), size)
            if i in subset
        )
        for i in range(k)
    )


@FAST
@given(
    p=st.lists(
        st.one_of(st.floats(0, 1), st.sampled_from([0.01, 0.0125, 0.025, 0.05])),
        min_size=1,
        max_size=6,
    ),
    alpha=st.sampled_from([0.01, 0.05, 0.1]),
)
def test_holm_equals_the_brute_force_closed_testing_procedure(p: list[float], alpha: float) -> None:
    assert stats.holm(p, alpha=alpha) == _holm_by_closed_testing(p, alpha)


def test_holm_adjusted_p_values_follow_the_step_down_formula() -> None:
    adjusted = stats.holm_adjusted([0.01, 0.04, 0.03, 0.5])
    assert adjusted == pytest.approx((0.04, 0.09, 0.09, 0.5))


def test_the_mde_reproduces_the_notes_sample_size_example() -> None:
    # notes §4.1: 10% discordance, ε = 2 pp, α = .05 one-sided, power .8 -> n ≈ 1,540.
    se = math.sqrt(0.10 / 1540)
    assert stats.minimum_detectable_effect(se, alpha=0.05, power=0.8) == pytest.approx(
        0.02, abs=2e-4
    )


def test_the_noise_floor_is_the_sample_sd_of_the_aa_deltas() -> None:
    deltas = [0.001, -0.002, 0.0005, 0.003]
    assert stats.noise_floor(deltas) == pytest.approx(statistics.stdev(deltas), rel=1e-12)
    with pytest.raises(InvalidRequest):
        stats.noise_floor([0.001, 0.002])


@pytest.mark.parametrize(
    "call",
    [
        lambda: stats.clopper_pearson(3, 2, alpha=0.05),
        lambda: stats.wilson(1, 0, alpha=0.05),
        lambda: stats.score_bounds(5, 6, 10, alpha=0.05),
        lambda: stats.score_bounds(1, 1, 10, alpha=0.5),
        lambda: stats.holm_adjusted([0.1, 1.5]),
        lambda: stats.bootstrap_means(np.array([]), samples=10, seed=0),
        lambda: stats.mcnemar_exact(-1, 2),
    ],
)
def test_impossible_inputs_are_refused_as_invalid_requests(call: object) -> None:
    with pytest.raises(InvalidRequest):
        call()  # type: ignore[operator]

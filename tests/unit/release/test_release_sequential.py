"""Anytime-valid canary guardrails: Wald SPRT and mSPRT (DESIGN §11; notes §5.3).

The Monte-Carlo checks run a vectorised oracle written from the notes' formulas, and a
subset of the same paths is replayed through the guardrail values to show that both
reach the same verdicts at the same request.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import numpy.typing as npt
import pytest

from breedlab import canonical
from breedlab.errors import InvalidRequest
from breedlab.release.sequential import (
    Guardrail,
    GuardrailStatus,
    MsprtConfig,
    MsprtGuardrail,
    NoDataRule,
    Pair,
    SprtConfig,
    SprtGuardrail,
    Trigger,
    Verdict,
    WorseWhen,
    combined_verdict,
)

T = TypeVar("T")

RUNS = 2_000
LOOKS = 2_000
CHUNK = 500  # runs per vectorised chunk, to keep memory near 100 MB

Bools = npt.NDArray[np.bool_]
Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


# ------------------------------------------------------------------ SPRT oracle


@dataclass(frozen=True)
class Decisions:
    aborted: Bools  # per run
    passed: Bools
    at: Ints  # request count at the decision, or LOOKS + 1 when undecided


def sprt_oracle(errors: Bools, config: SprtConfig) -> Decisions:
    """First decision per run of Wald's SPRT, from the notes' increments and boundaries."""
    k = np.arange(1, errors.shape[1] + 1)
    e = np.cumsum(errors, axis=1)
    llr = e * config.error_step + (k - e) * config.clean_step
    eligible = k >= config.n_min
    abort = eligible & (llr >= config.abort_at)
    if config.max_rate is not None:
        abort |= eligible & (e > config.max_rate * k)
    decided = abort | (eligible & (llr <= config.pass_at))
    any_decided = decided.any(axis=1)
    first = np.argmax(decided, axis=1)
    rows = np.arange(errors.shape[0])
    aborted = any_decided & abort[rows, first]
    return Decisions(
        aborted=aborted,
        passed=any_decided & ~aborted,
        at=np.where(any_decided, first + 1, errors.shape[1] + 1),
    )


def simulate_sprt(rate: float, config: SprtConfig, seed: int, runs: int = RUNS) -> Decisions:
    rng = np.random.default_rng(seed)
    parts = [
        sprt_oracle(rng.random((min(CHUNK, runs - s), LOOKS)) < rate, config)
        for s in range(0, runs, CHUNK)
    ]
    return Decisions(
        aborted=np.concatenate([p.aborted for p in parts]),
        passed=np.concatenate([p.passed for p in parts]),
        at=np.concatenate([p.at for p in parts]),
    )


def replay_sprt(errors: Bools, config: SprtConfig) -> SprtGuardrail:
    guard = SprtGuardrail.start(config, at=0.0)
    for i, error in enumerate(errors):
        guard = guard.observe(bool(error), at=float(i))
        if guard.verdict is not Verdict.CONTINUE:
            break
    return guard


def test_sprt_false_abort_rate_at_the_acceptable_error_rate_stays_under_alpha() -> None:
    config = SprtConfig(p_ok=0.01, p_bad=0.03, alpha=0.05, beta=0.20, n_min=20)
    result = simulate_sprt(config.p_ok, config, seed=101)
    false_aborts = float(result.aborted.mean())
    print(f"SPRT H0 (p=1%): false-abort rate {false_aborts:.4f}")
    assert false_aborts < config.alpha
    assert result.passed.mean() > 0.9  # and a healthy canary usually passes the stage


def test_sprt_aborts_a_five_percent_error_rate_within_a_median_of_100_requests() -> None:
    config = SprtConfig(p_ok=0.01, p_bad=0.03, alpha=0.05, beta=0.20, n_min=20)
    result = simulate_sprt(0.05, config, seed=202)
    abort_rate = float(result.aborted.mean())
    # Runs that never aborted count as never: the median is over all runs.
    at = np.where(result.aborted, result.at, LOOKS + 1)
    median = float(np.median(at))
    print(
        f"SPRT p=5%: abort rate {abort_rate:.4f}, median requests to abort {median:.0f}, "
        f"p90 {np.quantile(at, 0.9):.0f}"
    )
    assert abort_rate > 0.9
    assert median <= 100


def test_sprt_guardrail_reaches_the_oracles_verdicts_at_the_same_request() -> None:
    config = SprtConfig(p_ok=0.01, p_bad=0.03, n_min=20, max_rate=0.5)
    rng = np.random.default_rng(303)
    for rate in (0.01, 0.05, 0.3):
        errors = rng.random((25, LOOKS)) < rate
        oracle = sprt_oracle(errors, config)
        for run in range(errors.shape[0]):
            guard = replay_sprt(errors[run], config)
            expected = (
                Verdict.ABORT
                if oracle.aborted[run]
                else Verdict.PASS
                if oracle.passed[run]
                else Verdict.CONTINUE
            )
            assert guard.verdict is expected
            if expected is not Verdict.CONTINUE:
                assert guard.n == oracle.at[run]


def test_sprt_increments_and_boundaries_follow_wald() -> None:
    c = SprtConfig(p_ok=0.01, p_bad=0.03, alpha=0.05, beta=0.2)
    assert c.error_step == pytest.approx(math.log(3.0))
    assert c.clean_step == pytest.approx(math.log(0.97 / 0.99))
    assert c.abort_at == pytest.approx(math.log(16.0))
    assert c.pass_at == pytest.approx(math.log(0.2 / 0.95))
    guard = SprtGuardrail.start(c, at=0.0).observe_batch(errors=2, requests=10, at=1.0)
    assert guard.log_lr == pytest.approx(2 * math.log(3.0) + 8 * math.log(0.97 / 0.99))


def test_no_sprt_verdict_comes_before_the_minimum_sample() -> None:
    guard = SprtGuardrail.start(SprtConfig(n_min=20), at=0.0)
    for i in range(19):
        guard = guard.observe(True, at=float(i))
    assert guard.status().verdict is Verdict.CONTINUE
    assert "no verdict before 20 requests" in guard.status().explanation
    guard = guard.observe(True, at=20.0)
    assert guard.status().verdict is Verdict.ABORT
    assert guard.decided_at == 20.0 and guard.n == 20


def test_a_hard_error_rate_ceiling_aborts_without_waiting_for_the_test() -> None:
    # alpha tiny makes the SPRT boundary far away; the ceiling still aborts.
    config = SprtConfig(alpha=1e-9, beta=0.2, n_min=20, max_rate=0.25)
    guard = SprtGuardrail.start(config, at=0.0).observe_batch(errors=6, requests=20, at=1.0)
    status = guard.status()
    assert status.verdict is Verdict.ABORT
    assert status.trigger is Trigger.CEILING
    assert "hard ceiling 0.25" in status.explanation


def test_silence_longer_than_the_no_data_rule_aborts_the_canary() -> None:
    config = SprtConfig(no_data=NoDataRule(max_silence_s=60.0))
    guard = SprtGuardrail.start(config, at=100.0).observe(False, at=130.0)
    assert guard.tick(at=189.0).verdict is Verdict.CONTINUE
    silent = guard.tick(at=190.0)
    assert silent.verdict is Verdict.ABORT and silent.trigger is Trigger.NO_DATA
    assert "no request observed for 60 s" in silent.status().explanation
    # A late request does not rescue a canary that went silent.
    late = guard.observe(False, at=500.0)
    assert late.verdict is Verdict.ABORT and late.n == 1


def test_an_aborted_guardrail_stays_aborted() -> None:
    guard = SprtGuardrail.start(SprtConfig(n_min=1), at=0.0)
    guard = guard.observe_batch(errors=5, requests=5, at=1.0)
    assert guard.verdict is Verdict.ABORT
    after = guard.observe_batch(errors=0, requests=10_000, at=2.0)
    assert after.verdict is Verdict.ABORT and after.n == 5 and after.decided_at == 1.0


def test_time_going_backwards_is_refused() -> None:
    guard = SprtGuardrail.start(SprtConfig(), at=10.0)
    with pytest.raises(InvalidRequest):
        guard.observe(False, at=9.0)
    with pytest.raises(InvalidRequest):
        guard.observe_batch(errors=3, requests=2, at=11.0)


def test_the_status_says_what_would_trigger_an_abort() -> None:
    config = SprtConfig(max_rate=0.5, no_data=NoDataRule(max_silence_s=300))
    guard = SprtGuardrail.start(config, at=0.0).observe_batch(errors=1, requests=30, at=5.0)
    status = guard.status()
    assert status.verdict is Verdict.CONTINUE and status.n == 30
    assert status.threshold == pytest.approx(math.log(16.0))
    assert "abort when log-LR >= 2.773" in status.explanation
    assert "3 more error(s) in a row would do it" in status.explanation
    assert "300 s without a request" in status.explanation
    assert canonical.decode(canonical.encode(status.to_record()))["verdict"] == "continue"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"p_ok": 0.03, "p_bad": 0.01},
        {"p_ok": 0.0},
        {"alpha": 0.9, "beta": 0.2},
        {"n_min": 0},
        {"max_rate": 0.02},
    ],
)
def test_bad_sprt_parameters_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(InvalidRequest):
        SprtConfig(**kwargs)  # type: ignore[arg-type]


# ----------------------------------------------------------------- mSPRT oracle


@dataclass(frozen=True)
class MsprtPaths:
    aborted: Bools
    at: Ints
    covered: Bools  # the true difference stayed inside the sequence at every look
    two_sided: Bools  # the always-valid p-value fell to alpha at some look
    naive: Bools  # a fixed-n z-test peeked at every look rejected at some look
    low: Floats  # final running-intersection bounds
    high: Floats


def msprt_oracle(d: Floats, config: MsprtConfig, truth: float = 0.0) -> MsprtPaths:
    """The notes' Lambda_n, p_n and confidence sequence, vectorised over runs."""
    k = np.arange(1, d.shape[1] + 1, dtype=np.float64)
    mean = np.cumsum(d, axis=1) / k
    s = np.full_like(mean, config.sigma2)
    if config.estimate_variance:
        sq = np.cumsum(d * d, axis=1)
        var = np.zeros_like(mean)
        var[:, 1:] = (sq[:, 1:] - k[1:] * mean[:, 1:] ** 2) / (k[1:] - 1)
        s = np.maximum(s, var)
    t = config.tau2
    v = s + k * t
    log_lr = 0.5 * np.log(s / v) + k * k * t * mean**2 / (2 * s * v)
    r = np.sqrt(s * v / (k * k * t) * (2 * math.log(1 / config.alpha) + np.log(v / s)))
    eligible = k >= config.n_min
    low = np.maximum.accumulate(np.where(eligible, mean - r, -np.inf), axis=1)
    high = np.minimum.accumulate(np.where(eligible, mean + r, np.inf), axis=1)
    harm_low = low if config.worse_when is WorseWhen.HIGHER else -high
    abort = harm_low > config.abort_margin
    any_abort = np.asarray(abort.any(axis=1))
    z = mean * np.sqrt(k) / np.sqrt(config.sigma2)
    return MsprtPaths(
        aborted=any_abort,
        at=np.where(any_abort, np.argmax(abort, axis=1) + 1, d.shape[1] + 1),
        covered=(low[:, -1] <= truth) & (truth <= high[:, -1]),
        two_sided=np.asarray((eligible & (log_lr >= math.log(1 / config.alpha))).any(axis=1)),
        naive=(eligible & (np.abs(z) > 1.959964)).any(axis=1),
        low=low[:, -1],
        high=high[:, -1],
    )


def bernoulli_differences(
    rng: np.random.Generator, runs: int, canary: float, champion: float
) -> Floats:
    c = (rng.random((runs, LOOKS)) < canary).astype(np.float64)
    b = (rng.random((runs, LOOKS)) < champion).astype(np.float64)
    return c - b


ERROR_PAIR = MsprtConfig(sigma2=2 * 0.05 * 0.95, tau2=0.02**2, alpha=0.05, n_min=100)


def test_msprt_false_abort_rate_under_continuous_peeking_stays_under_alpha() -> None:
    rng = np.random.default_rng(404)
    parts = [
        msprt_oracle(bernoulli_differences(rng, CHUNK, 0.05, 0.05), ERROR_PAIR)
        for _ in range(RUNS // CHUNK)
    ]
    aborted = float(np.mean(np.concatenate([p.aborted for p in parts])))
    two_sided = float(np.mean(np.concatenate([p.two_sided for p in parts])))
    covered = float(np.mean(np.concatenate([p.covered for p in parts])))
    naive = float(np.mean(np.concatenate([p.naive for p in parts])))
    print(
        f"mSPRT null (5% vs 5%, {RUNS}x{LOOKS} looks): false aborts {aborted:.4f}, "
        f"two-sided p<=alpha {two_sided:.4f}, CS coverage {covered:.4f}, "
        f"naive z-test peeking {naive:.4f}"
    )
    assert aborted < ERROR_PAIR.alpha
    assert two_sided < ERROR_PAIR.alpha
    assert covered >= 1 - ERROR_PAIR.alpha
    # The same paths break a fixed-n test peeked at every look: the harness has teeth.
    assert naive > 3 * ERROR_PAIR.alpha


def test_msprt_confidence_sequence_covers_a_nonzero_true_difference() -> None:
    rng = np.random.default_rng(505)
    d = rng.normal(0.3, 1.0, size=(1_000, LOOKS))
    config = MsprtConfig(sigma2=1.0, tau2=0.1**2, alpha=0.05, n_min=50)
    paths = msprt_oracle(d, config, truth=0.3)
    covered = float(paths.covered.mean())
    print(f"mSPRT normal, true difference 0.3: CS coverage {covered:.4f}")
    assert covered >= 0.95


def test_msprt_aborts_a_canary_that_doubles_the_error_rate() -> None:
    rng = np.random.default_rng(606)
    paths = msprt_oracle(bernoulli_differences(rng, CHUNK, 0.10, 0.05), ERROR_PAIR)
    rate = float(paths.aborted.mean())
    median = float(np.median(paths.at))
    print(f"mSPRT 10% vs 5%: abort rate {rate:.4f}, median pairs to abort {median:.0f}")
    assert rate > 0.9


@pytest.mark.parametrize("estimate_variance", [False, True])
def test_msprt_guardrail_matches_the_oracle_pair_for_pair(estimate_variance: bool) -> None:
    config = MsprtConfig(
        sigma2=ERROR_PAIR.sigma2,
        tau2=ERROR_PAIR.tau2,
        n_min=ERROR_PAIR.n_min,
        estimate_variance=estimate_variance,
    )
    rng = np.random.default_rng(707)
    for canary_rate in (0.05, 0.15):
        canary = (rng.random((8, 600)) < canary_rate).astype(np.float64)
        champion = (rng.random((8, 600)) < 0.05).astype(np.float64)
        paths = msprt_oracle(canary - champion, config)
        for run in range(canary.shape[0]):
            guard = MsprtGuardrail.start(config, at=0.0)
            for i in range(canary.shape[1]):
                pair = Pair(canary=canary[run, i], champion=champion[run, i])
                guard = guard.observe(pair, at=float(i))
                if guard.verdict is not Verdict.CONTINUE:
                    break
            assert (guard.verdict is Verdict.ABORT) == bool(paths.aborted[run])
            if guard.verdict is Verdict.ABORT:
                assert guard.n == paths.at[run]
            else:
                assert guard.confidence_sequence == pytest.approx(
                    (paths.low[run], paths.high[run]), rel=1e-9
                )


def test_msprt_p_value_and_sequence_follow_the_notes_formulas() -> None:
    config = MsprtConfig(sigma2=2.0, tau2=0.5, alpha=0.1, n_min=1)
    guard = MsprtGuardrail.start(config, at=0.0)
    diffs = [0.4, -0.1, 0.9, 0.3]
    best = -math.inf
    low, high = -math.inf, math.inf
    for n, x in enumerate(diffs, start=1):
        guard = guard.observe(Pair(canary=x, champion=0.0), at=float(n))
        mean = sum(diffs[:n]) / n
        s, t = 2.0, 0.5
        lam = math.sqrt(s / (s + n * t)) * math.exp(n * n * t * mean**2 / (2 * s * (s + n * t)))
        best = max(best, lam)
        r = math.sqrt(
            s * (s + n * t) / (n * n * t) * (2 * math.log(1 / 0.1) + math.log((s + n * t) / s))
        )
        low, high = max(low, mean - r), min(high, mean + r)
        assert guard.p_value == pytest.approx(min(1.0, 1 / best))
        assert guard.confidence_sequence == pytest.approx((low, high))


def test_msprt_passes_a_canary_shown_inside_the_non_inferiority_margin() -> None:
    rng = np.random.default_rng(808)
    config = MsprtConfig(sigma2=1.0, tau2=0.1**2, n_min=50, pass_margin=0.2)
    guard = MsprtGuardrail.start(config, at=0.0)
    canary, champion = rng.normal(0, 1, 3_000).tolist(), rng.normal(0, 1, 3_000).tolist()
    guard = guard.observe_batch(canary, champion, at=1.0)
    status = guard.status()
    assert status.verdict is Verdict.PASS
    assert guard.harm_bounds[1] < 0.2
    assert "lies below +0.2" in status.explanation


def test_msprt_watches_the_lower_side_when_lower_is_worse() -> None:
    rng = np.random.default_rng(909)
    config = MsprtConfig(sigma2=0.5, tau2=0.05**2, n_min=50, worse_when=WorseWhen.LOWER)
    accuracy_drop = MsprtGuardrail.start(config, at=0.0).observe_batch(
        (rng.random(3_000) < 0.80).astype(float).tolist(),
        (rng.random(3_000) < 0.90).astype(float).tolist(),
        at=1.0,
    )
    assert accuracy_drop.verdict is Verdict.ABORT
    assert accuracy_drop.status().statistic > 0  # a positive lower bound on harm
    improvement = MsprtGuardrail.start(config, at=0.0).observe_batch(
        (rng.random(3_000) < 0.95).astype(float).tolist(),
        (rng.random(3_000) < 0.85).astype(float).tolist(),
        at=1.0,
    )
    assert improvement.verdict is Verdict.CONTINUE


def test_msprt_hard_ceiling_and_minimum_sample() -> None:
    config = MsprtConfig(sigma2=1.0, tau2=0.01, alpha=1e-12, n_min=10, ceiling=0.5)
    guard = MsprtGuardrail.start(config, at=0.0)
    guard = guard.observe_batch([1.0] * 9, [0.0] * 9, at=1.0)
    assert guard.verdict is Verdict.CONTINUE
    assert "no verdict before 10 pairs" in guard.status().explanation
    guard = guard.observe(Pair(canary=1.0, champion=0.0), at=2.0)
    assert guard.status().trigger is Trigger.CEILING
    assert guard.status().verdict is Verdict.ABORT


def test_msprt_no_data_rule_fails_closed() -> None:
    config = MsprtConfig(sigma2=1.0, tau2=0.01, no_data=NoDataRule(max_silence_s=30.0))
    guard = MsprtGuardrail.start(config, at=0.0).tick(at=31.0)
    assert guard.verdict is Verdict.ABORT and guard.trigger is Trigger.NO_DATA
    assert guard.status().n == 0
    assert guard.p_value == 1.0 and guard.confidence_sequence == (-math.inf, math.inf)
    assert canonical.decode(canonical.encode(guard.status().to_record()))["statistic"] == "-inf"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sigma2": 0.0, "tau2": 0.1},
        {"sigma2": 1.0, "tau2": -0.1},
        {"sigma2": 1.0, "tau2": 0.1, "alpha": 1.0},
        {"sigma2": 1.0, "tau2": 0.1, "abort_margin": -0.1},
        {"sigma2": 1.0, "tau2": 0.1, "ceiling": 0.0},
        {"sigma2": 1.0, "tau2": 0.1, "n_min": 0},
    ],
)
def test_bad_msprt_parameters_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(InvalidRequest):
        MsprtConfig(**kwargs)  # type: ignore[arg-type]


def test_msprt_refuses_non_finite_values_and_mismatched_batches() -> None:
    guard = MsprtGuardrail.start(MsprtConfig(sigma2=1.0, tau2=0.1), at=0.0)
    with pytest.raises(InvalidRequest):
        guard.observe(Pair(canary=math.nan, champion=0.0), at=1.0)
    with pytest.raises(InvalidRequest):
        guard.observe_batch([1.0, 2.0], [1.0], at=1.0)


# ------------------------------------------------------------------ combination


def _status(verdict: Verdict) -> GuardrailStatus:
    return GuardrailStatus(verdict=verdict, statistic=0.0, threshold=1.0, n=1, explanation="")


def test_any_abort_aborts_and_only_all_passes_pass() -> None:
    c, a, p = Verdict.CONTINUE, Verdict.ABORT, Verdict.PASS
    assert combined_verdict([_status(p), _status(a), _status(c)]) is a
    assert combined_verdict([_status(p), _status(c)]) is c
    assert combined_verdict([_status(p), _status(p)]) is p
    with pytest.raises(InvalidRequest):
        combined_verdict([])


def test_both_guardrails_are_driven_through_the_one_protocol() -> None:
    def drive(guard: Guardrail[T], observation: T) -> GuardrailStatus:
        return guard.observe(observation, at=1.0).tick(at=2.0).status()

    sprt = drive(SprtGuardrail.start(SprtConfig(), at=0.0), True)
    msprt = drive(MsprtGuardrail.start(ERROR_PAIR, at=0.0), Pair(canary=1.0, champion=0.0))
    assert (sprt.n, msprt.n) == (1, 1)
    assert {sprt.verdict, msprt.verdict} == {Verdict.CONTINUE}

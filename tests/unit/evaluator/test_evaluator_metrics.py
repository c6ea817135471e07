"""Metric functions against sklearn oracles, a slow ECE reference and their invariants."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.calibration import calibration_curve
from sklearn.metrics import accuracy_score, brier_score_loss, f1_score, log_loss

from breedlab.canonical import decode, encode
from breedlab.errors import InvalidRequest
from breedlab.evaluator.metrics import (
    ABSTAIN,
    NLL_EPSILON,
    CriticalConfusion,
    SafetySpec,
    classification_scores,
    critical_violations,
    decide,
    ece_equal_mass,
    ece_per_item,
    latency_percentiles,
    macro_f1,
    macro_f1_per_item,
    nll_per_item,
    ood_violations,
    per_item,
    robustness,
)

# ── strategies ────────────────────────────────────────────────────────────────────────


@st.composite
def labelled_probs(draw: st.DrawFn, max_n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Labels in 0..k-1 and softmax rows with every class present in the labels."""
    k = draw(st.integers(2, 6))
    n = draw(st.integers(k, max_n))
    logits = draw(hnp.arrays(np.float64, (n, k), elements=st.floats(-8, 8, allow_subnormal=False)))
    rest = draw(hnp.arrays(np.int64, (n - k,), elements=st.integers(0, k - 1)))
    labels = np.concatenate([np.arange(k, dtype=np.int64), rest])
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return labels, exp / exp.sum(axis=1, keepdims=True)


def slow_ece(conf: list[float], correct: list[bool], num_bins: int = 10) -> float:
    """HELM's ece_10_bin written out with loops: equal-mass runs, midpoint cuts, left bins."""
    n = len(conf)
    ordered = sorted(conf)
    m = min(num_bins, n)
    base, extra = divmod(n, m)
    runs, start = [], 0
    for i in range(m):
        size = base + (1 if i < extra else 0)
        runs.append(ordered[start : start + size])
        start += size
    edges = sorted({(runs[i][-1] + runs[i + 1][0]) / 2.0 for i in range(m - 1)} | {1.0})
    bins: list[list[tuple[float, bool]]] = [[] for _ in edges]
    for c, ok in zip(conf, correct, strict=True):
        first = next(j for j, edge in enumerate(edges) if c <= edge)
        bins[first].append((c, ok))
    total = 0.0
    for b in bins:
        if b:
            mean_conf = sum(c for c, _ in b) / len(b)
            mean_acc = sum(1.0 for _, ok in b if ok) / len(b)
            total += len(b) / n * abs(mean_conf - mean_acc)
    return total


# ── task ──────────────────────────────────────────────────────────────────────────────


@settings(max_examples=60, deadline=None)
@given(
    st.integers(2, 8).flatmap(
        lambda k: st.tuples(
            hnp.arrays(np.int64, st.integers(1, 40), elements=st.integers(0, k - 1)),
            st.randoms(use_true_random=False),
            st.just(k),
        )
    )
)
def test_macro_f1_matches_sklearn_including_classes_absent_from_predictions(
    case: tuple[np.ndarray, object, int],
) -> None:
    labels, rnd, k = case
    predicted = np.array([rnd.randrange(k) for _ in labels], dtype=np.int64)  # type: ignore[attr-defined]
    expected = f1_score(labels, predicted, average="macro", zero_division=0.0)
    assert macro_f1(labels, predicted) == pytest.approx(expected, abs=1e-12)
    # zero_division never matters for classes in the union of labels and predictions.
    assert f1_score(labels, predicted, average="macro", zero_division=1.0) == pytest.approx(
        expected, abs=1e-12
    )


def test_a_class_never_predicted_scores_f1_zero_and_pulls_the_macro_mean_down() -> None:
    labels = np.array([0, 0, 1, 1, 2, 2])
    predicted = np.array([0, 0, 1, 1, 1, 1])  # class 2 never predicted
    # F1: class 0 = 1, class 1 = 2·2/(4+2) = 2/3, class 2 = 0.
    assert macro_f1(labels, predicted) == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert macro_f1(labels, predicted) == pytest.approx(
        f1_score(labels, predicted, average="macro")
    )


def test_a_predicted_class_that_never_occurs_counts_in_the_macro_mean() -> None:
    labels = np.array([0, 1, 2])
    predicted = np.array([0, 1, 3])
    assert macro_f1(labels, predicted) == pytest.approx(0.5)  # (1 + 1 + 0 + 0) / 4


# ── calibration ───────────────────────────────────────────────────────────────────────


@settings(max_examples=60, deadline=None)
@given(labelled_probs())
def test_mean_brier_matches_sklearn_multiclass_brier_score(
    case: tuple[np.ndarray, np.ndarray],
) -> None:
    labels, probs = case
    k = probs.shape[1]
    scores = per_item(labels, probs)
    # scale_by_half=False: sklearn halves the two-class case by default; ours never halves.
    expected = brier_score_loss(labels, probs, labels=list(range(k)), scale_by_half=False)
    assert float(np.mean(scores.brier)) == pytest.approx(expected, rel=1e-9, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(labelled_probs())
def test_mean_nll_matches_sklearn_log_loss(case: tuple[np.ndarray, np.ndarray]) -> None:
    labels, probs = case
    k = probs.shape[1]
    scores = per_item(labels, probs)
    expected = log_loss(labels, probs, labels=list(range(k)))
    assert float(np.mean(scores.nll)) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_a_zero_true_class_probability_costs_the_documented_epsilon_not_infinity() -> None:
    nll = nll_per_item(np.array([0, 1]), np.array([[0.0, 1.0], [0.5, 0.5]]))
    assert nll[0] == pytest.approx(-math.log(NLL_EPSILON))
    assert nll[1] == pytest.approx(math.log(2))


@settings(max_examples=150, deadline=None)
@given(
    st.integers(1, 250).flatmap(
        lambda n: st.tuples(
            # Few distinct values force ties across cuts; n spans every remainder mod 10.
            st.lists(
                st.one_of(
                    st.sampled_from([0.1, 0.5, 0.5, 0.9, 1.0]),
                    st.floats(0, 1, allow_subnormal=False),
                ),
                min_size=n,
                max_size=n,
            ),
            st.lists(st.booleans(), min_size=n, max_size=n),
        )
    ),
    st.integers(1, 15),
)
def test_equal_mass_ece_equals_a_slow_reference_on_random_inputs(
    case: tuple[list[float], list[bool]], num_bins: int
) -> None:
    conf, correct = case
    got = ece_equal_mass(np.array(conf), np.array(correct, dtype=bool), num_bins)
    assert got == pytest.approx(slow_ece(conf, correct, num_bins), abs=1e-12)
    assert 0.0 <= got <= 1.0


def test_a_perfectly_calibrated_constructed_case_has_ece_zero() -> None:
    # 10 confidence levels × 20 items; at level c exactly 20·c items are right, so each
    # equal-mass bin is one level and its accuracy equals its confidence. Class 0 is the
    # top label (at level 0.1 all ten tie, and a tie goes to the lowest index).
    k = 10
    probs, labels = [], []
    for level in np.arange(1, 11) / 10:
        row = np.full(k, (1 - level) / (k - 1))
        row[0] = level
        right = round(20 * level)
        for j in range(20):
            probs.append(row)
            labels.append(0 if j < right else 1)
    scores = classification_scores(np.array(labels), np.array(probs))
    assert np.all(scores.items.predicted == 0)
    assert scores.accuracy == pytest.approx(0.55)
    assert scores.ece == pytest.approx(0.0, abs=1e-12)


def test_ece_matches_a_hand_computed_case_with_n_not_divisible_by_the_bins() -> None:
    # n = 5, 2 bins: runs [0.2, 0.4, 0.6] | [0.8, 0.9] (array_split puts the extra item
    # first), cut at 0.7. Bin 1: mean conf 0.4, acc 1/3. Bin 2: mean conf 0.85, acc 1.
    conf = np.array([0.9, 0.2, 0.8, 0.4, 0.6])
    correct = np.array([True, False, True, True, False])
    expected = 3 / 5 * abs(0.4 - 1 / 3) + 2 / 5 * abs(0.85 - 1.0)
    assert ece_equal_mass(conf, correct, num_bins=2) == pytest.approx(expected)


def test_default_ece_uses_ten_equal_mass_bins_on_a_hand_computed_case() -> None:
    # DESIGN.md §9: top-label ECE on 10 equal-mass bins. n = 20 distinct confidences
    # 0.500, 0.525, ..., 0.975, so each bin is a consecutive pair, with mean confidence
    # m_b = 0.5125 + 0.05·b. Even pairs are both right (gap 1 − m_b), odd pairs one right
    # and one wrong (gap m_b − 0.5): under- and over-confident bins alternate, so any other
    # binning (5, 9, 15 bins, equal width) mixes them and gives another number.
    # ECE = Σ_b (2/20)·gap_b = (1.4375 + 1.3125) / 10.
    conf = 0.5 + 0.025 * np.arange(20)
    pair = np.arange(20) // 2
    correct = (pair % 2 == 0) | (np.arange(20) % 2 == 0)
    means = [0.5125 + 0.05 * b for b in range(10)]
    expected = sum((1 - m) if b % 2 == 0 else (m - 0.5) for b, m in enumerate(means)) / 10
    assert expected == pytest.approx(0.275)
    order = np.random.default_rng(0).permutation(20)  # input order must not matter
    assert ece_equal_mass(conf[order], correct[order]) == pytest.approx(expected, abs=1e-12)
    scores = classification_scores(np.where(correct, 0, 1), np.stack([conf, 1 - conf], axis=1))
    assert scores.ece == pytest.approx(expected, abs=1e-12)


@settings(max_examples=40, deadline=None, derandomize=True)  # CI sees the same cases
@given(
    st.integers(1, 12).flatmap(
        lambda per_bin: st.tuples(
            st.lists(
                st.floats(0, 1, allow_subnormal=False),
                min_size=10 * per_bin,
                max_size=10 * per_bin,
                unique=True,
            ),
            st.lists(st.booleans(), min_size=10 * per_bin, max_size=10 * per_bin),
        )
    )
)
def test_default_ece_equals_sklearn_quantile_calibration_curve_with_ten_bins(
    case: tuple[list[float], list[bool]],
) -> None:
    # An independent reference: sklearn's calibration_curve(strategy="quantile", n_bins=10)
    # gives each bin's accuracy and mean confidence. With distinct confidences and n a
    # multiple of 10, its percentile edges and the midpoint cuts split the same items,
    # every bin holds n/10, so ECE is the plain mean of the 10 gaps.
    conf, correct = np.array(case[0]), np.array(case[1], dtype=bool)
    assume(correct.any() and not correct.all())  # calibration_curve needs both classes
    prob_true, prob_pred = calibration_curve(correct, conf, n_bins=10, strategy="quantile")
    assume(prob_true.shape == (10,))  # sklearn drops bins its float edges leave empty
    expected = float(np.mean(np.abs(prob_true - prob_pred)))
    assert ece_equal_mass(conf, correct) == pytest.approx(expected, abs=1e-9)


def test_tied_confidences_across_a_cut_land_in_one_bin() -> None:
    # Four items at 0.5 across a 2-bin cut: the cut is 0.5, so all four join the low bin.
    conf = np.array([0.5, 0.5, 0.5, 0.5, 0.9, 0.9])
    correct = np.array([True, False, True, False, True, True])
    # bins: {0.5 ×4} (acc 0.5, conf 0.5) and {0.9 ×2} (acc 1, conf 0.9)
    assert ece_equal_mass(conf, correct, num_bins=2) == pytest.approx(2 / 6 * 0.1)


def test_classification_scores_agree_with_their_parts_and_record_without_floats() -> None:
    rng = np.random.default_rng(4)
    logits = rng.normal(size=(300, 10)) * 3
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = np.concatenate([np.arange(10), rng.integers(0, 10, 290)])
    scores = classification_scores(labels, probs)
    assert scores.n == 300
    assert scores.accuracy == pytest.approx(accuracy_score(labels, probs.argmax(axis=1)))
    assert scores.macro_f1 == pytest.approx(f1_score(labels, probs.argmax(axis=1), average="macro"))
    assert scores.ece == pytest.approx(
        slow_ece(probs.max(axis=1).tolist(), scores.items.correct.tolist())
    )
    record = decode(encode(scores.to_record()))
    assert float(record["nll"]) == scores.nll
    with pytest.raises(ValueError, match="read-only"):
        scores.items.correct[0] = not scores.items.correct[0]


@pytest.mark.parametrize(
    ("labels", "probs", "why"),
    [
        (np.array([0, 1]), np.array([[0.5, 0.6], [0.5, 0.5]]), "sum to 1"),
        (np.array([0, 2]), np.array([[0.5, 0.5], [0.5, 0.5]]), "labels must be in"),
        (np.array([0]), np.array([[0.5, 0.5], [0.5, 0.5]]), "rows of probs"),
        (np.array([0.0, 1.0]), np.array([[0.5, 0.5], [0.5, 0.5]]), "integer"),
        (np.array([0, 1]), np.array([[1.5, -0.5], [0.5, 0.5]]), r"in \[0, 1\]"),
        (np.array([0, 1]), np.array([[np.nan, 1.0], [0.5, 0.5]]), "finite"),
        (np.array([0]), np.array([[1.0]]), "at least 2 classes"),
        (np.array([], dtype=np.int64), np.zeros((0, 2)), "empty"),
    ],
)
def test_malformed_labels_or_probabilities_are_refused(
    labels: np.ndarray, probs: np.ndarray, why: str
) -> None:
    with pytest.raises(InvalidRequest, match=why):
        classification_scores(labels, probs)


# ── robustness ────────────────────────────────────────────────────────────────────────


@given(
    st.integers(1, 50).flatmap(
        lambda n: st.tuples(
            hnp.arrays(np.bool_, n),
            st.dictionaries(
                st.sampled_from(["noise", "shift", "occlusion"]),
                hnp.arrays(np.bool_, n),
                min_size=1,
            ),
        )
    )
)
def test_worst_case_is_never_above_clean_or_any_perturbation(
    case: tuple[np.ndarray, dict[str, np.ndarray]],
) -> None:
    clean, perturbed = case
    result = robustness(clean=clean, perturbed=perturbed)
    assert result.worst_case_accuracy <= result.clean_accuracy
    assert result.gap == pytest.approx(result.clean_accuracy - result.worst_case_accuracy)
    assert result.gap >= 0
    for entry in result.per_kind:
        assert result.worst_case_accuracy <= entry.accuracy
        assert entry.accuracy == pytest.approx(float(np.mean(perturbed[entry.kind])))
    expected = clean.copy()
    for outcome in perturbed.values():
        expected &= outcome
    assert np.array_equal(result.worst_case, expected)
    assert [k.kind for k in result.per_kind] == sorted(perturbed)


def test_an_item_counts_for_worst_case_only_if_right_everywhere() -> None:
    result = robustness(
        clean=np.array([True, True, True, False]),
        perturbed={
            "noise": np.array([True, False, True, True]),
            "shift": np.array([True, True, False, True]),
        },
    )
    assert result.worst_case.tolist() == [True, False, False, False]
    assert (result.clean_accuracy, result.worst_case_accuracy, result.gap) == (0.75, 0.25, 0.5)
    assert decode(encode(result.to_record()))["per_kind"] == {"noise": "0.75", "shift": "0.75"}


def test_robustness_without_perturbations_or_with_mismatched_items_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="at least one perturbation"):
        robustness(clean=np.array([True]), perturbed={})
    with pytest.raises(InvalidRequest, match="outcomes under 'noise'"):
        robustness(clean=np.array([True]), perturbed={"noise": np.array([True, False])})
    with pytest.raises(InvalidRequest, match="bool"):
        robustness(clean=np.array([1, 0]), perturbed={"noise": np.array([True, False])})


# ── safety ────────────────────────────────────────────────────────────────────────────


def test_abstention_is_strictly_below_the_threshold() -> None:
    probs = np.array([[0.5, 0.5], [0.7, 0.3], [0.2, 0.8], [0.49, 0.51]])
    assert decide(probs, abstain_below=0.7).tolist() == [ABSTAIN, 0, 1, ABSTAIN]
    assert decide(probs, abstain_below=0.0).tolist() == [0, 0, 1, 1]


def test_critical_confusions_report_the_ids_that_failed_and_abstaining_is_safe() -> None:
    critical = [CriticalConfusion(true_class=0, predicted_class=6)]
    result = critical_violations(
        item_ids=["a", "b", "c", "d"],
        labels=np.array([0, 0, 0, 6]),
        decisions=np.array([6, ABSTAIN, 0, 0]),  # a: 0→6 fails; b abstains; d: 6→0 not listed
        critical=critical,
    )
    assert result.failed_ids == ("a",)
    assert (result.checked, result.count, result.passed) == (4, 1, False)
    clean = critical_violations(
        item_ids=["a"], labels=np.array([0]), decisions=np.array([0]), critical=critical
    )
    assert clean.passed
    assert clean.count == 0


def test_every_ood_item_must_be_abstained_on() -> None:
    probs = np.array([[0.3, 0.7], [0.5, 0.5], [0.99, 0.01]])
    result = ood_violations(item_ids=["n0", "n1", "n2"], decisions=decide(probs, abstain_below=0.6))
    assert result.failed_ids == ("n0", "n2")
    assert not result.passed


def test_empty_safety_checks_fail_closed() -> None:
    with pytest.raises(InvalidRequest, match="empty"):
        ood_violations(item_ids=[], decisions=np.array([], dtype=np.int64))
    with pytest.raises(InvalidRequest, match="no critical confusions"):
        critical_violations(
            item_ids=["a"], labels=np.array([0]), decisions=np.array([6]), critical=[]
        )
    with pytest.raises(InvalidRequest, match="at least one critical"):
        SafetySpec(critical=(), abstain_below=0.5)
    with pytest.raises(InvalidRequest, match="unique"):
        ood_violations(item_ids=["a", "a"], decisions=np.array([ABSTAIN, ABSTAIN]))
    with pytest.raises(InvalidRequest, match="different classes"):
        CriticalConfusion(true_class=1, predicted_class=1)
    with pytest.raises(InvalidRequest, match=r"\[0, 1\]"):
        decide(np.array([[0.5, 0.5]]), abstain_below=1.5)


def test_a_safety_spec_records_as_canonical_json() -> None:
    spec = SafetySpec(
        critical=(
            CriticalConfusion(true_class=7, predicted_class=1),
            CriticalConfusion(true_class=0, predicted_class=6),
        ),
        abstain_below=0.6,
    )
    assert encode(spec.to_record()) == b'{"abstain_below":"0.6","critical":[[0,6],[7,1]]}'


# ── resource ──────────────────────────────────────────────────────────────────────────


def test_latency_percentiles_interpolate_linearly_between_order_statistics() -> None:
    durations = [float(i) for i in range(1, 21)]  # 1..20 s
    latency = latency_percentiles(durations)
    assert latency.n == 20
    assert latency.p50 == pytest.approx(10.5)
    assert latency.p95 == pytest.approx(19.05)  # rank 0.95·19 = 18.05 → 19 + 0.05·(20 − 19)
    assert decode(encode(latency.to_record()))["p95"] == repr(latency.p95)


@given(st.lists(st.floats(0, 10, allow_subnormal=False), min_size=1, max_size=50))
def test_latency_percentiles_are_ordered_and_within_the_observed_range(
    durations: list[float],
) -> None:
    latency = latency_percentiles(np.array(durations))
    assert min(durations) <= latency.p50 <= latency.p95 <= max(durations)


@pytest.mark.parametrize("durations", [[], [0.1, -0.01], [float("nan")], ["fast"]])
def test_latency_refuses_empty_negative_or_non_numeric_durations(durations: list[object]) -> None:
    with pytest.raises(InvalidRequest):
        latency_percentiles(durations)  # type: ignore[arg-type]


# ── per-item terms the controller pairs (macro-F1, ECE) ─────────────────────────────


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    st.integers(2, 6).flatmap(
        lambda k: st.integers(1, 40).flatmap(
            lambda n: st.tuples(
                hnp.arrays(np.int64, (n,), elements=st.integers(0, k - 1)),
                hnp.arrays(np.int64, (n,), elements=st.integers(0, k)),  # k: never a label
            )
        )
    )
)
def test_macro_f1_per_item_terms_average_to_sklearn_macro_f1(
    case: tuple[np.ndarray, np.ndarray],
) -> None:
    labels, predicted = case
    terms = macro_f1_per_item(labels, predicted)
    assert terms.shape == labels.shape and not terms.flags.writeable
    expected = f1_score(labels, predicted, average="macro", zero_division=0.0)
    assert float(np.mean(terms)) == pytest.approx(expected, abs=1e-12)
    assert np.all(terms[labels != predicted] == 0.0)  # only correct items carry F1


def test_macro_f1_per_item_weighs_a_rare_class_more_on_a_hand_computed_case() -> None:
    # Class 0: T=3, P=3, TP=2 -> F1 2/3; class 1: T=1, P=1, TP=0 -> 0; macro 1/3.
    # Each correct class-0 item carries 2n / (C·(T+P)) = 8 / (2·6) = 2/3.
    labels = np.array([0, 0, 0, 1])
    predicted = np.array([0, 0, 1, 0])
    terms = macro_f1_per_item(labels, predicted)
    assert terms.tolist() == pytest.approx([2 / 3, 2 / 3, 0.0, 0.0])
    assert float(np.mean(terms)) == pytest.approx(1 / 3)


def test_ece_per_item_terms_average_to_the_hand_computed_ece() -> None:
    # The hand-computed case above: bin 1 (0.2, 0.4, 0.6) is over-confident (mean conf
    # 0.4 > acc 1/3) and bin 2 (0.8, 0.9) under-confident (0.85 < 1), so bin 1's terms
    # are conf − correct and bin 2's are correct − conf.
    conf = np.array([0.9, 0.2, 0.8, 0.4, 0.6])
    correct = np.array([True, False, True, True, False])
    expected = 3 / 5 * abs(0.4 - 1 / 3) + 2 / 5 * abs(0.85 - 1.0)
    terms = ece_per_item(conf, correct, num_bins=2)
    assert terms.tolist() == pytest.approx([0.1, 0.2, 0.2, -0.6, 0.6])
    assert float(np.mean(terms)) == pytest.approx(expected)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    st.integers(1, 80).flatmap(
        lambda n: st.tuples(
            st.lists(st.floats(0, 1, allow_subnormal=False), min_size=n, max_size=n),
            st.lists(st.booleans(), min_size=n, max_size=n),
        )
    ),
    st.integers(1, 15),
)
def test_ece_per_item_terms_average_to_the_slow_reference(
    case: tuple[list[float], list[bool]], num_bins: int
) -> None:
    conf, correct = case
    terms = ece_per_item(np.array(conf), np.array(correct, dtype=bool), num_bins)
    assert float(np.mean(terms)) == pytest.approx(slow_ece(conf, correct, num_bins), abs=1e-12)

"""The built-in suite leaves a clean-trained champion real failure clusters to breed on.

A scikit-learn logistic regression (no torch) trained on the train split scores ~95% on
clean dev digits, with almost no repeated confusion; under each perturbation of
``DIGITS_PERTURBATIONS`` it must lose at least 5 accuracy points, or breeding would have
nothing to improve (notes/models-and-data.md §3).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from breedlab.evaluator.digits import DIGITS_PERTURBATIONS, confusion_pairs, digits_splits
from breedlab.evaluator.metrics import classification_scores, robustness
from breedlab.evaluator.perturbations import perturb

SUITE_SEED = 0
MARGIN = 0.05  # accuracy points a perturbation must cost, at least


@functools.cache
def champion() -> LogisticRegression:
    train = digits_splits(SUITE_SEED).train
    # lbfgs converges in well under 200 iterations on 0..1 pixels; no warning to silence.
    return LogisticRegression(max_iter=500).fit(train.x, train.y)


@functools.cache
def dev_outcomes() -> tuple[float, dict[str, float], float]:
    dev = digits_splits(SUITE_SEED).dev
    model = champion()
    clean = classification_scores(dev.y, model.predict_proba(dev.x))
    perturbed = {}
    for spec in DIGITS_PERTURBATIONS:
        x = perturb(spec, dev.x, item_ids=dev.item_ids, seed=SUITE_SEED)
        perturbed[spec.kind] = classification_scores(dev.y, model.predict_proba(x)).items.correct
    result = robustness(clean=clean.items.correct, perturbed=perturbed)
    return result.clean_accuracy, {k.kind: k.accuracy for k in result.per_kind}, result.gap


def test_a_clean_trained_champion_is_strong_on_clean_dev_digits() -> None:
    clean, _, _ = dev_outcomes()
    assert clean >= 0.93


@pytest.mark.parametrize("kind", [spec.kind for spec in DIGITS_PERTURBATIONS])
def test_every_suite_perturbation_costs_the_champion_at_least_five_points(kind: str) -> None:
    clean, per_kind, _ = dev_outcomes()
    assert per_kind[kind] <= clean - MARGIN


def test_worst_case_robustness_leaves_a_large_gap_with_concentrated_confusions() -> None:
    dev = digits_splits(SUITE_SEED).dev
    _, _, gap = dev_outcomes()
    assert gap >= 2 * MARGIN
    model = champion()
    clean_top = confusion_pairs(dev.y, model.predict(dev.x).astype(np.int64), top_k=1)
    perturbed_pred = np.concatenate(
        [
            model.predict(perturb(spec, dev.x, item_ids=dev.item_ids, seed=SUITE_SEED))
            for spec in DIGITS_PERTURBATIONS
        ]
    ).astype(np.int64)
    truth = np.tile(dev.y, len(DIGITS_PERTURBATIONS))
    top = confusion_pairs(truth, perturbed_pred, top_k=1)
    # A failure cluster worth an operator: one confusion that perturbations multiply.
    assert top[0].count >= 10
    assert top[0].count >= 3 * (clean_top[0].count if clean_top else 1)

"""The evaluator's public surface is pinned and its pure cores import without torch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import breedlab.evaluator as evaluator
from breedlab.evaluator import digits, items, metrics, perturbations

SRC = Path(__file__).resolve().parents[3] / "src"


def test_the_public_surface_is_exactly_the_pinned_names() -> None:
    assert len(set(evaluator.__all__)) == len(evaluator.__all__)
    assert set(evaluator.__all__) == {
        "ABSTAIN",
        "DIGITS_PERTURBATIONS",
        "PERTURBATIONS",
        "ClassificationScores",
        "ConfusionPair",
        "CriticalConfusion",
        "DigitsSplit",
        "DigitsSplits",
        "GaussianNoise",
        "ItemHash",
        "KindAccuracy",
        "Latency",
        "Occlusion",
        "OodKind",
        "OodSet",
        "PerItem",
        "PerturbationSpec",
        "PixelDropout",
        "PixelShift",
        "Robustness",
        "SafetySpec",
        "SplitName",
        "SplitPercents",
        "Violations",
        "accuracy",
        "brier_per_item",
        "classification_scores",
        "confusion_pairs",
        "critical_violations",
        "decide",
        "digits_splits",
        "ece_equal_mass",
        "hash_items",
        "item_hashes",
        "item_rng",
        "latency_percentiles",
        "load_digits_scaled",
        "macro_f1",
        "nll_per_item",
        "ood_set",
        "ood_violations",
        "per_item",
        "perturb",
        "robustness",
        "spec_from_record",
        "suite_hash",
    }
    for name in evaluator.__all__:
        assert getattr(evaluator, name) is not None


def test_every_module_exports_only_names_it_defines_and_has_a_docstring() -> None:
    for module in (evaluator, digits, items, metrics, perturbations):
        assert module.__doc__
        assert all(hasattr(module, name) for name in module.__all__)


def test_importing_the_evaluator_pulls_in_neither_torch_nor_sklearn() -> None:
    probe = (
        "import sys, breedlab.evaluator\n"
        "print(sorted(m for m in ('torch', 'sklearn', 'scipy') if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    out = subprocess.run(
        [sys.executable, "-c", probe],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert out.stdout.strip() == "[]"

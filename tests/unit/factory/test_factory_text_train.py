"""``train`` and ``distill`` on transformers parents: a head on a bare encoder, a fine-tune of
the top layers, a layer-drop student -- on tiny random BERTs and 80 tiny reviews."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from breedlab.datasets import write_text_dataset
from breedlab.errors import InvalidRequest
from breedlab.factory.operators import distill, train
from breedlab.families import load_model
from breedlab.families.text_head import HeadSpec
from breedlab.jobs import DataInput, Job, ParentInput
from text_models import (
    file_hashes,
    save_tiny_bert,
    save_tiny_encoder_classifier,
    sentiment_texts,
    text_datasets,
    text_parent,
)

#: A 4-layer teacher, so a layer-drop student can skip layers between kept ones.
LAYERS = 4


def _quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def reviews(tmp_path_factory: pytest.TempPathFactory) -> dict[str, DataInput]:
    """80 tiny reviews (``train``) and a 20-item ``cluster`` drawn from them."""
    texts, labels = sentiment_texts(80)
    return text_datasets(tmp_path_factory.mktemp("reviews"), texts, labels, cluster=20)


@pytest.fixture(scope="module")
def encoder(tmp_path_factory: pytest.TempPathFactory) -> ParentInput:
    folder = tmp_path_factory.mktemp("encoder") / "model"
    save_tiny_bert(folder, classifier=False, seed=4)
    return text_parent(folder, "tiny-bert")


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> ParentInput:
    folder = tmp_path_factory.mktemp("classifier") / "model"
    save_tiny_encoder_classifier(folder, seed=2, layers=LAYERS)
    return text_parent(folder, "tiny-clf")


def _job(
    operator: str, out: Path, parent: ParentInput, data: tuple[DataInput, ...], **params: object
) -> Job:
    return Job(operator=operator, params=params, seed=7, parents=(parent,), data=data, out_dir=out)


def test_a_head_fitted_on_a_frozen_bare_encoder_separates_the_reviews(
    tmp_path: Path, encoder: ParentInput, reviews: dict[str, DataInput]
) -> None:
    (package,) = train(_job("train", tmp_path, encoder, (reviews["train"],)), _quiet)
    assert (package.name, package.family, package.role, package.parents) == (
        "tiny-bert-head", "transformers", "candidate", (encoder.id,),
    )  # fmt: skip
    assert package.meta["mode"] == "head"
    folder = tmp_path / "model"
    assert HeadSpec.read(folder) == HeadSpec(classes=2, max_length=128)
    # The encoder is the parent's, bit for bit; only the head is new.
    stored = load_file(folder / "model.safetensors")
    for name, tensor in load_file(encoder.folder / "model.safetensors").items():
        assert torch.equal(stored[f"encoder.{name}"], tensor), name
    # Measured: train accuracy 0.975 (78/80) through load_model on this random encoder;
    # chance is about 0.5. The bound leaves room for another torch/BLAS build.
    texts, labels = sentiment_texts(80)
    model = load_model(folder, "transformers")
    accuracy = float((model.predict_proba(texts).argmax(axis=1) == labels).mean())
    print(f"head fit: train accuracy {accuracy:.4f}, meta {package.meta}")
    assert accuracy >= 0.85
    assert package.meta["train_accuracy"] == f"{accuracy:.4f}"


def test_a_head_can_be_wider_than_the_labels_but_not_narrower(
    tmp_path: Path, encoder: ParentInput, reviews: dict[str, DataInput]
) -> None:
    train(_job("train", tmp_path / "wide", encoder, (reviews["train"],), classes=3), _quiet)
    assert HeadSpec.read(tmp_path / "wide" / "model").classes == 3
    assert load_file(tmp_path / "wide" / "model" / "model.safetensors")["head.weight"].shape == (
        3, 32,
    )  # fmt: skip
    with pytest.raises(InvalidRequest, match="'classes' is 1 but the labels need 2"):
        train(_job("train", tmp_path / "narrow", encoder, (reviews["train"],), classes=1), _quiet)


def _changed(parent: Path, child: Path) -> set[str]:
    before = load_file(parent / "model.safetensors")
    after = load_file(child / "model.safetensors")
    assert set(before) == set(after)
    return {name for name in before if not torch.equal(before[name], after[name])}


def test_a_fine_tune_changes_only_the_top_layers_and_the_head(
    tmp_path: Path, classifier: ParentInput, reviews: dict[str, DataInput]
) -> None:
    (package,) = train(
        _job("train", tmp_path, classifier, (reviews["train"],), steps=4, train_layers=2), _quiet
    )
    assert (package.name, package.meta["mode"], package.meta["items"]) == (
        "tiny-clf-tuned", "fine-tune", 80,
    )  # fmt: skip
    names = load_file(classifier.folder / "model.safetensors")
    top = {
        n for n in names if n.startswith(("encoder.encoder.layer.2.", "encoder.encoder.layer.3."))
    }
    assert _changed(classifier.folder, tmp_path / "model") == top | {"head.weight", "head.bias"}
    assert HeadSpec.read(tmp_path / "model") == HeadSpec.read(classifier.folder)


def test_a_fine_tune_with_a_cluster_trains_on_it_with_replay(
    tmp_path: Path, classifier: ParentInput, reviews: dict[str, DataInput]
) -> None:
    data = (reviews["train"], reviews["cluster"])
    (package,) = train(_job("train", tmp_path, classifier, data, steps=2), _quiet)
    # 20 cluster items and round(0.3 · 20 / 0.7) = 9 train items outside the cluster
    assert (package.meta["items"], package.meta["replay_items"]) == (29, 9)


def test_a_layer_drop_student_before_training_is_the_teachers_chosen_layers(
    tmp_path: Path, classifier: ParentInput, reviews: dict[str, DataInput]
) -> None:
    (package,) = distill(
        _job("distill", tmp_path, classifier, (reviews["train"],), layers=[1, 3], steps=0),
        _quiet,
    )
    assert package.meta["layers"] == [1, 3]
    assert package.meta["teacher_agreement"] is not None
    folder = tmp_path / "model"
    assert json.loads((folder / "config.json").read_bytes())["num_hidden_layers"] == 2
    student = load_model(folder, "transformers")
    assert student.module.encoder.config.num_hidden_layers == 2
    teacher = load_file(classifier.folder / "model.safetensors")
    stored = load_file(folder / "model.safetensors")
    kept = {
        n: t
        for n, t in teacher.items()
        if ".layer." not in n or n.split(".layer.")[1].split(".")[0] in ("1", "3")
    }
    renamed = {
        n.replace(".layer.1.", ".layer.0.").replace(".layer.3.", ".layer.1."): t
        for n, t in kept.items()
    }
    assert set(stored) == set(renamed)
    for name, tensor in renamed.items():
        assert torch.equal(stored[name], tensor), name


def test_distillation_moves_the_student_and_keeps_the_default_every_other_layer(
    tmp_path: Path, classifier: ParentInput, reviews: dict[str, DataInput]
) -> None:
    (package,) = distill(
        _job("distill", tmp_path, classifier, (reviews["train"],), steps=3), _quiet
    )
    assert package.meta["layers"] == [0, 2]
    assert package.meta["parameters"] < package.meta["teacher_parameters"]
    assert package.name == "tiny-clf-distilled"
    stored = load_file(tmp_path / "model" / "model.safetensors")
    teacher = load_file(classifier.folder / "model.safetensors")
    assert not torch.equal(stored["head.weight"], teacher["head.weight"])  # it trained


@pytest.mark.parametrize(
    ("operator", "which", "params"),
    [
        ("train", "encoder", {}),
        ("train", "classifier", {"steps": 3, "train_layers": 1}),
        ("distill", "classifier", {"steps": 3}),
    ],
)
def test_the_same_text_job_twice_gives_byte_identical_files(
    tmp_path: Path,
    encoder: ParentInput,
    classifier: ParentInput,
    reviews: dict[str, DataInput],
    operator: str,
    which: str,
    params: dict[str, object],
) -> None:
    parent = encoder if which == "encoder" else classifier
    run = train if operator == "train" else distill
    data = (reviews["train"],)
    first = run(_job(operator, tmp_path / "a", parent, data, **params), _quiet)
    second = run(_job(operator, tmp_path / "b", parent, data, **params), _quiet)
    assert first == second
    assert file_hashes(tmp_path / "a") == file_hashes(tmp_path / "b")
    assert set(file_hashes(tmp_path / "a")) >= {"model/model.safetensors", "model/head.json"}


@pytest.mark.parametrize(
    ("operator", "which", "params", "message"),
    [
        ("train", "classifier", {"steps": -1}, "'steps' must be >= 0, got -1"),
        ("train", "classifier", {"train_layers": 5}, "'train_layers' is 5 but .* has 4 layers"),
        ("train", "classifier", {"l2": "0.1"}, r"does not take parameter\(s\) 'l2'"),
        ("train", "classifier", {"max_length": 513}, "'max_length' must be at most 512"),
        ("train", "encoder", {"steps": 3}, r"does not take parameter\(s\) 'steps'"),
        ("train", "encoder", {"l2": "-1"}, "'l2' must be >= 0"),
        ("distill", "classifier", {"layers": [0, 4]}, r"'layers' is \[0, 4\]: .* layers 0..3"),
        ("distill", "classifier", {"layers": [2, 1]}, "'layers' must be strictly increasing"),
        ("distill", "classifier", {"layers": []}, "'layers' must be a non-empty list"),
        ("distill", "classifier", {"steps": -2}, "'steps' must be >= 0"),
        ("distill", "classifier", {"alpha": "2"}, r"'alpha' must be in \[0, 1\]"),
        ("distill", "encoder", {}, "needs an encoder with a head; .* is a bare encoder"),
    ],
)
def test_bad_text_params_are_refused_with_one_line(
    tmp_path: Path,
    encoder: ParentInput,
    classifier: ParentInput,
    reviews: dict[str, DataInput],
    operator: str,
    which: str,
    params: dict[str, object],
    message: str,
) -> None:
    parent = encoder if which == "encoder" else classifier
    run = train if operator == "train" else distill
    with pytest.raises(InvalidRequest, match=message) as caught:
        run(_job(operator, tmp_path, parent, (reviews["train"],), **params), _quiet)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "model").exists()


def test_a_hugging_face_sequence_classifier_is_refused(
    tmp_path: Path, reviews: dict[str, DataInput]
) -> None:
    save_tiny_bert(tmp_path / "hf", classifier=True, labels=2)
    with pytest.raises(InvalidRequest, match="Hugging Face sequence classifier"):
        train(
            _job(
                "train", tmp_path / "out", text_parent(tmp_path / "hf", "hf"), (reviews["train"],)
            ),
            _quiet,
        )


def test_labels_the_head_cannot_take_are_refused(tmp_path: Path, classifier: ParentInput) -> None:
    write_text_dataset(
        tmp_path / "three", texts=["a good film", "a bad film", "the plot"], y=np.array([0, 1, 2]),
        ids=["a", "b", "c"],
    )  # fmt: skip
    data = (DataInput(id="sha256:three", role="train", folder=tmp_path / "three"),)
    with pytest.raises(InvalidRequest, match=r"labels outside 0..1"):
        train(_job("train", tmp_path / "out", classifier, data, steps=1), _quiet)

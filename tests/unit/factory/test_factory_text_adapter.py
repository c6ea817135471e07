"""``adapter`` on a transformers parent (LoRA on query/key/value, the head trained whole), text
jobs through the sandbox, and the real MiniLM path (slow)."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from breedlab.errors import InvalidRequest
from breedlab.factory.operators import adapter, train
from breedlab.factory.operators.adapter import ADAPTER_FILES
from breedlab.families import load_model
from breedlab.jobs import DataInput, Job, OutputPackage, ParentInput
from breedlab.sandbox import JobSpec, run_job
from text_models import (
    file_hashes,
    minilm_folder,
    save_tiny_bert,
    save_tiny_encoder_classifier,
    sentiment_texts,
    text_datasets,
    text_parent,
)

QKV = (".query.", ".key.", ".value.")


def _quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def reviews(tmp_path_factory: pytest.TempPathFactory) -> dict[str, DataInput]:
    texts, labels = sentiment_texts(80)
    return text_datasets(tmp_path_factory.mktemp("reviews"), texts, labels, cluster=20)


@pytest.fixture(scope="module")
def parent(tmp_path_factory: pytest.TempPathFactory) -> ParentInput:
    folder = tmp_path_factory.mktemp("parent") / "model"
    save_tiny_encoder_classifier(folder, seed=3)
    return text_parent(folder, "tiny-clf")


def _job(out: Path, parent: ParentInput, data: tuple[DataInput, ...], **params: object) -> Job:
    return Job(
        operator="adapter",
        params=params,
        seed=11,
        parents=(parent,),
        data=data,
        out_dir=out,
        failure_cluster="reviews: negative confused",
    )


@pytest.fixture(scope="module")
def tuned(
    tmp_path_factory: pytest.TempPathFactory, parent: ParentInput, reviews: dict[str, DataInput]
) -> tuple[Path, tuple[OutputPackage, ...]]:
    out = tmp_path_factory.mktemp("lora")
    job = _job(out, parent, (reviews["train"], reviews["cluster"]), steps=6)
    return out, adapter(job, _quiet)


def test_text_adapter_returns_the_adapter_artifact_and_the_merged_candidate(
    parent: ParentInput, tuned: tuple[Path, tuple[OutputPackage, ...]]
) -> None:
    out, (lora, merged) = tuned
    assert (lora.folder, lora.kind, lora.family, lora.role, lora.parents) == (
        "adapter", "adapter", "peft-lora", "artifact", (parent.id,),
    )  # fmt: skip
    assert (merged.folder, merged.family, merged.role, merged.parents) == (
        "model", "transformers", "candidate", (parent.id, "output:adapter"),
    )  # fmt: skip
    assert (lora.meta["target_modules"], lora.meta["modules_to_save"]) == (
        ["key", "query", "value"], ["head"],
    )  # fmt: skip
    assert (lora.meta["cluster_items"], lora.meta["replay_items"]) == (20, 9)
    assert sorted(p.name for p in (out / "adapter").iterdir()) == sorted(ADAPTER_FILES)
    config = json.loads((out / "adapter" / "adapter_config.json").read_bytes())
    assert (config["r"], config["lora_alpha"], config["modules_to_save"]) == (8, 16, ["head"])
    assert config["target_modules"] == ["key", "query", "value"]
    assert config["base_model_name_or_path"] is None
    assert str(out) not in (out / "adapter" / "adapter_config.json").read_text()
    model = load_model(out / "model", "transformers")
    texts, _ = sentiment_texts(5)
    assert model.predict_proba(texts).shape == (5, 2)


def test_the_merged_model_is_the_parent_plus_scaled_lora_products_and_the_trained_head(
    parent: ParentInput, tuned: tuple[Path, tuple[OutputPackage, ...]]
) -> None:
    """An independent reference: ``W + (α/r)·B·A`` from the adapter file, the head from the
    adapter file, every other tensor the parent's own."""
    out, _ = tuned
    base = load_file(parent.folder / "model.safetensors")
    merged = load_file(out / "model" / "model.safetensors")
    lora = load_file(out / "adapter" / "adapter_model.safetensors")
    scale = 16 / 8
    expected = dict(base)
    products = 0
    for key, a in lora.items():
        if ".lora_A." not in key:
            continue
        module = key.removeprefix("base_model.model.").removesuffix(".lora_A.weight")
        b = lora[key.replace(".lora_A.", ".lora_B.")]
        products += int(bool(b.abs().sum() > 0))
        expected[f"{module}.weight"] = base[f"{module}.weight"] + scale * (b @ a)
    assert products == 6  # every B moved off its zero init: 2 layers × q/k/v
    expected["head.weight"] = lora["base_model.model.head.weight"]
    expected["head.bias"] = lora["base_model.model.head.bias"]
    assert set(merged) == set(expected)
    for name, tensor in expected.items():
        assert torch.allclose(merged[name], tensor, atol=1e-6), name
    changed = {n for n in base if not torch.equal(base[n], merged[n])}
    assert changed == {n for n in base if any(t in n for t in QKV) and n.endswith(".weight")} | {
        "head.weight", "head.bias",
    }  # fmt: skip


def test_the_same_text_adapter_job_twice_gives_byte_identical_files(
    tmp_path: Path,
    parent: ParentInput,
    reviews: dict[str, DataInput],
    tuned: tuple[Path, tuple[OutputPackage, ...]],
) -> None:
    out, packages = tuned
    again = adapter(_job(tmp_path, parent, (reviews["train"], reviews["cluster"]), steps=6), _quiet)
    assert again == packages
    assert file_hashes(tmp_path) == file_hashes(out)


def test_text_jobs_run_in_the_sandbox_with_the_same_bytes_as_in_process(
    tmp_path: Path,
    parent: ParentInput,
    reviews: dict[str, DataInput],
    tuned: tuple[Path, tuple[OutputPackage, ...]],
) -> None:
    """PEFT and transformers are preloaded before the tripwire (``TEXT_PRELOAD``): the
    adapter and a head fit run confined and write what they write in-process."""
    out, packages = tuned
    job = _job(tmp_path / "unused", parent, (reviews["train"], reviews["cluster"]), steps=6)
    outcome = run_job(JobSpec(job=job), tmp_path / "adapter")
    assert outcome.ok, (outcome.failure, outcome.reason, outcome.log[-2000:])
    assert outcome.outputs == packages
    assert file_hashes(outcome.out_dir) == file_hashes(out)

    encoder = tmp_path / "encoder"
    save_tiny_bert(encoder, classifier=False)
    head = Job(
        operator="train",
        params={},
        seed=1,
        parents=(text_parent(encoder, "tiny-bert"),),
        data=(reviews["train"],),
        out_dir=tmp_path / "unused",
    )
    confined = run_job(JobSpec(job=head), tmp_path / "head")
    assert confined.ok, (confined.failure, confined.reason, confined.log[-2000:])
    train(Job(**{**_fields(head), "out_dir": tmp_path / "direct"}), _quiet)
    assert file_hashes(confined.out_dir) == file_hashes(tmp_path / "direct")


def _fields(job: Job) -> dict[str, object]:
    return {name: getattr(job, name) for name in Job.__dataclass_fields__}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"targets": ["query", "nope"]}, r"targets \['nope'\] are not Linear layers"),
        ({"targets": ["head"]}, r"targets \['head'\] are not Linear layers"),
        ({"targets": []}, "'targets' must be a non-empty list"),
        ({"steps": -1}, "'steps' must be >= 0, got -1"),
        ({"r": 0}, "'r' must be a positive integer"),
        ({"replay": "1"}, r"'replay' must be in \[0, 1\)"),
        ({"epochs": 3}, r"does not take parameter\(s\) 'epochs'"),
    ],
)
def test_bad_text_adapter_params_are_refused_with_one_line(
    tmp_path: Path,
    parent: ParentInput,
    reviews: dict[str, DataInput],
    params: dict[str, object],
    message: str,
) -> None:
    with pytest.raises(InvalidRequest, match=message) as caught:
        adapter(_job(tmp_path, parent, (reviews["train"], reviews["cluster"]), **params), _quiet)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "adapter").exists()


def test_a_bare_encoder_gets_no_adapter_until_it_has_a_head(
    tmp_path: Path, reviews: dict[str, DataInput]
) -> None:
    save_tiny_bert(tmp_path / "bare", classifier=False)
    job = _job(tmp_path / "out", text_parent(tmp_path / "bare", "bare"), (reviews["cluster"],))
    with pytest.raises(InvalidRequest, match="needs an encoder with a head") as caught:
        adapter(Job(**{**_fields(job), "params": {"replay": "0"}}), _quiet)
    assert caught.value.hint is not None and "train" in caught.value.hint


# ------------------------------------------------------- real MiniLM (slow)


POSITIVE = ("wonderful", "moving", "delightful", "clever", "charming", "gripping", "superb")
NEGATIVE = ("dull", "tedious", "clumsy", "lifeless", "tiresome", "dreadful", "muddled")
SUBJECTS = ("The film", "This movie", "The script", "The acting", "The ending", "The story")
FRAMES = ("{s} is {w}.", "{s} was {w} from start to finish.", "I found {s_low} {w}.")


def _template_reviews(n: int, seed: int) -> tuple[list[str], np.ndarray]:
    texts = [
        frame.format(s=subject, s_low=subject.lower(), w=word)
        for frame in FRAMES
        for subject in SUBJECTS
        for word in (*POSITIVE, *NEGATIVE)
    ]
    random.Random(seed).shuffle(texts)
    texts = texts[:n]
    return texts, np.array([int(any(w in t for w in POSITIVE)) for t in texts], dtype=np.int64)


@pytest.mark.slow
def test_minilm_gets_a_head_and_a_lora_child_that_predict_through_load_model(
    tmp_path: Path,
) -> None:
    texts, labels = _template_reviews(200, seed=0)
    data = text_datasets(tmp_path / "data", texts, labels, cluster=40)
    minilm = text_parent(minilm_folder(), "minilm")
    start = time.perf_counter()
    (champion,) = train(
        Job(operator="train", params={}, seed=0, parents=(minilm,), data=(data["train"],),
            out_dir=tmp_path / "champion"),
        _quiet,
    )  # fmt: skip
    head_seconds = time.perf_counter() - start
    model = load_model(tmp_path / "champion" / "model", "transformers")
    accuracy = float((model.predict_proba(texts).argmax(axis=1) == labels).mean())
    assert accuracy >= 0.9  # these templates are easy for MiniLM; measured 1.0
    head = text_parent(tmp_path / "champion" / "model", champion.name)
    start = time.perf_counter()
    lora, merged = adapter(
        _job(tmp_path / "lora", head, (data["train"], data["cluster"]), steps=5), _quiet
    )
    lora_seconds = time.perf_counter() - start
    child = load_model(tmp_path / "lora" / "model", "transformers")
    probabilities = child.predict_proba(texts[:40])
    assert probabilities.shape == (40, 2) and np.isfinite(probabilities).all()
    child_accuracy = float((probabilities.argmax(axis=1) == labels[:40]).mean())
    print(
        f"MiniLM: head fit on 200 texts {head_seconds:.1f} s (train accuracy {accuracy:.3f}); "
        f"5-step LoRA {lora_seconds:.1f} s incl. PEFT import and 2 cluster passes "
        f"(cluster accuracy {child_accuracy:.3f}); meta {lora.meta} {merged.meta}"
    )
    assert child_accuracy >= 0.8

"""The ``distill`` operator: Hinton soft targets from a torch teacher into a smaller student."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from breedlab.datasets import write_dataset
from breedlab.errors import InvalidRequest
from breedlab.evaluator.digits import digits_splits
from breedlab.factory.operators import distill, train
from breedlab.factory.operators.distill import distillation_loss
from breedlab.families import DEFAULT_MAX_BYTES as BUDGET
from breedlab.families.torch_family import TorchFamily
from breedlab.jobs import DataInput, Job, OutputPackage, ParentInput


def _quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[DataInput, DataInput]:
    root = tmp_path_factory.mktemp("digits")
    splits = digits_splits(0)
    inputs = []
    for split in (splits.train, splits.fitness):
        folder = root / split.name.value
        write_dataset(folder, x=split.x, y=split.y, ids=split.item_ids)
        inputs.append(
            DataInput(id=f"sha256:{split.name.value}", role=split.name.value, folder=folder)
        )
    return inputs[0], inputs[1]


@pytest.fixture(scope="module")
def teacher(
    tmp_path_factory: pytest.TempPathFactory, data: tuple[DataInput, DataInput]
) -> ParentInput:
    out = tmp_path_factory.mktemp("teacher")
    train(Job(operator="train", params={}, seed=3, data=data, out_dir=out), _quiet)
    return ParentInput(
        id="sha256:" + "ab" * 32,
        name="digits-mlp",
        family="torch",
        folder=out / "model",
        max_bytes=BUDGET,
    )


def _job(out_dir: Path, teacher: ParentInput, data: tuple[DataInput, ...], **params: object) -> Job:
    return Job(
        operator="distill", params=params, seed=11, parents=(teacher,), data=data, out_dir=out_dir
    )


@pytest.fixture(scope="module")
def student(
    tmp_path_factory: pytest.TempPathFactory,
    teacher: ParentInput,
    data: tuple[DataInput, DataInput],
) -> tuple[Path, OutputPackage, float]:
    out = tmp_path_factory.mktemp("student")
    start = time.perf_counter()
    (package,) = distill(_job(out, teacher, data), _quiet)
    return out, package, time.perf_counter() - start


def _accuracy(folder: Path, x: np.ndarray, y: np.ndarray) -> float:
    model = TorchFamily().load(folder)
    return float((model.predict_proba(x).argmax(axis=1) == y).mean())


def test_the_distilled_student_is_smaller_and_scores_at_least_0_85_on_dev(
    teacher: ParentInput, student: tuple[Path, OutputPackage, float]
) -> None:
    out, package, seconds = student
    dev = digits_splits(0).dev
    student_accuracy = _accuracy(out / "model", dev.x, dev.y)
    teacher_accuracy = _accuracy(teacher.folder, dev.x, dev.y)
    print(
        f"distill: student dev {student_accuracy:.4f} (teacher {teacher_accuracy:.4f}), "
        f"{seconds:.2f} s, {package.meta}"
    )
    assert student_accuracy >= 0.85
    model = TorchFamily().load(out / "model")
    assert model.config["hidden"] == [32]
    assert model.parameter_count() < TorchFamily().load(teacher.folder).parameter_count() / 5


def test_distill_returns_a_candidate_whose_parent_is_the_teacher(
    teacher: ParentInput, student: tuple[Path, OutputPackage, float]
) -> None:
    _, package, _ = student
    assert (package.folder, package.kind, package.family, package.role) == (
        "model", "model", "torch", "candidate",
    )  # fmt: skip
    assert package.parents == (teacher.id,)
    assert package.name == "digits-mlp-distilled"
    assert package.meta["transfer_items"] == 2 * 1078  # train + one noisy copy
    assert float(package.meta["teacher_agreement"]) > 0.9


def test_the_same_job_gives_byte_identical_files_in_another_dir(
    tmp_path: Path,
    teacher: ParentInput,
    data: tuple[DataInput, DataInput],
    student: tuple[Path, OutputPackage, float],
) -> None:
    out, package, _ = student
    (again,) = distill(_job(tmp_path, teacher, data), _quiet)
    for name in ("config.json", "model.safetensors"):
        first = hashlib.sha256((out / "model" / name).read_bytes()).hexdigest()
        assert hashlib.sha256((tmp_path / "model" / name).read_bytes()).hexdigest() == first
    assert again == package


def test_a_cnn_student_can_be_asked_for(
    tmp_path: Path, teacher: ParentInput, data: tuple[DataInput, DataInput]
) -> None:
    params = {"architecture": "cnn", "channels": [4], "hidden": [16], "epochs": 3, "copies": 0}
    (package,) = distill(_job(tmp_path, teacher, data[:1], **params), _quiet)
    model = TorchFamily().load(tmp_path / "model")
    assert model.config["architecture"] == "cnn" and model.config["image"] == [8, 8]
    assert package.meta["transfer_items"] == 1078
    assert "fitness_accuracy" not in package.meta


def test_the_loss_is_hintons_soft_targets_plus_hard_labels() -> None:
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(8, 10, generator=g), torch.randn(8, 10, generator=g)
    y = torch.randint(10, (8,), generator=g)
    ce = F.cross_entropy(s, y)
    assert torch.allclose(distillation_loss(s, t, y, temperature=4.0, alpha=0.0), ce)
    assert distillation_loss(t, t, y, temperature=4.0, alpha=1.0).abs() < 1e-6
    p_t = torch.softmax(t / 4, dim=1)
    kl = (p_t * (p_t.log() - torch.log_softmax(s / 4, dim=1))).sum(dim=1).mean()
    expected = 0.7 * kl * 16 + 0.3 * ce
    assert torch.allclose(distillation_loss(s, t, y, temperature=4.0, alpha=0.7), expected)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"temperature": "0"}, "'temperature' must be > 0"),
        ({"alpha": "1.5"}, r"'alpha' must be in \[0, 1\]"),
        ({"copies": -1}, "'copies' must be >= 0"),
        ({"architecture": "rnn"}, "unknown architecture"),
        ({"classes": 12}, r"does not take parameter\(s\) 'classes'"),
    ],
)
def test_bad_params_are_invalid_requests(
    tmp_path: Path,
    teacher: ParentInput,
    data: tuple[DataInput, DataInput],
    params: dict[str, object],
    message: str,
) -> None:
    with pytest.raises(InvalidRequest, match=message):
        distill(_job(tmp_path, teacher, data, **params), _quiet)


def test_distill_needs_exactly_one_torch_teacher_and_train_data(
    tmp_path: Path, teacher: ParentInput, data: tuple[DataInput, DataInput]
) -> None:
    none = Job(operator="distill", params={}, seed=0, data=data, out_dir=tmp_path)
    with pytest.raises(InvalidRequest, match="exactly one parent, got 0"):
        distill(none, _quiet)
    two = Job(
        operator="distill", params={}, seed=0, parents=(teacher, teacher), data=data,
        out_dir=tmp_path,
    )  # fmt: skip
    with pytest.raises(InvalidRequest, match="exactly one parent, got 2"):
        distill(two, _quiet)
    hf = ParentInput(
        id="sha256:cd", name="minilm", family="onnx", folder=tmp_path, max_bytes=BUDGET
    )
    with pytest.raises(InvalidRequest, match="needs a torch-family parent"):
        distill(_job(tmp_path, hf, data), _quiet)
    with pytest.raises(InvalidRequest, match="exactly one 'train' dataset"):
        distill(_job(tmp_path, teacher, data[1:]), _quiet)

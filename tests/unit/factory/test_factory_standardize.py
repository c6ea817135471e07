"""Tabular features on different scales: an MLP that standardizes its inputs with the
training split's statistics, stored in its weights (wine: proline in the hundreds, hue
near 1)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file
from sklearn.datasets import load_wine
from sklearn.model_selection import train_test_split

from breedlab.datasets import write_dataset
from breedlab.errors import InvalidRequest
from breedlab.factory.operators import distill, quantize, train
from breedlab.families import DEFAULT_MAX_BYTES as BUDGET
from breedlab.families.torch_family import TorchFamily, parameter_count
from breedlab.jobs import DataInput, Job, ParentInput


def _quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def wine(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    x, y = load_wine(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x.astype(np.float32), y, test_size=0.3, stratify=y, random_state=0
    )
    folder = tmp_path_factory.mktemp("wine") / "train"
    write_dataset(folder, x=x_train, y=y_train, ids=[f"wine-{i}" for i in range(len(y_train))])
    return {
        "train": DataInput(id="sha256:train", role="train", folder=folder),
        "x_train": x_train,
        "x_test": x_test,
        "y_test": y_test,
    }


def _train(out: Path, wine: dict[str, object], **params: object) -> Path:
    data = wine["train"]
    assert isinstance(data, DataInput)
    job = Job(operator="train", params=params, seed=3, data=(data,), out_dir=out)
    train(job, _quiet)
    return out / "model"


def _accuracy(folder: Path, wine: dict[str, object]) -> float:
    model = TorchFamily().load(folder)
    x, y = np.asarray(wine["x_test"]), np.asarray(wine["y_test"])
    return float((model.predict_proba(x).argmax(axis=1) == y).mean())


def test_the_statistics_are_the_train_splits_and_travel_with_the_weights(
    tmp_path: Path, wine: dict[str, object]
) -> None:
    folder = _train(tmp_path, wine, hidden=[16], epochs=40, standardize=True)
    state = load_file(folder / "model.safetensors")
    x = np.asarray(wine["x_train"], dtype=np.float64)
    np.testing.assert_allclose(state["input_mean"].numpy(), x.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(state["input_std"].numpy(), x.std(axis=0), rtol=1e-4)
    config = TorchFamily().load(folder).config
    assert config["standardize"] is True
    # 13 -> 16 -> 3 weights and biases, plus a mean and a std per feature
    assert parameter_count(config) == (13 * 16 + 16) + (16 * 3 + 3) + 2 * 13


def test_standardizing_is_what_lets_an_mlp_learn_wine(
    tmp_path: Path, wine: dict[str, object]
) -> None:
    raw = _accuracy(_train(tmp_path / "raw", wine, hidden=[16], epochs=40), wine)
    scaled = _accuracy(
        _train(tmp_path / "scaled", wine, hidden=[16], epochs=40, standardize=True), wine
    )
    assert scaled >= 0.9  # scikit-learn's own scaled MLP reaches ~0.95-1.0 on this split
    assert scaled > raw


def test_a_student_and_a_quantized_copy_keep_the_scaling(
    tmp_path: Path, wine: dict[str, object]
) -> None:
    teacher = _train(tmp_path / "teacher", wine, hidden=[32], epochs=40, standardize=True)
    parent = ParentInput(
        id="sha256:" + "a" * 64, name="wine-mlp", family="torch", folder=teacher, max_bytes=BUDGET
    )
    data = wine["train"]
    assert isinstance(data, DataInput)
    distill(
        Job(
            operator="distill",
            params={"hidden": [8], "epochs": 40, "copies": 0},
            seed=1,
            parents=(parent,),
            data=(data,),
            out_dir=tmp_path / "student",
        ),
        _quiet,
    )
    student = tmp_path / "student" / "model"
    assert TorchFamily().load(student).config["standardize"] is True
    assert _accuracy(student, wine) >= 0.85
    (tmp_path / "int8").mkdir()
    quantize(
        Job(
            operator="quantize",
            params={"scheme": "int8_pc"},
            seed=1,
            parents=(parent,),
            out_dir=tmp_path / "int8",
        ),
        _quiet,
    )
    int8 = tmp_path / "int8" / "model"
    state = load_file(int8 / "model.safetensors")
    assert state["input_mean"].dtype.is_floating_point  # statistics are not quantized
    assert abs(_accuracy(int8, wine) - _accuracy(teacher, wine)) <= 0.05


def test_standardize_is_for_mlps_and_a_boolean(tmp_path: Path, wine: dict[str, object]) -> None:
    with pytest.raises(InvalidRequest, match="standardize"):
        _train(tmp_path / "a", wine, hidden=[8], epochs=1, standardize="yes")
    with pytest.raises(InvalidRequest, match="standardize"):
        _train(tmp_path / "b", wine, architecture="cnn", epochs=1, standardize=True)

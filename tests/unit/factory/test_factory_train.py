"""The ``train`` operator: a champion reproducible from source (dataset, architecture, seed)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from breedlab.datasets import write_dataset
from breedlab.errors import InvalidRequest
from breedlab.evaluator.digits import digits_splits
from breedlab.factory.operators import train
from breedlab.factory.operators.augmentation import Augment, augment_rows, noisy, shifted
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


def _job(out_dir: Path, data: tuple[DataInput, ...], seed: int = 7, **params: object) -> Job:
    return Job(operator="train", params=params, seed=seed, data=data, out_dir=out_dir)


@pytest.fixture(scope="module")
def champion(
    tmp_path_factory: pytest.TempPathFactory, data: tuple[DataInput, DataInput]
) -> tuple[Path, OutputPackage, float]:
    out = tmp_path_factory.mktemp("champion")
    start = time.perf_counter()
    (package,) = train(_job(out, data), _quiet)
    return out, package, time.perf_counter() - start


def _accuracy(folder: Path, x: np.ndarray, y: np.ndarray) -> float:
    model = TorchFamily().load(folder)
    return float((model.predict_proba(x).argmax(axis=1) == y).mean())


def _hashes(out_dir: Path) -> dict[str, str]:
    return {
        str(p.relative_to(out_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out_dir.rglob("*"))
        if p.is_file()
    }


def test_the_default_mlp_champion_scores_at_least_0_9_on_clean_dev(
    champion: tuple[Path, OutputPackage, float],
) -> None:
    out, package, seconds = champion
    dev = digits_splits(0).dev
    accuracy = _accuracy(out / "model", dev.x, dev.y)
    print(f"train mlp [128, 64]: dev accuracy {accuracy:.4f}, {seconds:.2f} s, {package.meta}")
    assert accuracy >= 0.9
    assert sorted(p.name for p in (out / "model").iterdir()) == ["config.json", "model.safetensors"]


def test_train_returns_one_candidate_model_with_no_parents(
    champion: tuple[Path, OutputPackage, float],
) -> None:
    _, package, _ = champion
    assert (package.folder, package.kind, package.family, package.role) == (
        "model", "model", "torch", "candidate",
    )  # fmt: skip
    assert package.parents == ()
    assert package.name == "train-mlp"
    meta = dict(package.meta)
    assert meta["architecture"] == "mlp"
    assert isinstance(meta["train_accuracy"], str) and float(meta["train_accuracy"]) > 0.95
    assert isinstance(meta["fitness_accuracy"], str) and float(meta["fitness_accuracy"]) > 0.9
    assert 1 <= meta["best_epoch"] <= meta["epochs_run"] <= 30
    json.dumps(package.to_json())  # JSON-ready, no floats hiding in meta
    assert not any(isinstance(v, float) for v in meta.values())


def test_early_stopping_keeps_the_best_fitness_epoch(
    tmp_path: Path, data: tuple[DataInput, DataInput]
) -> None:
    (package,) = train(_job(tmp_path, data, epochs=12, patience=1, lr="0.01"), _quiet)
    run, best = package.meta["epochs_run"], package.meta["best_epoch"]
    assert run == 12 or run - best == 1


def test_without_a_fitness_set_every_epoch_runs(
    tmp_path: Path, data: tuple[DataInput, DataInput]
) -> None:
    (package,) = train(_job(tmp_path, data[:1], epochs=3), _quiet)
    assert package.meta["epochs_run"] == package.meta["best_epoch"] == 3
    assert "fitness_accuracy" not in package.meta


@pytest.mark.parametrize(
    "params",
    [
        {"architecture": "cnn", "channels": [8, 16], "hidden": [32], "epochs": 4},
        {"augment": "noise", "epochs": 4},
        {"augment": "shift", "epochs": 4},
    ],
    ids=["cnn", "noise", "shift"],
)
def test_variants_train_models_that_load_and_beat_chance(
    tmp_path: Path, data: tuple[DataInput, DataInput], params: dict[str, object]
) -> None:
    (package,) = train(_job(tmp_path, data, **params), _quiet)
    dev = digits_splits(0).dev
    accuracy = _accuracy(tmp_path / "model", dev.x, dev.y)
    print(f"train {params}: dev accuracy {accuracy:.4f}")
    assert accuracy > 0.8
    assert package.meta["augment"] == params.get("augment", "none")


def test_the_same_job_gives_byte_identical_files_in_other_dirs_and_processes(
    tmp_path: Path,
    data: tuple[DataInput, DataInput],
    champion: tuple[Path, OutputPackage, float],
) -> None:
    out, package, _ = champion
    code = (
        "import json, sys\n"
        "from breedlab.jobs import Job\n"
        "from breedlab.factory.operators.train import train\n"
        "(package,) = train(Job.from_json(json.loads(sys.argv[1])), lambda _: None)\n"
        "print(json.dumps(package.to_json()))\n"
    )
    runs = []
    for name in ("first", "second"):
        job = _job(tmp_path / name, data)
        runs.append(
            subprocess.Popen(
                [sys.executable, "-c", code, json.dumps(job.to_json())],
                stdout=subprocess.PIPE,
                text=True,
            )
        )
    reports = [run.communicate(timeout=120)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0]
    expected = _hashes(out)
    assert set(expected) == {"model/config.json", "model/model.safetensors"}
    assert _hashes(tmp_path / "first") == expected
    assert _hashes(tmp_path / "second") == expected
    assert [json.loads(r) for r in reports] == [package.to_json()] * 2


def test_another_seed_gives_other_weights(
    tmp_path: Path, data: tuple[DataInput, DataInput]
) -> None:
    for seed in (1, 2):
        train(_job(tmp_path / str(seed), data, seed=seed, epochs=1), _quiet)
    one = load_file(tmp_path / "1" / "model" / "model.safetensors")
    two = load_file(tmp_path / "2" / "model" / "model.safetensors")
    assert not torch.equal(one["head.weight"], two["head.weight"])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"architecture": "transformer"}, "unknown architecture"),
        ({"epochs": 0}, "'epochs' must be a positive integer"),
        ({"epochs": "5"}, "'epochs' must be an integer"),
        ({"lr": 0.01}, "decimal string"),
        ({"lr": "fast"}, "'lr' is not a number"),
        ({"lr": "-1"}, "'lr' must be > 0"),
        ({"batch_size": True}, "'batch_size' must be an integer"),
        ({"weight_decay": "-0.1"}, "'weight_decay' must be >= 0"),
        ({"hidden": []}, "'hidden' must be a non-empty list"),
        ({"hidden": [64, 0]}, "'hidden' must be a non-empty list"),
        ({"augment": "blur"}, "'augment' must be one of none, noise, shift"),
        ({"channels": [8]}, "'channels' is for architecture 'cnn'"),
        ({"architecture": "cnn", "image": [4, 4]}, "does not hold 64 inputs"),
        ({"classes": 5}, "labels need 10"),
        ({"learning_rate": "0.1"}, "does not take parameter(s) 'learning_rate'"),
    ],
)
def test_bad_params_are_invalid_requests(
    tmp_path: Path, data: tuple[DataInput, DataInput], params: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidRequest, match=message.replace("(", r"\(").replace(")", r"\)")):
        train(_job(tmp_path, data, **params), _quiet)
    assert not (tmp_path / "model").exists()


def test_train_refuses_two_parents_and_needs_a_train_dataset(
    tmp_path: Path, data: tuple[DataInput, DataInput]
) -> None:
    parent = ParentInput(
        id="sha256:abc", name="champ", family="torch", folder=tmp_path, max_bytes=BUDGET
    )
    job = Job(
        operator="train", params={}, seed=0, parents=(parent, parent), data=data, out_dir=tmp_path
    )
    with pytest.raises(InvalidRequest, match="at most one parent"):
        train(job, _quiet)
    with pytest.raises(InvalidRequest, match="exactly one 'train' dataset"):
        train(_job(tmp_path, data[1:]), _quiet)
    with pytest.raises(InvalidRequest, match="exactly one 'fitness' dataset"):
        train(_job(tmp_path, (data[0], data[1], data[1])), _quiet)


def test_fine_tuning_from_a_parent_keeps_its_architecture_and_names_it(
    tmp_path: Path,
    data: tuple[DataInput, DataInput],
    champion: tuple[Path, OutputPackage, float],
) -> None:
    out, _, _ = champion
    parent = ParentInput(
        id="sha256:champ", name="champ", family="torch", folder=out / "model", max_bytes=BUDGET
    )
    job = Job(
        operator="train",
        params={"epochs": 3, "augment": "noise", "hidden": [7]},
        seed=3,
        parents=(parent,),
        data=data,
        out_dir=tmp_path,
    )
    (tuned,) = train(job, _quiet)
    assert tuned.parents == ("sha256:champ",)
    before = TorchFamily().load(out / "model")
    after = TorchFamily().load(tmp_path / "model")
    assert after.config == before.config  # the parent's [128, 64], not the ignored [7]
    splits = digits_splits(0)
    assert _accuracy(tmp_path / "model", splits.dev.x, splits.dev.y) > 0.9


def test_shift_moves_every_image_by_one_pixel_and_fills_with_blank() -> None:
    image = torch.zeros(1, 16)
    image[0, 5] = 1.0  # row 1, column 1 of a 4x4 image
    generator = torch.Generator().manual_seed(0)
    moved = shifted(image.repeat(64, 1), (4, 4), generator, fill=0.0)
    positions = {int(row.argmax()) for row in moved}
    # the 8 neighbours of (1, 1) in a 4x4 image, each reached by some draw
    assert positions == {0, 1, 2, 4, 6, 8, 9, 10}
    assert torch.equal(moved.sum(dim=1), torch.ones(64))


def test_augmentation_is_seeded_clipped_and_leaves_about_half_the_rows_clean() -> None:
    x = torch.rand(400, 64)
    args = {"sigma": 0.3, "shape": (8, 8), "low": 0.0, "high": 1.0}
    a = augment_rows(x, Augment.NOISE, torch.Generator().manual_seed(3), **args)  # type: ignore[arg-type]
    b = augment_rows(x, Augment.NOISE, torch.Generator().manual_seed(3), **args)  # type: ignore[arg-type]
    assert torch.equal(a, b)
    clean = (a == x).all(dim=1).float().mean().item()
    assert 0.4 < clean < 0.6
    assert augment_rows(x, Augment.NONE, torch.Generator(), **args) is x  # type: ignore[arg-type]
    noisy_x = noisy(x, 5.0, torch.Generator().manual_seed(0), 0.0, 1.0)
    assert noisy_x.min() >= 0 and noisy_x.max() <= 1


def test_tabular_augmentation_is_in_std_units_and_imputes_an_exact_count_of_means() -> None:
    from breedlab.factory.operators.augmentation import feature_noisy, mean_imputed

    x = torch.zeros(20000, 3)
    std = torch.tensor([1000.0, 1.0, 0.0])  # proline-like, hue-like, constant
    moved = feature_noisy(x, 0.3, std, torch.Generator().manual_seed(0))
    spread = moved.std(dim=0)
    assert abs(spread[0].item() - 300.0) < 15 and abs(spread[1].item() - 0.3) < 0.015
    assert spread[2].item() == 0.0  # a constant feature stays put
    rows = torch.arange(10.0).repeat(500, 1)  # 500 rows of 10 features
    mean = torch.full((10,), -1.0)
    imputed = mean_imputed(rows, 0.25, mean, torch.Generator().manual_seed(1))
    replaced = imputed == -1.0
    assert torch.equal(replaced.sum(dim=1), torch.full((500,), 3))  # round_half_up(2.5)
    assert torch.equal(imputed[~replaced], rows[~replaced])
    assert replaced.any(dim=0).all()  # every feature is drawn by some row
    x = torch.rand(400, 3)
    args = {"sigma": 0.3, "shape": (0, 0), "low": 0.0, "high": 1.0, "std": std, "mean": mean[:3]}
    a = augment_rows(x, Augment.MISSING, torch.Generator().manual_seed(3), **args)  # type: ignore[arg-type]
    b = augment_rows(x, Augment.MISSING, torch.Generator().manual_seed(3), **args)  # type: ignore[arg-type]
    assert torch.equal(a, b) and 0.4 < (a == x).all(dim=1).float().mean().item() < 0.6

"""The ``adapter`` operator: LoRA via PEFT on a failure cluster; the adapter and merged model."""

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
from safetensors import safe_open
from safetensors.torch import load_file

from breedlab.datasets import write_dataset
from breedlab.errors import InvalidRequest
from breedlab.evaluator.digits import digits_splits
from breedlab.evaluator.perturbations import GaussianNoise, perturb
from breedlab.factory.operators import adapter, train
from breedlab.factory.operators.adapter import ADAPTER_FILES, lora_targets
from breedlab.families import DEFAULT_MAX_BYTES as BUDGET
from breedlab.families.torch_family import TorchFamily, build_module
from breedlab.jobs import DataInput, Job, OutputPackage, ParentInput

NOISE = GaussianNoise(sigma=0.3)


def _quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, DataInput]:
    """train and fitness splits, and a noise cluster: σ=0.3 copies of every third train item
    (the failure cluster of a round that targets the noise perturbation)."""
    root = tmp_path_factory.mktemp("digits")
    splits = digits_splits(0)
    inputs = {}
    for split in (splits.train, splits.fitness):
        folder = root / split.name.value
        write_dataset(folder, x=split.x, y=split.y, ids=split.item_ids)
        inputs[split.name.value] = DataInput(
            id=f"sha256:{split.name.value}", role=split.name.value, folder=folder
        )
    rows = np.arange(0, len(splits.train), 3)
    ids = [splits.train.item_ids[i] for i in rows]
    noisy = perturb(NOISE, splits.train.x[rows], item_ids=ids, seed=5)
    write_dataset(
        root / "cluster", x=noisy, y=splits.train.y[rows], ids=[f"{i}~noise" for i in ids]
    )
    inputs["cluster"] = DataInput(id="sha256:cluster", role="cluster", folder=root / "cluster")
    return inputs


@pytest.fixture(scope="module")
def champion(tmp_path_factory: pytest.TempPathFactory, data: dict[str, DataInput]) -> ParentInput:
    out = tmp_path_factory.mktemp("champion")
    job = Job(
        operator="train", params={}, seed=3, data=(data["train"], data["fitness"]), out_dir=out
    )
    train(job, _quiet)
    return ParentInput(
        id="sha256:" + "c0" * 32,
        name="digits-mlp",
        family="torch",
        folder=out / "model",
        max_bytes=BUDGET,
    )


def _job(out_dir: Path, parent: ParentInput, data: tuple[DataInput, ...], **params: object) -> Job:
    return Job(
        operator="adapter",
        params=params,
        seed=5,
        parents=(parent,),
        data=data,
        out_dir=out_dir,
        failure_cluster="noise σ=0.3",
    )


@pytest.fixture(scope="module")
def tuned(
    tmp_path_factory: pytest.TempPathFactory,
    champion: ParentInput,
    data: dict[str, DataInput],
) -> tuple[Path, tuple[OutputPackage, ...], float]:
    out = tmp_path_factory.mktemp("adapter")
    start = time.perf_counter()
    packages = adapter(_job(out, champion, (data["train"], data["cluster"])), _quiet)
    return out, packages, time.perf_counter() - start


def _hashes(out_dir: Path) -> dict[str, str]:
    return {
        str(p.relative_to(out_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out_dir.rglob("*"))
        if p.is_file()
    }


def _accuracy(folder: Path, x: np.ndarray, y: np.ndarray) -> float:
    model = TorchFamily().load(folder)
    return float((model.predict_proba(x).argmax(axis=1) == y).mean())


def test_the_merged_model_is_no_worse_than_its_parent_on_the_cluster(
    champion: ParentInput,
    data: dict[str, DataInput],
    tuned: tuple[Path, tuple[OutputPackage, ...], float],
) -> None:
    out, (_, merged), seconds = tuned
    from breedlab.datasets import read_dataset

    cluster = read_dataset(data["cluster"].folder)
    dev = digits_splits(0).dev
    noisy_dev = perturb(NOISE, dev.x, item_ids=dev.item_ids, seed=9)
    figures = {
        name: (
            _accuracy(folder, cluster.x, cluster.y),
            _accuracy(folder, dev.x, dev.y),
            _accuracy(folder, noisy_dev, dev.y),
        )
        for name, folder in (("parent", champion.folder), ("merged", out / "model"))
    }
    print(f"adapter ({seconds:.2f} s incl. PEFT import): cluster / dev / noisy dev = {figures}")
    print(f"adapter meta: {merged.meta}")
    assert figures["merged"][0] >= figures["parent"][0]
    assert figures["merged"][1] >= 0.9  # replay keeps the clean task
    assert float(merged.meta["cluster_accuracy"]) >= float(merged.meta["cluster_accuracy_parent"])


def test_adapter_returns_the_adapter_artifact_and_the_merged_candidate(
    champion: ParentInput, tuned: tuple[Path, tuple[OutputPackage, ...], float]
) -> None:
    _, (lora, merged), _ = tuned
    assert (lora.folder, lora.kind, lora.family, lora.role, lora.parents) == (
        "adapter", "adapter", "peft-lora", "artifact", (champion.id,),
    )  # fmt: skip
    assert (merged.folder, merged.kind, merged.family, merged.role, merged.parents) == (
        "model", "model", "torch", "candidate", (champion.id, "output:adapter"),
    )  # fmt: skip
    assert lora.meta["target_modules"] == ["head", "hidden.0", "hidden.1"]
    assert lora.meta["cluster_items"] == 360
    assert lora.meta["replay_items"] == round(0.3 * 360 / 0.7)
    assert lora.meta["failure_cluster"] == "noise σ=0.3"
    json.dumps([lora.to_json(), merged.to_json()])


def test_the_adapter_folder_holds_only_safetensors_and_json_no_pickle(
    tuned: tuple[Path, tuple[OutputPackage, ...], float],
) -> None:
    out, _, _ = tuned
    folder = out / "adapter"
    assert sorted(p.name for p in folder.iterdir()) == sorted(ADAPTER_FILES)
    for path in folder.iterdir():
        head = path.read_bytes()[:2]
        assert head[:1] != b"\x80" and head != b"PK", f"{path.name} looks pickled / torch-zipped"
    with safe_open(str(folder / "adapter_model.safetensors"), "pt") as f:
        keys = sorted(f.keys())
    assert keys and all(".lora_A." in k or ".lora_B." in k for k in keys)
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["target_modules"] == ["head", "hidden.0", "hidden.1"]
    assert config["base_model_name_or_path"] is None
    assert (config["r"], config["lora_alpha"], config["lora_dropout"]) == (4, 8, 0.0)
    assert str(out) not in (folder / "adapter_config.json").read_text()


def test_the_adapter_reloads_with_peft_and_matches_the_merged_model(
    champion: ParentInput, tuned: tuple[Path, tuple[OutputPackage, ...], float]
) -> None:
    from peft import PeftModel

    out, _, _ = tuned
    parent = TorchFamily().load(champion.folder)
    base = build_module(parent.config)
    base.load_state_dict(parent.module.state_dict())
    reloaded = PeftModel.from_pretrained(base, str(out / "adapter")).eval()
    x = torch.from_numpy(digits_splits(0).dev.x.astype(np.float32))
    merged = TorchFamily().load(out / "model")
    with torch.no_grad():
        via_peft = reloaded(x)
    assert torch.allclose(via_peft, merged.logits(x), atol=1e-5)
    assert not torch.allclose(via_peft, parent.logits(x), atol=1e-3)  # it did learn something


def test_the_same_job_gives_byte_identical_files_in_other_dirs_and_processes(
    tmp_path: Path,
    champion: ParentInput,
    data: dict[str, DataInput],
    tuned: tuple[Path, tuple[OutputPackage, ...], float],
) -> None:
    out, packages, _ = tuned
    code = (
        "import json, sys\n"
        "from breedlab.jobs import Job\n"
        "from breedlab.factory.operators.adapter import adapter\n"
        "packages = adapter(Job.from_json(json.loads(sys.argv[1])), lambda _: None)\n"
        "print(json.dumps([p.to_json() for p in packages]))\n"
    )
    runs = []
    for name in ("first", "second"):
        job = _job(tmp_path / name, champion, (data["train"], data["cluster"]))
        runs.append(
            subprocess.Popen(
                [sys.executable, "-c", code, json.dumps(job.to_json())],
                stdout=subprocess.PIPE,
                text=True,
            )
        )
    reports = [run.communicate(timeout=180)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0]
    expected = _hashes(out)
    assert set(expected) == {
        "adapter/adapter_config.json", "adapter/adapter_model.safetensors",
        "model/config.json", "model/model.safetensors",
    }  # fmt: skip
    assert _hashes(tmp_path / "first") == expected
    assert _hashes(tmp_path / "second") == expected
    assert [json.loads(r) for r in reports] == [[p.to_json() for p in packages]] * 2


def test_a_cnn_parent_gets_lora_on_its_convolutions_too(
    tmp_path: Path, data: dict[str, DataInput]
) -> None:
    from peft import PeftModel

    params = {"architecture": "cnn", "channels": [4], "hidden": [16], "epochs": 2}
    job = Job(
        operator="train", params=params, seed=1, data=(data["train"],), out_dir=tmp_path / "cnn"
    )
    train(job, _quiet)
    parent = ParentInput(
        id="sha256:cnn",
        name="digits-cnn",
        family="torch",
        folder=tmp_path / "cnn" / "model",
        max_bytes=BUDGET,
    )
    lora, _ = adapter(
        _job(tmp_path / "out", parent, (data["cluster"],), replay="0", epochs=2), _quiet
    )
    assert lora.meta["target_modules"] == ["conv.0", "head", "hidden.0"]
    assert lora.meta["replay_items"] == 0
    base = TorchFamily().load(parent.folder).module
    reloaded = PeftModel.from_pretrained(base, str(tmp_path / "out" / "adapter")).eval()
    x = torch.from_numpy(digits_splits(0).dev.x[:50].astype(np.float32))
    with torch.no_grad():
        assert torch.allclose(
            reloaded(x), TorchFamily().load(tmp_path / "out" / "model").logits(x), atol=1e-5
        )


def test_the_default_targets_are_every_linear_and_conv_layer() -> None:
    mlp = build_module({"architecture": "mlp", "inputs": 64, "hidden": [8, 8], "classes": 10})
    assert lora_targets(mlp) == ["hidden.0", "hidden.1", "head"]
    cnn = build_module({
        "architecture": "cnn", "inputs": 64, "image": [8, 8], "channels": [2, 2],
        "hidden": [8], "classes": 10,
    })  # fmt: skip
    assert lora_targets(cnn) == ["conv.0", "conv.1", "hidden.0", "head"]


def test_targets_can_be_narrowed(
    tmp_path: Path, champion: ParentInput, data: dict[str, DataInput]
) -> None:
    lora, _ = adapter(
        _job(tmp_path, champion, (data["cluster"],), targets=["head"], replay="0", epochs=1),
        _quiet,
    )
    assert lora.meta["target_modules"] == ["head"]
    keys = load_file(tmp_path / "adapter" / "adapter_model.safetensors")
    assert sorted(keys) == [
        "base_model.model.head.lora_A.weight",
        "base_model.model.head.lora_B.weight",
    ]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"targets": ["hidden.0", "hidden"]}, r"targets \['hidden'\] are not Linear/Conv2d"),
        ({"targets": []}, "'targets' must be a non-empty list"),
        ({"r": 0}, "'r' must be a positive integer"),
        ({"lora_alpha": "8"}, "'lora_alpha' must be an integer"),
        ({"replay": "1"}, r"'replay' must be in \[0, 1\)"),
        ({"lr": "nan"}, "'lr' must be finite"),
        ({"steps": 10}, r"does not take parameter\(s\) 'steps'"),
    ],
)
def test_bad_params_are_invalid_requests(
    tmp_path: Path,
    champion: ParentInput,
    data: dict[str, DataInput],
    params: dict[str, object],
    message: str,
) -> None:
    with pytest.raises(InvalidRequest, match=message):
        adapter(_job(tmp_path, champion, (data["train"], data["cluster"]), **params), _quiet)
    assert not (tmp_path / "adapter").exists()


def test_adapter_needs_one_torch_parent_a_cluster_and_replay_data(
    tmp_path: Path, champion: ParentInput, data: dict[str, DataInput]
) -> None:
    hf = ParentInput(
        id="sha256:cd", name="minilm", family="onnx", folder=tmp_path, max_bytes=BUDGET
    )
    with pytest.raises(InvalidRequest, match="needs a torch-family parent"):
        adapter(_job(tmp_path, hf, (data["train"], data["cluster"])), _quiet)
    none = Job(operator="adapter", params={}, seed=0, data=(data["cluster"],), out_dir=tmp_path)
    with pytest.raises(InvalidRequest, match="exactly one parent, got 0"):
        adapter(none, _quiet)
    with pytest.raises(InvalidRequest, match="exactly one 'cluster' dataset"):
        adapter(_job(tmp_path, champion, (data["train"],)), _quiet)
    with pytest.raises(InvalidRequest, match="exactly one 'train' dataset"):
        adapter(_job(tmp_path, champion, (data["cluster"],)), _quiet)

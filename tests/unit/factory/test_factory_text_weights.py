"""quantize and merge on transformers-family parents (a bare encoder with a linear head):
the same tensor-level operators, the package's config, head and tokenizer carried over."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from breedlab.errors import InvalidRequest
from breedlab.factory.operators import merge, quantize
from breedlab.families import DEFAULT_MAX_BYTES as BUDGET
from breedlab.families import load_model
from breedlab.families.torch_family import build_module, save_torch_model
from breedlab.jobs import Job, ParentInput
from text_models import save_tiny_encoder_classifier

TEXTS = ["the movie was good", "an awful boring plot", "not very fun", "great actor"]


def _quiet(_: str) -> None:
    pass


def _text_parent(root: Path, name: str, *, seed: int, classes: int = 2) -> ParentInput:
    folder = save_tiny_encoder_classifier(root / name, seed=seed, classes=classes)
    return ParentInput(
        id=f"sha256:{name}", name=name, family="transformers", folder=folder, max_bytes=BUDGET
    )


def _job(operator: str, params: dict[str, str], parents: tuple[ParentInput, ...], out: Path) -> Job:
    out.mkdir()
    return Job(operator=operator, params=params, seed=0, parents=parents, out_dir=out)


@pytest.mark.parametrize(("scheme", "tolerance"), [("int8_pc", 0.02), ("int4_g32", 0.25)])
def test_a_quantized_text_model_keeps_its_files_and_predicts_like_its_parent(
    tmp_path: Path, scheme: str, tolerance: float
) -> None:
    parent = _text_parent(tmp_path, "p", seed=0)
    [package] = quantize(_job("quantize", {"scheme": scheme}, (parent,), tmp_path / "q"), _quiet)
    out = tmp_path / "q" / "model"
    assert package.family == "transformers" and package.meta["quantization"] == scheme
    files = {p.name for p in parent.folder.iterdir()} - {"model.safetensors"}
    assert {"config.json", "head.json", "tokenizer.json"} <= files
    for name in files:
        assert (out / name).read_bytes() == (parent.folder / name).read_bytes()
    before = load_model(parent.folder, "transformers").predict_proba(TEXTS)
    after = load_model(out, "transformers").predict_proba(TEXTS)
    assert np.max(np.abs(after - before)) < tolerance
    weights = "model.safetensors"
    assert (out / weights).stat().st_size < (parent.folder / weights).stat().st_size


def test_a_linear_merge_of_text_models_is_the_mean_of_their_tensors(tmp_path: Path) -> None:
    a = _text_parent(tmp_path, "a", seed=0)
    b = _text_parent(tmp_path, "b", seed=1)
    [package] = merge(_job("merge", {"method": "linear"}, (a, b), tmp_path / "m"), _quiet)
    assert package.family == "transformers" and package.parents == (a.id, b.id)
    merged = load_file(str(tmp_path / "m" / "model" / "model.safetensors"))
    ta = load_file(str(a.folder / "model.safetensors"))
    tb = load_file(str(b.folder / "model.safetensors"))
    assert set(merged) == set(ta)
    for name, tensor in merged.items():
        torch.testing.assert_close(tensor, (ta[name] + tb[name]) / 2)
    probs = load_model(tmp_path / "m" / "model", "transformers").predict_proba(TEXTS)
    assert probs.shape == (len(TEXTS), 2)


def test_text_models_with_heads_of_different_widths_are_not_merged(tmp_path: Path) -> None:
    a = _text_parent(tmp_path, "a", seed=0, classes=2)
    b = _text_parent(tmp_path, "b", seed=1, classes=3)
    with pytest.raises(InvalidRequest, match=r"mismatched architectures.*2 head classes"):
        merge(_job("merge", {"method": "linear"}, (a, b), tmp_path / "m"), _quiet)
    assert not (tmp_path / "m" / "model").exists()


def test_a_merge_refuses_parents_of_two_families(tmp_path: Path) -> None:
    text = _text_parent(tmp_path, "t", seed=0)
    config = {"architecture": "mlp", "inputs": 8, "hidden": [4], "classes": 2}
    save_torch_model(tmp_path / "mlp", config, build_module(config))
    mlp = ParentInput(
        id="sha256:mlp", name="mlp", family="torch", folder=tmp_path / "mlp", max_bytes=BUDGET
    )
    with pytest.raises(InvalidRequest, match="one family"):
        merge(_job("merge", {"method": "linear"}, (text, mlp), tmp_path / "m"), _quiet)


def test_an_adapter_package_is_not_quantized(tmp_path: Path) -> None:
    parent = _text_parent(tmp_path, "p", seed=0)
    lora = ParentInput(
        id="sha256:l", name="l", family="peft-lora", folder=parent.folder, max_bytes=BUDGET
    )
    with pytest.raises(InvalidRequest, match="needs torch or transformers parents"):
        quantize(_job("quantize", {}, (lora,), tmp_path / "q"), _quiet)

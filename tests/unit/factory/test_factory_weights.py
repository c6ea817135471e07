"""The weight operators: quantize and merge through the operator contract."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from breedlab.errors import InvalidRequest
from breedlab.evaluator.digits import digits_splits
from breedlab.factory.operators import merge, quantize
from breedlab.families import DEFAULT_MAX_BYTES as BUDGET
from breedlab.families.torch_family import TorchFamily, build_module, save_torch_model
from breedlab.jobs import Job, ParentInput


def _quiet(_: str) -> None:
    pass


def _model(root: Path, name: str, hidden: list[int], seed: int) -> ParentInput:
    torch.manual_seed(seed)
    config = {"architecture": "mlp", "inputs": 64, "hidden": hidden, "classes": 10}
    folder = root / name
    save_torch_model(folder, config, build_module(config))
    return ParentInput(
        id=f"sha256:{name}", name=name, family="torch", folder=folder, max_bytes=BUDGET
    )


def test_quantized_models_load_and_predict_like_their_parent(tmp_path: Path) -> None:
    parent = _model(tmp_path, "p", [32], 0)
    x = digits_splits(0).dev.x.astype(np.float32)
    before = TorchFamily().load(parent.folder).predict_proba(x)
    for scheme, tolerance in (("int8_pc", 0.02), ("int4_g32", 0.2)):
        out = tmp_path / scheme
        out.mkdir()
        job = Job(
            operator="quantize", params={"scheme": scheme}, seed=0, parents=(parent,), out_dir=out
        )
        [package] = quantize(job, _quiet)
        assert package.parents == (parent.id,) and package.meta["quantization"] == scheme
        after = TorchFamily().load(out / "model").predict_proba(x)
        assert np.max(np.abs(after - before)) < tolerance
        assert (out / "model" / "model.safetensors").stat().st_size < (
            parent.folder / "model.safetensors"
        ).stat().st_size


def test_mismatched_architectures_in_a_merge_are_a_clear_error(tmp_path: Path) -> None:
    a = _model(tmp_path, "a", [32], 0)
    b = _model(tmp_path, "b", [16], 1)
    job = Job(
        operator="merge", params={"method": "linear"}, seed=0, parents=(a, b), out_dir=tmp_path
    )
    with pytest.raises(InvalidRequest, match="mismatched architectures in a merge"):
        merge(job, _quiet)
    assert not (tmp_path / "model").exists()


def test_a_merge_output_loads_and_names_every_parent(tmp_path: Path) -> None:
    a = _model(tmp_path, "a", [32], 0)
    b = _model(tmp_path, "b", [32], 1)
    out = tmp_path / "out"
    out.mkdir()
    job = Job(
        operator="merge",
        params={"method": "ties", "density": "0.5"},
        seed=3,
        parents=(a, b),
        out_dir=out,
    )
    [package] = merge(job, _quiet)
    assert package.parents == (a.id, b.id)
    assert package.meta["merge"]["method"] == "ties"
    probs = TorchFamily().load(out / "model").predict_proba(np.zeros((2, 64), np.float32))
    assert probs.shape == (2, 10)


def test_merge_and_quantize_refuse_bad_parameters(tmp_path: Path) -> None:
    a = _model(tmp_path, "a", [32], 0)
    with pytest.raises(InvalidRequest, match="at least 2 parents"):
        merge(
            Job(
                operator="merge",
                params={"method": "linear"},
                seed=0,
                parents=(a,),
                out_dir=tmp_path,
            ),
            _quiet,
        )
    with pytest.raises(InvalidRequest):
        quantize(
            Job(
                operator="quantize",
                params={"scheme": "int3"},
                seed=0,
                parents=(a,),
                out_dir=tmp_path / "q",
            ),
            _quiet,
        )

"""Streaming merges of safetensors files: equal to the in-memory result, deterministic,
and refusing parents of different architectures."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from mergekit.merge_methods.api import merge_state_dicts
from safetensors.torch import load_file, save_file

from breedlab.errors import InvalidRequest
from breedlab.factory.merge import MergeSpec, merge_files, merge_tensor

ARCH = {
    "model.embed_tokens.weight": ((64, 16), torch.float32),
    "model.layers.0.self_attn.q_proj.weight": ((16, 16), torch.float32),
    "model.layers.0.mlp.up_proj.weight": ((40, 16), torch.float32),
    "model.layers.0.input_layernorm.weight": ((16,), torch.float16),
    "lm_head.weight": ((64, 16), torch.bfloat16),
}


def _model(seed: int, base: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    tensors = {}
    for name, (shape, dtype) in ARCH.items():
        noise = torch.randn(shape, generator=g)
        start = noise if base is None else base[name].float() + 0.05 * noise
        tensors[name] = start.to(dtype)
    tensors["model.position_ids"] = torch.arange(12).reshape(1, 12)
    return tensors


@pytest.fixture
def family(tmp_path: Path) -> tuple[Path, list[Path]]:
    """A base model file and three fine-tuned parents."""
    base = _model(0)
    save_file(base, tmp_path / "base.safetensors")
    parents = []
    for i in (1, 2, 3):
        save_file(_model(i, base), tmp_path / f"p{i}.safetensors")
        parents.append(tmp_path / f"p{i}.safetensors")
    return tmp_path / "base.safetensors", parents


SPECS = [
    MergeSpec(method="linear", weights=(0.2, 0.3, 0.5)),
    MergeSpec(method="task_arithmetic", weights=(0.5, 0.5, 0.5), lambda_=0.7),
    MergeSpec(method="slerp", t=0.3),
    MergeSpec(method="ties", density=0.5, weights=(1.0, 0.8, 0.6)),
    MergeSpec(method="dare", density=0.5, seed=7),
    MergeSpec(method="dare", density=0.3, consensus=None, rescale="l1", seed=7),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.method}-{s.consensus}")
def test_streaming_merge_of_files_equals_the_in_memory_per_tensor_merge(
    tmp_path: Path, family: tuple[Path, list[Path]], spec: MergeSpec
) -> None:
    base_path, parent_paths = family
    if spec.method == "slerp":
        parent_paths = parent_paths[:1]
    base_file = None if spec.method == "linear" else base_path
    out = tmp_path / "child.safetensors"
    report = merge_files(parent_paths, out, spec, base=base_file)

    merged = load_file(out)
    base = None if base_file is None else load_file(base_file)
    parents = [load_file(p) for p in parent_paths]
    assert set(merged) == set(parents[0])
    for name, tensor in merged.items():
        expected = merge_tensor(
            spec, [p[name] for p in parents], None if base is None else base[name], name=name
        )
        assert tensor.dtype == parents[0][name].dtype
        assert torch.equal(tensor, expected), name
    assert (report.tensors, report.merged, report.copied) == (6, 5, 1)
    assert report.parameters == sum(t.numel() for t in merged.values())
    assert report.size == out.stat().st_size


def test_the_streamed_file_is_what_save_file_writes_for_the_in_memory_merge(
    tmp_path: Path, family: tuple[Path, list[Path]]
) -> None:
    base_path, parent_paths = family
    spec = MergeSpec(method="ties", density=0.4)
    merge_files(parent_paths, tmp_path / "streamed.safetensors", spec, base=base_path)
    base, parents = load_file(base_path), [load_file(p) for p in parent_paths]
    in_memory = {
        name: merge_tensor(spec, [p[name] for p in parents], base[name], name=name) for name in base
    }
    save_file(in_memory, tmp_path / "saved.safetensors")
    streamed = (tmp_path / "streamed.safetensors").read_bytes()
    assert streamed == (tmp_path / "saved.safetensors").read_bytes()


def test_a_streamed_ties_merge_equals_mergekit_merging_the_state_dicts(
    tmp_path: Path, family: tuple[Path, list[Path]]
) -> None:
    base_path, parent_paths = family
    merge_files(
        parent_paths,
        tmp_path / "ours.safetensors",
        MergeSpec(method="ties", density=0.5),
        base_path,
    )
    fp32 = {n for n, (_, dtype) in ARCH.items() if dtype == torch.float32}
    models = {"base": load_file(base_path)} | {p.stem: load_file(p) for p in parent_paths}
    states = {key: {n: t for n, t in sd.items() if n in fp32} for key, sd in models.items()}
    theirs = merge_state_dicts(
        states, "ties", parameters={"density": 0.5, "weight": 1.0}, base="base"
    )
    ours = load_file(tmp_path / "ours.safetensors")
    for name in fp32:
        torch.testing.assert_close(ours[name], theirs[name], rtol=1e-6, atol=1e-6)


def test_the_same_seed_gives_byte_identical_files_and_another_seed_does_not(
    tmp_path: Path, family: tuple[Path, list[Path]]
) -> None:
    base_path, parent_paths = family

    def run(seed: int, out: str) -> bytes:
        merge_files(
            parent_paths,
            tmp_path / out,
            MergeSpec(method="dare", density=0.5, seed=seed),
            base_path,
        )
        return (tmp_path / out).read_bytes()

    first = run(1, "a.safetensors")
    assert run(1, "b.safetensors") == first
    assert run(2, "c.safetensors") != first


def _save_variant(tmp_path: Path, name: str, change: dict[str, torch.Tensor | None]) -> Path:
    tensors = _model(9, _model(0))
    for key, value in change.items():
        if value is None:
            del tensors[key]
        else:
            tensors[key] = value
    save_file(tensors, tmp_path / name)
    return tmp_path / name


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"model.layers.0.mlp.up_proj.weight": torch.zeros(41, 16)},
            r"mismatched architectures: tensor 'model.layers.0.mlp.up_proj.weight' "
            r"is F32 \(40, 16\) in base .*base.safetensors "
            r"but F32 \(41, 16\) in parent .*odd.safetensors",
        ),
        (
            {"model.layers.0.input_layernorm.weight": torch.ones(16)},
            r"tensor 'model.layers.0.input_layernorm.weight' is F16 \(16,\) in base .* but F32",
        ),
        (
            {"lm_head.weight": None},
            r"1 tensor\(s\) of base .*base.safetensors are not in parent .*odd.safetensors "
            r"\(e.g. 'lm_head.weight'\)",
        ),
        (
            {"model.layers.1.mlp.up_proj.weight": torch.zeros(40, 16)},
            r"1 tensor\(s\) of parent .*odd.safetensors are not in base",
        ),
    ],
    ids=["shape", "dtype", "missing", "extra"],
)
def test_parents_of_different_architectures_are_refused_naming_the_tensor_and_the_files(
    tmp_path: Path,
    family: tuple[Path, list[Path]],
    change: dict[str, torch.Tensor | None],
    message: str,
) -> None:
    base_path, parent_paths = family
    odd = _save_variant(tmp_path, "odd.safetensors", change)
    out = tmp_path / "child.safetensors"
    with pytest.raises(InvalidRequest, match=message):
        merge_files([parent_paths[0], odd], out, MergeSpec(method="ties", density=0.5), base_path)
    assert not out.exists()
    assert not out.with_name(out.name + ".partial").exists()


def test_differing_integer_buffers_are_refused_and_leave_no_file(
    tmp_path: Path, family: tuple[Path, list[Path]]
) -> None:
    _, parent_paths = family
    odd = _save_variant(
        tmp_path, "odd.safetensors", {"model.position_ids": torch.zeros(1, 12, dtype=torch.int64)}
    )
    out = tmp_path / "child.safetensors"
    with pytest.raises(
        InvalidRequest, match=r"'model\.position_ids' is not floating point and differs"
    ):
        merge_files([parent_paths[0], odd], out, MergeSpec(method="linear"))
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("child")) == []


def test_an_output_that_names_an_input_or_an_unreadable_input_is_refused(
    tmp_path: Path, family: tuple[Path, list[Path]]
) -> None:
    _, parent_paths = family
    before = parent_paths[0].read_bytes()
    with pytest.raises(InvalidRequest, match="is one of its inputs"):
        merge_files(parent_paths, parent_paths[0], MergeSpec(method="linear"))
    assert parent_paths[0].read_bytes() == before
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(InvalidRequest, match=r"cannot read safetensors file .*junk"):
        merge_files(
            [tmp_path / "junk.safetensors"], tmp_path / "o.safetensors", MergeSpec(method="linear")
        )
    with pytest.raises(InvalidRequest, match=r"cannot read safetensors file .*missing"):
        merge_files(
            [tmp_path / "missing.safetensors"],
            tmp_path / "o.safetensors",
            MergeSpec(method="linear"),
        )


def test_a_spec_that_does_not_fit_the_files_is_refused_before_anything_is_read(
    tmp_path: Path, family: tuple[Path, list[Path]]
) -> None:
    _, parent_paths = family
    with pytest.raises(InvalidRequest, match="2 weights for 3 parents"):
        merge_files(
            parent_paths, tmp_path / "o.safetensors", MergeSpec(method="linear", weights=(1, 2))
        )
    with pytest.raises(InvalidRequest, match="needs a base model"):
        merge_files(parent_paths, tmp_path / "o.safetensors", MergeSpec(method="ties", density=0.5))
    assert not (tmp_path / "o.safetensors").exists()

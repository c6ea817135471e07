"""The incremental safetensors writer against safetensors' own writer and reader."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from breedlab.errors import InvalidRequest
from breedlab.tensors.stream import (
    DTYPE_NAMES,
    SafetensorsWriter,
    TensorSpec,
    write_file,
)


def _every_dtype() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    tensors: dict[str, torch.Tensor] = {}
    for i, dtype in enumerate(DTYPE_NAMES):
        # Names run against dtype order, so the layout must come from the dtype rank.
        name = f"t{len(DTYPE_NAMES) - i:02d}.{str(dtype).removeprefix('torch.')}"
        raw = torch.randint(0, 255, (3, i % 4 + 1), dtype=torch.uint8, generator=g)
        width = dtype.itemsize
        tensors[name] = raw.repeat(1, width).view(dtype) if width > 1 else raw.view(dtype)
    tensors["scalar"] = torch.tensor(1.5)
    tensors["empty"] = torch.zeros(0, 3)
    tensors["naïve.ünïcode"] = torch.arange(5, dtype=torch.int64)
    return tensors


def test_streamed_file_is_byte_identical_to_save_file_for_every_dtype(tmp_path: Path) -> None:
    tensors = _every_dtype()
    save_file(tensors, tmp_path / "theirs.safetensors", metadata={"format": "pt"})
    write_file(tensors, tmp_path / "ours.safetensors", metadata={"format": "pt"})
    ours = (tmp_path / "ours.safetensors").read_bytes()
    assert ours == (tmp_path / "theirs.safetensors").read_bytes()


def test_streamed_file_without_metadata_is_byte_identical_to_save_file(tmp_path: Path) -> None:
    tensors = {"b": torch.ones(2, 3), "a": torch.zeros(4, dtype=torch.float16)}
    save_file(tensors, tmp_path / "theirs.safetensors")
    write_file(tensors, tmp_path / "ours.safetensors")
    theirs = (tmp_path / "theirs.safetensors").read_bytes()
    assert (tmp_path / "ours.safetensors").read_bytes() == theirs


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.dictionaries(
        st.text(min_size=1, max_size=8).filter(lambda s: s != "__metadata__"),
        st.tuples(
            st.sampled_from(
                [torch.float32, torch.float16, torch.bfloat16, torch.int8, torch.int64]
            ),
            st.lists(st.integers(0, 4), max_size=3),
        ),
        max_size=6,
    )
)
def test_any_state_dict_streams_to_the_same_bytes_as_save_file(
    tmp_path: Path, plan: dict[str, tuple[torch.dtype, list[int]]]
) -> None:
    tensors = {
        name: torch.arange(int(torch.tensor(shape).prod()) if shape else 1).reshape(shape).to(dtype)
        for name, (dtype, shape) in plan.items()
    }
    save_file(tensors, tmp_path / "theirs.safetensors")
    write_file(tensors, tmp_path / "ours.safetensors")
    theirs = (tmp_path / "theirs.safetensors").read_bytes()
    assert (tmp_path / "ours.safetensors").read_bytes() == theirs


def test_header_is_padded_with_spaces_to_eight_bytes(tmp_path: Path) -> None:
    write_file({"x": torch.ones(3)}, tmp_path / "x.safetensors")
    data = (tmp_path / "x.safetensors").read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = data[8 : 8 + length]
    assert length % 8 == 0
    assert header.rstrip(b" ").endswith(b"}")
    assert json.loads(header)["x"] == {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]}


def test_several_metadata_keys_are_written_sorted_and_read_back(tmp_path: Path) -> None:
    # save_file keeps metadata in a Rust HashMap (order varies run to run); ours sorts.
    metadata = {"zz": "1", "aa": "2", "mm": 'é\n"x'}
    tensors = {"w": torch.randn(4, 4, generator=torch.Generator().manual_seed(1))}
    write_file(tensors, tmp_path / "a.safetensors", metadata=metadata)
    write_file(tensors, tmp_path / "b.safetensors", metadata=dict(reversed(metadata.items())))
    data = (tmp_path / "a.safetensors").read_bytes()
    assert data == (tmp_path / "b.safetensors").read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    assert list(json.loads(data[8 : 8 + length])["__metadata__"]) == ["aa", "mm", "zz"]
    with safe_open(str(tmp_path / "a.safetensors"), framework="pt") as f:
        assert f.metadata() == metadata
        assert torch.equal(f.get_tensor("w"), tensors["w"])


def test_tensors_written_out_of_order_give_the_same_bytes(tmp_path: Path) -> None:
    tensors = {"a": torch.ones(3, 5), "b": torch.arange(7, dtype=torch.int8), "c": torch.zeros(2)}
    write_file(tensors, tmp_path / "in_order.safetensors")
    specs = [TensorSpec.of(name, t) for name, t in tensors.items()]
    with SafetensorsWriter(tmp_path / "shuffled.safetensors", specs) as writer:
        for name in reversed(writer.names):
            writer.write(name, tensors[name])
    shuffled = (tmp_path / "shuffled.safetensors").read_bytes()
    assert shuffled == (tmp_path / "in_order.safetensors").read_bytes()


def test_non_contiguous_tensors_are_written_in_c_order(tmp_path: Path) -> None:
    t = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    write_file({"t": t.T}, tmp_path / "t.safetensors")
    assert torch.equal(load_file(tmp_path / "t.safetensors")["t"], t.T.contiguous())


@pytest.mark.parametrize(
    ("tensor", "reason"),
    [
        (torch.ones(2, 4), "shape"),
        (torch.ones(2, 3, dtype=torch.float16), "dtype"),
    ],
)
def test_a_tensor_that_differs_from_the_plan_is_refused_and_leaves_no_file(
    tmp_path: Path, tensor: torch.Tensor, reason: str
) -> None:
    out = tmp_path / "x.safetensors"
    with (
        pytest.raises(InvalidRequest, match="header plans"),
        SafetensorsWriter(out, [TensorSpec(name="w", dtype=torch.float32, shape=(2, 3))]) as w,
    ):
        w.write("w", tensor)
    assert not out.exists(), reason
    assert list(tmp_path.iterdir()) == []


def test_a_tensor_outside_the_plan_or_written_twice_is_refused(tmp_path: Path) -> None:
    spec = TensorSpec(name="w", dtype=torch.float32, shape=(2,))
    with SafetensorsWriter(tmp_path / "x.safetensors", [spec]) as writer:
        with pytest.raises(InvalidRequest, match="not in the planned header"):
            writer.write("v", torch.ones(2))
        writer.write("w", torch.ones(2))
        with pytest.raises(InvalidRequest, match="already written"):
            writer.write("w", torch.ones(2))
    assert torch.equal(load_file(tmp_path / "x.safetensors")["w"], torch.ones(2))


def test_closing_before_every_planned_tensor_is_written_leaves_no_file(tmp_path: Path) -> None:
    specs = [TensorSpec(name=n, dtype=torch.float32, shape=(2,)) for n in ("a", "b")]
    out = tmp_path / "x.safetensors"
    with (
        pytest.raises(InvalidRequest, match="never written"),
        SafetensorsWriter(out, specs) as writer,
    ):
        writer.write("a", torch.ones(2))
    assert list(tmp_path.iterdir()) == []


def test_a_failure_while_producing_tensors_leaves_no_file(tmp_path: Path) -> None:
    out = tmp_path / "x.safetensors"
    spec = TensorSpec(name="a", dtype=torch.float32, shape=(2,))
    with pytest.raises(RuntimeError, match="producer died"), SafetensorsWriter(out, [spec]):
        raise RuntimeError("producer died")
    assert list(tmp_path.iterdir()) == []


def test_a_plan_with_a_duplicate_or_reserved_name_is_refused(tmp_path: Path) -> None:
    a = TensorSpec(name="a", dtype=torch.float32, shape=(2,))
    a_int = TensorSpec(name="a", dtype=torch.int8, shape=(2,))
    with pytest.raises(InvalidRequest, match="planned twice"):
        SafetensorsWriter(tmp_path / "x.safetensors", [a, a_int])
    with pytest.raises(InvalidRequest, match="reserved"):
        TensorSpec(name="__metadata__", dtype=torch.float32, shape=(1,))
    with pytest.raises(InvalidRequest, match="str to str"):
        SafetensorsWriter(tmp_path / "x.safetensors", [a], metadata={"n": 1})  # type: ignore[dict-item]

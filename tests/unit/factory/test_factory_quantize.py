"""Weight-only int8 / int4 quantization into plain safetensors, and back."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from breedlab.errors import IntegrityError, InvalidRequest
from breedlab.tensors.quantized import (
    GROUP_SIZE,
    QuantScheme,
    dequantize_file,
    dequantize_int4_g32,
    dequantize_int8_pc,
    load_state_dict,
    pack_int4,
    quantize_file,
    quantize_int4_g32,
    quantize_int8_pc,
    quantize_state_dict,
    unpack_int4,
)


def _randn(seed: int, *shape: int) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(64, 128)
        self.fc2 = nn.Linear(128, 96)
        self.head = nn.Linear(96, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


def _mlp(seed: int = 0) -> MLP:
    torch.manual_seed(seed)
    return MLP().eval()


@settings(max_examples=30, deadline=None, derandomize=True)  # CI sees the same cases
@given(
    rows=st.integers(1, 9),
    cols=st.integers(1, 70),
    seed=st.integers(0, 2**32 - 1),
    scale_dtype=st.sampled_from([torch.float16, torch.float32]),
    magnitude=st.sampled_from([1e-3, 1.0, 300.0]),
)
def test_int8_per_channel_round_trip_error_is_at_most_half_a_scale_per_channel(
    rows: int, cols: int, seed: int, scale_dtype: torch.dtype, magnitude: float
) -> None:
    w = _randn(seed, rows, cols) * magnitude
    q, scale = quantize_int8_pc(w, scale_dtype=scale_dtype)
    assert q.dtype == torch.int8 and q.shape == w.shape
    assert scale.dtype == scale_dtype and scale.shape == (rows,)
    error = (dequantize_int8_pc(q, scale) - w).abs().amax(dim=1)
    bound = scale.float() / 2
    assert bool((error <= bound * (1 + 1e-5) + 1e-12).all())


@settings(max_examples=30, deadline=None)
@given(
    rows=st.integers(1, 6),
    tail=st.lists(st.integers(1, 40), min_size=1, max_size=2),
    seed=st.integers(0, 2**32 - 1),
)
def test_int4_group32_round_trip_error_is_at_most_half_a_scale_per_group(
    rows: int, tail: list[int], seed: int
) -> None:
    shape = (rows, *tail)
    w = _randn(seed, *shape)
    packed, scale = quantize_int4_g32(w)
    restored = dequantize_int4_g32(packed, scale, shape)
    assert restored.shape == w.shape
    width = restored[0].numel()
    groups = -(-width // GROUP_SIZE)
    padded = torch.nn.functional.pad(
        (restored - w).reshape(rows, width).abs(), (0, groups * GROUP_SIZE - width)
    )
    error = padded.reshape(rows, groups, GROUP_SIZE).amax(dim=2)
    assert bool((error <= scale.float() / 2 * (1 + 1e-5) + 1e-12).all())


def test_int8_scales_and_codes_match_a_hand_computed_row() -> None:
    # max|row| = 254, so s = 254 / 127 = 2 exactly; q = round(w / 2), ties to even.
    w = torch.tensor([[254.0, -127.0, 3.0, 5.0], [0.0, 0.0, 0.0, 0.0]])
    q, scale = quantize_int8_pc(w)
    assert scale.tolist() == [2.0, 0.0]
    assert q.tolist() == [[127, -64, 2, 2], [0, 0, 0, 0]]


@settings(max_examples=30, deadline=None, derandomize=True)  # CI sees the same cases
@given(
    rows=st.integers(1, 9),
    cols=st.integers(1, 70),
    seed=st.integers(0, 2**32 - 1),
    magnitude=st.sampled_from([1e-3, 1.0, 300.0]),
)
def test_int8_per_channel_equals_torchs_symmetric_per_channel_quantization(
    rows: int, cols: int, seed: int, magnitude: float
) -> None:
    # The reference is torch's own observer and quantizer, with the restricted symmetric
    # range [-127, 127] (DESIGN.md §8): scale = max|w_row| / 127, q = round(w / scale).
    from torch.ao.quantization.observer import PerChannelMinMaxObserver

    w = _randn(seed, rows, cols) * magnitude
    observer = PerChannelMinMaxObserver(
        ch_axis=0,
        dtype=torch.qint8,
        qscheme=torch.per_channel_symmetric,
        quant_min=-127,
        quant_max=127,
    )
    observer(w)
    torch_scale, zero_point = observer.calculate_qparams()
    assert not bool(zero_point.any())
    # torch floors a scale at float32's eps (a row with max|w| < 127 * eps, about 1.5e-5);
    # breedlab does not, so such rows are checked against max|w| / 127 computed here.
    tiny = w.abs().amax(dim=1) / 127 < observer.eps
    torch_scale = torch.where(tiny, w.abs().amax(dim=1) / 127, torch_scale.float())

    q32, scale32 = quantize_int8_pc(w, scale_dtype=torch.float32)
    torch.testing.assert_close(scale32, torch_scale.float(), rtol=1e-6, atol=0)
    assert torch.equal(q32, _torch_int8_codes(w, scale32))

    # fp16 scales: the smallest fp16 at or above torch's scale (rounded up, nothing clips).
    q16, scale16 = quantize_int8_pc(w)
    assert bool((scale16.float() >= torch_scale).all())
    below = torch.nextafter(scale16, torch.zeros_like(scale16)).float()
    assert bool((below < torch_scale).all())
    assert torch.equal(q16, _torch_int8_codes(w, scale16.float()))


def _torch_int8_codes(w: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """torch's per-channel fake quantization on [-127, 127], as int8 codes."""
    # torch.quantize_per_channel is deprecated (a warning, an error here); its fake twin is not.
    zero = torch.zeros(scale.shape, dtype=torch.int32)
    fake = torch.fake_quantize_per_channel_affine(w, scale, zero, 0, -127, 127)
    safe = torch.where(scale > 0, scale, 1.0)
    return torch.round(fake / safe[:, None]).to(torch.int8)


def test_int4_group_scales_and_codes_match_a_hand_computed_row() -> None:
    # One row of 40 inputs: group 1 is the first 32 (max 14, s = 2), group 2 the last 8
    # padded with zeros (max 0.7, s = 0.1). Stored as q + 8, even index in the low nibble.
    w = torch.zeros(1, 40)
    w[0, 0], w[0, 1], w[0, 2] = 14.0, -3.0, 5.0
    w[0, 32], w[0, 33] = -0.7, 0.25
    packed, scale = quantize_int4_g32(w, scale_dtype=torch.float32)
    torch.testing.assert_close(scale, torch.tensor([[2.0, 0.7 / 7]]), rtol=1e-7, atol=0)
    codes = unpack_int4(packed)[0]
    assert codes[:4].tolist() == [7, -2, 2, 0]  # 14/2, round(-1.5) = -2, round(2.5) = 2
    assert codes[32:35].tolist() == [-7, 2, 0]  # -0.7/0.1, round(2.5) = 2
    assert int(packed[0, 0]) == (7 + 8) | ((-2 + 8) << 4)


def test_int4_packing_round_trips_every_value_two_per_byte() -> None:
    values = torch.arange(-8, 8, dtype=torch.int8).repeat(3, 2)  # [3, 32]
    packed = pack_int4(values)
    assert packed.dtype == torch.uint8 and packed.shape == (3, 16)
    assert torch.equal(unpack_int4(packed), values)
    # -8 + 8 = 0 in the low nibble, -7 + 8 = 1 in the high one.
    assert int(packed[0, 0]) == 0x10


def test_int4_packing_refuses_odd_widths_and_out_of_range_values() -> None:
    with pytest.raises(InvalidRequest, match="even last dimension"):
        pack_int4(torch.zeros(3, dtype=torch.int8))
    with pytest.raises(InvalidRequest, match=r"\[-8, 7\]"):
        pack_int4(torch.tensor([8, 0], dtype=torch.int8))


def test_all_zero_rows_and_groups_quantize_to_zero_without_nans() -> None:
    w = torch.zeros(3, 40)
    w[1] = 1.0
    q8, s8 = quantize_int8_pc(w)
    q4, s4 = quantize_int4_g32(w)
    for restored in (dequantize_int8_pc(q8, s8), dequantize_int4_g32(q4, s4, (3, 40))):
        assert bool(restored.isfinite().all())
        assert torch.equal(restored[0], torch.zeros(40))
        assert torch.equal(restored[2], torch.zeros(40))
        torch.testing.assert_close(restored[1], torch.ones(40), rtol=1e-3, atol=0)


def test_non_finite_weights_are_refused() -> None:
    w = torch.ones(2, 4)
    w[0, 1] = float("nan")
    with pytest.raises(InvalidRequest, match="non-finite"):
        quantize_int8_pc(w, name="fc.weight")


def test_weights_too_large_for_fp16_scales_are_refused() -> None:
    with pytest.raises(InvalidRequest, match="use float32 scales"):
        quantize_int8_pc(torch.full((2, 2), 1e8))
    q, scale = quantize_int8_pc(torch.full((2, 2), 1e8), scale_dtype=torch.float32)
    assert torch.equal(dequantize_int8_pc(q, scale), torch.full((2, 2), 1e8))


@pytest.mark.parametrize(
    ("scheme", "min_cosine", "min_agreement"),
    [(QuantScheme.INT8_PC, 0.999, 0.98), (QuantScheme.INT4_G32, 0.95, 0.85)],
)
def test_a_quantized_mlp_file_loads_and_predicts_nearly_the_same(
    tmp_path: Path, scheme: QuantScheme, min_cosine: float, min_agreement: float
) -> None:
    model = _mlp()
    save_file(model.state_dict(), tmp_path / "model.safetensors")
    report = quantize_file(tmp_path / "model.safetensors", tmp_path / "q.safetensors", scheme)
    assert (report.quantized, report.kept) == (3, 3)
    assert report.size < report.source_size / (3 if scheme is QuantScheme.INT8_PC else 5)

    restored = _mlp(seed=1)
    restored.load_state_dict(load_state_dict(tmp_path / "q.safetensors"))
    x = _randn(2, 512, 64)
    with torch.no_grad():
        expected, got = model(x), restored(x)
    cosine = torch.nn.functional.cosine_similarity(expected, got, dim=1)
    assert float(cosine.min()) >= min_cosine
    assert float((expected.argmax(1) == got.argmax(1)).float().mean()) >= min_agreement


def test_biases_and_other_1d_tensors_stay_float_and_the_header_names_the_scheme(
    tmp_path: Path,
) -> None:
    tensors = dict(_mlp().state_dict())
    tensors["steps"] = torch.tensor([3], dtype=torch.int64)
    save_file(tensors, tmp_path / "model.safetensors")
    quantize_file(tmp_path / "model.safetensors", tmp_path / "q.safetensors", "int4_g32")
    with safe_open(str(tmp_path / "q.safetensors"), framework="pt") as f:
        assert f.metadata() == {"breedlab.quant": "int4_g32", "breedlab.orig_dtype": "F32"}
        stored = {name: f.get_tensor(name) for name in f.keys()}
    assert "fc1.weight" not in stored  # a scheme-blind loader fails on a missing key
    assert stored["fc1.weight.qdata"].dtype == torch.uint8
    assert stored["fc1.weight.qdata"].shape == (128, 32)
    assert stored["fc1.weight.qscale"].shape == (128, 2)
    assert stored["fc1.weight.qshape"].tolist() == [128, 64]
    assert torch.equal(stored["fc1.bias"], tensors["fc1.bias"])
    assert torch.equal(stored["steps"], tensors["steps"])
    loaded = load_state_dict(tmp_path / "q.safetensors")
    assert set(loaded) == set(tensors)
    assert all(
        loaded[n].dtype == t.dtype and loaded[n].shape == t.shape for n, t in tensors.items()
    )


def test_quantizing_the_same_file_twice_gives_the_same_bytes(tmp_path: Path) -> None:
    save_file(_mlp().state_dict(), tmp_path / "model.safetensors")
    for out in ("a.safetensors", "b.safetensors"):
        quantize_file(tmp_path / "model.safetensors", tmp_path / out, QuantScheme.INT8_PC)
    assert (tmp_path / "a.safetensors").read_bytes() == (tmp_path / "b.safetensors").read_bytes()
    data = (tmp_path / "a.safetensors").read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    assert json.loads(data[8 : 8 + length])["__metadata__"]["breedlab.quant"] == "int8_pc"


def test_the_streamed_file_equals_quantizing_the_state_dict_in_memory(tmp_path: Path) -> None:
    state = {"w": _randn(0, 8, 70).half(), "b": _randn(1, 8).half()}
    save_file(state, tmp_path / "m.safetensors")
    quantize_file(
        tmp_path / "m.safetensors",
        tmp_path / "q.safetensors",
        QuantScheme.INT4_G32,
        scale_dtype=torch.float32,
    )
    tensors, metadata = quantize_state_dict(state, QuantScheme.INT4_G32, scale_dtype=torch.float32)
    assert metadata == {"breedlab.quant": "int4_g32", "breedlab.orig_dtype": "F16"}
    stored = load_file(tmp_path / "q.safetensors")
    assert set(stored) == set(tensors)
    assert all(torch.equal(stored[n], t) for n, t in tensors.items())
    assert dequantize_file(tmp_path / "q.safetensors")["w"].dtype == torch.float16


def test_a_plain_file_loads_unchanged_but_is_not_a_quantized_file(tmp_path: Path) -> None:
    state = {"w": _randn(0, 4, 4)}
    save_file(state, tmp_path / "m.safetensors")
    assert torch.equal(load_state_dict(tmp_path / "m.safetensors")["w"], state["w"])
    with pytest.raises(InvalidRequest, match="not a breedlab-quantized file"):
        dequantize_file(tmp_path / "m.safetensors")


def _quantized(tmp_path: Path) -> dict[str, torch.Tensor]:
    save_file({"w": _randn(0, 4, 40)}, tmp_path / "m.safetensors")
    quantize_file(tmp_path / "m.safetensors", tmp_path / "q.safetensors", QuantScheme.INT4_G32)
    return load_file(tmp_path / "q.safetensors")


@pytest.mark.parametrize(
    ("edit", "error", "message"),
    [
        (lambda t: t.pop("w.qscale"), IntegrityError, "no float16/float32 scales"),
        (lambda t: t.pop("w.qshape"), IntegrityError, "no int64 shape"),
        (
            lambda t: t.update({"w.qshape": torch.tensor([4, 70])}),
            IntegrityError,
            "int4_g32 layout",
        ),
        (lambda t: t.pop("w.qdata"), IntegrityError, "but no 'w.qdata'"),
    ],
    ids=["no scale", "no shape", "wrong shape", "orphan scale"],
)
def test_a_quantized_file_whose_parts_do_not_fit_together_is_an_integrity_error(
    tmp_path: Path, edit: object, error: type[Exception], message: str
) -> None:
    tensors = _quantized(tmp_path)
    edit(tensors)  # type: ignore[operator]
    save_file(
        tensors,
        tmp_path / "bad.safetensors",
        metadata={"breedlab.quant": "int4_g32", "breedlab.orig_dtype": "F32"},
    )
    with pytest.raises(error, match=message):
        load_state_dict(tmp_path / "bad.safetensors")


def test_unknown_schemes_and_unquantizable_inputs_are_refused(tmp_path: Path) -> None:
    tensors = _quantized(tmp_path)
    save_file(
        tensors,
        tmp_path / "bad.safetensors",
        metadata={"breedlab.quant": "nf4", "breedlab.orig_dtype": "F32"},
    )
    with pytest.raises(InvalidRequest, match="unknown quantization scheme 'nf4'"):
        load_state_dict(tmp_path / "bad.safetensors")
    with pytest.raises(InvalidRequest, match="nothing to quantize"):
        quantize_state_dict({"b": torch.ones(3)}, "int8_pc")
    with pytest.raises(InvalidRequest, match="share one dtype"):
        quantize_state_dict({"a": torch.ones(2, 2), "b": torch.ones(2, 2).half()}, "int8_pc")
    with pytest.raises(InvalidRequest, match="reserved suffix"):
        quantize_state_dict({"a": torch.ones(2, 2), "a.qscale": torch.ones(2)}, "int8_pc")
    with pytest.raises(InvalidRequest, match="float16 or float32"):
        quantize_state_dict({"a": torch.ones(2, 2)}, "int8_pc", scale_dtype=torch.bfloat16)
    save_file({"a": torch.ones(2, 2)}, tmp_path / "m.safetensors")
    with pytest.raises(InvalidRequest, match="is its input"):
        quantize_file(tmp_path / "m.safetensors", tmp_path / "m.safetensors", "int8_pc")

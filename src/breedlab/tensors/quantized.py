"""The quantize operator's core: weight-only int8 / int4 into plain safetensors, and back.

Owns the quantized file format and its round trip (DESIGN.md §8: "weight-only int8 /
int4, per output channel, stored as plain safetensors that the family dequantizes on
load"). Leaves choosing *which* models to quantize, and faster int8 kernels (an ONNX
Runtime path), to others. Never uses ``torch.ao``'s ``quantize_dynamic``: it is
per-tensor, deprecated, and serialises only by pickle.

Schemes (:class:`QuantScheme`), both symmetric, applied to every floating-point tensor
with two or more dimensions; biases and other 1-D tensors, and non-float tensors, are
stored unchanged. The output channel is dimension 0 (``nn.Linear``/``Conv`` weights are
``[out, in, ...]``; an embedding table is quantized per row):

``int8_pc``
    One scale per output channel, ``s = max|w_row| / 127`` (rounded *up* to the scale
    dtype so that no value clips), ``q = round(w / s)`` in int8. Dequantized error per
    element is at most ``s / 2``.
``int4_g32``
    Each output row, flattened, is split into groups of 32 inputs (the last group padded
    with zeros); one scale per group, ``s = max|w_group| / 7``, ``q = round(w / s)`` in
    [-7, 7], stored as ``q + 8`` in nibbles, two per byte, the even element in the low
    nibble. Error at most ``s / 2`` per group.

File layout, for a quantized tensor ``X`` (``X`` itself is absent, so a loader that
ignores the scheme fails on a missing key instead of reading integers as weights):

- ``X.qdata``: int8 ``q``, the shape of ``X`` (int8_pc), or uint8 packed nibbles of shape
  ``[out, groups * 16]`` (int4_g32);
- ``X.qscale``: the scales, ``[out]`` (int8_pc) or ``[out, groups]`` (int4_g32), fp16 by
  default or fp32;
- ``X.qshape``: int64, the original shape of ``X`` (int4_g32 only).

The header's ``__metadata__`` holds ``{"breedlab.quant": "int8_pc" | "int4_g32",
"breedlab.orig_dtype": "F32" | "F16" | "BF16" | ...}``: the scheme and the dtype every
quantized tensor is restored to. Output is deterministic (same input, same bytes).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from breedlab.errors import IntegrityError, InvalidRequest
from breedlab.tensors.stream import (
    DTYPE_NAMES,
    SafetensorsWriter,
    TensorSpec,
    dtype_from_name,
)

__all__ = [
    "GROUP_SIZE",
    "ORIG_DTYPE_KEY",
    "QUANT_KEY",
    "QuantReport",
    "QuantScheme",
    "dequantize_file",
    "dequantize_int4_g32",
    "dequantize_int8_pc",
    "dequantize_state_dict",
    "load_state_dict",
    "pack_int4",
    "quantize_file",
    "quantize_int4_g32",
    "quantize_int8_pc",
    "quantize_state_dict",
    "unpack_int4",
]

QUANT_KEY = "breedlab.quant"
ORIG_DTYPE_KEY = "breedlab.orig_dtype"
GROUP_SIZE = 32
_DATA, _SCALE, _SHAPE = ".qdata", ".qscale", ".qshape"
_SUFFIXES = (_DATA, _SCALE, _SHAPE)
_SCALE_DTYPES = (torch.float16, torch.float32)


class QuantScheme(StrEnum):
    """The weight-only quantization schemes (recorded as ``breedlab.quant``)."""

    INT8_PC = "int8_pc"
    INT4_G32 = "int4_g32"


# ------------------------------------------------------------------ tensors, pure


def _quantizable(dtype: torch.dtype, shape: tuple[int, ...]) -> bool:
    return dtype.is_floating_point and len(shape) >= 2


def _stored_scale(scale: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``scale`` in ``dtype``, rounded up where rounding went down, so nothing clips."""
    stored = scale.to(dtype)
    if dtype != torch.float32:
        low = stored.to(torch.float32) < scale
        stored = torch.where(
            low, torch.nextafter(stored, torch.full_like(stored, math.inf)), stored
        )
    if not bool(torch.isfinite(stored).all()):
        raise InvalidRequest(f"weights too large for {dtype} scales; use float32 scales")
    return stored


def _checked_float(name: str, weight: torch.Tensor) -> torch.Tensor:
    w = weight.detach().to(torch.float32)
    if not bool(torch.isfinite(w).all()):
        raise InvalidRequest(f"tensor {name!r} has non-finite values and cannot be quantized")
    return w


def quantize_int8_pc(
    weight: torch.Tensor, *, scale_dtype: torch.dtype = torch.float16, name: str = ""
) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 per output channel: ``(q, scale)``, ``q`` int8 of ``weight``'s shape.

    Raises:
        InvalidRequest: non-finite weights, or scales that overflow ``scale_dtype``.
    """
    w = _checked_float(name, weight)
    rows = w.reshape(w.shape[0], -1)
    scale = _stored_scale(rows.abs().amax(dim=1) / 127, scale_dtype)
    divisor = scale.to(torch.float32)
    divisor = torch.where(divisor > 0, divisor, 1.0)
    q = torch.round(rows / divisor[:, None]).clamp_(-127, 127).to(torch.int8)
    return q.reshape(weight.shape), scale


def dequantize_int8_pc(
    q: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """``q * scale`` per output channel, computed in fp32, returned in ``dtype``."""
    rows = q.reshape(q.shape[0], -1).to(torch.float32)
    return (rows * scale.to(torch.float32)[:, None]).reshape(q.shape).to(dtype)


def pack_int4(q: torch.Tensor) -> torch.Tensor:
    """Pack int values in [-8, 7] two per byte (even index in the low nibble), as uint8.

    Raises:
        InvalidRequest: an odd last dimension or values out of range.
    """
    if q.shape[-1] % 2:
        raise InvalidRequest(f"int4 packing needs an even last dimension, got {tuple(q.shape)}")
    if q.numel() and (int(q.min()) < -8 or int(q.max()) > 7):
        raise InvalidRequest("int4 values must lie in [-8, 7]")
    u = (q.to(torch.int16) + 8).to(torch.uint8)
    return u[..., 0::2] | (u[..., 1::2] << 4)


def unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    """Invert :func:`pack_int4`: int8 values in [-8, 7], the last dimension doubled."""
    low = (packed & 0x0F).to(torch.int8) - 8
    high = (packed >> 4).to(torch.int8) - 8
    return torch.stack((low, high), dim=-1).reshape(*packed.shape[:-1], packed.shape[-1] * 2)


def _int4_layout(shape: tuple[int, ...]) -> tuple[int, int, int]:
    rows = shape[0]
    width = math.prod(shape[1:])
    groups = -(-width // GROUP_SIZE)
    return rows, width, groups


def quantize_int4_g32(
    weight: torch.Tensor, *, scale_dtype: torch.dtype = torch.float16, name: str = ""
) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int4, groups of 32 along each flattened output row: ``(packed, scale)``.

    ``packed`` is uint8 ``[out, groups * 16]``, ``scale`` is ``[out, groups]``; keep the
    original shape to dequantize.

    Raises:
        InvalidRequest: non-finite weights, or scales that overflow ``scale_dtype``.
    """
    w = _checked_float(name, weight)
    rows, width, groups = _int4_layout(tuple(weight.shape))
    flat = w.reshape(rows, width)
    if groups * GROUP_SIZE != width:
        flat = torch.nn.functional.pad(flat, (0, groups * GROUP_SIZE - width))
    grouped = flat.reshape(rows, groups, GROUP_SIZE)
    scale = _stored_scale(grouped.abs().amax(dim=2) / 7, scale_dtype)
    divisor = scale.to(torch.float32)
    divisor = torch.where(divisor > 0, divisor, 1.0)
    q = torch.round(grouped / divisor[..., None]).clamp_(-7, 7).to(torch.int8)
    return pack_int4(q.reshape(rows, groups * GROUP_SIZE)), scale


def dequantize_int4_g32(
    packed: torch.Tensor,
    scale: torch.Tensor,
    shape: tuple[int, ...],
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Invert :func:`quantize_int4_g32` up to rounding: a tensor of ``shape`` in ``dtype``."""
    rows, width, groups = _int4_layout(shape)
    q = unpack_int4(packed).reshape(rows, groups, GROUP_SIZE).to(torch.float32)
    w = (q * scale.to(torch.float32)[..., None]).reshape(rows, groups * GROUP_SIZE)
    return w[:, :width].reshape(shape).to(dtype)


def _quantized_specs(
    name: str, shape: tuple[int, ...], scheme: QuantScheme, scale_dtype: torch.dtype
) -> list[TensorSpec]:
    if scheme is QuantScheme.INT8_PC:
        return [
            TensorSpec(name=name + _DATA, dtype=torch.int8, shape=shape),
            TensorSpec(name=name + _SCALE, dtype=scale_dtype, shape=(shape[0],)),
        ]
    rows, _, groups = _int4_layout(shape)
    return [
        TensorSpec(name=name + _DATA, dtype=torch.uint8, shape=(rows, groups * GROUP_SIZE // 2)),
        TensorSpec(name=name + _SCALE, dtype=scale_dtype, shape=(rows, groups)),
        TensorSpec(name=name + _SHAPE, dtype=torch.int64, shape=(len(shape),)),
    ]


def _quantize_one(
    name: str, weight: torch.Tensor, scheme: QuantScheme, scale_dtype: torch.dtype
) -> dict[str, torch.Tensor]:
    if scheme is QuantScheme.INT8_PC:
        q, scale = quantize_int8_pc(weight, scale_dtype=scale_dtype, name=name)
        return {name + _DATA: q, name + _SCALE: scale}
    packed, scale = quantize_int4_g32(weight, scale_dtype=scale_dtype, name=name)
    shape = torch.tensor(list(weight.shape), dtype=torch.int64)
    return {name + _DATA: packed, name + _SCALE: scale, name + _SHAPE: shape}


def _plan(
    header: Mapping[str, tuple[torch.dtype, tuple[int, ...]]],
    scheme: QuantScheme,
    scale_dtype: torch.dtype,
) -> tuple[list[TensorSpec], dict[str, str]]:
    """The output specs and metadata for a source of ``name -> (dtype, shape)``."""
    if scale_dtype not in _SCALE_DTYPES:
        raise InvalidRequest(f"quantization scales must be float16 or float32, not {scale_dtype}")
    quantized = {n for n, (dtype, shape) in header.items() if _quantizable(dtype, shape)}
    if not quantized:
        raise InvalidRequest("nothing to quantize: no floating-point tensor has 2 or more dims")
    orig = {header[n][0] for n in quantized}
    if len(orig) != 1:
        kinds = ", ".join(sorted(DTYPE_NAMES[d] for d in orig))
        raise InvalidRequest(f"quantized weights must share one dtype, found {kinds}")
    specs: list[TensorSpec] = []
    for name, (dtype, shape) in header.items():
        if name.endswith(_SUFFIXES):
            raise InvalidRequest(f"tensor {name!r} ends with a reserved suffix {_SUFFIXES}")
        if name in quantized:
            specs.extend(_quantized_specs(name, shape, scheme, scale_dtype))
        else:
            specs.append(TensorSpec(name=name, dtype=dtype, shape=shape))
    metadata = {QUANT_KEY: scheme.value, ORIG_DTYPE_KEY: DTYPE_NAMES[orig.pop()]}
    return specs, metadata


def quantize_state_dict(
    tensors: Mapping[str, torch.Tensor],
    scheme: QuantScheme | str,
    *,
    scale_dtype: torch.dtype = torch.float16,
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Quantize an in-memory state dict: the tensors to store and the header metadata.

    Raises:
        InvalidRequest: an unknown scheme, nothing to quantize, quantizable tensors of
            several dtypes, a name ending in a reserved suffix, or non-finite weights.
    """
    scheme = _scheme(scheme)
    header = {n: (t.dtype, tuple(t.shape)) for n, t in tensors.items()}
    _, metadata = _plan(header, scheme, scale_dtype)
    out: dict[str, torch.Tensor] = {}
    for name, tensor in tensors.items():
        if _quantizable(tensor.dtype, tuple(tensor.shape)):
            out.update(_quantize_one(name, tensor, scheme, scale_dtype))
        else:
            out[name] = tensor
    return out, metadata


def _scheme(value: QuantScheme | str) -> QuantScheme:
    try:
        return QuantScheme(value)
    except ValueError:
        known = ", ".join(s.value for s in QuantScheme)
        raise InvalidRequest(f"unknown quantization scheme {value!r} (known: {known})") from None


def dequantize_state_dict(
    tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None
) -> dict[str, torch.Tensor]:
    """Restore float weights from a state dict written by this module.

    Tensors of a file without ``breedlab.quant`` metadata are returned as they are.

    Raises:
        InvalidRequest: an unknown scheme or original dtype in the metadata.
        IntegrityError: quantized parts that are missing, orphaned or inconsistent.
    """
    if not metadata or QUANT_KEY not in metadata:
        return dict(tensors)
    scheme = _scheme(metadata[QUANT_KEY])
    orig = dtype_from_name(metadata.get(ORIG_DTYPE_KEY, ""))
    out: dict[str, torch.Tensor] = {}
    for name, tensor in tensors.items():
        if name.endswith(_DATA):
            base = name[: -len(_DATA)]
            out[base] = _restore(base, tensors, scheme, orig)
        elif name.endswith((_SCALE, _SHAPE)):
            base = name.rsplit(".", 1)[0]
            if base + _DATA not in tensors:
                raise IntegrityError(f"quantized file has {name!r} but no {base + _DATA!r}")
        else:
            out[name] = tensor
    return out


def _restore(
    name: str, tensors: Mapping[str, torch.Tensor], scheme: QuantScheme, dtype: torch.dtype
) -> torch.Tensor:
    data = tensors[name + _DATA]
    scale = tensors.get(name + _SCALE)
    if scale is None or scale.dtype not in _SCALE_DTYPES:
        raise IntegrityError(f"quantized tensor {name!r} has no float16/float32 scales")
    if scheme is QuantScheme.INT8_PC:
        if data.dtype != torch.int8 or data.dim() < 2 or tuple(scale.shape) != (data.shape[0],):
            raise IntegrityError(f"quantized tensor {name!r} does not match the int8_pc layout")
        return dequantize_int8_pc(data, scale, dtype)
    shape_tensor = tensors.get(name + _SHAPE)
    if shape_tensor is None or shape_tensor.dtype != torch.int64 or shape_tensor.dim() != 1:
        raise IntegrityError(f"quantized tensor {name!r} has no int64 shape")
    shape = tuple(int(d) for d in shape_tensor.tolist())
    if len(shape) < 2 or any(d < 0 for d in shape):
        raise IntegrityError(f"quantized tensor {name!r} records a bad shape {shape}")
    rows, _, groups = _int4_layout(shape)
    if (
        data.dtype != torch.uint8
        or tuple(data.shape) != (rows, groups * GROUP_SIZE // 2)
        or tuple(scale.shape) != (rows, groups)
    ):
        raise IntegrityError(f"quantized tensor {name!r} does not match the int4_g32 layout")
    return dequantize_int4_g32(data, scale, shape, dtype)


# ---------------------------------------------------------------------------- files


@dataclass(frozen=True, slots=True, kw_only=True)
class QuantReport:
    """What :func:`quantize_file` wrote: counts, and sizes in bytes before and after."""

    out: Path
    scheme: QuantScheme
    quantized: int
    kept: int
    source_size: int
    size: int


def _open(path: Path) -> Any:
    try:
        return safe_open(str(path), framework="pt")
    except (OSError, SafetensorError) as e:
        raise InvalidRequest(f"cannot read safetensors file {path}: {e}") from e


def quantize_file(
    src: Path,
    out: Path,
    scheme: QuantScheme | str,
    *,
    scale_dtype: torch.dtype = torch.float16,
) -> QuantReport:
    """Quantize a safetensors file into ``out``, streaming tensor by tensor.

    Raises:
        InvalidRequest: as :func:`quantize_state_dict`, an unreadable ``src``, or
            ``out`` naming ``src``. Nothing is left at ``out`` on failure.
    """
    scheme = _scheme(scheme)
    src, out = Path(src), Path(out)
    if src.resolve() == out.resolve():
        raise InvalidRequest(f"quantize output {out} is its input")
    with _open(src) as f:
        header = {}
        for name in f.keys():
            piece = f.get_slice(name)
            header[name] = (dtype_from_name(piece.get_dtype()), tuple(piece.get_shape()))
    specs, metadata = _plan(header, scheme, scale_dtype)
    quantized = 0
    with SafetensorsWriter(out, specs, metadata) as writer:
        for name, (dtype, shape) in header.items():
            with _open(src) as f:
                tensor = f.get_tensor(name)
            if _quantizable(dtype, shape):
                for part, value in _quantize_one(name, tensor, scheme, scale_dtype).items():
                    writer.write(part, value)
                quantized += 1
            else:
                writer.write(name, tensor)
            del tensor
    return QuantReport(
        out=out,
        scheme=scheme,
        quantized=quantized,
        kept=len(header) - quantized,
        source_size=src.stat().st_size,
        size=out.stat().st_size,
    )


def _read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str] | None]:
    with _open(Path(path)) as f:
        metadata = f.metadata()
        tensors = {name: f.get_tensor(name) for name in f.keys()}
    return tensors, metadata


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Load any safetensors file as a state dict, dequantizing breedlab-quantized weights.

    Tensors that were not quantized come straight from ``safe_open``: they may be views of
    a read-only file mapping (copy them before modifying in place).

    Raises:
        InvalidRequest: an unreadable file or unknown quantization metadata.
        IntegrityError: a quantized file whose parts do not fit together.
    """
    tensors, metadata = _read(path)
    return dequantize_state_dict(tensors, metadata)


def dequantize_file(path: Path) -> dict[str, torch.Tensor]:
    """Like :func:`load_state_dict`, but the file must be breedlab-quantized.

    Raises:
        InvalidRequest: the file carries no ``breedlab.quant`` metadata, or as
            :func:`load_state_dict`.
    """
    tensors, metadata = _read(path)
    if not metadata or QUANT_KEY not in metadata:
        raise InvalidRequest(f"{path} is not a breedlab-quantized file (no {QUANT_KEY!r})")
    return dequantize_state_dict(tensors, metadata)

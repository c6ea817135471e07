"""An incremental safetensors writer: the header first, then each tensor's bytes as produced.

Owns the safetensors *file layout* for files breedlab writes: an 8-byte little-endian
header length, a JSON header padded with spaces to 8-byte alignment, then the tensors'
raw little-endian bytes back to back. Leaves reading to ``safetensors.safe_open``.

Why not ``safetensors.torch.save_file``: it needs the whole state dict in RAM (about
twice, safetensors/safetensors#458) and is not zero-copy (#415). Here the header is
computed up front from a plan of :class:`TensorSpec` values, so an operator can stream a
model tensor by tensor in O(largest tensor) memory.

Layout rules, matched to safetensors 0.8.0's own writer so that the same tensors give the
same bytes (pinned by ``tests/unit/factory/test_factory_safetensors_stream.py``):

- tensors are laid out by dtype alignment, largest first, then by name (code point
  order), which keeps every tensor aligned to its element size without padding;
- the header is compact JSON (``{"dtype","shape","data_offsets"}`` per tensor, in file
  order), with ``__metadata__`` first when there is any, non-ASCII kept as UTF-8;
- the header is padded with spaces to a multiple of 8 bytes.

One deliberate difference: ``__metadata__`` keys are written sorted. safetensors keeps
them in a Rust ``HashMap``, so its output for two or more metadata keys varies from run to
run; ours is deterministic and byte-identical to ``save_file`` whenever the metadata has
at most one key.

The file is written to ``<path>.partial`` and renamed into place only when every planned
tensor has been written, so a failure leaves no half-written file under ``path``. The
file is not fsynced: durability is the registry's job when it ingests the bytes.
"""

from __future__ import annotations

import json
import os
import struct
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Self

import torch

from breedlab.errors import InvalidRequest, LabError

__all__ = [
    "DTYPE_NAMES",
    "SafetensorsWriter",
    "TensorSpec",
    "dtype_from_name",
    "file_order",
    "header_bytes",
    "write_file",
]

#: torch dtype -> safetensors dtype name (the ``dtype`` field of the header).
DTYPE_NAMES: Mapping[torch.dtype, str] = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
    torch.uint16: "U16",
    torch.uint32: "U32",
    torch.uint64: "U64",
    torch.complex64: "C64",
    torch.float8_e4m3fn: "F8_E4M3",
    torch.float8_e5m2: "F8_E5M2",
    torch.float8_e4m3fnuz: "F8_E4M3FNUZ",
    torch.float8_e5m2fnuz: "F8_E5M2FNUZ",
}
_DTYPES_BY_NAME = {name: dtype for dtype, name in DTYPE_NAMES.items()}

# File order of dtypes in safetensors 0.8.0 (its Rust ``Dtype`` enum, sorted descending),
# measured by saving one tensor of every dtype; test_factory_safetensors_stream pins it.
_DTYPE_FILE_ORDER = (
    "U64",
    "I64",
    "F64",
    "C64",
    "F32",
    "U32",
    "I32",
    "BF16",
    "F16",
    "U16",
    "I16",
    "F8_E5M2FNUZ",
    "F8_E4M3FNUZ",
    "F8_E4M3",
    "F8_E5M2",
    "I8",
    "U8",
    "BOOL",
)
_DTYPE_RANK = {name: rank for rank, name in enumerate(_DTYPE_FILE_ORDER)}
_METADATA_KEY = "__metadata__"


def dtype_from_name(name: str) -> torch.dtype:
    """The torch dtype for a safetensors dtype name (``"F32"`` -> ``torch.float32``).

    Raises:
        InvalidRequest: a dtype torch or this writer does not support.
    """
    try:
        return _DTYPES_BY_NAME[name]
    except KeyError:
        raise InvalidRequest(f"unsupported safetensors dtype {name!r}") from None


@dataclass(frozen=True, slots=True, kw_only=True)
class TensorSpec:
    """One planned tensor: its name, dtype and shape (bytes follow from those)."""

    name: str
    dtype: torch.dtype
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.dtype not in DTYPE_NAMES:
            raise InvalidRequest(f"tensor {self.name!r}: dtype {self.dtype} cannot be stored")
        if any(not isinstance(d, int) or d < 0 for d in self.shape):
            raise InvalidRequest(f"tensor {self.name!r}: bad shape {self.shape!r}")
        if self.name == _METADATA_KEY:
            raise InvalidRequest(f"{_METADATA_KEY!r} is reserved and cannot name a tensor")

    @classmethod
    def of(cls, name: str, tensor: torch.Tensor) -> TensorSpec:
        """The spec that ``tensor`` would be written under as ``name``."""
        return cls(name=name, dtype=tensor.dtype, shape=tuple(tensor.shape))

    @property
    def nbytes(self) -> int:
        """Size of the tensor's data in bytes."""
        numel = 1
        for d in self.shape:
            numel *= d
        return numel * self.dtype.itemsize


def file_order(specs: Iterable[TensorSpec]) -> list[TensorSpec]:
    """Specs in the order their bytes appear in the file (dtype alignment, then name).

    Raises:
        InvalidRequest: two specs share a name.
    """
    ordered = sorted(specs, key=lambda s: (_DTYPE_RANK[DTYPE_NAMES[s.dtype]], s.name))
    seen: set[str] = set()
    for spec in ordered:
        if spec.name in seen:
            raise InvalidRequest(f"tensor {spec.name!r} is planned twice")
        seen.add(spec.name)
    return ordered


def header_bytes(
    specs: Iterable[TensorSpec], metadata: Mapping[str, str] | None = None
) -> tuple[bytes, dict[str, tuple[int, int]]]:
    """The full header (length prefix + padded JSON) and each tensor's data offsets.

    Offsets are relative to the start of the data section, as in the header itself.

    Raises:
        InvalidRequest: duplicate names, metadata that is not ``str`` -> ``str``, or
            names that are not valid Unicode.
    """
    header: dict[str, object] = {}
    if metadata:
        for key, value in metadata.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise InvalidRequest(f"safetensors metadata must map str to str: {key!r}")
        header[_METADATA_KEY] = {key: metadata[key] for key in sorted(metadata)}
    offsets: dict[str, tuple[int, int]] = {}
    position = 0
    for spec in file_order(specs):
        end = position + spec.nbytes
        offsets[spec.name] = (position, end)
        header[spec.name] = {
            "dtype": DTYPE_NAMES[spec.dtype],
            "shape": list(spec.shape),
            "data_offsets": [position, end],
        }
        position = end
    try:
        text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as e:
        raise InvalidRequest(f"tensor names and metadata must be valid Unicode: {e}") from e
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text, offsets


def _data_view(tensor: torch.Tensor) -> memoryview:
    """The tensor's bytes in C order, without a copy when it is already contiguous."""
    t = tensor.detach().to("cpu").resolve_conj().resolve_neg().contiguous()
    if t.numel() == 0:
        return memoryview(b"")
    return t.reshape(-1).view(torch.uint8).numpy().data


class SafetensorsWriter:
    """Write a planned safetensors file one tensor at a time.

    Use as a context manager. ``write`` accepts the planned tensors in any order (each
    exactly once); writing them in :attr:`names` order keeps the file sequential. On a
    clean exit the file is renamed into place; on an exception, or if a planned tensor
    was never written, nothing is left under ``path``.

    Example::

        specs = [TensorSpec.of(name, t) for name, t in planned.items()]
        with SafetensorsWriter(path, specs) as writer:
            for name in writer.names:
                writer.write(name, produce(name))
    """

    def __init__(
        self,
        path: Path,
        specs: Iterable[TensorSpec],
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        if sys.byteorder != "little":
            raise LabError(
                "safetensors stores little-endian data; big-endian hosts are unsupported"
            )
        self.path = Path(path)
        planned = file_order(specs)
        self._specs = {spec.name: spec for spec in planned}
        self._header, self._offsets = header_bytes(planned, metadata)
        self._pending = set(self._specs)
        self._partial = self.path.with_name(self.path.name + ".partial")
        self._file: BinaryIO | None = None
        self._position = 0
        #: Tensor names in file order.
        self.names: tuple[str, ...] = tuple(spec.name for spec in planned)

    def __enter__(self) -> Self:
        try:
            self._file = open(self._partial, "wb")  # closed in __exit__
        except OSError as e:
            raise InvalidRequest(f"cannot write {self.path}: {e}") from e
        try:
            self._file.write(self._header)
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        self._position = len(self._header)
        return self

    def write(self, name: str, tensor: torch.Tensor) -> None:
        """Write the bytes of one planned tensor.

        Raises:
            InvalidRequest: ``name`` is not planned or already written, or ``tensor``'s
                dtype or shape differs from the plan.
        """
        if self._file is None:
            raise InvalidRequest("SafetensorsWriter.write outside its `with` block")
        spec = self._specs.get(name)
        if spec is None:
            raise InvalidRequest(f"tensor {name!r} is not in the planned header")
        if name not in self._pending:
            raise InvalidRequest(f"tensor {name!r} was already written")
        if tensor.dtype != spec.dtype or tuple(tensor.shape) != spec.shape:
            raise InvalidRequest(
                f"tensor {name!r} is {tensor.dtype} {tuple(tensor.shape)}, "
                f"but the header plans {spec.dtype} {spec.shape}"
            )
        start = len(self._header) + self._offsets[name][0]
        if start != self._position:
            self._file.seek(start)
        data = _data_view(tensor)
        self._file.write(data)
        self._position = start + data.nbytes
        self._pending.discard(name)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        file, self._file = self._file, None
        if file is None:
            return
        try:
            file.close()
        finally:
            if exc_type is not None or self._pending:
                self._partial.unlink(missing_ok=True)
        if exc_type is not None:
            return
        if self._pending:
            missing = sorted(self._pending)
            raise InvalidRequest(
                f"{len(missing)} planned tensor(s) never written to {self.path}, "
                f"e.g. {missing[0]!r}; nothing was written"
            )
        os.replace(self._partial, self.path)


def write_file(
    tensors: Mapping[str, torch.Tensor],
    path: Path,
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Write a whole in-memory state dict (same bytes as ``save_file`` where it is deterministic).

    Raises:
        InvalidRequest: as :class:`SafetensorsWriter`.
    """
    specs = [TensorSpec.of(name, tensor) for name, tensor in tensors.items()]
    with SafetensorsWriter(path, specs, metadata) as writer:
        for name in writer.names:
            writer.write(name, tensors[name])

"""Dataset packages on disk: the files a ``dataset`` package holds, read and written.

A dataset package folder holds::

    data.safetensors   x: float32 (n, d) inputs, y: int64 (n,) labels
    items.json         {"ids": [...], "hashes": [...], "meta": {...}}   (canonical JSON)

A text dataset package (a capability whose ``input.type`` is ``text``) holds::

    data.safetensors   y: int64 (n,) labels (no x)
    texts.json         {"texts": [...]}   the items' strings, in order (canonical JSON)
    items.json         as above; its meta says "modality": "text"

Item ids are stable names (``digits-17``); item hashes bind each item's exact bytes and
label (``evaluator.items``), so a suite can prove it scored the items it claims. safetensors
keeps the arrays free of pickle. This module owns the format only; what the splits mean
is the capability's business.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from breedlab import canonical
from breedlab.canonical import JsonValue
from breedlab.errors import IntegrityError, InvalidRequest

__all__ = [
    "DATA_FILE",
    "ITEMS_FILE",
    "TEXTS_FILE",
    "Dataset",
    "TextDataset",
    "item_hash",
    "read_any_dataset",
    "read_dataset",
    "read_text_dataset",
    "text_item_hash",
    "write_dataset",
    "write_text_dataset",
]

DATA_FILE = "data.safetensors"
ITEMS_FILE = "items.json"
TEXTS_FILE = "texts.json"


def item_hash(x_row: npt.NDArray[Any], y: int) -> str:
    """SHA-256 over an item's dtype, shape, exact bytes and label."""
    row = np.ascontiguousarray(x_row)
    header = canonical.encode({"dtype": row.dtype.str, "shape": list(row.shape), "y": int(y)})
    return hashlib.sha256(header + row.tobytes()).hexdigest()


def text_item_hash(text: str, y: int) -> str:
    """SHA-256 over a text item's UTF-8 bytes and its label (the header says which)."""
    header = canonical.encode({"encoding": "utf-8", "y": int(y)})
    return hashlib.sha256(header + text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Dataset:
    x: npt.NDArray[np.float32]
    y: npt.NDArray[np.int64]
    ids: tuple[str, ...]
    hashes: tuple[str, ...]
    meta: Mapping[str, JsonValue] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, ids: Sequence[str]) -> Dataset:
        """The items with these ids, in the given order.

        Raises:
            InvalidRequest: an id is not in this dataset.
        """
        rows = _positions(self.ids, ids)
        return Dataset(
            x=self.x[rows],
            y=self.y[rows],
            ids=tuple(ids),
            hashes=tuple(self.hashes[r] for r in rows),
            meta=self.meta,
        )


def _positions(held: Sequence[str], ids: Sequence[str]) -> list[int]:
    index = {item: i for i, item in enumerate(held)}
    try:
        return [index[i] for i in ids]
    except KeyError as e:
        raise InvalidRequest(f"item {e.args[0]} is not in this dataset") from None


def _write(
    folder: Path,
    arrays: dict[str, npt.NDArray[Any]],
    ids: Sequence[str],
    hashes: tuple[str, ...],
    meta: Mapping[str, JsonValue],
    extra: tuple[str, bytes] | None = None,
) -> None:
    """The files every dataset package holds (and a modality's ``extra`` file)."""
    from safetensors.numpy import save_file

    if len(set(ids)) != len(ids):
        raise InvalidRequest("dataset item ids must be unique")
    folder.mkdir(parents=True, exist_ok=True)
    save_file(arrays, str(folder / DATA_FILE))
    if extra is not None:
        (folder / extra[0]).write_bytes(extra[1])
    record = {"ids": list(ids), "hashes": list(hashes), "meta": dict(meta)}
    (folder / ITEMS_FILE).write_bytes(canonical.encode(record))


@dataclass(frozen=True, slots=True, kw_only=True)
class _Read:
    arrays: dict[str, npt.NDArray[Any]]
    ids: tuple[str, ...]
    hashes: tuple[str, ...]
    meta: dict[str, JsonValue]
    extra: JsonValue


def _read(folder: Path, extra: str | None = None) -> _Read:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        arrays = load_file(str(folder / DATA_FILE))
        record = canonical.decode((folder / ITEMS_FILE).read_bytes())
        more = None if extra is None else canonical.decode((folder / extra).read_bytes())
    except (FileNotFoundError, SafetensorError) as e:
        raise IntegrityError(f"{folder} is not a dataset package: {e}") from e
    try:
        return _Read(
            arrays=arrays,
            ids=tuple(str(i) for i in record["ids"]),
            hashes=tuple(str(h) for h in record["hashes"]),
            meta=dict(record.get("meta", {})),
            extra=more,
        )
    except (KeyError, TypeError, AttributeError) as e:
        raise IntegrityError(f"{folder}: malformed dataset ({e})") from e


def _check(
    folder: Path,
    ids: Sequence[str],
    hashes: Sequence[str],
    n: int,
    rehash: Callable[[int], str] | None,
) -> None:
    if not (n == len(ids) == len(hashes)):
        raise IntegrityError(f"{folder}: dataset arrays and items.json disagree in length")
    if rehash is None:
        return
    for i, expected in enumerate(hashes):
        if rehash(i) != expected:
            raise IntegrityError(f"{folder}: item {ids[i]} does not match its hash")


def write_dataset(
    folder: Path,
    *,
    x: npt.NDArray[Any],
    y: npt.NDArray[Any],
    ids: Sequence[str],
    meta: Mapping[str, JsonValue] | None = None,
) -> Dataset:
    """Write a dataset package folder (created; must not exist or be empty)."""
    xs = np.ascontiguousarray(x, dtype=np.float32)
    ys = np.ascontiguousarray(y, dtype=np.int64)
    if xs.ndim != 2 or ys.shape != (xs.shape[0],) or len(ids) != xs.shape[0]:
        raise InvalidRequest(f"dataset shapes disagree: x {xs.shape}, y {ys.shape}, {len(ids)} ids")
    hashes = tuple(item_hash(xs[i], int(ys[i])) for i in range(len(ids)))
    _write(folder, {"x": xs, "y": ys}, ids, hashes, meta or {})
    return Dataset(x=xs, y=ys, ids=tuple(ids), hashes=hashes, meta=dict(meta or {}))


def read_dataset(folder: Path, *, check_hashes: bool = True) -> Dataset:
    """Read a dataset package folder; re-derives item hashes unless told not to.

    Raises:
        IntegrityError: files missing or malformed, or an item does not match its hash.
    """
    found = _read(folder)
    try:
        x = np.asarray(found.arrays["x"], dtype=np.float32)
        y = np.asarray(found.arrays["y"], dtype=np.int64)
    except KeyError as e:
        raise IntegrityError(f"{folder}: malformed dataset ({e})") from e
    if x.shape[0] != y.shape[0]:
        raise IntegrityError(f"{folder}: dataset arrays and items.json disagree in length")
    _check(
        folder,
        found.ids,
        found.hashes,
        x.shape[0],
        (lambda i: item_hash(x[i], int(y[i]))) if check_hashes else None,
    )
    return Dataset(x=x, y=y, ids=found.ids, hashes=found.hashes, meta=found.meta)


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class TextDataset:
    texts: tuple[str, ...]
    y: npt.NDArray[np.int64]
    ids: tuple[str, ...]
    hashes: tuple[str, ...]
    meta: Mapping[str, JsonValue] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, ids: Sequence[str]) -> TextDataset:
        """The items with these ids, in the given order.

        Raises:
            InvalidRequest: an id is not in this dataset.
        """
        rows = _positions(self.ids, ids)
        return TextDataset(
            texts=tuple(self.texts[r] for r in rows),
            y=self.y[rows],
            ids=tuple(ids),
            hashes=tuple(self.hashes[r] for r in rows),
            meta=self.meta,
        )


def write_text_dataset(
    folder: Path,
    *,
    texts: Sequence[str],
    y: npt.NDArray[Any],
    ids: Sequence[str],
    meta: Mapping[str, JsonValue] | None = None,
) -> TextDataset:
    """Write a text dataset package folder (created; must not exist or be empty)."""
    ys = np.ascontiguousarray(y, dtype=np.int64)
    if ys.shape != (len(texts),) or len(ids) != len(texts):
        raise InvalidRequest(
            f"dataset sizes disagree: {len(texts)} texts, y {ys.shape}, {len(ids)} ids"
        )
    hashes = tuple(text_item_hash(t, int(label)) for t, label in zip(texts, ys, strict=True))
    meta = {**(meta or {}), "modality": "text"}
    texts_file = (TEXTS_FILE, canonical.encode({"texts": list(texts)}))
    _write(folder, {"y": ys}, ids, hashes, meta, texts_file)
    return TextDataset(texts=tuple(texts), y=ys, ids=tuple(ids), hashes=hashes, meta=meta)


def read_text_dataset(folder: Path, *, check_hashes: bool = True) -> TextDataset:
    """Read a text dataset package folder; re-derives item hashes unless told not to.

    Raises:
        IntegrityError: files missing or malformed, or an item does not match its hash.
    """
    found = _read(folder, TEXTS_FILE)
    try:
        y = np.asarray(found.arrays["y"], dtype=np.int64)
        texts = tuple(found.extra["texts"])
    except (KeyError, TypeError) as e:
        raise IntegrityError(f"{folder}: malformed text dataset ({e})") from e
    if not all(isinstance(t, str) for t in texts) or y.shape[0] != len(texts):
        raise IntegrityError(f"{folder}: {TEXTS_FILE} and the labels disagree")
    _check(
        folder,
        found.ids,
        found.hashes,
        len(texts),
        (lambda i: text_item_hash(texts[i], int(y[i]))) if check_hashes else None,
    )
    return TextDataset(texts=texts, y=y, ids=found.ids, hashes=found.hashes, meta=found.meta)


def read_any_dataset(folder: Path, *, check_hashes: bool = True) -> Dataset | TextDataset:
    """Read a dataset package folder of either kind: a text one when it holds
    ``TEXTS_FILE``.

    Raises:
        IntegrityError: as :func:`read_dataset` and :func:`read_text_dataset`.
    """
    if (folder / TEXTS_FILE).is_file():
        return read_text_dataset(folder, check_hashes=check_hashes)
    return read_dataset(folder, check_hashes=check_hashes)

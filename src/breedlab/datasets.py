"""Dataset packages on disk: the files a ``dataset`` package holds, read and written.

A dataset package folder holds::

    data.safetensors   x: float32 (n, d) inputs, y: int64 (n,) labels
    items.json         {"ids": [...], "hashes": [...], "meta": {...}}   (canonical JSON)

Item ids are stable names (``digits-17``); item hashes bind each item's exact bytes and
label (``evaluator.items``), so a suite can prove it scored the items it claims. safetensors
keeps the arrays free of pickle. This module owns the format only; what the splits mean
is the capability's business.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from breedlab import canonical
from breedlab.canonical import JsonValue
from breedlab.errors import IntegrityError, InvalidRequest

__all__ = ["DATA_FILE", "ITEMS_FILE", "Dataset", "item_hash", "read_dataset", "write_dataset"]

DATA_FILE = "data.safetensors"
ITEMS_FILE = "items.json"


def item_hash(x_row: npt.NDArray[Any], y: int) -> str:
    """SHA-256 over an item's dtype, shape, exact bytes and label."""
    row = np.ascontiguousarray(x_row)
    header = canonical.encode({"dtype": row.dtype.str, "shape": list(row.shape), "y": int(y)})
    return hashlib.sha256(header + row.tobytes()).hexdigest()


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
        index = {item: i for i, item in enumerate(self.ids)}
        try:
            rows = [index[i] for i in ids]
        except KeyError as e:
            raise InvalidRequest(f"item {e.args[0]} is not in this dataset") from None
        return Dataset(
            x=self.x[rows],
            y=self.y[rows],
            ids=tuple(ids),
            hashes=tuple(self.hashes[r] for r in rows),
            meta=self.meta,
        )


def write_dataset(
    folder: Path,
    *,
    x: npt.NDArray[Any],
    y: npt.NDArray[Any],
    ids: Sequence[str],
    meta: Mapping[str, JsonValue] | None = None,
) -> Dataset:
    """Write a dataset package folder (created; must not exist or be empty)."""
    from safetensors.numpy import save_file

    xs = np.ascontiguousarray(x, dtype=np.float32)
    ys = np.ascontiguousarray(y, dtype=np.int64)
    if xs.ndim != 2 or ys.shape != (xs.shape[0],) or len(ids) != xs.shape[0]:
        raise InvalidRequest(f"dataset shapes disagree: x {xs.shape}, y {ys.shape}, {len(ids)} ids")
    if len(set(ids)) != len(ids):
        raise InvalidRequest("dataset item ids must be unique")
    hashes = tuple(item_hash(xs[i], int(ys[i])) for i in range(len(ids)))
    folder.mkdir(parents=True, exist_ok=True)
    save_file({"x": xs, "y": ys}, str(folder / DATA_FILE))
    record = {"ids": list(ids), "hashes": list(hashes), "meta": dict(meta or {})}
    (folder / ITEMS_FILE).write_bytes(canonical.encode(record))
    return Dataset(x=xs, y=ys, ids=tuple(ids), hashes=hashes, meta=dict(meta or {}))


def read_dataset(folder: Path, *, check_hashes: bool = True) -> Dataset:
    """Read a dataset package folder; re-derives item hashes unless told not to.

    Raises:
        IntegrityError: files missing or malformed, or an item does not match its hash.
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        arrays = load_file(str(folder / DATA_FILE))
        record = canonical.decode((folder / ITEMS_FILE).read_bytes())
    except (FileNotFoundError, SafetensorError) as e:
        raise IntegrityError(f"{folder} is not a dataset package: {e}") from e
    try:
        x = np.asarray(arrays["x"], dtype=np.float32)
        y = np.asarray(arrays["y"], dtype=np.int64)
        ids = tuple(str(i) for i in record["ids"])
        hashes = tuple(str(h) for h in record["hashes"])
        meta = dict(record.get("meta", {}))
    except (KeyError, TypeError) as e:
        raise IntegrityError(f"{folder}: malformed dataset ({e})") from e
    if not (x.shape[0] == y.shape[0] == len(ids) == len(hashes)):
        raise IntegrityError(f"{folder}: dataset arrays and items.json disagree in length")
    if check_hashes:
        for i, expected in enumerate(hashes):
            if item_hash(x[i], int(y[i])) != expected:
                raise IntegrityError(f"{folder}: item {ids[i]} does not match its hash")
    return Dataset(x=x, y=y, ids=ids, hashes=hashes, meta=meta)

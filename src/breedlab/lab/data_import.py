"""``dataset import``: a user's CSV, JSONL or Parquet file checked against its
capability's contract and stored as the four splits (decision record 0015).

Read, decide, write: every row is read and checked first (one-line errors naming the
row and the column); the stratified split is a pure function (``breedlab.splits``);
only then are the four packages written (``lab.dataset_splits``, the same path as the
digits bootstrap). A bad row leaves the ledger as it was.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from breedlab import interrupts
from breedlab.canonical import JsonValue
from breedlab.datasets import item_hash, text_item_hash, write_dataset, write_text_dataset
from breedlab.errors import InvalidRequest
from breedlab.lab.dataset_splits import store_split
from breedlab.registry.capability import Contract, InputType
from breedlab.rows import Row, read_rows
from breedlab.splits import DEFAULT_FRACTIONS, SPLIT_NAMES, grouped_split, stratified_split
from breedlab.supply import packages as supply_packages
from breedlab.supply.values import PackageInfo

if TYPE_CHECKING:
    from breedlab.supply.service import Supply

__all__ = ["Columns", "Imported", "ImportedSplit", "import_dataset"]

Progress = Callable[[str], None]
_EVERY = 50_000  # rows between progress lines
_FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True, slots=True, kw_only=True)
class Columns:
    """Which columns of the file are what: ``features`` (tabular/tensor) or ``text``."""

    label: str
    features: tuple[str, ...] = ()
    text: str | None = None
    id: str | None = None
    group: str | None = None  # rows of one group go whole into one split


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportedSplit:
    split: str
    package: PackageInfo
    labels: Mapping[str, int]  # items per label

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "split": self.split,
            "package": str(self.package.id),
            "name": self.package.manifest.name,
            "alias": f"{self.package.manifest.capability}@data-{self.split}",
            "items": sum(self.labels.values()),
            "labels": dict(self.labels),
            "created": self.package.created,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Imported:
    capability: str
    rows: int
    splits: tuple[ImportedSplit, ...]

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "capability": self.capability,
            "rows": self.rows,
            "packages": [s.to_json() for s in self.splits],
        }


# -- decide: one row against the contract -------------------------------------------------


def _fail(n: int, column: str, problem: str) -> InvalidRequest:
    return InvalidRequest(f"row {n}, column {column!r}: {problem}")


def _present(n: int, row: Row, column: str) -> object:
    value = row.get(column)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise _fail(n, column, "is missing")
    return value


def _number(n: int, row: Row, column: str, bounds: tuple[float, float] | None) -> float:
    value = _present(n, row, column)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _fail(n, column, f"{value!r} is not a number")
    try:
        number = float(value)
    except ValueError:
        raise _fail(n, column, f"{value!r} is not a number") from None
    if not math.isfinite(number) or abs(number) > _FLOAT32_MAX:
        raise _fail(n, column, f"{value!r} is not a finite float32 number")
    if bounds is not None and not bounds[0] <= number <= bounds[1]:
        raise _fail(
            n, column, f"{value!r} is outside the contract's range {bounds[0]}..{bounds[1]}"
        )
    return number


def _label(n: int, row: Row, column: str, index: Mapping[str, int]) -> int:
    value = _present(n, row, column)
    label = (
        str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else None
    )
    if label is None or label not in index:
        raise _fail(n, column, f"{value!r} is not one of the contract's labels")
    return index[label]


def _text(n: int, row: Row, column: str, max_length: int) -> str:
    value = _present(n, row, column)
    if not isinstance(value, str):
        raise _fail(n, column, f"{value!r} is not text")
    if len(value) > max_length:
        raise _fail(n, column, f"is {len(value)} characters, above max_length {max_length}")
    return value


def _check_columns(contract: Contract, columns: Columns, present: Sequence[str]) -> Columns:
    """The columns to read, checked against the contract's input type and the file."""
    if contract.input_type is InputType.TEXT:
        if columns.text is None or columns.features:
            raise InvalidRequest(
                f"capability {contract.name!r} takes text: pass --text-column, "
                "not --feature-columns"
            )
    else:
        if columns.text is not None:
            raise InvalidRequest(
                f"capability {contract.name!r} takes {contract.input_type} input: pass "
                "--feature-columns, not --text-column"
            )
        features = columns.features or contract.features
        if contract.features and tuple(features) != contract.features:
            raise InvalidRequest(
                f"--feature-columns must be the contract's features, in order: "
                f"{','.join(contract.features)}"
            )
        if not features:
            raise InvalidRequest("pass --feature-columns (the contract names no features)")
        if contract.input_shape and len(features) != math.prod(contract.input_shape):
            raise InvalidRequest(
                f"{len(features)} feature columns, but the contract's input has "
                f"{math.prod(contract.input_shape)} values"
            )
        columns = dataclasses.replace(columns, features=tuple(features))
    named = (columns.text, columns.id, columns.group)
    wanted = [columns.label, *columns.features, *filter(None, named)]
    missing = [c for c in wanted if c not in present]
    if missing and present:  # a JSONL file's columns are its first object's keys
        raise InvalidRequest(
            f"column {missing[0]!r} is not in the file (its columns: {', '.join(present)})"
        )
    return columns


# -- read and decide, then write -----------------------------------------------------------


def import_dataset(
    supply: Supply,
    path: Path,
    *,
    capability: str,
    columns: Columns,
    seed: int = 0,
    fractions: Mapping[str, float] = DEFAULT_FRACTIONS,
    sign_with: str | None = None,
    license: str = "LicenseRef-unspecified",
    progress: Progress | None = None,
) -> Imported:
    """Check every row of ``path`` against ``capability``'s contract, split the rows
    (stratified by label, seeded) and store the four splits as dataset packages aliased
    ``CAP@data-train`` .. ``CAP@data-sealed``.

    Raises:
        NotFound: no such file or capability.
        InvalidRequest: a bad file, column choice or row (naming the row and column), a
            repeated id, or a split that would be empty; nothing is written then.
        Interrupted: a stop was requested (before anything is written, or between splits).
    """
    say = progress or (lambda _m: None)
    _, contract = supply_packages.capability(supply, capability)
    index = {label: i for i, label in enumerate(contract.labels)}
    xs: list[list[float]] = []
    texts: list[str] = []
    ys: list[int] = []
    ids: list[str] = []
    groups: list[str] = []
    seen: dict[str, int] = {}
    with read_rows(path) as rows:
        columns = _check_columns(contract, columns, rows.columns)
        bounds = [contract.range_of(f) for f in columns.features]
        for n, row in rows:
            if n % _EVERY == 0:
                interrupts.check(f"reading row {n}")
                say(f"checked {n} rows")
            y = _label(n, row, columns.label, index)
            if columns.text is not None:
                text = _text(n, row, columns.text, contract.max_length or 0)
                content = text_item_hash(text, y)
                texts.append(text)
            else:
                x = [_number(n, row, c, b) for c, b in zip(columns.features, bounds, strict=True)]
                content = item_hash(np.asarray(x, dtype=np.float32), y)
                xs.append(x)
            item = (
                str(_present(n, row, columns.id)) if columns.id else f"{capability}-{content[:16]}"
            )
            if item in seen:
                what = f"column {columns.id!r}" if columns.id else "the same content"
                raise InvalidRequest(f"row {n}: id {item!r} repeats row {seen[item]} ({what})")
            seen[item] = n
            ids.append(item)
            ys.append(y)
            if columns.group is not None:
                groups.append(str(_present(n, row, columns.group)))
    if not ys:
        raise InvalidRequest(f"{path} has no rows")
    if columns.group is None:
        say(f"checked {len(ys)} rows; splitting by label with seed {seed}")
        chosen = stratified_split(ys, fractions, seed)
    else:
        say(f"checked {len(ys)} rows; splitting by {columns.group!r} groups with seed {seed}")
        chosen = grouped_split(ys, groups, fractions, seed)
    interrupts.check("writing the splits")
    y_all = np.asarray(ys, dtype=np.int64)
    x_all = np.asarray(xs, dtype=np.float32)
    stored: list[ImportedSplit] = []
    with tempfile.TemporaryDirectory(prefix="breedlab-import-") as scratch:
        for split in SPLIT_NAMES:
            rows_of = chosen[split]
            folder = Path(scratch) / split
            meta: dict[str, JsonValue] = {
                "split": split,
                "seed": seed,
                "labels": list(contract.labels),
            }
            split_ids = [ids[r] for r in rows_of]
            if columns.group is not None:  # absent otherwise: ungrouped ids stay as they were
                meta["group_column"] = columns.group
                meta["groups"] = sorted({groups[r] for r in rows_of})
            if columns.text is not None:
                write_text_dataset(
                    folder,
                    texts=[texts[r] for r in rows_of],
                    y=y_all[rows_of],
                    ids=split_ids,
                    meta=meta,
                )
            else:
                meta["features"] = list(columns.features)
                write_dataset(folder, x=x_all[rows_of], y=y_all[rows_of], ids=split_ids, meta=meta)
            info = store_split(
                supply,
                folder,
                capability=capability,
                split=split,
                license=license,
                sign_with=sign_with,
                reason=f"dataset import, seed {seed}",
            )
            counts = Counter(contract.labels[int(v)] for v in y_all[rows_of])
            stored.append(
                ImportedSplit(
                    split=split,
                    package=info,
                    labels={label: counts[label] for label in contract.labels if counts[label]},
                )
            )
            say(f"{split}: {len(rows_of)} items, package {info.id.short}")
            interrupts.check(f"storing the split after {split}")
    return Imported(capability=capability, rows=len(ys), splits=tuple(stored))

"""Rows of a user's data file, for ``dataset import``: CSV (stdlib ``csv``, a header
row), JSON Lines (one object per line) and Parquet (pyarrow), chosen by the file's
suffix. Nothing is unpickled; a Parquet file is read with pyarrow only.

Rows come as ``{column: value}`` with their number (1 = the first data row, the header
not counted), one at a time, so a big file is never all in memory as Python objects.
What a value must be is the importer's business (``lab.data_import``).
"""

from __future__ import annotations

import csv
import itertools
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from breedlab.errors import InvalidRequest, NotFound

__all__ = ["FORMATS", "Row", "Rows", "describe_table", "read_rows"]

Row = Mapping[str, object]
FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}


class Rows:
    """An open data file: its ``columns`` (as the file names them) and its rows."""

    def __init__(self, columns: tuple[str, ...], rows: Iterator[Row]) -> None:
        self.columns = columns
        self._rows = rows

    def __iter__(self) -> Iterator[tuple[int, Row]]:
        return enumerate(self._rows, start=1)


def _csv(path: Path) -> Iterator[Rows]:
    with path.open(newline="", encoding="utf-8-sig") as f:  # a spreadsheet's BOM is no column
        reader = csv.DictReader(f, strict=True)
        try:
            columns = tuple(reader.fieldnames or ())
        except (csv.Error, UnicodeDecodeError) as e:
            raise InvalidRequest(f"{path}: not a CSV file with a header row ({e})") from e

        def rows() -> Iterator[Row]:
            try:
                for n, row in enumerate(reader, start=1):
                    if None in row:  # more fields than the header names
                        raise InvalidRequest(f"{path}: row {n} has more fields than the header")
                    yield row
            except (csv.Error, UnicodeDecodeError) as e:
                raise InvalidRequest(
                    f"{path}: unreadable CSV near line {reader.line_num}: {e}"
                ) from e

        yield Rows(columns, rows())


def _jsonl(path: Path) -> Iterator[Rows]:
    def row(n: int, line: str) -> Row:
        try:
            value = json.loads(line)
        except json.JSONDecodeError as e:
            raise InvalidRequest(f"{path}: row {n} is not JSON ({e.msg})") from None
        if not isinstance(value, dict):
            raise InvalidRequest(f"{path}: row {n} is not a JSON object")
        return value

    def lines(f: TextIO) -> Iterator[str]:
        try:
            yield from (line for line in f if line.strip())
        except UnicodeDecodeError as e:
            raise InvalidRequest(f"{path}: not UTF-8 text ({e})") from e

    with path.open(encoding="utf-8") as f:
        text = lines(f)
        first = next(text, None)
        head = [] if first is None else [row(1, first)]
        rest = (row(n, line) for n, line in enumerate(text, start=2))
        yield Rows(tuple(head[0]) if head else (), itertools.chain(head, rest))


def _parquet(path: Path) -> Iterator[Rows]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as e:
        raise InvalidRequest(f"{path}: not a Parquet file ({e})") from e

    def rows() -> Iterator[Row]:
        try:
            for batch in parquet.iter_batches(batch_size=8192):
                yield from batch.to_pylist()
        except pa.ArrowException as e:
            raise InvalidRequest(f"{path}: unreadable Parquet ({e})") from e

    with parquet:
        yield Rows(tuple(parquet.schema_arrow.names), rows())


_READERS = {"csv": _csv, "jsonl": _jsonl, "parquet": _parquet}


@contextmanager
def read_rows(path: Path) -> Iterator[Rows]:
    """The file at ``path``, open, as :class:`Rows` (closed when the block ends).

    Raises:
        NotFound: no such file.
        InvalidRequest: an unknown suffix, or the file is not what its suffix says (at
            open, or when the bad row is reached).
    """
    if not path.is_file():
        raise NotFound(f"no such file: {path}")
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise InvalidRequest(
            f"{path}: unknown data file type {path.suffix!r}",
            hint=f"give one of: {', '.join(sorted(FORMATS))}",
        )
    yield from _READERS[kind](path)


def describe_table(
    path: Path, *, label_column: str, ignore: Sequence[str] = ()
) -> tuple[list[str], list[str]]:
    """A table's feature columns (every column but the label and ``ignore``, in the
    file's order) and its labels (the label column's distinct values, sorted): what
    ``capability init --from FILE`` writes into a contract.

    Raises:
        NotFound, InvalidRequest: as :func:`read_rows`; a named column is missing; the
            label column is empty somewhere.
    """
    with read_rows(path) as table:
        missing = [c for c in (label_column, *ignore) if c not in table.columns]
        if missing:
            raise InvalidRequest(
                f"{path} has no column {missing[0]!r}",
                hint=f"its columns: {', '.join(table.columns)}",
            )
        features = [c for c in table.columns if c != label_column and c not in ignore]
        labels: set[str] = set()
        for n, row in table:
            value = row.get(label_column)
            if value is None or str(value).strip() == "":
                raise InvalidRequest(f"row {n}, column {label_column!r}: no label")
            labels.add(str(value))
    return features, sorted(labels)

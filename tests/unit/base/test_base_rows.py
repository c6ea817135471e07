"""``breedlab.rows``: a user's CSV, JSONL or Parquet file, row by row, never unpickled."""

from __future__ import annotations

from pathlib import Path

import pytest

from breedlab.errors import InvalidRequest, NotFound
from breedlab.rows import read_rows


def test_a_csv_with_a_spreadsheets_bom_has_clean_column_names(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_bytes("\ufeffa,b\n1,x\n2,y\n".encode())
    with read_rows(path) as rows:
        assert rows.columns == ("a", "b")
        assert list(rows) == [(1, {"a": "1", "b": "x"}), (2, {"a": "2", "b": "y"})]


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("d.jsonl", b'{"a": 1}\n[1, 2]\n', r"row 2 is not a JSON object"),
        ("d.jsonl", b'{"a": 1}\n{"a": \n', r"row 2 is not JSON"),
        ("d.csv", b"a,b\n1,2,3\n", r"row 1 has more fields than the header"),
        ("d.parquet", b"PAR1 not really", r"not a Parquet file"),
        ("d.pkl", b"\x80\x04", r"unknown data file type '.pkl'"),
    ],
)
def test_a_malformed_file_is_refused_by_name(
    tmp_path: Path, name: str, content: bytes, match: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InvalidRequest, match=match), read_rows(path) as rows:
        list(rows)


def test_a_missing_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound), read_rows(tmp_path / "nope.csv"):
        pass

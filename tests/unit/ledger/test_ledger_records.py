"""The typed ledger records are the schema's tables: the reader selects a record's fields
by name, so a column added, renamed or made nullable in ``schema.py`` without its record
is caught here, not by a query that fails on PostgreSQL only."""

from __future__ import annotations

import types
import typing
from dataclasses import fields

import pytest

from breedlab.ledger import records, schema
from breedlab.ledger.reader import EVENT_COLUMNS


@pytest.mark.parametrize("record", records.RECORDS, ids=lambda r: r.__name__)
def test_each_record_has_its_tables_columns_in_order(record: type[records.Record]) -> None:
    table = schema.metadata.tables[record.TABLE]
    hints = typing.get_type_hints(record)
    assert [f.name for f in fields(record)] == [c.name for c in table.columns]
    for column in table.columns:
        hint = hints[column.name]
        optional = isinstance(hint, types.UnionType) and type(None) in typing.get_args(hint)
        assert optional == bool(column.nullable), column.name
        python = typing.get_args(hint)[0] if optional else hint
        assert python is column.type.python_type, column.name


def test_every_projection_table_but_head_and_lineage_has_a_record() -> None:
    covered = {r.TABLE for r in records.RECORDS}
    projected = {table.name for table, _ in schema.PROJECTIONS}
    assert projected - covered == {"head", "lineage"}  # read as plain values


def test_the_reader_selects_every_event_column() -> None:
    assert EVENT_COLUMNS.split(", ") == [c.name for c in schema.events.columns]


def test_a_record_is_frozen_and_built_from_a_mapping() -> None:
    row = {"seq": 4, "package": "sha256:" + "a" * 64, "reason": "leaked"}
    revocation = records.RevocationRecord.from_row(row)
    assert revocation.reason == "leaked" and revocation.seq == 4
    with pytest.raises(AttributeError):
        revocation.reason = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        records.RevocationRecord.from_row({**row, "extra": 1})

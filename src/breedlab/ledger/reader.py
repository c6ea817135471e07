"""Reading the ledger: :class:`Reader`'s typed queries, written once for every connection.

A :class:`Reader` sends its queries to a :class:`Rows` executor. Two exist: a SQLAlchemy
connection (:mod:`breedlab.ledger.engine`: writing transactions, and every read of a
PostgreSQL ledger) and a standard-library ``sqlite3`` connection (:class:`SqliteRows`:
read-only commands on a SQLite lab, which then never load SQLAlchemy). So the queries
are SQL text with ``:name`` parameters -- the syntax both accept -- using only what
SQLite and PostgreSQL share. Projection rows come back as the frozen records of
:mod:`breedlab.ledger.records`, events as :class:`~breedlab.ledger.Event`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

from breedlab import canonical
from breedlab.errors import ChainBroken, IntegrityError, NotFound
from breedlab.ledger.chain import GENESIS, Event, EventSignature
from breedlab.ledger.records import (
    AliasRecord,
    ApprovalRecord,
    CheckpointRecord,
    KeyRecord,
    PackageRecord,
    Record,
    RevocationRecord,
    SignatureRecord,
)

__all__ = ["BUSY_TIMEOUT_MS", "EVENT_COLUMNS", "Reader", "Rows", "SqliteRows"]

#: How long a connection waits for another's lock before failing (writers queue on it).
BUSY_TIMEOUT_MS = 30_000

_R = TypeVar("_R", bound=Record)
EVENT_COLUMNS = "seq, at, actor, kind, subject, payload, prev_hash, hash, sig"


class Rows(Protocol):
    """Runs one query and returns its rows as mappings from column name to value."""

    def query(self, sql: str, params: Mapping[str, object], /) -> Iterator[Mapping[str, Any]]:
        """The rows of ``sql`` (``:name`` placeholders filled from ``params``), lazily."""
        ...


class SqliteRows:
    """:class:`Rows` over a ``sqlite3`` connection: the read-only path."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    @staticmethod
    def connect(path: Path) -> sqlite3.Connection:
        """A connection to the ledger file at ``path`` that cannot change it
        (``query_only``); the caller begins and ends its read transactions.

        Opened ``mode=rw`` rather than ``mode=ro``: a read-only connection cannot remove
        the WAL files when it is the last to close, and would leave them beside the
        ledger. ``mode=rw`` never creates a missing file.

        Raises:
            sqlite3.Error: no such file, or not a database.
        """
        conn = sqlite3.connect(
            f"{path.as_uri()}?mode=rw", uri=True, isolation_level=None, check_same_thread=False
        )
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA query_only=ON")
        return conn

    def query(self, sql: str, params: Mapping[str, object], /) -> Iterator[Mapping[str, Any]]:
        cursor = self.conn.execute(sql, params)
        names = tuple(column[0] for column in cursor.description)
        return (dict(zip(names, row, strict=True)) for row in cursor)


def _select(record: type[Record], where: str, order: str) -> str:
    return f"SELECT {record.columns()} FROM {record.TABLE}{where}{order}"


def _row_event(row: Mapping[str, Any]) -> Event:
    seq = row["seq"]
    try:
        payload = canonical.decode(row["payload"].encode("utf-8"))
    except IntegrityError as e:
        raise ChainBroken(f"ledger seq {seq}: payload is not canonical JSON") from e
    sig = None
    if row["sig"] is not None:
        try:
            sig = EventSignature.from_json(canonical.decode(row["sig"].encode("utf-8")))
        except IntegrityError as e:
            raise ChainBroken(f"ledger seq {seq}: {e.message}") from e
    return Event(
        sig=sig,
        payload_json=row["payload"].encode("utf-8"),  # canonical: decode() checked it
        seq=seq,
        at=row["at"],
        actor=row["actor"],
        kind=row["kind"],
        subject=row["subject"],
        payload=payload,
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )


class Reader:
    """Queries over one connection (inside a transaction, or a read-only one)."""

    def __init__(self, rows: Rows) -> None:
        self.rows = rows

    def _query(self, sql: str, **params: object) -> Iterator[Mapping[str, Any]]:
        return self.rows.query(sql, params)

    def _value(self, sql: str, **params: object) -> Any:
        """The first column of the first row (None: no row)."""
        row = next(self.rows.query(sql, params), None)
        return None if row is None else next(iter(row.values()))

    def _records(
        self, record: type[_R], where: str = "", order: str = "", **params: object
    ) -> list[_R]:
        return [record.from_row(r) for r in self.rows.query(_select(record, where, order), params)]

    def _record(self, record: type[_R], where: str, **params: object) -> _R | None:
        row = next(self.rows.query(_select(record, where, ""), params), None)
        return None if row is None else record.from_row(row)

    def head(self) -> tuple[int, str]:
        row = next(self._query("SELECT seq, hash FROM head"), None)
        return (0, GENESIS) if row is None else (int(row["seq"]), str(row["hash"]))

    def events(
        self, *, after: int = 0, kinds: Sequence[str] = (), subject: str | None = None
    ) -> Iterator[Event]:
        where = " WHERE seq > :after"
        params: dict[str, object] = {"after": after}
        if kinds:
            names = [f"kind{i}" for i in range(len(kinds))]
            where += " AND kind IN (" + ", ".join(f":{n}" for n in names) + ")"
            params.update(zip(names, kinds, strict=True))
        if subject is not None:
            where += " AND subject = :subject"
            params["subject"] = subject
        sql = f"SELECT {EVENT_COLUMNS} FROM events{where} ORDER BY seq"
        for row in self.rows.query(sql, params):
            yield _row_event(row)

    def event(self, seq: int) -> Event:
        sql = f"SELECT {EVENT_COLUMNS} FROM events WHERE seq = :seq"
        row = next(self._query(sql, seq=seq), None)
        if row is None:
            raise NotFound(f"no ledger event with seq {seq}")
        return _row_event(row)

    def package(self, package_id: str) -> PackageRecord | None:
        return self._record(PackageRecord, " WHERE id = :id", id=package_id)

    def packages(
        self, *, capability: str | None = None, kind: str | None = None
    ) -> list[PackageRecord]:
        params = {
            name: value
            for name, value in (("capability", capability), ("kind", kind))
            if value is not None
        }
        where = " AND ".join(f"{name} = :{name}" for name in params)
        where = f" WHERE {where}" if where else ""
        return self._records(PackageRecord, where, " ORDER BY registered_seq", **params)

    def packages_with_prefix(self, hex_prefix: str) -> list[str]:
        sql = "SELECT id FROM packages WHERE id LIKE :pattern LIMIT 10"
        return [str(r["id"]) for r in self._query(sql, pattern=f"sha256:{hex_prefix}%")]

    def alias(self, capability: str, name: str) -> str | None:
        sql = "SELECT target FROM aliases WHERE capability = :capability AND name = :name"
        value = self._value(sql, capability=capability, name=name)
        return None if value is None else str(value)

    def aliases(self, capability: str | None = None) -> list[AliasRecord]:
        order = " ORDER BY capability, name"
        if capability is None:
            return self._records(AliasRecord, "", order)
        return self._records(
            AliasRecord, " WHERE capability = :capability", order, capability=capability
        )

    def aliases_of(self, package_id: str) -> list[AliasRecord]:
        return self._records(AliasRecord, " WHERE target = :target", target=package_id)

    def all_keys(self) -> list[KeyRecord]:
        return self._records(KeyRecord, order=" ORDER BY added_seq")

    def key(self, name: str) -> KeyRecord | None:
        return self._record(KeyRecord, " WHERE name = :name", name=name)

    def key_by_id(self, keyid: str) -> KeyRecord | None:
        return self._record(KeyRecord, " WHERE keyid = :keyid", keyid=keyid)

    def signatures(self, package_id: str) -> list[SignatureRecord]:
        where, order = " WHERE package = :package", " ORDER BY seq"
        return self._records(SignatureRecord, where, order, package=package_id)

    def approvals(self, package_id: str) -> list[ApprovalRecord]:
        where, order = " WHERE package = :package", " ORDER BY seq"
        return self._records(ApprovalRecord, where, order, package=package_id)

    def revocation(self, package_id: str) -> RevocationRecord | None:
        return self._record(RevocationRecord, " WHERE package = :package", package=package_id)

    def checkpoints(self) -> list[CheckpointRecord]:
        return self._records(CheckpointRecord, order=" ORDER BY seq")

    def parents(self, package_id: str) -> list[str]:
        sql = "SELECT parent FROM lineage WHERE child = :child"
        return [str(r["parent"]) for r in self._query(sql, child=package_id)]

    def children(self, package_id: str) -> list[str]:
        """Packages registered with ``package_id`` among their parents."""
        sql = "SELECT child FROM lineage WHERE parent = :parent"
        return [str(r["child"]) for r in self._query(sql, parent=package_id)]

    def event_hashes(self, *, after: int = 0) -> list[bytes]:
        """The raw hashes of the events after seq ``after``, in order: Merkle leaves."""
        sql = "SELECT hash FROM events WHERE seq > :after ORDER BY seq"
        return [bytes.fromhex(r["hash"]) for r in self._query(sql, after=after)]

    def last_checkpoint_size(self) -> int:
        """How many events the latest checkpoint covers (0: none yet)."""
        value = self._value("SELECT max(tree_size) AS size FROM checkpoints")
        return 0 if value is None else int(value)

    def last_event_kind(self) -> str | None:
        value = self._value("SELECT kind FROM events ORDER BY seq DESC LIMIT 1")
        return None if value is None else str(value)

    def event_count(self) -> int:
        return int(self._value("SELECT count(*) AS n FROM events"))

    def projection(self, name: str, columns: Sequence[str], order: str) -> list[tuple[Any, ...]]:
        """Every row of a projection table, as tuples of ``columns`` (``ledger verify``)."""
        sql = f"SELECT {', '.join(columns)} FROM {name} ORDER BY {order}"
        return [tuple(row[c] for c in columns) for row in self._query(sql)]

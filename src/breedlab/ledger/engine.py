"""The ledger on a SQLAlchemy engine: the writing transaction :class:`Txn`, and reads of
any database outside the read-only SQLite path (PostgreSQL, or a lab opened to write).

A writing transaction's reads see a consistent state and its appends extend the chain,
apply projections and commit together -- or not at all. On SQLite (WAL,
``synchronous=FULL``: a commit is durable when it returns) a transaction starts with
``BEGIN IMMEDIATE``, so writers queue instead of deadlocking; on other databases the head
row is locked with ``SELECT ... FOR UPDATE``.

:class:`~breedlab.ledger.Ledger` loads this module with its first engine: importing
SQLAlchemy costs ~0.3 s, which a read-only command on a SQLite lab never pays.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Mapping
from typing import Any, cast

from sqlalchemy import (
    Connection,
    Engine,
    TextClause,
    bindparam,
    create_engine,
    event,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from breedlab.canonical import JsonValue
from breedlab.clock import Clock, format_time
from breedlab.errors import ChainBroken, ConfigError, LabError
from breedlab.ledger import migrations, projections, schema
from breedlab.ledger.chain import GENESIS, Event, seal, verify_chain
from breedlab.ledger.kinds import EventKind, payload_problems
from breedlab.ledger.reader import BUSY_TIMEOUT_MS, Reader
from breedlab.signing.keys import KeyPair

__all__ = [
    "ConnectionRows",
    "Txn",
    "compare_projections",
    "migrate",
    "open_engine",
    "reading",
    "transaction",
]

# Built once: building insert(...).values(...) per event was half of the append time.
_INSERT_EVENT = insert(schema.events)
_MOVE_HEAD = (
    update(schema.head)
    .where(schema.head.c.id == 1)
    .values(seq=bindparam("new_seq"), hash=bindparam("new_hash"))
)


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(url, future=True)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        if ":memory:" not in url:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def open_engine(url: str) -> Engine:
    """An engine for ``url``: a ``sqlite:///`` URL or any SQLAlchemy database URL."""
    try:
        if url.startswith("sqlite"):
            return _sqlite_engine(url)
        return create_engine(url, future=True, pool_pre_ping=True)
    except SQLAlchemyError as e:  # bad URL, missing driver
        raise ConfigError(f"cannot open ledger database {url!r}: {e}") from e


# A query's text is parsed for its :name parameters once, not per call.
_text = functools.lru_cache(maxsize=512)(text)


class ConnectionRows:
    """A :class:`~breedlab.ledger.reader.Rows` executor over a SQLAlchemy connection."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def query(self, sql: str, params: Mapping[str, object], /) -> Iterator[Mapping[str, Any]]:
        clause: TextClause = _text(sql)
        rows = self.conn.execute(clause, dict(params)).mappings()
        # A RowMapping's keys may also be Columns; a text query's are its names.
        return cast(Iterator[Mapping[str, Any]], iter(rows))


def migrate(engine: Engine, url: str) -> None:
    """Create or migrate the tables to the current schema (idempotent; Alembic)."""
    try:
        with engine.begin() as conn:
            migrations.upgrade(conn)
    except SQLAlchemyError as e:
        raise ConfigError(f"cannot create the ledger tables at {url}: {e}") from e


@contextlib.contextmanager
def reading(engine: Engine) -> Iterator[Reader]:
    """A read-only view (on SQLite, still a transaction: consistent reads)."""
    try:
        with engine.connect() as conn:
            yield Reader(ConnectionRows(conn))
            conn.rollback()
    except OperationalError as e:
        raise LabError(f"ledger database error: {e.orig}") from e


@contextlib.contextmanager
def transaction(engine: Engine, clock: Clock) -> Iterator[Txn]:
    """A writing transaction; commits on success, rolls back on any exception."""
    try:
        with engine.begin() as conn:
            tx = Txn(conn, clock, lock_head=engine.dialect.name != "sqlite")
            yield tx
            tx.flush()
    except OperationalError as e:
        raise LabError(f"ledger database error: {e.orig}") from e


class Txn(Reader):
    """A writing transaction: appends extend the chain and update projections."""

    def __init__(self, conn: Connection, clock: Clock, lock_head: bool) -> None:
        super().__init__(ConnectionRows(conn))
        self.conn = conn
        self.clock = clock
        self.appended: list[Event] = []
        self._head: tuple[int, str] | None = None
        self._lock_head = lock_head

    def _current_head(self) -> tuple[int, str]:
        if self._head is None:
            query = select(schema.head.c.seq, schema.head.c.hash).where(schema.head.c.id == 1)
            if self._lock_head:
                query = query.with_for_update()
            row = self.conn.execute(query).first()
            if row is None:
                self.conn.execute(insert(schema.head).values(id=1, seq=0, hash=GENESIS))
                self._head = (0, GENESIS)
            else:
                self._head = (int(row.seq), str(row.hash))
        return self._head

    def locked_head(self) -> tuple[int, str]:
        """The head this transaction extends, locked against other writers."""
        return self._current_head()

    def append(
        self,
        kind: str,
        subject: str,
        payload: Mapping[str, JsonValue],
        *,
        signer: KeyPair | None,
        actor: str | None = None,
    ) -> Event:
        """Append one event (hash-chained, signed by ``signer``) and apply its projection.

        A kind given as an :class:`~breedlab.ledger.kinds.EventKind` has its payload
        checked against the catalogue first; a plain string is written as given.
        ``actor`` (default: the signer's key name) is a label; who made the change is the
        signature. Only attack tests and pre-signature history have ``signer=None``:
        verification refuses an unsigned state change.

        Raises:
            Conflict: the projection refused (e.g. an alias compare-and-swap lost).
            TypeError: an ``EventKind``'s payload does not follow the catalogue.
        """
        if isinstance(kind, EventKind) and (problems := payload_problems(kind, payload)):
            raise TypeError("; ".join(problems))  # the lab's own code is wrong: a bug
        seq, prev = self._current_head()
        ev = seal(
            seq=seq + 1,
            at=format_time(self.clock.now()),
            actor=actor or (signer.name if signer is not None else "unknown"),
            kind=str(kind),  # an EventKind is stored as its plain value
            subject=subject,
            payload=payload,
            prev_hash=prev,
            signer=signer,
        )
        self._write(ev)
        return ev

    def append_sealed(self, ev: Event) -> None:
        """Append an event sealed elsewhere (``migrate`` copying a ledger), unchanged.

        Raises:
            ChainBroken: ``ev`` does not extend this chain (seq, prev_hash or hash wrong).
        """
        seq, prev = self._current_head()
        verify_chain([ev], start_hash=prev, start_seq=seq + 1)
        self._write(ev)

    def _write(self, ev: Event) -> None:
        self.conn.execute(
            _INSERT_EVENT,
            {
                "seq": ev.seq,
                "at": ev.at,
                "actor": ev.actor,
                "kind": ev.kind,
                "subject": ev.subject,
                "payload": ev.canonical_payload().decode("utf-8"),
                "prev_hash": ev.prev_hash,
                "hash": ev.hash,
                "sig": None if ev.sig is None else ev.sig.canonical(),
            },
        )
        projections.apply(self.conn, ev)
        self._head = (ev.seq, ev.hash)  # the head row is written once, by flush()
        self.appended.append(ev)

    def head(self) -> tuple[int, str]:
        """The head, including this transaction's own appends."""
        return self._current_head()

    def flush(self) -> None:
        """Move the head row to the last append (once per transaction, before commit)."""
        if self.appended:
            seq, hash_ = self._current_head()
            self.conn.execute(_MOVE_HEAD, {"new_seq": seq, "new_hash": hash_})


def compare_projections(r: Reader) -> None:
    """Replay the events of ``r`` into a scratch database and compare every projection.

    Raises:
        ChainBroken: names the first table that disagrees with its events.
    """
    scratch = open_engine("sqlite://")
    try:
        schema.metadata.create_all(scratch)
        with scratch.begin() as conn:
            last: Event | None = None
            for last in r.events():
                projections.apply(conn, last)
            seq, hash_ = (0, GENESIS) if last is None else (last.seq, last.hash)
            conn.execute(insert(schema.head).values(id=1, seq=seq, hash=hash_))
            for table, order in schema.PROJECTIONS:
                columns = [c.name for c in table.columns]
                mine = r.projection(table.name, columns, order.name)
                want = [tuple(row) for row in conn.execute(select(table).order_by(order))]
                mine.sort(key=repr)
                want.sort(key=repr)
                if mine != want:
                    raise ChainBroken(
                        f"ledger table {table.name!r} disagrees with its events: "
                        "a derived row was edited, added or deleted"
                    )
    except LabError:
        raise
    except SQLAlchemyError as e:
        raise ChainBroken(f"ledger replay failed: {e}") from e
    finally:
        scratch.dispose()

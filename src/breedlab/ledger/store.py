"""The ledger's SQL store: append in transactions, read, verify (SQLAlchemy Core).

``Ledger.transaction()`` yields a :class:`Txn`: its reads see a consistent state and its
appends extend the chain, apply projections and commit together -- or not at all. On
SQLite (WAL, ``synchronous=FULL``: a commit is durable when it returns) a writing
transaction starts with ``BEGIN IMMEDIATE``, so writers queue instead of deadlocking; on
other databases the head row is locked with ``SELECT ... FOR UPDATE``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Row
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from breedlab import canonical
from breedlab.canonical import JsonValue
from breedlab.clock import Clock, format_time
from breedlab.errors import ChainBroken, ConfigError, IntegrityError, LabError, NotFound
from breedlab.ledger import projections, schema
from breedlab.ledger.chain import GENESIS, Event, EventSignature, seal, verify_chain
from breedlab.signing.keys import KeyPair

__all__ = ["Ledger", "Reader", "Txn", "VerifyReport"]

_BUSY_TIMEOUT_MS = 30_000
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
        cursor.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
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


def _row_event(row: Row[Any]) -> Event:
    try:
        payload = canonical.decode(row.payload.encode("utf-8"))
    except IntegrityError as e:
        raise ChainBroken(f"ledger seq {row.seq}: payload is not canonical JSON") from e
    sig = None
    if row.sig is not None:
        try:
            sig = EventSignature.from_json(canonical.decode(row.sig.encode("utf-8")))
        except IntegrityError as e:
            raise ChainBroken(f"ledger seq {row.seq}: {e.message}") from e
    return Event(
        sig=sig,
        payload_json=row.payload.encode("utf-8"),  # canonical: decode() checked it
        seq=row.seq,
        at=row.at,
        actor=row.actor,
        kind=row.kind,
        subject=row.subject,
        payload=payload,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


class Reader:
    """Queries over one connection (inside a transaction, or a read-only one)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def head(self) -> tuple[int, str]:
        row = self.conn.execute(select(schema.head.c.seq, schema.head.c.hash)).first()
        return (0, GENESIS) if row is None else (int(row.seq), str(row.hash))

    def events(
        self, *, after: int = 0, kinds: Sequence[str] = (), subject: str | None = None
    ) -> Iterator[Event]:
        query = select(schema.events).where(schema.events.c.seq > after)
        if kinds:
            query = query.where(schema.events.c.kind.in_(kinds))
        if subject is not None:
            query = query.where(schema.events.c.subject == subject)
        for row in self.conn.execute(query.order_by(schema.events.c.seq)):
            yield _row_event(row)

    def event(self, seq: int) -> Event:
        row = self.conn.execute(select(schema.events).where(schema.events.c.seq == seq)).first()
        if row is None:
            raise NotFound(f"no ledger event with seq {seq}")
        return _row_event(row)

    def package(self, package_id: str) -> Row[Any] | None:
        t = schema.packages
        return self.conn.execute(select(t).where(t.c.id == package_id)).first()

    def packages(self, *, capability: str | None = None, kind: str | None = None) -> list[Row[Any]]:
        t = schema.packages
        query = select(t)
        if capability is not None:
            query = query.where(t.c.capability == capability)
        if kind is not None:
            query = query.where(t.c.kind == kind)
        return list(self.conn.execute(query.order_by(t.c.registered_seq)))

    def packages_with_prefix(self, hex_prefix: str) -> list[str]:
        t = schema.packages
        query = select(t.c.id).where(t.c.id.startswith(f"sha256:{hex_prefix}")).limit(10)
        return [str(r.id) for r in self.conn.execute(query)]

    def alias(self, capability: str, name: str) -> str | None:
        t = schema.aliases
        query = select(t.c.target).where(t.c.capability == capability, t.c.name == name)
        value = self.conn.execute(query).scalar_one_or_none()
        return None if value is None else str(value)

    def aliases(self, capability: str | None = None) -> list[Row[Any]]:
        t = schema.aliases
        query = select(t)
        if capability is not None:
            query = query.where(t.c.capability == capability)
        return list(self.conn.execute(query.order_by(t.c.capability, t.c.name)))

    def aliases_of(self, package_id: str) -> list[Row[Any]]:
        t = schema.aliases
        return list(self.conn.execute(select(t).where(t.c.target == package_id)))

    def all_keys(self) -> list[Row[Any]]:
        return list(self.conn.execute(select(schema.keys).order_by(schema.keys.c.added_seq)))

    def key(self, name: str) -> Row[Any] | None:
        t = schema.keys
        return self.conn.execute(select(t).where(t.c.name == name)).first()

    def key_by_id(self, keyid: str) -> Row[Any] | None:
        t = schema.keys
        return self.conn.execute(select(t).where(t.c.keyid == keyid)).first()

    def signatures(self, package_id: str) -> list[Row[Any]]:
        t = schema.signatures
        return list(self.conn.execute(select(t).where(t.c.package == package_id).order_by(t.c.seq)))

    def approvals(self, package_id: str) -> list[Row[Any]]:
        t = schema.approvals
        return list(self.conn.execute(select(t).where(t.c.package == package_id).order_by(t.c.seq)))

    def revocation(self, package_id: str) -> Row[Any] | None:
        t = schema.revocations
        return self.conn.execute(select(t).where(t.c.package == package_id)).first()

    def checkpoints(self) -> list[Row[Any]]:
        t = schema.checkpoints
        return list(self.conn.execute(select(t).order_by(t.c.seq)))

    def parents(self, package_id: str) -> list[str]:
        t = schema.lineage
        return [str(r.parent) for r in self.conn.execute(select(t).where(t.c.child == package_id))]

    def children(self, package_id: str) -> list[str]:
        """Packages registered with ``package_id`` among their parents."""
        t = schema.lineage
        return [str(r.child) for r in self.conn.execute(select(t).where(t.c.parent == package_id))]

    def event_hashes(self, *, after: int = 0) -> list[bytes]:
        """The raw hashes of the events after seq ``after``, in order: Merkle leaves."""
        t = schema.events
        query = select(t.c.hash).where(t.c.seq > after).order_by(t.c.seq)
        return [bytes.fromhex(h) for (h,) in self.conn.execute(query)]

    def last_checkpoint_size(self) -> int:
        """How many events the latest checkpoint covers (0: none yet)."""
        t = schema.checkpoints
        value = self.conn.execute(select(func.max(t.c.tree_size))).scalar_one_or_none()
        return 0 if value is None else int(value)

    def last_event_kind(self) -> str | None:
        t = schema.events
        return self.conn.execute(
            select(t.c.kind).order_by(t.c.seq.desc()).limit(1)
        ).scalar_one_or_none()

    def event_count(self) -> int:
        return int(self.conn.execute(select(func.count()).select_from(schema.events)).scalar_one())


class Txn(Reader):
    """A writing transaction: appends extend the chain and update projections."""

    def __init__(self, conn: Connection, clock: Clock, lock_head: bool) -> None:
        super().__init__(conn)
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

        ``actor`` (default: the signer's key name) is a label; who made the change is the
        signature. Only attack tests and pre-signature history have ``signer=None``:
        verification refuses an unsigned state change.

        Raises:
            Conflict: the projection refused (e.g. an alias compare-and-swap lost).
        """
        seq, prev = self._current_head()
        ev = seal(
            seq=seq + 1,
            at=format_time(self.clock.now()),
            actor=actor or (signer.name if signer is not None else "unknown"),
            kind=kind,
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


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifyReport:
    events: int
    head_hash: str


class Ledger:
    """The ledger database at ``url``."""

    def __init__(self, url: str, clock: Clock) -> None:
        self.url = url
        self.clock = clock
        self.engine = open_engine(url)
        self._lock_head = self.engine.dialect.name != "sqlite"
        #: Called with the events of every committed transaction that appended some
        #: (the lab writes its automatic checkpoints from here).
        self.after_commit: Callable[[Sequence[Event]], None] | None = None

    @classmethod
    def sqlite(cls, path: Path, clock: Clock) -> Ledger:
        return cls(f"sqlite:///{path}", clock)

    def create(self) -> None:
        """Create or migrate the tables to the current schema (idempotent; Alembic)."""
        from breedlab.ledger import migrations

        try:
            with self.engine.begin() as conn:
                migrations.upgrade(conn)
        except SQLAlchemyError as e:
            raise ConfigError(f"cannot create the ledger tables at {self.url}: {e}") from e

    def close(self) -> None:
        self.engine.dispose()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Txn]:
        """A writing transaction; commits on success, rolls back on any exception."""
        try:
            with self.engine.begin() as conn:
                tx = Txn(conn, self.clock, self._lock_head)
                yield tx
                tx.flush()
        except OperationalError as e:
            raise LabError(f"ledger database error: {e.orig}") from e
        if tx.appended and self.after_commit is not None:
            self.after_commit(tuple(tx.appended))

    @contextlib.contextmanager
    def reader(self) -> Iterator[Reader]:
        """A read-only view (on SQLite, still a transaction: consistent reads)."""
        try:
            with self.engine.connect() as conn:
                yield Reader(conn)
                conn.rollback()
        except OperationalError as e:
            raise LabError(f"ledger database error: {e.orig}") from e

    def append(
        self,
        kind: str,
        subject: str,
        payload: Mapping[str, JsonValue],
        *,
        signer: KeyPair | None,
        actor: str | None = None,
    ) -> Event:
        with self.transaction() as tx:
            return tx.append(kind, subject, payload, signer=signer, actor=actor)

    def verify_chain(self) -> VerifyReport:
        """Recompute the hash chain, the head row and every projection.

        Raises:
            ChainBroken: names the first bad seq, or the projection that disagrees.
        """
        with self.reader() as r:
            count = verify_chain(r.events())
            seq, head_hash = r.head()
            last = r.event(count) if count else None
            if (last.seq if last else 0) != seq or (last.hash if last else GENESIS) != head_hash:
                raise ChainBroken(
                    f"ledger head says seq {seq} but the chain ends at seq {count}: "
                    "events were deleted or the head row was edited"
                )
            self._compare_projections(r)
        return VerifyReport(events=count, head_hash=head_hash)

    def _compare_projections(self, r: Reader) -> None:
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
                    mine = [tuple(row) for row in r.conn.execute(select(table).order_by(order))]
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

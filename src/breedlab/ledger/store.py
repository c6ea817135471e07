"""The ledger database: open, read, write in transactions, verify.

Reads go through a :class:`~breedlab.ledger.reader.Reader`, writes through a
:class:`~breedlab.ledger.engine.Txn` on a SQLAlchemy engine, made (and SQLAlchemy
imported) on first use. A ledger opened ``read_only`` in a SQLite file is read with the
standard library's ``sqlite3`` instead and refuses to write, so a read-only command does
not load SQLAlchemy at all (decision record 0012).
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from breedlab.canonical import JsonValue
from breedlab.clock import Clock
from breedlab.errors import ChainBroken, LabError
from breedlab.ledger.chain import GENESIS, Event, Head, verify_chain
from breedlab.ledger.migrations import HEAD
from breedlab.ledger.reader import Reader, SqliteRows
from breedlab.signing.keys import KeyPair

if TYPE_CHECKING:  # SQLAlchemy loads with the first engine
    from sqlalchemy import Engine

    from breedlab.ledger.engine import Txn

__all__ = ["Ledger", "VerifyReport"]


def _sqlite_file(url: str) -> Path | None:
    """The file of a ``sqlite:///PATH`` URL, where ``sqlite3`` opens what SQLAlchemy
    would (None: another database, in memory, or a URL SQLAlchemy would decode)."""
    path = url.removeprefix("sqlite:///")
    if path == url or not path or path == ":memory:" or "?" in path or "%" in path:
        return None
    return Path(path).resolve()


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifyReport:
    events: int
    head_hash: str


class Ledger:
    """The ledger database at ``url``; ``read_only``: it refuses to write."""

    def __init__(self, url: str, clock: Clock, *, read_only: bool = False) -> None:
        self.url = url
        self.clock = clock
        self.read_only = read_only
        self._file = _sqlite_file(url) if read_only else None  # read with sqlite3
        self._idle: list[sqlite3.Connection] = []
        self._head_file = _sqlite_file(url)
        self._head_local = threading.local()  # one head connection per thread
        self._head_conns: list[sqlite3.Connection] = []
        self._head_last: Head | None = None
        #: Called with the events of every committed transaction that appended some
        #: (the lab writes its automatic checkpoints from here).
        self.after_commit: Callable[[Sequence[Event]], None] | None = None

    @classmethod
    def sqlite(cls, path: Path, clock: Clock, *, read_only: bool = False) -> Ledger:
        return cls(f"sqlite:///{path}", clock, read_only=read_only)

    @functools.cached_property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (made, and SQLAlchemy imported, on first use).

        Raises:
            ConfigError: a bad URL, or no driver for it.
        """
        from breedlab.ledger.engine import open_engine

        return open_engine(self.url)

    def create(self) -> None:
        """Create or migrate the tables to the current schema (idempotent; Alembic).

        A read-only ledger in a SQLite file at the current schema is only checked (with
        ``sqlite3``); an older or missing one is migrated as any other.
        """
        if self._file is not None and self._revision(self._file) == HEAD:
            return
        from breedlab.ledger.engine import migrate

        migrate(self.engine, self.url)

    def _revision(self, path: Path) -> str | None:
        try:
            conn = SqliteRows.connect(path)
        except sqlite3.Error:  # no file yet: migrate() makes it, or says why not
            return None
        try:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.Error:  # not a ledger, or made before migrations: migrate() decides
            conn.close()
            return None
        self._idle.append(conn)
        return None if row is None else str(row[0])

    def head(self) -> Head:
        """The chain's head, cheaply: one indexed row read (a server asks on every request).

        On a SQLite file it is read with the standard library's ``sqlite3``, on a
        read-only connection per thread kept open: the seq alone, and the whole row only
        when the seq moved since the last read; on other databases, through a reader.

        Raises:
            LabError: the database cannot be read.
        """
        path = self._head_file
        if path is None:
            with self.reader() as r:
                seq, hash_ = r.head()
            return Head(seq=seq, hash=hash_)
        try:
            conn: sqlite3.Connection | None = getattr(self._head_local, "conn", None)
            if conn is None:
                conn = sqlite3.connect(
                    f"{path.as_uri()}?mode=ro", uri=True, check_same_thread=False
                )
                self._head_local.conn = conn
                self._head_conns.append(conn)
            row = conn.execute("SELECT seq FROM head WHERE id = 1").fetchone()
            last = self._head_last
            if last is not None and (0 if row is None else row[0]) == last.seq:
                return last  # the head seldom moves: its value is built once per move
            row = conn.execute("SELECT seq, hash FROM head WHERE id = 1").fetchone()
        except sqlite3.Error as e:
            raise LabError(f"ledger database error: {e}") from e
        head = Head(seq=0, hash=GENESIS) if row is None else Head(seq=int(row[0]), hash=str(row[1]))
        self._head_last = head  # one reference: safe across threads
        return head

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()
        self._head_local = threading.local()
        while self._head_conns:
            self._head_conns.pop().close()
        if "engine" in self.__dict__:
            self.engine.dispose()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Txn]:
        """A writing transaction; commits on success, rolls back on any exception.

        Raises:
            LabError: the ledger was opened read-only.
        """
        if self.read_only:
            raise LabError("the ledger was opened read-only; this command cannot write to it")
        from breedlab.ledger.engine import transaction

        with transaction(self.engine, self.clock) as tx:
            yield tx
        if tx.appended and self.after_commit is not None:
            self.after_commit(tuple(tx.appended))

    @contextlib.contextmanager
    def reader(self) -> Iterator[Reader]:
        """A read-only view: one transaction, so its reads are consistent."""
        if self._file is None:
            from breedlab.ledger.engine import reading

            with reading(self.engine) as r:
                yield r
            return
        try:
            conn = self._idle.pop() if self._idle else SqliteRows.connect(self._file)
        except sqlite3.Error as e:  # the file went away since the lab was opened
            raise LabError(f"ledger database error: {e}") from e
        try:
            conn.execute("BEGIN")  # WAL: one snapshot, from the first read on
            yield Reader(SqliteRows(conn))
        except sqlite3.OperationalError as e:
            raise LabError(f"ledger database error: {e}") from e
        finally:
            self._release(conn)

    def _release(self, conn: sqlite3.Connection) -> None:
        """End the read and keep the connection for the next (a new one costs ~1 ms)."""
        try:
            conn.rollback()
        except sqlite3.Error:
            conn.close()
        else:
            self._idle.append(conn)

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
            from breedlab.ledger.engine import compare_projections

            compare_projections(r)
        return VerifyReport(events=count, head_hash=head_hash)

"""Ledger: the append-only, hash-chained record of every state change.

- ``chain``: event hashing and chain verification (pure).
- ``merkle``: RFC 6962 tree heads over event hashes (pure); checkpoints sign them.
- ``kinds``: :class:`EventKind`, every kind of event, and the payload type of each.
- ``schema``: the SQL tables (events plus projections: packages, aliases, keys, ...).
- ``records``: the projection rows as typed, frozen values.
- ``projections``: how each event kind changes the projections.
- ``reader``: :class:`Reader` -- the queries, one set for every connection.
- ``engine``: the SQLAlchemy side -- :class:`~breedlab.ledger.engine.Txn` (appends in
  transactions), engines, reads of PostgreSQL.
- ``store``: :class:`Ledger` -- opens the database, hands out readers and transactions,
  verifies; a read-only SQLite ledger is read with ``sqlite3`` and never loads
  SQLAlchemy (decision record 0012).
- ``migrations``: the schema's Alembic revisions (SQLite and PostgreSQL), append-only
  triggers included; run by :meth:`Ledger.create`.
"""

from __future__ import annotations

from breedlab.ledger.chain import GENESIS, Event, Head, event_hash, verify_chain
from breedlab.ledger.kinds import PAYLOADS, EventKind
from breedlab.ledger.merkle import root as merkle_root
from breedlab.ledger.reader import Reader
from breedlab.ledger.records import (
    AliasRecord,
    ApprovalRecord,
    CheckpointRecord,
    KeyRecord,
    PackageRecord,
    RevocationRecord,
    SignatureRecord,
)
from breedlab.ledger.store import Ledger, VerifyReport

__all__ = [
    "GENESIS",
    "PAYLOADS",
    "AliasRecord",
    "ApprovalRecord",
    "CheckpointRecord",
    "Event",
    "EventKind",
    "Head",
    "KeyRecord",
    "Ledger",
    "PackageRecord",
    "Reader",
    "RevocationRecord",
    "SignatureRecord",
    "VerifyReport",
    "event_hash",
    "merkle_root",
    "verify_chain",
]

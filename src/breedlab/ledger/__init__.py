"""Ledger: the append-only, hash-chained record of every state change.

- ``chain``: event hashing and chain verification (pure).
- ``merkle``: RFC 6962 tree heads over event hashes (pure); checkpoints sign them.
- ``schema``: the SQL tables (events plus projections: packages, aliases, keys, ...).
- ``projections``: how each event kind changes the projections.
- ``store``: :class:`Ledger` -- transactions, appends, queries, verification.
- ``migrations``: the schema's Alembic revisions (SQLite and PostgreSQL), append-only
  triggers included; run by :meth:`Ledger.create`.
"""

from __future__ import annotations

from breedlab.ledger.chain import GENESIS, Event, event_hash, verify_chain
from breedlab.ledger.merkle import root as merkle_root
from breedlab.ledger.store import Ledger, Reader, Txn, VerifyReport

__all__ = [
    "GENESIS",
    "Event",
    "Ledger",
    "Reader",
    "Txn",
    "VerifyReport",
    "event_hash",
    "merkle_root",
    "verify_chain",
]

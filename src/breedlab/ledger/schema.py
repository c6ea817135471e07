"""The ledger database schema (SQLAlchemy Core; SQLite by default, or PostgreSQL).

``events`` is the append-only, hash-chained record. Every other table is a *projection*:
state derived from the events by :mod:`breedlab.ledger.projections`, written in the same
transaction as the event that changes it. ``ledger verify`` replays the events into a
fresh database and compares, so an edited projection row is caught like an edited event.

Ledgers are built by the Alembic revisions in ``breedlab.ledger.migrations``: a change
here needs a new revision there (and ``migrations.HEAD`` moved).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

__all__ = [
    "PROJECTIONS",
    "aliases",
    "approvals",
    "checkpoints",
    "events",
    "head",
    "keys",
    "lineage",
    "metadata",
    "packages",
    "revocations",
    "signatures",
]

metadata = MetaData()

events = Table(
    "events",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("at", String(32), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("kind", String(64), nullable=False, index=True),
    Column("subject", String(256), nullable=False, index=True),
    Column("payload", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False, unique=True),
    # The actor's signature over the event (canonical JSON {"keyid", "sig"}); NULL only
    # for events written before signatures existed (chain.py).
    Column("sig", Text, nullable=True),
)

# One row: the chain's head. Appenders lock it (SELECT ... FOR UPDATE on PostgreSQL;
# SQLite serialises writers with BEGIN IMMEDIATE), so the chain has one writer at a time.
head = Table(
    "head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)

packages = Table(
    "packages",
    metadata,
    Column("id", String(71), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("name", String(128), nullable=False),
    Column("capability", String(64), nullable=False, index=True),
    Column("registered_seq", BigInteger, nullable=False),
)

aliases = Table(
    "aliases",
    metadata,
    Column("capability", String(64), nullable=False),
    Column("name", String(64), nullable=False),
    Column("target", String(71), nullable=False),
    Column("seq", BigInteger, nullable=False),
    PrimaryKeyConstraint("capability", "name"),
)

keys = Table(
    "keys",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("keyid", String(64), nullable=False, unique=True),
    Column("role", String(32), nullable=False),
    Column("public_key", String(64), nullable=False),
    Column("added_seq", BigInteger, nullable=False),
    Column("revoked_seq", BigInteger, nullable=True),
    Column("revoked_reason", Text, nullable=True),
)

signatures = Table(
    "signatures",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("package", String(71), nullable=False, index=True),
    Column("keyid", String(64), nullable=False),
    Column("envelope", String(71), nullable=False),
)

approvals = Table(
    "approvals",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("package", String(71), nullable=False, index=True),
    Column("purpose", String(32), nullable=False),
    Column("keyid", String(64), nullable=False),
    Column("role", String(32), nullable=False),
    Column("envelope", String(71), nullable=False),
    # a parent approval's cluster scope, canonical JSON (a sorted list); NULL: unscoped
    Column("clusters", Text, nullable=True),
)

revocations = Table(
    "revocations",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("package", String(71), nullable=False, index=True),
    Column("reason", Text, nullable=False),
)

lineage = Table(
    "lineage",
    metadata,
    Column("child", String(71), nullable=False, index=True),
    Column("parent", String(71), nullable=False, index=True),
    PrimaryKeyConstraint("child", "parent"),
)

checkpoints = Table(
    "checkpoints",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("tree_size", BigInteger, nullable=False),
    Column("root", String(64), nullable=False),
    Column("keyid", String(64), nullable=False),
    Column("envelope", String(71), nullable=False),
)

#: Projection tables with the column that orders their rows for comparison.
PROJECTIONS = (
    (head, head.c.id),
    (packages, packages.c.id),
    (aliases, aliases.c.capability),
    (lineage, lineage.c.child),
    (keys, keys.c.name),
    (signatures, signatures.c.seq),
    (approvals, approvals.c.seq),
    (revocations, revocations.c.seq),
    (checkpoints, checkpoints.c.seq),
)

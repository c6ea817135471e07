"""Typed rows of the ledger's projection tables: what :class:`~breedlab.ledger.Reader`
returns.

One frozen dataclass per table of :mod:`breedlab.ledger.schema`, its fields named and
ordered like the table's columns (a test holds the two together): the reader selects
exactly these columns and builds the record from the row's mapping, whichever
connection ran the query. Values are as stored -- ids and names as text, seqs as ints;
callers parse a package id with ``Digest.parse`` where they need one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import Field, dataclass, fields
from typing import Any, ClassVar, Self

__all__ = [
    "RECORDS",
    "AliasRecord",
    "ApprovalRecord",
    "CheckpointRecord",
    "KeyRecord",
    "PackageRecord",
    "Record",
    "RevocationRecord",
    "SignatureRecord",
]


class Record:
    """A row of one table; subclasses are frozen dataclasses named after it."""

    __slots__ = ()
    #: The table the record is a row of.
    TABLE: ClassVar[str]
    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]

    @classmethod
    def columns(cls) -> str:
        """The table's columns in order, as a ``SELECT`` list."""
        return ", ".join(f.name for f in fields(cls))

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Self:
        return cls(**row)


@dataclass(frozen=True, slots=True, kw_only=True)
class PackageRecord(Record):
    """A registered package (``package.registered``)."""

    TABLE: ClassVar[str] = "packages"
    id: str
    kind: str
    name: str
    capability: str
    registered_seq: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AliasRecord(Record):
    """Where an alias points now (its last ``alias.moved``)."""

    TABLE: ClassVar[str] = "aliases"
    capability: str
    name: str
    target: str
    seq: int


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyRecord(Record):
    """A key the ledger names (``key.added``; revoked by ``key.revoked``)."""

    TABLE: ClassVar[str] = "keys"
    name: str
    keyid: str
    role: str
    public_key: str
    added_seq: int
    revoked_seq: int | None
    revoked_reason: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class SignatureRecord(Record):
    """A key's signature over a package (``package.signed``)."""

    TABLE: ClassVar[str] = "signatures"
    seq: int
    package: str
    keyid: str
    envelope: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ApprovalRecord(Record):
    """An approval of a package for a purpose (``package.approved``)."""

    TABLE: ClassVar[str] = "approvals"
    seq: int
    package: str
    purpose: str
    keyid: str
    role: str
    envelope: str
    clusters: str | None  # canonical JSON list of cluster keys; None: unscoped

    @property
    def scope(self) -> tuple[str, ...]:
        """The cluster keys a parent approval is scoped to (empty: unscoped)."""
        if self.clusters is None:
            return ()
        try:
            keys = json.loads(self.clusters)
        except ValueError:
            keys = None
        if not isinstance(keys, list):
            # an edited row: fail closed (no cluster key looks like this; verify names it)
            return ("<malformed>",)
        return tuple(str(k) for k in keys)


@dataclass(frozen=True, slots=True, kw_only=True)
class RevocationRecord(Record):
    """A package's revocation (``package.revoked``)."""

    TABLE: ClassVar[str] = "revocations"
    seq: int
    package: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointRecord(Record):
    """A signed tree head over the first ``tree_size`` events (``checkpoint.signed``)."""

    TABLE: ClassVar[str] = "checkpoints"
    seq: int
    tree_size: int
    root: str
    keyid: str
    envelope: str


#: Every record type (the tables ``head``, ``lineage`` and ``events`` are read as
#: plain values: a seq and hash, package ids, :class:`~breedlab.ledger.Event`).
RECORDS: tuple[type[Record], ...] = (
    PackageRecord,
    AliasRecord,
    KeyRecord,
    SignatureRecord,
    ApprovalRecord,
    RevocationRecord,
    CheckpointRecord,
)

"""Projections: how each event kind changes the ledger's derived tables.

One function per event kind, applied inside the appending transaction (so a refused
change -- a lost alias compare-and-swap, a duplicate package -- rolls the event back
too) and again by ``ledger verify`` when it replays the chain into a scratch database.
Kinds without a projection (``round.started``, ``decision.made``, ...) are record-only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from sqlalchemy import Connection, insert, select, update

from breedlab import canonical
from breedlab.errors import Conflict, IntegrityError
from breedlab.ledger import schema
from breedlab.ledger.chain import Event
from breedlab.ledger.kinds import EventKind

__all__ = ["PROJECTORS", "apply"]


def _key_added(conn: Connection, e: Event) -> None:
    p = e.payload
    exists = conn.execute(
        select(schema.keys.c.name).where(
            (schema.keys.c.name == p["name"]) | (schema.keys.c.keyid == p["keyid"])
        )
    ).first()
    if exists is not None:
        raise Conflict(f"key {p['name']!r} (or its key id) is registered already")
    conn.execute(
        insert(schema.keys).values(
            name=p["name"],
            keyid=p["keyid"],
            role=p["role"],
            public_key=p["public_key"],
            added_seq=e.seq,
        )
    )


def _key_revoked(conn: Connection, e: Event) -> None:
    p = e.payload
    result = conn.execute(
        update(schema.keys)
        .where(schema.keys.c.name == p["name"], schema.keys.c.revoked_seq.is_(None))
        .values(revoked_seq=e.seq, revoked_reason=p["reason"])
    )
    if result.rowcount != 1:
        raise Conflict(f"key {p['name']!r} is unknown or revoked already")


def _package_registered(conn: Connection, e: Event) -> None:
    p = e.payload
    exists = conn.execute(select(schema.packages.c.id).where(schema.packages.c.id == p["id"]))
    if exists.first() is not None:
        raise Conflict(f"package {p['id']} is registered already")
    conn.execute(
        insert(schema.packages).values(
            id=p["id"],
            kind=p["kind"],
            name=p["name"],
            capability=p["capability"],
            registered_seq=e.seq,
        )
    )
    for parent in p.get("parents", []):
        conn.execute(insert(schema.lineage).values(child=p["id"], parent=parent))


def _package_signed(conn: Connection, e: Event) -> None:
    p = e.payload
    conn.execute(
        insert(schema.signatures).values(
            seq=e.seq, package=p["package"], keyid=p["keyid"], envelope=p["envelope"]
        )
    )


def _package_approved(conn: Connection, e: Event) -> None:
    p = e.payload
    conn.execute(
        insert(schema.approvals).values(
            seq=e.seq,
            package=p["package"],
            purpose=p["purpose"],
            keyid=p["keyid"],
            role=p["role"],
            envelope=p["envelope"],
            clusters=canonical.encode(p["clusters"]).decode("utf-8") if "clusters" in p else None,
        )
    )


def _package_revoked(conn: Connection, e: Event) -> None:
    p = e.payload
    conn.execute(
        insert(schema.revocations).values(seq=e.seq, package=p["package"], reason=p["reason"])
    )


def _alias_moved(conn: Connection, e: Event) -> None:
    # DESIGN §5: a move is compare-and-swap in the same transaction as its event.
    p = e.payload
    t = schema.aliases
    where = (t.c.capability == p["capability"]) & (t.c.name == p["alias"])
    current = conn.execute(select(t.c.target).where(where)).scalar_one_or_none()
    if current != p["old"]:
        raise Conflict(
            f"alias {p['capability']}@{p['alias']} points at {current or 'nothing'}, "
            f"not {p['old'] or 'nothing'}: someone moved it; re-read and retry"
        )
    if p["new"] is None:
        raise IntegrityError("alias.moved without a new target")
    if current is None:
        conn.execute(
            insert(t).values(
                capability=p["capability"], name=p["alias"], target=p["new"], seq=e.seq
            )
        )
    else:
        conn.execute(update(t).where(where).values(target=p["new"], seq=e.seq))


def _checkpoint_signed(conn: Connection, e: Event) -> None:
    p = e.payload
    conn.execute(
        insert(schema.checkpoints).values(
            seq=e.seq,
            tree_size=p["tree_size"],
            root=p["root"],
            keyid=p["keyid"],
            envelope=p["envelope"],
        )
    )


PROJECTORS: Mapping[str, Callable[[Connection, Event], None]] = {
    EventKind.KEY_ADDED: _key_added,
    EventKind.KEY_REVOKED: _key_revoked,
    EventKind.PACKAGE_REGISTERED: _package_registered,
    EventKind.PACKAGE_SIGNED: _package_signed,
    EventKind.PACKAGE_APPROVED: _package_approved,
    EventKind.PACKAGE_REVOKED: _package_revoked,
    EventKind.ALIAS_MOVED: _alias_moved,
    EventKind.CHECKPOINT_SIGNED: _checkpoint_signed,
}


def apply(conn: Connection, event: Event) -> None:
    """Apply ``event`` to the projections (record-only kinds change nothing)."""
    projector = PROJECTORS.get(event.kind)
    if projector is not None:
        try:
            projector(conn, event)
        except KeyError as e:
            raise IntegrityError(f"ledger seq {event.seq}: {event.kind} lacks field {e}") from e

"""Ledger schema migrations (Alembic), for SQLite and PostgreSQL alike.

:func:`upgrade` brings a database to :data:`HEAD` inside one transaction; writers of
the same database wait for each other (SQLite ``BEGIN IMMEDIATE``; PostgreSQL an
advisory lock), so labs opened concurrently migrate once. A ledger created before
migrations existed (tables but no ``alembic_version``) is stamped ``0001`` and upgraded.
Add a revision under ``versions/`` and move :data:`HEAD` with it (a test checks).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # SQLAlchemy loads with the first migration: HEAD is read without it
    from sqlalchemy import Connection

__all__ = ["HEAD", "current", "upgrade"]

#: The newest revision; a database at HEAD is opened without loading Alembic at all (and
#: a read-only SQLite ledger without SQLAlchemy: ``Ledger.create``).
HEAD = "0005"
_LOCK_KEY = 0x6272_6565_646C_6162 & 0x7FFF_FFFF_FFFF_FFFF  # "breedlab", as a bigint


def current(conn: Connection) -> str | None:
    """The database's revision, or None if it has never been migrated."""
    from sqlalchemy import inspect, text

    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one_or_none()


def upgrade(conn: Connection) -> None:
    """Migrate the database of ``conn`` (inside its transaction) to :data:`HEAD`."""
    from sqlalchemy import inspect, text

    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
    found = current(conn)
    if found == HEAD:
        return
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent))
    config.attributes["connection"] = conn
    if found is None and inspect(conn).has_table("events"):
        command.stamp(config, "0001")  # made by metadata.create_all before migrations
    command.upgrade(config, "head")

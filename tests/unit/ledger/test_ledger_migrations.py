"""Ledger migrations (Alembic): HEAD names the newest revision, a new SQLite ledger is
built by them with its append-only triggers, and a ledger made before migrations existed
is stamped and upgraded in place, its events kept."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

from breedlab.clock import FixedClock
from breedlab.ledger import Ledger, migrations, schema


def test_head_is_the_newest_revision() -> None:
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    assert ScriptDirectory.from_config(config).get_current_head() == migrations.HEAD


def test_a_new_ledger_is_migrated_and_refuses_edits(tmp_path: Path) -> None:
    ledger = Ledger.sqlite(tmp_path / "ledger.db", FixedClock())
    ledger.create()
    ledger.create()  # idempotent
    ledger.append("test.appended", "s", {"i": 1}, signer=None, actor="t")
    ledger.close()
    db = sqlite3.connect(tmp_path / "ledger.db", isolation_level=None)
    try:
        assert db.execute("SELECT version_num FROM alembic_version").fetchone() == (
            migrations.HEAD,
        )
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("DELETE FROM events")
    finally:
        db.close()


def test_a_ledger_from_before_migrations_is_upgraded_in_place(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    schema.metadata.create_all(engine)  # how ledgers were created before migrations
    engine.dispose()
    old = Ledger(url, FixedClock())
    old.append("test.appended", "s", {"i": 1}, signer=None, actor="t")
    old.create()
    old.append("test.appended", "s", {"i": 2}, signer=None, actor="t")
    assert old.verify_chain().events == 2
    with old.engine.connect() as conn:
        assert migrations.current(conn) == migrations.HEAD
    old.close()


def test_the_migrated_schema_is_the_schema_module(tmp_path: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    ledger = Ledger.sqlite(tmp_path / "ledger.db", FixedClock())
    ledger.create()
    with ledger.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), schema.metadata)
    ledger.close()
    assert diff == [], "schema.py changed without a migration"

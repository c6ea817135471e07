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
from breedlab.errors import LabError
from breedlab.ledger import GENESIS, Ledger, migrations, schema


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


def _ledger_from_before_migrations(tmp_path: Path) -> Ledger:
    """A ledger made as ledgers were before migrations, with one event (not closed)."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    schema.metadata.create_all(engine)
    engine.dispose()
    old = Ledger(url, FixedClock())
    old.append("test.appended", "s", {"i": 1}, signer=None, actor="t")
    return old


def test_a_ledger_from_before_migrations_is_upgraded_in_place(tmp_path: Path) -> None:
    old = _ledger_from_before_migrations(tmp_path)
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


def test_a_read_only_open_migrates_an_old_ledger_and_then_reads_it_with_sqlite3(
    tmp_path: Path,
) -> None:
    old = _ledger_from_before_migrations(tmp_path)
    old.close()
    url = old.url
    reading = Ledger(url, FixedClock(), read_only=True)
    reading.create()  # not at HEAD: migrated, as any open migrates it
    assert "engine" in vars(reading)  # ... which took SQLAlchemy
    with reading.engine.connect() as conn:
        assert migrations.current(conn) == migrations.HEAD
    reading.close()
    again = Ledger(url, FixedClock(), read_only=True)
    again.create()  # at HEAD: only checked, with sqlite3
    assert "engine" not in vars(again)
    assert again.verify_chain().events == 1
    with pytest.raises(LabError, match="read-only"):
        again.append("test.appended", "s", {"i": 2}, signer=None, actor="t")
    again.close()


def test_a_read_only_open_of_a_missing_ledger_creates_it_as_any_open_does(
    tmp_path: Path,
) -> None:
    ledger = Ledger.sqlite(tmp_path / "new.db", FixedClock(), read_only=True)
    ledger.create()
    with ledger.reader() as r:
        assert r.head() == (0, GENESIS)
    ledger.close()
    assert (tmp_path / "new.db").exists()


def test_approvals_from_before_cluster_scopes_are_upgraded_unscoped(tmp_path: Path) -> None:
    from alembic import command
    from sqlalchemy import text

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:  # a ledger as revision 0004 left it, with an approval row
        config = Config()
        config.set_main_option("script_location", str(Path(migrations.__file__).parent))
        config.attributes["connection"] = conn
        command.upgrade(config, "0004")
        conn.execute(
            text("INSERT INTO approvals VALUES (7, 'sha256:p', 'parent', 'k', 'model', 'e')")
        )
    engine.dispose()
    ledger = Ledger(url, FixedClock())
    ledger.create()
    with ledger.reader() as r:
        [row] = r.approvals("sha256:p")
    ledger.close()
    assert (row.seq, row.purpose, row.clusters, row.scope) == (7, "parent", None, ())

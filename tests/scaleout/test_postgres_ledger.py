"""The ledger on a real PostgreSQL: the same schema through Alembic, append-only in the
database, and one consistent chain under concurrent writers -- several processes
appending, racing alias moves with exactly one winner each, a killed writer leaving
nothing half-done."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from breedlab.clock import FixedClock
from breedlab.ledger import Ledger, schema
from breedlab.ledger.migrations import HEAD

CHILD = Path(__file__).with_name("pg_child.py")
WRITERS = 4
RACERS = 4
ROUNDS = 8


def _child(*args: str, output: bool = False) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(CHILD), *args],
        stdout=subprocess.PIPE if output else subprocess.DEVNULL,
        text=True,
    )


def _subjects(ledger: Ledger) -> list[str]:
    with ledger.reader() as r:
        return [e.subject for e in r.events()]


@pytest.fixture
def ledger(pg_url: str) -> Iterator[Ledger]:
    ledger = Ledger(pg_url, FixedClock())
    ledger.create()
    try:
        yield ledger
    finally:
        ledger.close()


def test_migrations_build_the_schema_and_the_database_refuses_edits(ledger: Ledger) -> None:
    ledger.create()  # idempotent
    ledger.append("test.appended", "s", {"i": 1}, signer=None, actor="t")
    with ledger.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == HEAD
        assert compare_metadata(MigrationContext.configure(conn), schema.metadata) == []
    for statement in ("UPDATE events SET kind = 'x'", "DELETE FROM events", "TRUNCATE events"):
        with pytest.raises(DBAPIError, match="append-only"), ledger.engine.begin() as conn:
            conn.execute(text(statement))
    assert ledger.verify_chain().events == 1


def test_concurrent_writers_leave_one_consistent_chain(
    ledger: Ledger, pg_url: str, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    procs = [_child("append", pg_url, "25", f"w{i}", str(go)) for i in range(WRITERS)]
    go.touch()
    assert [p.wait(timeout=120) for p in procs] == [0] * WRITERS

    report = ledger.verify_chain()
    assert report.events == WRITERS * 25
    with ledger.reader() as r:
        by_writer: dict[str, list[int]] = {}
        for e in r.events():
            by_writer.setdefault(e.subject, []).append(int(e.payload["i"]))  # type: ignore[arg-type]
    assert by_writer == {f"w{i}": list(range(25)) for i in range(WRITERS)}


def test_racing_alias_moves_have_exactly_one_winner_each(
    ledger: Ledger, pg_url: str, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    procs = [
        _child("race", pg_url, str(ROUNDS), f"r{i}", str(go), output=True) for i in range(RACERS)
    ]
    current = ""
    for n in range(ROUNDS):
        staged = tmp_path / "staged"
        staged.write_text(current, "utf-8")
        staged.rename(f"{go}-{n}")  # every racer expects the same old target
        deadline = time.monotonic() + 60
        while True:
            with ledger.reader() as r:
                moves = list(r.events(kinds=("alias.moved",)))
                target = r.alias("c", "a")
            if len(moves) == n + 1:
                break
            assert time.monotonic() < deadline, f"round {n}: nobody won"
            time.sleep(0.01)
        assert target is not None and target.endswith(f"-{n}")
        current = target
    outputs = [p.communicate(timeout=60)[0].split("\n") for p in procs]
    for n in range(ROUNDS):
        results = [line for out in outputs for line in out if line.endswith(f" {n}")]
        assert [r.split()[0] for r in results].count("won") == 1, (n, results)
        assert len(results) == RACERS
    report = ledger.verify_chain()
    assert report.events == ROUNDS


def test_a_killed_writer_leaves_nothing_half_done(
    ledger: Ledger, pg_url: str, tmp_path: Path
) -> None:
    ledger.append("test.appended", "before", {"i": 0}, signer=None, actor="t")
    ready = tmp_path / "ready"
    proc = _child("hang", pg_url, str(ready))
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    ledger.append(
        "test.appended", "after", {"i": 1}, signer=None, actor="t"
    )  # the head lock is free
    report = ledger.verify_chain()
    assert report.events == 2
    assert _subjects(ledger) == ["before", "after"]

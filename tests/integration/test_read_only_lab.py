"""A lab opened read-only (decision record 0012): its SQLite ledger is read with the
standard library's ``sqlite3``, through the same queries as SQLAlchemy, and answers
exactly as SQLAlchemy does; it refuses to write, leaves the lab folder as it found it,
and verification on it still catches an edited ledger."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from attack_lab import Fixture

from breedlab.clock import FixedClock
from breedlab.errors import ChainBroken, LabError
from breedlab.lab import Lab
from breedlab.ledger import KeyRecord, Ledger, PackageRecord, Reader
from breedlab.ledger.reader import SqliteRows


def _answers(r: Reader, fx: Fixture) -> dict[str, Any]:
    """Every query of the reader, on values the template lab holds (and some it does not)."""
    ids = fx.ids
    queries: dict[str, Callable[[], Any]] = {
        "head": r.head,
        "events": lambda: list(r.events()),
        "events after": lambda: list(r.events(after=5)),
        "events of kinds": lambda: list(r.events(kinds=("key.added", "package.approved"))),
        "events of subject": lambda: list(r.events(subject="digits")),
        "event": lambda: r.event(3),
        "package": lambda: r.package(ids.model),
        "no package": lambda: r.package("sha256:" + "0" * 64),
        "packages": r.packages,
        "packages of digits": lambda: r.packages(capability="digits"),
        "models": lambda: r.packages(kind="model"),
        "digits models": lambda: r.packages(capability="digits", kind="model"),
        "prefix": lambda: r.packages_with_prefix(ids.wide[7:11]),
        "alias": lambda: r.alias("digits", "champion"),
        "no alias": lambda: r.alias("digits", "nothing"),
        "aliases": r.aliases,
        "aliases of digits": lambda: r.aliases("digits"),
        "aliases of": lambda: r.aliases_of(ids.model),
        "keys": r.all_keys,
        "key": lambda: r.key("sam"),
        "no key": lambda: r.key("nobody"),
        "key by id": lambda: r.key_by_id(r.all_keys()[1].keyid),
        "signatures": lambda: r.signatures(ids.model),
        "approvals": lambda: r.approvals(ids.model),
        "revocation": lambda: r.revocation(ids.draft),
        "no revocation": lambda: r.revocation(ids.model),
        "checkpoints": r.checkpoints,
        "parents": lambda: r.parents(ids.model),
        "children": lambda: r.children(ids.dataset),
        "event hashes": lambda: r.event_hashes(after=2),
        "checkpoint size": r.last_checkpoint_size,
        "last kind": r.last_event_kind,
        "count": r.event_count,
    }
    return {name: query() for name, query in queries.items()}


def test_every_query_answers_the_same_through_sqlite3_as_through_sqlalchemy(
    fx: Fixture,
) -> None:
    fx.lab.revoke(fx.ids.draft, reason="a draft")
    fx.lab.revoke_key("sam", "left the lab")
    url = fx.lab.config.ledger_sqlalchemy_url
    fast, full = Ledger(url, FixedClock(), read_only=True), Ledger(url, FixedClock())
    try:
        fast.create()
        with fast.reader() as r:
            assert isinstance(r.rows, SqliteRows)  # the path under test is taken
            via_sqlite3 = _answers(r, fx)
        with full.reader() as r:
            via_sqlalchemy = _answers(r, fx)
        with full.transaction() as tx:  # a writing transaction reads the same way
            via_transaction = _answers(tx, fx)
    finally:
        fast.close()
        full.close()
    assert via_sqlite3 == via_sqlalchemy == via_transaction
    answers = via_sqlite3
    assert all(isinstance(p, PackageRecord) for p in answers["packages"])
    assert len(answers["packages"]) == 7 and len(answers["digits models"]) == 3
    assert answers["key"] == KeyRecord(
        name="sam",
        keyid=answers["key"].keyid,
        role="security",
        public_key=answers["key"].public_key,
        added_seq=answers["key"].added_seq,
        revoked_seq=answers["key"].revoked_seq,
        revoked_reason="left the lab",
    )
    assert answers["revocation"].reason == "a draft" and answers["no revocation"] is None
    assert answers["prefix"] == [fx.ids.wide] and answers["parents"] == [fx.ids.dataset]
    assert [a.name for a in answers["aliases of digits"]] == ["champion", "staging"]
    assert {e.kind for e in answers["events of kinds"]} == {"key.added", "package.approved"}
    assert answers["count"] == answers["head"][0] == len(answers["events"])


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_a_read_only_lab_reads_what_the_lab_holds_and_refuses_to_write(fx: Fixture) -> None:
    keys = fx.lab.keys()
    count = len(fx.lab.events())
    fx.lab.close()
    before = _files(fx.root)
    with Lab.open(fx.root, read_only=True) as lab:
        assert lab.keys() == keys
        assert lab.show(fx.ids.model).aliases == ("digits@champion",)
    assert _files(fx.root) == before  # not even the database's WAL files are left behind
    with Lab.open(fx.root, read_only=True) as lab:
        with pytest.raises(LabError, match="read-only"):
            lab.set_alias("digits", "staging", fx.ids.wide, expect=fx.ids.draft, reason="x")
        with pytest.raises(LabError, match="read-only"):
            lab.generate_key("mallory", "model")
        assert len(lab.events()) == count
    assert not list(fx.root.glob("keys/mallory*")) and not list(fx.root.glob("ledger.db-*"))


def test_verify_on_a_read_only_lab_still_catches_an_edited_row(fx: Fixture) -> None:
    with fx.sql() as db:
        db.execute("UPDATE keys SET role = 'production' WHERE name = 'alice'")
    with Lab.open(fx.root, read_only=True) as lab, pytest.raises(ChainBroken, match="'keys'"):
        lab.verify_ledger()

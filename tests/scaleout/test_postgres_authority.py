"""The authority attacks on a PostgreSQL ledger: any role with INSERT on ``events`` can
append (the triggers stop only UPDATE, DELETE and TRUNCATE), so what protects the lab is
the same as on SQLite -- signed events replayed through the authority table, the pinned
lab key, and a witness kept outside the lab."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from breedlab.canonical import JsonValue
from breedlab.capabilities import contract_path
from breedlab.clock import FixedClock
from breedlab.errors import ChainBroken, LabError, UnauthorizedChange
from breedlab.lab import Lab
from breedlab.ledger import Ledger
from breedlab.signing.keys import KeyPair, load_keypair
from builders import make_model_dir


@pytest.fixture
def pg_lab(lab: Lab, tmp_path: Path, pg_url: str) -> Iterator[tuple[Lab, dict[str, str]]]:
    """The shared test lab with a champion and a second approved model, moved to
    PostgreSQL (``breedlab migrate``)."""
    ids = {}
    for name in ("champion", "wide"):
        info = lab.import_path(
            make_model_dir(tmp_path, name, name.encode() * 64), kind="model",
            capability="digits", license="MIT", name=name, sign_with="alice",
        )  # fmt: skip
        lab.approve(str(info.id), purpose="release", key="pat")
        ids[name] = str(info.id)
    lab.promote("digits", ids["champion"], key="pat")
    lab.migrate(tmp_path / "scaled", ledger_url=pg_url)
    with Lab.open(tmp_path / "scaled") as scaled:
        assert scaled.config.ledger_url == pg_url
        scaled.verify_ledger()
        yield scaled, ids


def _attacker(pg_url: str) -> Ledger:
    """The attacker's own connection: breedlab's Ledger code, no key of the lab."""
    return Ledger(pg_url, FixedClock())


def _champion_move(lab: Lab, new: str) -> dict[str, JsonValue]:
    return {
        "capability": "digits",
        "alias": "champion",
        "old": str(lab.alias("digits", "champion")),
        "new": new,
        "reason": "",
        "via": "promote",
    }


def _refused_at(lab: Lab, seq: int, match: str) -> None:
    with pytest.raises(UnauthorizedChange) as caught:
        lab.verify_ledger()
    assert re.search(rf"\bseq {seq}\b", caught.value.message), caught.value.message
    assert re.search(match, caught.value.message), caught.value.message


def test_an_unsigned_champion_move_inserted_on_postgres_is_caught(
    pg_lab: tuple[Lab, dict[str, str]], pg_url: str
) -> None:
    lab, ids = pg_lab
    attacker = _attacker(pg_url)
    try:
        ev = attacker.append(
            "alias.moved", "digits", _champion_move(lab, ids["wide"]), signer=None, actor="pat"
        )
        attacker.verify_chain()  # the chain and the projections are perfect
    finally:
        attacker.close()
    assert str(lab.alias("digits", "champion")) == ids["wide"]

    _refused_at(lab, ev.seq, "not signed")


def test_an_event_signed_by_a_key_of_the_wrong_role_on_postgres_is_caught(
    pg_lab: tuple[Lab, dict[str, str]], pg_url: str
) -> None:
    lab, ids = pg_lab
    alice = load_keypair(lab.config.keys_dir, "alice")  # a model key, stolen
    attacker = _attacker(pg_url)
    try:
        ev = attacker.append(
            "alias.moved", "digits", _champion_move(lab, ids["wide"]), signer=alice
        )
    finally:
        attacker.close()

    _refused_at(lab, ev.seq, "'production' key")


def test_an_approval_credited_to_another_key_on_postgres_is_caught(
    pg_lab: tuple[Lab, dict[str, str]], pg_url: str
) -> None:
    lab, ids = pg_lab
    alice = load_keypair(lab.config.keys_dir, "alice")
    attacker = _attacker(pg_url)
    try:
        approval = next(
            e
            for e in lab.events(kinds=("package.approved",))
            if e.payload["package"] == ids["wide"]
        )
        ev = attacker.append(
            "package.approved",
            ids["wide"],
            {**approval.payload, "keyid": lab.key("sam").keyid, "role": "security"},
            signer=alice,
        )
    finally:
        attacker.close()

    _refused_at(lab, ev.seq, "names key .* but is signed by 'alice'")


def test_a_cut_tail_on_postgres_is_caught_by_a_witness(
    pg_lab: tuple[Lab, dict[str, str]], pg_url: str, tmp_path: Path
) -> None:
    lab, ids = pg_lab
    lab.set_alias("digits", "nightly", ids["wide"])
    witness = tmp_path / "witness.json"
    seen = lab.witness_export(witness)
    keep = seen.tree_size - 1  # drop the nightly move and the checkpoint after it
    owner = _attacker(pg_url)  # the database owner can lift the append-only trigger
    try:
        with owner.engine.begin() as conn:
            conn.execute(text("ALTER TABLE events DISABLE TRIGGER events_append_only"))
            head = conn.execute(text("SELECT hash FROM events WHERE seq = :s"), {"s": keep})
            conn.execute(text("DELETE FROM events WHERE seq > :s"), {"s": keep})
            conn.execute(
                text("UPDATE head SET seq = :s, hash = :h"), {"s": keep, "h": head.scalar()}
            )
            conn.execute(text("DELETE FROM checkpoints WHERE seq > :s"), {"s": keep})
            conn.execute(text("DELETE FROM aliases WHERE name = 'nightly'"))
            conn.execute(text("ALTER TABLE events ENABLE TRIGGER events_append_only"))
    finally:
        owner.close()
    lab.verify_ledger()  # alone, a shorter history verifies

    with pytest.raises(ChainBroken, match="cut from its tail"):
        lab.verify_ledger(witness=witness)


def test_a_postgres_ledger_rebuilt_under_a_new_lab_key_is_refused(
    pg_lab: tuple[Lab, dict[str, str]], pg_server: object, tmp_path: Path
) -> None:
    lab, _ = pg_lab
    witness = tmp_path / "witness.json"
    lab.witness_export(witness)
    impostor_url = pg_server.new_database()  # type: ignore[attr-defined]
    with Lab.init(tmp_path / "impostor", name=lab.config.name) as other:
        other.generate_key("alice", "model")
        other.add_capability(contract_path("digits"), sign_with="alice")
        other.migrate(tmp_path / "impostor-pg", ledger_url=impostor_url)
    with Lab.open(tmp_path / "impostor") as source:  # ... and fills the store with its blobs
        for digest in source.blobs.digests():
            lab.blobs.put_bytes(source.blobs.get_bytes(digest))
    config = lab.config.root / "breedlab.toml"  # the attacker points the lab at it
    text_ = config.read_text().replace(lab.config.ledger_url, impostor_url)
    config.write_text(text_)
    with Lab.open(lab.config.root) as swapped, pytest.raises(ChainBroken, match="pinned"):
        swapped.verify_ledger()
    config.write_text(re.sub(r'lab_key_id = "\w+"', 'lab_key_id = ""', text_))
    with Lab.open(lab.config.root) as swapped:
        swapped.verify_ledger()  # self-consistent and unpinned
        with pytest.raises(ChainBroken, match="rebuilt under another key"):
            swapped.verify_ledger(witness=witness)


def test_keys_made_outside_the_lab_sign_nothing_that_verifies_on_postgres(
    pg_lab: tuple[Lab, dict[str, str]], pg_url: str
) -> None:
    lab, ids = pg_lab
    mallory = KeyPair.generate("mallory")
    attacker = _attacker(pg_url)
    try:
        ev = attacker.append(
            "alias.moved", "digits", _champion_move(lab, ids["wide"]), signer=mallory
        )
    finally:
        attacker.close()

    _refused_at(lab, ev.seq, "unknown key")


def test_a_read_only_lab_on_postgres_reads_as_the_lab_does_and_refuses_to_write(
    pg_lab: tuple[Lab, dict[str, str]],
) -> None:
    """A read-only command on a PostgreSQL lab reads through SQLAlchemy, with the same
    queries (and typed records) as the sqlite3 path (decision record 0012)."""
    lab, ids = pg_lab
    with Lab.open(lab.config.root, read_only=True) as reading:
        assert reading.keys() == lab.keys() and len(lab.keys()) == 6
        assert reading.packages() == lab.packages()
        assert reading.show(ids["champion"]) == lab.show(ids["champion"])
        assert reading.alias_history("digits") == lab.alias_history("digits")
        assert reading.events(kinds=("package.approved",)) == lab.events(
            kinds=("package.approved",)
        )
        with pytest.raises(LabError, match="read-only"):
            reading.revoke(ids["wide"], reason="not on a read-only lab")
    assert lab.show(ids["wide"]).revoked is None

"""Attacks on the ledger database: every edited, deleted, reordered or added row is caught
by ``verify_ledger`` (a ChainBroken naming the first bad seq, the table that disagrees
with its events, or the checkpoint that no longer matches).

DESIGN §6: "Any edited, deleted or reordered row is reported with its seq." Edits go
straight to SQLite, around the Lab, as an attacker with write access to ``ledger.db``
would make them.
"""

from __future__ import annotations

import json
import re
import sqlite3

import pytest
from attack_lab import Fixture

from breedlab import canonical
from breedlab.cli import main
from breedlab.errors import ChainBroken, IntegrityError, UnauthorizedChange
from breedlab.lab.release import release_state
from breedlab.ledger import GENESIS, event_hash, merkle_root


def chain_broken_at(fx: Fixture, seq: int) -> ChainBroken:
    """Run verify_ledger, expect ChainBroken naming ``seq``; return it."""
    with pytest.raises(ChainBroken) as caught:
        fx.lab.verify_ledger()
    assert re.search(rf"\bseq {seq}\b", caught.value.message), caught.value.message
    return caught.value


def payload(fx: Fixture, seq: int) -> dict[str, object]:
    with fx.sql() as db:
        text = db.execute("SELECT payload FROM events WHERE seq = ?", (seq,)).fetchone()[0]
    value: dict[str, object] = json.loads(text)
    return value


def set_payload(fx: Fixture, seq: int, value: dict[str, object]) -> None:
    with fx.sql() as db:
        db.execute(
            "UPDATE events SET payload = ? WHERE seq = ?",
            (canonical.encode(value).decode("utf-8"), seq),
        )


def test_an_untouched_ledger_verifies_with_its_checkpoint(fx: Fixture) -> None:
    report = fx.lab.verify_ledger()

    assert report.events == fx.last_seq() == report.signed
    # the one signed by hand, and the automatic one when the template's Lab closed
    assert [c.status for c in report.checkpoints] == ["verified"] * len(report.checkpoints)
    assert {c.key for c in report.checkpoints} == {"lab"} and len(report.checkpoints) >= 2
    assert report.checkpoints[-1].tree_size == fx.last_seq() - 1


def test_an_edited_approval_payload_is_reported_with_its_seq(fx: Fixture) -> None:
    seq = fx.seq_of("package.approved", nth=1)  # alice's parent approval of digits-linear
    value = payload(fx, seq)
    assert value["purpose"] == "parent"
    set_payload(fx, seq, {**value, "purpose": "release"})

    chain_broken_at(fx, seq)


def test_a_parent_approval_widened_past_its_cluster_scope_is_caught(fx: Fixture) -> None:
    """The scope made wider in the event and its row, the chain resealed: the event's
    signature and the signed envelope still name the one cluster it was approved for."""
    fx.lab.approve(fx.ids.wide, purpose="parent", key="alice", clusters=["perturbation:noise"])
    seq = fx.seq_of("package.approved", nth=-1)
    value = payload(fx, seq)
    assert value["clusters"] == ["perturbation:noise"]
    set_payload(fx, seq, {k: v for k, v in value.items() if k != "clusters"})  # unscoped
    with fx.sql() as db:
        db.execute("UPDATE approvals SET clusters = NULL WHERE seq = ?", (seq,))
    fx.reseal(seq)
    fx.lab.ledger.verify_chain()  # the hashes alone agree again

    with pytest.raises((ChainBroken, UnauthorizedChange), match=rf"\bseq {seq}\b"):
        fx.lab.verify_ledger()
    [result] = fx.lab.verify([fx.ids.wide])
    assert any("different cluster scope" in p.message for p in result.problems)


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("at", "2020-01-01T00:00:00.000000Z"),
        ("actor", "mallory"),
        ("kind", "package.noted"),
        ("subject", "sha256:" + "0" * 64),
        ("payload", '{"alias": "champion"}'),  # not even canonical JSON
        ("prev_hash", "f" * 64),
        ("hash", "e" * 64),
    ],
)
def test_an_edited_column_of_a_past_event_is_reported_with_its_seq(
    fx: Fixture, column: str, value: str
) -> None:
    seq = fx.seq_of("alias.moved")  # the first champion move, in the middle of the chain
    with fx.sql() as db:
        db.execute(f"UPDATE events SET {column} = ? WHERE seq = ?", (value, seq))

    chain_broken_at(fx, seq)


def test_an_event_deleted_from_the_middle_is_reported_with_its_seq(fx: Fixture) -> None:
    seq = fx.seq_of("package.signed", nth=1)
    with fx.sql() as db:
        db.execute("DELETE FROM events WHERE seq = ?", (seq,))

    chain_broken_at(fx, seq)


def test_two_events_swapped_in_order_are_reported_at_the_first_of_them(fx: Fixture) -> None:
    first = fx.seq_of("package.approved")
    with fx.sql() as db:
        db.execute("BEGIN")
        db.execute("UPDATE events SET seq = -1 WHERE seq = ?", (first,))
        db.execute("UPDATE events SET seq = ? WHERE seq = ?", (first, first + 1))
        db.execute("UPDATE events SET seq = ? WHERE seq = -1", (first + 1,))
        db.execute("COMMIT")

    chain_broken_at(fx, first)


def test_an_event_appended_behind_the_heads_back_is_reported(fx: Fixture) -> None:
    last = fx.last_seq()
    with fx.sql() as db:
        prev = db.execute("SELECT hash FROM events WHERE seq = ?", (last,)).fetchone()[0]
        at = "2026-01-01T00:00:00.000000Z"
        digest = event_hash(
            seq=last + 1, at=at, actor="mallory", kind="round.started", subject="digits",
            payload={}, prev_hash=prev,
        )  # fmt: skip
        db.execute(
            "INSERT INTO events (seq, at, actor, kind, subject, payload, prev_hash, hash) "
            "VALUES (?, ?, 'mallory', 'round.started', 'digits', '{}', ?, ?)",
            (last + 1, at, prev, digest),
        )

    error = chain_broken_at(fx, last + 1)
    assert "head" in error.message


def test_the_last_event_deleted_with_the_head_row_fixed_is_reported(fx: Fixture) -> None:
    last = fx.last_seq()  # the automatic checkpoint written when the template closed
    with fx.sql() as db:
        prev = db.execute("SELECT hash FROM events WHERE seq = ?", (last - 1,)).fetchone()[0]
        db.execute("DELETE FROM events WHERE seq = ?", (last,))
        db.execute("UPDATE head SET seq = ?, hash = ?", (last - 1, prev))

    with pytest.raises(ChainBroken, match="'checkpoints'"):
        fx.lab.verify_ledger()


def test_the_checkpoint_and_everything_after_it_cut_off_is_reported(fx: Fixture) -> None:
    checkpoint = fx.seq_of("checkpoint.signed")
    with fx.sql() as db:
        prev = db.execute("SELECT hash FROM events WHERE seq = ?", (checkpoint - 1,)).fetchone()
        db.execute("DELETE FROM events WHERE seq >= ?", (checkpoint,))
        db.execute("UPDATE head SET seq = ?, hash = ?", (checkpoint - 1, prev[0]))

    with pytest.raises(ChainBroken, match="disagrees with its events"):
        fx.lab.verify_ledger()


def test_the_head_row_pointing_elsewhere_is_reported(fx: Fixture) -> None:
    with fx.sql() as db:
        db.execute("UPDATE head SET hash = ?", (GENESIS,))

    error = chain_broken_at(fx, fx.last_seq())
    assert "head" in error.message


@pytest.mark.parametrize(
    ("table", "statement"),
    [
        (
            "aliases",
            "UPDATE aliases SET target = (SELECT id FROM packages WHERE name = 'digits-wide') "
            "WHERE name = 'champion'",
        ),
        ("aliases", "DELETE FROM aliases WHERE name = 'staging'"),
        (
            "aliases",
            "INSERT INTO aliases SELECT capability, 'canary', target, seq FROM aliases "
            "WHERE name = 'champion'",
        ),
        ("keys", "UPDATE keys SET revoked_seq = 5, revoked_reason = 'forged' WHERE name = 'pat'"),
        (
            "keys",
            "UPDATE keys SET public_key = (SELECT public_key FROM keys WHERE name = 'alice') "
            "WHERE name = 'pat'",
        ),
        ("keys", "UPDATE keys SET role = 'production' WHERE name = 'alice'"),
        ("approvals", "UPDATE approvals SET purpose = 'release' WHERE purpose = 'parent'"),
        ("approvals", "DELETE FROM approvals WHERE seq = (SELECT min(seq) FROM approvals)"),
        (
            "approvals",
            "INSERT INTO approvals SELECT seq + 1000, "
            "(SELECT id FROM packages WHERE name = 'digits-draft'), purpose, keyid, role, "
            "envelope, clusters FROM approvals WHERE purpose = 'release' LIMIT 1",
        ),
        ("packages", "DELETE FROM packages WHERE name = 'digits-draft'"),
        ("packages", "UPDATE packages SET kind = 'model' WHERE name = 'digits-data'"),
        ("lineage", "DELETE FROM lineage"),
        ("signatures", "DELETE FROM signatures WHERE seq = (SELECT max(seq) FROM signatures)"),
        (
            "revocations",
            "INSERT INTO revocations SELECT 999, id, 'forged' FROM packages "
            "WHERE name = 'digits-wide'",
        ),
        ("checkpoints", "UPDATE checkpoints SET root = '" + "a" * 64 + "'"),
        ("checkpoints", "UPDATE checkpoints SET tree_size = tree_size - 1"),
    ],
)
def test_an_edited_projection_row_is_reported_with_its_table(
    fx: Fixture, table: str, statement: str
) -> None:
    with fx.sql() as db:
        changed = db.execute(statement).rowcount
    assert changed >= 1

    with pytest.raises(ChainBroken, match=f"'{table}' disagrees with its events"):
        fx.lab.verify_ledger()


def test_a_revoked_key_quietly_reinstated_is_reported(fx: Fixture) -> None:
    fx.lab.revoke_key("sam", "left the team")
    fx.lab.verify_ledger()
    with fx.sql() as db:
        db.execute("UPDATE keys SET revoked_seq = NULL, revoked_reason = NULL WHERE name = 'sam'")

    with pytest.raises(ChainBroken, match="'keys' disagrees"):
        fx.lab.verify_ledger()


def test_a_history_rewritten_and_resealed_is_caught_by_the_signed_checkpoint(
    fx: Fixture,
) -> None:
    # The attacker edits the first champion move, recomputes every later hash and the
    # head, and fixes the alias projection: the chain and the tables agree again. Only
    # the checkpoint, signed by a key the attacker does not hold, still remembers.
    seq = fx.seq_of("alias.moved")
    checkpoint = fx.seq_of("checkpoint.signed")
    assert seq < checkpoint
    set_payload(fx, seq, {**payload(fx, seq), "new": fx.ids.wide})
    with fx.sql() as db:
        db.execute("UPDATE aliases SET target = ? WHERE name = 'champion'", (fx.ids.wide,))
    fx.reseal(seq)
    fx.lab.ledger.verify_chain()  # the chain alone is fooled

    error = chain_broken_at(fx, checkpoint)
    assert "Merkle root" in error.message


def test_a_rewritten_history_with_a_recomputed_checkpoint_root_is_caught_by_its_signature(
    fx: Fixture,
) -> None:
    seq = fx.seq_of("alias.moved")
    checkpoint = fx.seq_of("checkpoint.signed")
    set_payload(fx, seq, {**payload(fx, seq), "reason": "nobody said that"})
    fx.reseal(seq)
    with fx.sql() as db:
        hashes = [bytes.fromhex(r[0]) for r in db.execute("SELECT hash FROM events ORDER BY seq")]
    value = payload(fx, checkpoint)
    root = merkle_root(hashes[: int(str(value["tree_size"]))]).hex()
    set_payload(fx, checkpoint, {**value, "root": root})
    with fx.sql() as db:
        db.execute("UPDATE checkpoints SET root = ? WHERE seq = ?", (root, checkpoint))
    fx.reseal(seq)
    fx.lab.ledger.verify_chain()

    error = chain_broken_at(fx, checkpoint)
    assert "signed head differs" in error.message


def test_a_checkpoint_shrunk_to_exclude_a_rewrite_is_caught_by_its_signature(
    fx: Fixture,
) -> None:
    seq = fx.seq_of("alias.moved", nth=1)  # the move just before the checkpoint
    checkpoint = fx.seq_of("checkpoint.signed")
    set_payload(fx, seq, {**payload(fx, seq), "reason": "rewritten"})
    fx.reseal(seq)
    with fx.sql() as db:
        hashes = [bytes.fromhex(r[0]) for r in db.execute("SELECT hash FROM events ORDER BY seq")]
    size = seq - 1
    root = merkle_root(hashes[:size]).hex()
    set_payload(fx, checkpoint, {**payload(fx, checkpoint), "tree_size": size, "root": root})
    with fx.sql() as db:
        db.execute(
            "UPDATE checkpoints SET tree_size = ?, root = ? WHERE seq = ?", (size, root, checkpoint)
        )
    fx.reseal(seq)

    chain_broken_at(fx, checkpoint)


def test_a_flipped_byte_in_a_checkpoint_envelope_is_reported(fx: Fixture) -> None:
    envelope = str(payload(fx, fx.seq_of("checkpoint.signed"))["envelope"])
    fx.flip(envelope)

    with pytest.raises(ChainBroken, match="corrupt"):
        fx.lab.verify_ledger()


def test_a_deleted_checkpoint_envelope_is_reported_as_a_broken_ledger(fx: Fixture) -> None:
    seq = fx.seq_of("checkpoint.signed")
    fx.blob_path(str(payload(fx, seq)["envelope"])).unlink()

    error = chain_broken_at(fx, seq)
    assert "missing" in error.message


def swap_checkpoint_envelope(fx: Fixture) -> None:
    """Point the checkpoint at a real, validly signed envelope -- just not its own --
    and reseal the chain so only the checkpoint check can notice."""
    seq = fx.seq_of("checkpoint.signed")
    other = fx.envelope("approvals", fx.ids.wide, purpose="release")
    set_payload(fx, seq, {**payload(fx, seq), "envelope": other})
    with fx.sql() as db:
        db.execute("UPDATE checkpoints SET envelope = ? WHERE seq = ?", (other, seq))
    fx.reseal(seq)


def test_a_checkpoint_envelope_swapped_for_another_signed_envelope_is_reported(
    fx: Fixture,
) -> None:
    swap_checkpoint_envelope(fx)
    fx.lab.ledger.verify_chain()

    with pytest.raises(ChainBroken, match="no valid signature"):
        fx.lab.verify_ledger()


@pytest.mark.parametrize("attack", ["flipped", "swapped"])
def test_a_bad_checkpoint_envelope_is_reported_with_the_checkpoints_seq(
    fx: Fixture, attack: str
) -> None:
    seq = fx.seq_of("checkpoint.signed")
    if attack == "flipped":
        fx.flip(str(payload(fx, seq)["envelope"]))
    else:
        swap_checkpoint_envelope(fx)

    chain_broken_at(fx, seq)


def test_the_database_itself_refuses_to_edit_or_delete_events(fx: Fixture) -> None:
    db = sqlite3.connect(fx.root / "ledger.db", isolation_level=None)
    try:
        for statement in ("UPDATE events SET kind = 'forged'", "DELETE FROM events"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                db.execute(statement)
    finally:
        db.close()
    assert fx.lab.verify_ledger().events == fx.last_seq()


@pytest.mark.parametrize(
    "baking_s",
    [10**30, 10**12, -1, "soon", "3600.5", True],
    ids=["overflows-timedelta", "overflows-datetime", "negative", "text", "fraction", "bool"],
)
def test_a_promotion_with_an_out_of_bound_or_malformed_baking_period_is_refused_naming_its_seq(
    fx: Fixture, capsys: pytest.CaptureFixture[str], baking_s: object
) -> None:
    # Issue 10: replay read it as timedelta(seconds=int(str(baking_s))) -- an overflow
    # traceback for a huge value, and a negative or boolean one taken as it came. The
    # event is written directly, signed by a production key, as an old ledger holds it.
    promoted = payload(fx, fx.seq_of("release.promoted"))
    ev = fx.lab.ledger.append(
        "release.promoted",
        "digits",
        {**promoted, "baking_s": baking_s},  # type: ignore[dict-item]
        signer=fx.lab.release_signer("pat"),
        actor="pat",
    )
    named = rf"ledger event {ev.seq} \(release\.promoted of digits\) records a baking period"
    with pytest.raises(IntegrityError, match=named):
        fx.lab.verify_ledger()
    with pytest.raises(IntegrityError, match=named):
        release_state(fx.lab.supply, "digits")
    capsys.readouterr()
    assert main(["--lab", str(fx.root), "ledger", "verify"]) == 5
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"ledger event {ev.seq}" in " ".join(err.split())

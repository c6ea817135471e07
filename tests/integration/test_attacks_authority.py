"""Attacks on authority (issue: every state change is signed by a key allowed to make it).

Each attack is made the way the issue found it working: with write access to
``ledger.db`` and breedlab's own ``Ledger.append`` (so the chain, the head and every
projection are perfect), with a trusted key of the wrong role, or through the CLI. Each
is caught by verification, naming the seq, or refused before anything is written.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from attack_lab import Fixture, torch_model_files, write_folder

from breedlab.canonical import JsonValue
from breedlab.capabilities import contract_path
from breedlab.cli import main
from breedlab.digest import Digest
from breedlab.errors import ChainBroken, InvalidRequest, PolicyError, UnauthorizedChange
from breedlab.lab import Lab
from breedlab.signing import dsse
from breedlab.signing.keys import KeyPair, load_keypair
from breedlab.signing.statements import APPROVAL_PREDICATE, INTOTO_PAYLOAD_TYPE, Statement, Subject
from breedlab.supply.verification import valid_approvals
from breedlab.supply.witness import Witness, check_witness


def key(fx: Fixture, name: str) -> KeyPair:
    return load_keypair(fx.lab.config.keys_dir, name)


def champion_move(fx: Fixture, new: str, *, via: str | None = "promote") -> dict[str, JsonValue]:
    old = fx.lab.alias("digits", "champion")
    payload: dict[str, JsonValue] = {
        "capability": "digits",
        "alias": "champion",
        "old": None if old is None else str(old),
        "new": new,
        "reason": "trust me",
    }
    if via is not None:
        payload["via"] = via
    return payload


def refused_at(fx: Fixture, seq: int, match: str) -> UnauthorizedChange:
    with pytest.raises(UnauthorizedChange) as caught:
        fx.lab.verify_ledger()
    message = caught.value.message
    assert re.search(rf"\bseq {seq}\b", message), message
    assert re.search(match, message), message
    return caught.value


def state(fx: Fixture) -> tuple[int, str | None]:
    champion = fx.lab.alias("digits", "champion")
    return fx.last_seq(), None if champion is None else str(champion)


# -- 1. a champion moved without any key ----------------------------------------------------


def test_an_appended_unsigned_champion_move_is_caught_naming_its_seq(
    fx: Fixture, capsys: pytest.CaptureFixture[str]
) -> None:
    ev = fx.lab.ledger.append(
        "alias.moved", "digits", champion_move(fx, fx.ids.draft), signer=None, actor="pat"
    )
    fx.lab.ledger.verify_chain()  # chain, head and projections: all perfect
    assert str(fx.lab.alias("digits", "champion")) == fx.ids.draft

    refused_at(fx, ev.seq, "not signed")
    assert main(["--lab", str(fx.root), "verify", "--all"]) == 5
    assert main(["--lab", str(fx.root), "ledger", "verify"]) == 5
    err = " ".join(capsys.readouterr().err.split())
    assert f"ledger seq {ev.seq} (alias.moved): not signed" in err


def test_an_unsigned_package_registration_is_caught_naming_its_seq(fx: Fixture) -> None:
    manifest = fx.manifest(fx.ids.draft)
    ev = fx.lab.ledger.append(
        "package.registered",
        "sha256:" + "ab" * 32,
        {
            "id": "sha256:" + "ab" * 32,
            "kind": "model",
            "name": "smuggled",
            "capability": "digits",
            "parents": [],
            "provenance": str(manifest.provenance),
            "files": 1,
            "size": 1,
        },
        signer=None,
        actor="alice",
    )

    refused_at(fx, ev.seq, "not signed")


# -- 2. an event signed by a key of the wrong role -------------------------------------------


@pytest.mark.parametrize(
    ("signer", "kind", "payload", "match"),
    [
        ("alice", "alias.moved", "champion", r"moves only by a 'production' key"),
        ("factory", "alias.moved", "champion", r"moves only by a 'production' key"),
        ("alice", "release.canary_passed", "canary", r"role 'model'; release.canary_passed needs"),
        ("pat", "decision.made", "decision", r"role 'production'; decision.made needs factory"),
        ("erin", "key.revoked", "key", r"role 'evaluation'; key.revoked needs lab"),
        ("factory", "ledger.attested", "attest", r"role 'factory'; ledger.attested needs lab"),
    ],
)
def test_an_event_signed_by_a_key_of_the_wrong_role_is_caught(
    fx: Fixture, signer: str, kind: str, payload: str, match: str
) -> None:
    payloads: dict[str, dict[str, JsonValue]] = {
        "champion": champion_move(fx, fx.ids.wide),
        "canary": {"capability": "digits", "package": fx.ids.wide, "canary": 1},
        "decision": {"round": "round-1", "outcomes": {fx.ids.wide: "shadow"}},
        "key": {"name": "pat", "keyid": fx.lab.key("pat").keyid, "reason": "mine now"},
        "attest": {"tree_size": 1, "root": "00" * 32, "keyid": key(fx, signer).keyid},
    }
    ev = fx.lab.ledger.append(
        kind, "digits", payloads[payload], signer=key(fx, signer), actor=signer
    )

    refused_at(fx, ev.seq, match)


def test_the_lab_refuses_before_writing_what_a_key_of_the_wrong_role_may_not_do(
    fx: Fixture,
) -> None:
    before = state(fx)
    with pytest.raises(PolicyError, match="role 'model'"):
        fx.lab.promote("digits", fx.ids.wide, key="alice")
    with pytest.raises(PolicyError, match="role 'model'"):
        fx.lab.rollback("digits", key="alice")
    with pytest.raises(PolicyError, match="role 'model'"):
        fx.lab.revoke(fx.ids.wide, reason="no", key="alice")
    with pytest.raises(PolicyError, match="production key"):
        fx.lab.set_alias("digits", "canary", fx.ids.wide, key="erin")
    with pytest.raises(InvalidRequest, match="lab key and the factory key"):
        fx.lab.approve(fx.ids.wide, purpose="release", key="factory")
    assert state(fx) == before


# -- 3. an approval credited to a key that never signed it -----------------------------------


def forged_approval(
    fx: Fixture, *, envelope_by: str, row_key: str, role: str, event_by: str | None
) -> int:
    """Append a release approval of digits-draft: the envelope is signed by
    ``envelope_by`` and claims ``role``; the row credits ``row_key``."""
    statement = Statement(
        subjects=(Subject(name="digits-draft", sha256=Digest.parse(fx.ids.draft).hex),),
        predicate_type=APPROVAL_PREDICATE,
        predicate={"purpose": "release", "role": role, "capability": "digits"},
    )
    envelope = fx.lab.blobs.put_bytes(
        dsse.sign(INTOTO_PAYLOAD_TYPE, statement.to_bytes(), key(fx, envelope_by)).to_bytes()
    )
    ev = fx.lab.ledger.append(
        "package.approved",
        fx.ids.draft,
        {
            "package": fx.ids.draft,
            "purpose": "release",
            "key": row_key,
            "keyid": fx.lab.key(row_key).keyid,
            "role": role,
            "envelope": str(envelope),
        },
        signer=None if event_by is None else key(fx, event_by),
        actor=row_key,
    )
    return ev.seq


def _approvals(fx: Fixture) -> list[tuple[str, str]]:
    with fx.lab.ledger.reader() as r:
        found = valid_approvals(fx.lab.blobs, r, Digest.parse(fx.ids.draft), purpose="release")
    return [(a.keyid, a.role.value) for a in found]


def test_a_model_keys_envelope_in_a_row_claiming_a_security_key_counts_for_nobody(
    fx: Fixture,
) -> None:
    # The attack: a row says "sam, security"; the envelope is alice's.
    seq = forged_approval(fx, envelope_by="alice", row_key="sam", role="security", event_by=None)

    assert _approvals(fx) == []  # not credited to sam, nor to alice as a security approval
    [result] = fx.lab.verify([fx.ids.draft])
    assert any("did not sign the envelope" in p.message for p in result.problems)
    refused_at(fx, seq, "not signed")


def test_a_signed_approval_naming_another_keys_id_is_caught(fx: Fixture) -> None:
    # alice holds her key and signs the event too: the row still names sam.
    seq = forged_approval(fx, envelope_by="alice", row_key="sam", role="security", event_by="alice")

    assert _approvals(fx) == []
    refused_at(fx, seq, "names key .* but is signed by 'alice'")


def test_a_signed_approval_claiming_a_role_its_key_does_not_have_is_caught(fx: Fixture) -> None:
    seq = forged_approval(
        fx, envelope_by="alice", row_key="alice", role="security", event_by="alice"
    )

    assert _approvals(fx) == []  # her real role is 'model'; the row's claim is ignored
    [result] = fx.lab.verify([fx.ids.draft])
    assert any("key 'alice' has role 'model'" in p.message for p in result.problems)
    refused_at(fx, seq, "claims role 'security', but 'alice' has role 'model'")


# -- 4. release controls that alias set used to skip -----------------------------------------


def test_alias_set_champion_is_refused_for_a_deny_listed_package_and_points_to_promote(
    fx: Fixture, capsys: pytest.CaptureFixture[str]
) -> None:
    fx.lab.ledger.append(  # the controller retired digits-wide (a legitimate factory event)
        "candidate.archived",
        fx.ids.wide,
        {"round": "round-9", "package": fx.ids.wide, "outcome": "retire", "reasons": ["worse"]},
        signer=key(fx, "factory"),
        actor="viability-controller",
    )
    before = state(fx)

    code = main(["--lab", str(fx.root), "alias", "set", "digits", "champion", fx.ids.wide,
                 "--expect", fx.ids.model, "--key", "pat"])  # fmt: skip
    assert code == 6
    assert "breedlab promote digits" in capsys.readouterr().err
    with pytest.raises(PolicyError, match="deny-list"):
        fx.lab.promote("digits", fx.ids.wide, key="pat")
    assert state(fx) == before

    # pat's own key, writing the move around the lab: replayed, and refused.
    ev = fx.lab.ledger.append(
        "alias.moved", "digits", champion_move(fx, fx.ids.wide), signer=key(fx, "pat")
    )
    refused_at(fx, ev.seq, "deny-list")


def _high_tier_model(fx: Fixture, tmp_path: Path) -> str:
    text = contract_path("digits").read_text("utf-8")
    contract = tmp_path / "vault.toml"
    contract.write_text(
        text.replace('name = "digits"', 'name = "vault"').replace(
            'risk_tier = "low"', 'risk_tier = "high"'
        ),
        "utf-8",
    )
    fx.lab.add_capability(contract, sign_with="alice")
    folder = write_folder(tmp_path / "vault-model", torch_model_files(tmp_path, "vault", 6))
    info = fx.lab.import_path(
        folder, kind="model", capability="vault", license="MIT", sign_with="alice"
    )
    return str(info.id)


def test_a_high_tier_champion_without_independent_and_security_approval_is_refused(
    fx: Fixture, tmp_path: Path
) -> None:
    pid = _high_tier_model(fx, tmp_path)
    fx.lab.approve(pid, purpose="release", key="alice")  # the proposer approving herself
    with pytest.raises(PolicyError, match="only by promotion"):
        fx.lab.set_alias("vault", "champion", pid, key="pat")
    with pytest.raises(PolicyError, match="other than the proposer") as caught:
        fx.lab.promote("vault", pid, key="pat")
    assert "'security' key" in caught.value.message
    assert fx.lab.alias("vault", "champion") is None

    ev = fx.lab.ledger.append(
        "alias.moved",
        "vault",
        {"capability": "vault", "alias": "champion", "old": None, "new": pid, "reason": "",
         "via": "promote"},
        signer=key(fx, "pat"),
    )  # fmt: skip
    refused_at(fx, ev.seq, "risk tier high")


def test_a_high_tier_champion_with_the_approvals_it_needs_is_promoted_and_verifies(
    fx: Fixture, tmp_path: Path
) -> None:
    pid = _high_tier_model(fx, tmp_path)
    fx.lab.approve(pid, purpose="release", key="pat")
    fx.lab.approve(pid, purpose="release", key="sam")

    ev = fx.lab.promote("vault", pid, key="pat")

    assert ev.payload["risk_tier"] == "high"
    assert fx.lab.verify_ledger().signed == fx.last_seq()


def test_a_rollback_written_around_the_lab_to_a_package_that_was_never_previous_is_caught(
    fx: Fixture,
) -> None:
    ev = fx.lab.ledger.append(
        "alias.moved",
        "digits",
        champion_move(fx, fx.ids.wide, via="rollback"),
        signer=key(fx, "pat"),
    )
    refused_at(fx, ev.seq, "only to digits@previous")


def test_a_champion_move_that_names_no_promotion_or_rollback_is_caught(fx: Fixture) -> None:
    ev = fx.lab.ledger.append(
        "alias.moved", "digits", champion_move(fx, fx.ids.wide, via=None), signer=key(fx, "pat")
    )
    refused_at(fx, ev.seq, "outside a promotion or rollback")


# -- 5. an outside anchor: the witness ---------------------------------------------------------


def cut_tail(fx: Fixture, keep: int) -> None:
    """Delete every event after ``keep`` and make the derived tables agree again, as an
    attacker with the database would (breedlab's own projections, replayed)."""
    with fx.sql() as db:
        head = db.execute("SELECT hash FROM events WHERE seq = ?", (keep,)).fetchone()[0]
        db.execute("DELETE FROM events WHERE seq > ?", (keep,))
        db.execute("UPDATE head SET seq = ?, hash = ?", (keep, head))
        for table in ("checkpoints", "signatures", "approvals", "revocations"):
            db.execute(f"DELETE FROM {table} WHERE seq > ?", (keep,))
        db.execute("DELETE FROM aliases")
    replayed: dict[tuple[str, str], tuple[str, int]] = {}
    for e in fx.lab.events(kinds=("alias.moved",)):
        replayed[(str(e.payload["capability"]), str(e.payload["alias"]))] = (
            str(e.payload["new"]),
            e.seq,
        )
    with fx.sql() as db:
        for (cap, name), (target, seq) in replayed.items():
            db.execute("INSERT INTO aliases VALUES (?, ?, ?, ?)", (cap, name, target, seq))


def test_a_cut_tail_with_its_checkpoint_passes_alone_and_is_caught_by_a_witness(
    fx: Fixture, tmp_path: Path
) -> None:
    witness = tmp_path / "witness.json"
    seen = fx.lab.witness_export(witness)
    assert seen.tree_size == fx.last_seq() - 1  # the last event is the checkpoint itself
    last_move = fx.seq_of("alias.moved", nth=-1)  # staging -> draft, after a checkpoint

    cut_tail(fx, last_move - 1)
    fx.lab.verify_ledger()  # without an outside anchor, a shorter history looks fine

    with pytest.raises(ChainBroken, match="cut from its tail"):
        fx.lab.verify_ledger(witness=witness)
    assert main(["--lab", str(fx.root), "ledger", "verify", "--witness", str(witness)]) == 5


def test_a_dropped_last_checkpoint_is_caught_by_a_witness(fx: Fixture, tmp_path: Path) -> None:
    witness = tmp_path / "witness.json"
    fx.lab.witness_export(witness)

    cut_tail(fx, fx.last_seq() - 1)  # only the checkpoint the witness holds is gone
    fx.lab.verify_ledger()

    with pytest.raises(ChainBroken, match="cut from its tail"):
        fx.lab.verify_ledger(witness=witness)


def test_a_replaced_last_checkpoint_is_caught_by_a_witness(fx: Fixture, tmp_path: Path) -> None:
    witness = tmp_path / "witness.json"
    fx.lab.witness_export(witness)
    cut_tail(fx, fx.last_seq() - 1)
    fx.lab.set_alias("digits", "nightly", fx.ids.wide)  # history goes on, signed and valid

    with pytest.raises(ChainBroken, match="not the checkpoint the witness holds"):
        fx.lab.verify_ledger(witness=witness)


def test_a_reordered_history_is_not_a_consistent_extension_of_the_witness(
    fx: Fixture, tmp_path: Path
) -> None:
    witness = tmp_path / "witness.json"
    seen = Witness.from_bytes(fx.lab.witness_export(witness).to_bytes(), str(witness))
    first = fx.seq_of("package.approved")
    with fx.sql() as db:
        db.execute("BEGIN")
        db.execute("UPDATE events SET seq = -1 WHERE seq = ?", (first,))
        db.execute("UPDATE events SET seq = ? WHERE seq = ?", (first, first + 1))
        db.execute("UPDATE events SET seq = ? WHERE seq = -1", (first + 1,))
        db.execute("COMMIT")
    fx.reseal(first)
    with fx.lab.ledger.reader() as r:
        leaves = r.event_hashes()

    with pytest.raises(ChainBroken, match="not the ones the witness saw"):
        # the witness alone catches it, even given its checkpoint as it was
        check_witness(
            seen, leaves, seen.lab_key_id, {"tree_size": seen.tree_size, "root": seen.root}
        )
    with pytest.raises((ChainBroken, UnauthorizedChange)):
        fx.lab.verify_ledger(witness=witness)


def _impostor_ledger(fx: Fixture, tmp_path: Path) -> None:
    """Replace the lab's ledger and store with a whole new lab's, built under another
    lab key: every chain, signature, endorsement and checkpoint in it is valid."""
    with Lab.init(tmp_path / "impostor", name=fx.lab.config.name) as other:
        other.generate_key("alice", "model")
        other.generate_key("pat", "production")
        other.add_capability(contract_path("digits"), sign_with="alice")
    fx.lab.close()
    for name in ("ledger.db", "ledger.db-wal", "ledger.db-shm"):
        (fx.root / name).unlink(missing_ok=True)
        if (tmp_path / "impostor" / name).exists():
            shutil.copy2(tmp_path / "impostor" / name, fx.root / name)
    shutil.rmtree(fx.root / "objects")
    shutil.copytree(tmp_path / "impostor" / "objects", fx.root / "objects")


def test_a_ledger_rebuilt_under_a_new_lab_key_is_refused_by_the_pin_and_by_a_witness(
    fx: Fixture, tmp_path: Path
) -> None:
    witness = tmp_path / "witness.json"
    fx.lab.witness_export(witness)
    _impostor_ledger(fx, tmp_path)

    # breedlab.toml still pins the real lab key
    with Lab.open(fx.root) as lab, pytest.raises(ChainBroken, match="not the pinned lab key"):
        lab.verify_ledger()
    config = fx.root / "breedlab.toml"  # the attacker edits the pin away as well
    config.write_text(re.sub(r'lab_key_id = "\w+"', 'lab_key_id = ""', config.read_text()))
    with Lab.open(fx.root) as lab:
        assert lab.verify_ledger().pinned is False  # a self-consistent, unpinned ledger
        with pytest.raises(ChainBroken, match="rebuilt under another key"):
            lab.verify_ledger(witness=witness)


def test_a_ledger_that_only_grew_is_proved_a_consistent_extension_of_its_witness(
    fx: Fixture, tmp_path: Path
) -> None:
    witness = tmp_path / "witness.json"
    seen = fx.lab.witness_export(witness)
    fx.lab.set_alias("digits", "nightly", fx.ids.wide)
    fx.lab.revoke(fx.ids.draft, reason="superseded", key="sam")

    report = fx.lab.verify_ledger(witness=witness)

    assert report.witness is not None
    assert f"witnessed {seen.tree_size} events" in report.witness


def test_a_forged_or_edited_witness_file_is_refused(fx: Fixture, tmp_path: Path) -> None:
    witness = tmp_path / "witness.json"
    fx.lab.witness_export(witness)
    text = witness.read_text()
    edited = re.sub(r'"tree_size":(\d+)', lambda m: f'"tree_size":{int(m[1]) - 1}', text)
    witness.write_text(edited)

    with pytest.raises(Exception, match="differ from what was signed"):
        fx.lab.verify_ledger(witness=witness)


# -- checkpoints are automatic ---------------------------------------------------------------


def test_every_command_that_changes_state_ends_with_a_checkpoint(
    fx: Fixture, capsys: pytest.CaptureFixture[str]
) -> None:
    fx.lab.close()
    assert main(["--lab", str(fx.root), "alias", "set", "digits", "nightly", fx.ids.wide]) == 0
    with Lab.open(fx.root) as lab:
        [*_, move, last] = lab.events()
        assert (move.kind, last.kind) == ("alias.moved", "checkpoint.signed")
        assert last.payload["tree_size"] == move.seq
    assert main(["--lab", str(fx.root), "packages"]) == 0  # a read adds nothing
    with Lab.open(fx.root) as lab:
        assert lab.events()[-1].seq == last.seq

"""Attacks on trust: keys the lab never registered, revoked keys, forged approvals and
signatures, and packages that must not take the champion alias.

DESIGN §4-5: a signature says who vouches for a package, an approval who allowed its use;
both are DSSE envelopes by keys the ledger trusts. Revoking a key makes everything it
signed stop verifying; a revoked package cannot be a parent or a champion.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from attack_lab import Fixture, torch_model_files, write_folder

from breedlab.digest import Digest
from breedlab.errors import (
    Conflict,
    IntegrityError,
    InvalidRequest,
    LabError,
    PolicyError,
    UnauthorizedChange,
)
from breedlab.ledger.merkle import root as merkle_root
from breedlab.signing import dsse
from breedlab.signing.keys import KeyPair, load_keypair
from breedlab.signing.statements import (
    APPROVAL_PREDICATE,
    INTOTO_PAYLOAD_TYPE,
    SIGNATURE_PREDICATE,
    Statement,
    Subject,
)
from breedlab.supply.verification import (
    CHECKPOINT_PAYLOAD_TYPE,
    KEY_PAYLOAD_TYPE,
    checkpoint_payload,
    key_statement,
)


def outsider(fx: Fixture, name: str = "mallory") -> KeyPair:
    """An Ed25519 key saved into the lab's keys folder without a ledger entry."""
    keypair = KeyPair.generate(name)
    keypair.save(fx.lab.config.keys_dir)
    return keypair


def source(tmp_path: Path, name: str = "candidate") -> Path:
    return write_folder(tmp_path / name, torch_model_files(tmp_path, name, 7))


def state(fx: Fixture) -> tuple[int, int]:
    """(ledger events, stored objects): what a refused request must leave unchanged."""
    return len(fx.lab.events()), sum(1 for _ in fx.lab.blobs.digests())


def problems_of(fx: Fixture, package: str) -> list[tuple[str, str]]:
    [result] = fx.lab.verify([package])
    return [(p.where, p.message) for p in result.problems]


def statement_about(package: str, *, predicate_type: str, predicate: dict[str, str]) -> Statement:
    return Statement(
        subjects=(Subject(name="forged", sha256=Digest.parse(package).hex),),
        predicate_type=predicate_type,
        predicate=predicate,
    )


def store_envelope(fx: Fixture, signer: KeyPair, statement: Statement) -> str:
    envelope = dsse.sign(INTOTO_PAYLOAD_TYPE, statement.to_bytes(), signer)
    return str(fx.lab.blobs.put_bytes(envelope.to_bytes()))


# -- keys the lab does not trust ----------------------------------------------------------


def test_a_key_generated_outside_the_lab_cannot_sign_import_approve_or_checkpoint(
    fx: Fixture, tmp_path: Path
) -> None:
    outsider(fx)
    before = state(fx)

    with pytest.raises(PolicyError, match="not trusted"):
        fx.lab.sign(fx.ids.draft, key="mallory")
    with pytest.raises(PolicyError, match="not trusted"):
        fx.lab.import_path(
            source(tmp_path), kind="model", capability="digits", license="MIT",
            sign_with="mallory",
        )  # fmt: skip
    with pytest.raises(PolicyError, match="not trusted"):
        fx.lab.approve(fx.ids.draft, purpose="release", key="mallory")
    with pytest.raises(PolicyError, match="not trusted"):
        fx.lab.checkpoint(key="mallory")

    assert state(fx) == before  # refused before anything was written


def test_a_foreign_key_put_in_place_of_a_trusted_keys_file_is_refused(fx: Fixture) -> None:
    keys = fx.lab.config.keys_dir
    (keys / "pat.key").unlink()
    (keys / "pat.pub").unlink()
    outsider(fx, "pat")
    before = state(fx)

    with pytest.raises(PolicyError, match="not trusted"):
        fx.lab.approve(fx.ids.draft, purpose="release", key="pat")
    assert state(fx) == before


def test_a_revoked_key_can_no_longer_sign_import_approve_or_checkpoint(
    fx: Fixture, tmp_path: Path
) -> None:
    fx.lab.revoke_key("sam", "laptop stolen")
    fx.lab.revoke_key("lab", "rotated")
    before = state(fx)

    with pytest.raises(PolicyError, match="revoked"):
        fx.lab.sign(fx.ids.draft, key="sam")
    with pytest.raises(PolicyError, match="revoked"):
        fx.lab.import_path(
            source(tmp_path), kind="model", capability="digits", license="MIT", sign_with="sam"
        )
    with pytest.raises(PolicyError, match="revoked"):
        fx.lab.approve(fx.ids.draft, purpose="parent", key="sam")
    with pytest.raises(PolicyError, match="revoked"):
        fx.lab.checkpoint()
    assert state(fx) == before


def test_the_lab_key_cannot_approve(fx: Fixture) -> None:
    before = state(fx)

    with pytest.raises(InvalidRequest, match="lab key"):
        fx.lab.approve(fx.ids.draft, purpose="release", key="lab")

    assert state(fx) == before
    assert fx.lab.show(fx.ids.draft).approvals == ()


# -- revocation ------------------------------------------------------------------------------


def test_revoking_a_signing_key_makes_every_package_it_signed_fail_verify_naming_it(
    fx: Fixture,
) -> None:
    fx.lab.revoke_key("alice", "compromised")

    failed = {r.package: r for r in fx.lab.verify() if not r.ok}

    signed_by_alice = {fx.ids.capability, fx.ids.model, fx.ids.wide, fx.ids.letters_model}
    assert set(failed) == signed_by_alice
    for result in failed.values():
        assert result.signed_by == ()
        assert any(
            p.where.startswith("signature ") and "'alice'" in p.message for p in result.problems
        ), result.problems
    # alice also approved digits-linear as a parent: that approval is void too
    assert any(
        where.startswith("approval ") and "'alice'" in message
        for where, message in problems_of(fx, fx.ids.model)
    )


def test_revoking_an_approving_key_voids_its_approvals_and_blocks_the_champion(
    fx: Fixture,
) -> None:
    fx.lab.revoke_key("pat", "left the company")

    for package in (fx.ids.model, fx.ids.wide, fx.ids.letters_model):
        problems = problems_of(fx, package)
        assert any(w.startswith("approval ") and "'pat'" in m for w, m in problems), problems
    fx.lab.generate_key("pia", "production")  # a release manager whose key still counts
    with pytest.raises(IntegrityError, match="'pat'"):
        fx.lab.promote("digits", fx.ids.wide, key="pia")
    assert str(fx.lab.alias("digits", "champion")) == fx.ids.model


def test_a_trusted_key_of_another_role_cannot_sign_a_checkpoint(fx: Fixture) -> None:
    before = state(fx)
    for name in ("alice", "pat", "sam"):  # model, production, security: all trusted
        with pytest.raises(PolicyError, match="only a 'lab' key signs ledger checkpoints"):
            fx.lab.checkpoint(key=name)
    assert state(fx) == before


def test_a_checkpoint_forged_with_a_trusted_model_key_fails_verification(fx: Fixture) -> None:
    # Someone who holds alice's private key (role 'model') and can write the ledger
    # appends a correct tree head she signed: the chain is intact, the signature valid,
    # and the checkpoint is still refused, since only the lab key vouches for the ledger.
    alice = load_keypair(fx.lab.config.keys_dir, "alice")
    with fx.lab.ledger.transaction() as tx:
        leaves = [bytes.fromhex(e.hash) for e in tx.events()]
        root_hex = merkle_root(leaves).hex()
        payload = checkpoint_payload(
            lab=fx.lab.config.name, tree_size=len(leaves), root_hex=root_hex
        )
        envelope = fx.lab.blobs.put_bytes(
            dsse.sign(CHECKPOINT_PAYLOAD_TYPE, payload, alice).to_bytes()
        )
        tx.append(
            "checkpoint.signed",
            f"tree:{len(leaves)}",
            {
                "tree_size": len(leaves),
                "root": root_hex,
                "key": "alice",
                "keyid": alice.keyid,
                "envelope": str(envelope),
            },
            signer=alice,  # her own event signature is valid too
        )
    with pytest.raises(IntegrityError, match="of role 'model': only a 'lab' key"):
        fx.lab.verify_ledger()


def test_a_checkpoint_signed_before_its_key_was_revoked_still_verifies(fx: Fixture) -> None:
    fx.lab.revoke_key("lab", "rotated")

    checkpoints = fx.lab.verify_ledger().checkpoints

    assert checkpoints
    assert {c.status for c in checkpoints} == {"verified (key revoked later)"}


def test_revoking_a_parent_makes_its_children_fail_verify_and_refuses_new_children(
    fx: Fixture, tmp_path: Path
) -> None:
    fx.lab.revoke(fx.ids.dataset, reason="license withdrawn")

    assert problems_of(fx, fx.ids.dataset) == [("revocation", "package revoked: license withdrawn")]
    [(where, message)] = problems_of(fx, fx.ids.model)
    assert where == f"parent {Digest.parse(fx.ids.dataset).short}"
    assert "parent revoked" in message and "license withdrawn" in message
    with pytest.raises(PolicyError, match="revoked"):
        fx.lab.import_path(
            source(tmp_path), kind="model", capability="digits", license="MIT",
            parents=[fx.ids.dataset],
        )  # fmt: skip


# -- the champion alias ----------------------------------------------------------------------


def _unapproved(fx: Fixture, tmp_path: Path) -> str:
    return fx.ids.draft


def _approved_only_as_parent(fx: Fixture, tmp_path: Path) -> str:
    fx.lab.approve(fx.ids.draft, purpose="parent", key="alice")
    return fx.ids.draft


def _revoked(fx: Fixture, tmp_path: Path) -> str:
    fx.lab.revoke(fx.ids.wide, reason="regression found")
    return fx.ids.wide


def _tampered(fx: Fixture, tmp_path: Path) -> str:
    fx.flip(fx.file_digest(fx.ids.wide, "model.safetensors"))
    return fx.ids.wide


def _not_a_model(fx: Fixture, tmp_path: Path) -> str:
    return fx.ids.dataset


def _other_capability(fx: Fixture, tmp_path: Path) -> str:
    return fx.ids.letters_model


def _approved_by_a_revoked_key(fx: Fixture, tmp_path: Path) -> str:
    fx.lab.revoke_key("pat", "compromised")
    return fx.ids.wide


def _approved_by_an_outsider(fx: Fixture, tmp_path: Path) -> str:
    forge_approval(fx, outsider(fx), fx.ids.draft, purpose="release")
    return fx.ids.draft


@pytest.mark.parametrize(
    ("prepare", "error", "match"),
    [
        (_unapproved, PolicyError, "no valid release approval"),
        (_approved_only_as_parent, PolicyError, "no valid release approval"),
        (_revoked, PolicyError, "revoked"),
        (_tampered, IntegrityError, "model.safetensors"),
        (_not_a_model, PolicyError, "takes models"),
        (_other_capability, PolicyError, "capability 'letters'"),
        (_approved_by_a_revoked_key, IntegrityError, "revoked key 'pat'"),
        (_approved_by_an_outsider, IntegrityError, "no valid signature by a trusted"),
    ],
    ids=lambda v: v.__name__.strip("_") if callable(v) else None,
)
def test_the_champion_alias_refuses_what_may_not_be_champion(
    fx: Fixture,
    tmp_path: Path,
    prepare: Callable[[Fixture, Path], str],
    error: type[LabError],
    match: str,
) -> None:
    fx.lab.generate_key("pia", "production")  # promotes: pat may be revoked by prepare
    package = prepare(fx, tmp_path)
    moves = len(fx.lab.alias_history("digits"))

    with pytest.raises(error, match=match):
        fx.lab.promote("digits", package, key="pia")
    with pytest.raises(PolicyError, match="only by promotion or rollback"):
        fx.lab.set_alias("digits", "champion", package, expect=fx.ids.model, key="pia")

    assert str(fx.lab.alias("digits", "champion")) == fx.ids.model
    assert len(fx.lab.alias_history("digits")) == moves


@pytest.mark.parametrize("alias", ["shadow", "canary"])
def test_every_release_alias_refuses_non_models_and_other_capabilities(
    fx: Fixture, alias: str
) -> None:
    with pytest.raises(PolicyError, match="takes models"):
        fx.lab.set_alias("digits", alias, fx.ids.dataset, key="pat")
    with pytest.raises(PolicyError, match="capability 'letters'"):
        fx.lab.set_alias("digits", alias, fx.ids.letters_model, key="pat")
    with pytest.raises(PolicyError, match="production key"):
        fx.lab.set_alias("digits", alias, fx.ids.wide, key="alice")
    assert fx.lab.alias("digits", alias) is None


def test_previous_moves_only_with_a_promotion_or_rollback(fx: Fixture) -> None:
    with pytest.raises(PolicyError, match="only by promotion or rollback"):
        fx.lab.set_alias("digits", "previous", fx.ids.wide, key="pat")
    assert fx.lab.alias("digits", "previous") is None


def test_an_approved_verified_model_does_become_a_capabilitys_first_champion(
    fx: Fixture,
) -> None:
    ev = fx.lab.promote("letters", fx.ids.letters_model, key="pat")

    assert ev.payload["previous"] is None and ev.payload["risk_tier"] == "low"
    assert str(fx.lab.alias("letters", "champion")) == fx.ids.letters_model
    [move] = [m for m in fx.lab.alias_history("letters") if m.alias == "champion"]
    assert (move.old, move.new) == (None, fx.ids.letters_model)
    fx.lab.verify_ledger()


# -- forged approvals and signatures ---------------------------------------------------------


def forge_approval(fx: Fixture, signer: KeyPair, package: str, *, purpose: str) -> str:
    """Append a chained, projected ``package.approved`` event with an envelope signed by
    ``signer``: what an attacker with write access to the ledger can do. Returns it."""
    statement = statement_about(
        package, predicate_type=APPROVAL_PREDICATE,
        predicate={"purpose": purpose, "role": "production", "capability": "digits"},
    )  # fmt: skip
    envelope = store_envelope(fx, signer, statement)
    fx.lab.ledger.append(
        "package.approved",
        package,
        {
            "package": package,
            "purpose": purpose,
            "key": "pat",
            "keyid": signer.keyid,
            "role": "production",
            "envelope": envelope,
        },
        signer=None,  # the attacker holds no key the lab trusts
        actor="pat",
    )
    return envelope


def test_an_approval_forged_into_the_ledger_with_an_untrusted_key_is_caught_by_verify(
    fx: Fixture,
) -> None:
    envelope = forge_approval(fx, outsider(fx), fx.ids.draft, purpose="release")
    fx.lab.ledger.verify_chain()  # a well-formed append: the chain itself is fine
    with pytest.raises(UnauthorizedChange, match=rf"seq {fx.last_seq()} .*not signed"):
        fx.lab.verify_ledger()  # ... but nobody the lab trusts made it

    [(where, message)] = problems_of(fx, fx.ids.draft)

    assert where == f"approval {envelope[:19]}"
    assert "no valid signature by a trusted" in message


def test_an_approval_row_inserted_without_an_event_is_caught_by_both_verifies(
    fx: Fixture,
) -> None:
    signer = outsider(fx)
    statement = statement_about(
        fx.ids.draft, predicate_type=APPROVAL_PREDICATE,
        predicate={"purpose": "release", "role": "production", "capability": "digits"},
    )  # fmt: skip
    envelope = store_envelope(fx, signer, statement)
    with fx.sql() as db:
        db.execute(
            "INSERT INTO approvals VALUES (999, ?, 'release', ?, 'production', ?, NULL)",
            (fx.ids.draft, signer.keyid, envelope),
        )

    with pytest.raises(LabError, match="'approvals' disagrees"):
        fx.lab.verify_ledger()
    assert [w for w, _ in problems_of(fx, fx.ids.draft)] == [f"approval {envelope[:19]}"]


def test_a_genuine_approval_replayed_onto_another_package_is_caught(fx: Fixture) -> None:
    genuine = fx.envelope("approvals", fx.ids.wide, purpose="release")
    pat = fx.lab.key("pat")
    fx.lab.ledger.append(
        "package.approved",
        fx.ids.draft,
        {
            "package": fx.ids.draft,
            "purpose": "release",
            "key": "pat",
            "keyid": pat.keyid,
            "role": "production",
            "envelope": genuine,
        },
        signer=None,
        actor="pat",
    )

    assert problems_of(fx, fx.ids.draft) == [
        (f"approval {genuine[:19]}", "statement is about a different package")
    ]
    with pytest.raises(IntegrityError):
        fx.lab.promote("digits", fx.ids.draft, key="pat")


def test_a_parent_approval_relabelled_as_a_release_approval_is_caught(fx: Fixture) -> None:
    fx.lab.approve(fx.ids.draft, purpose="parent", key="alice")
    parent = fx.envelope("approvals", fx.ids.draft, purpose="parent")
    alice = fx.lab.key("alice")
    fx.lab.ledger.append(
        "package.approved",
        fx.ids.draft,
        {
            "package": fx.ids.draft,
            "purpose": "release",
            "key": "alice",
            "keyid": alice.keyid,
            "role": "model",
            "envelope": parent,
        },
        signer=None,
        actor="alice",
    )

    assert (f"approval {parent[:19]}", "approval envelope names a different purpose") in (
        problems_of(fx, fx.ids.draft)
    )
    with pytest.raises(IntegrityError):
        fx.lab.promote("digits", fx.ids.draft, key="pat")


def test_a_signature_forged_with_an_untrusted_key_is_caught_by_verify(fx: Fixture) -> None:
    signer = outsider(fx)
    statement = statement_about(
        fx.ids.draft, predicate_type=SIGNATURE_PREDICATE,
        predicate={"kind": "model", "capability": "digits"},
    )  # fmt: skip
    envelope = store_envelope(fx, signer, statement)
    fx.lab.ledger.append(
        "package.signed",
        fx.ids.draft,
        {"package": fx.ids.draft, "key": "alice", "keyid": signer.keyid, "envelope": envelope},
        signer=None,
        actor="alice",
    )

    [result] = fx.lab.verify([fx.ids.draft])

    assert result.signed_by == ()
    assert [p.where for p in result.problems] == [f"signature {envelope[:19]}"]


def test_a_genuine_signature_replayed_onto_another_package_is_caught(fx: Fixture) -> None:
    genuine = fx.envelope("signatures", fx.ids.wide)
    alice = fx.lab.key("alice")
    fx.lab.ledger.append(
        "package.signed",
        fx.ids.draft,
        {"package": fx.ids.draft, "key": "alice", "keyid": alice.keyid, "envelope": genuine},
        signer=None,
        actor="alice",
    )

    assert problems_of(fx, fx.ids.draft) == [
        (f"signature {genuine[:19]}", "statement is about a different package")
    ]


def test_an_approval_envelope_cannot_stand_in_for_a_signature(fx: Fixture) -> None:
    approval = fx.envelope("approvals", fx.ids.wide, purpose="release")
    pat = fx.lab.key("pat")
    fx.lab.ledger.append(
        "package.signed",
        fx.ids.wide,
        {"package": fx.ids.wide, "key": "pat", "keyid": pat.keyid, "envelope": approval},
        signer=None,
        actor="pat",
    )

    [result] = fx.lab.verify([fx.ids.wide])

    assert [p.where for p in result.problems] == [f"signature {approval[:19]}"]
    assert "predicate" in result.problems[0].message
    assert result.signed_by == ("alice",)


def mint(
    fx: Fixture,
    keypair: KeyPair,
    *,
    role: str = "production",
    endorsement: str | None = None,
    endorser: str | None = None,
) -> None:
    """Append a ``key.added`` event as a writer of the ledger could (the chain stays
    well-formed); without an endorsement it looks like a key from before endorsements."""
    payload: dict[str, str] = {
        "name": keypair.name,
        "role": role,
        "keyid": keypair.keyid,
        "public_key": keypair.public_raw.hex(),
    }
    if endorsement is not None and endorser is not None:
        payload |= {"endorsement": endorsement, "endorser": endorser}
    fx.lab.ledger.append("key.added", keypair.name, payload, signer=None, actor=keypair.name)  # type: ignore[arg-type]


def test_a_key_minted_by_a_write_to_the_ledger_is_not_trusted(fx: Fixture) -> None:
    mallory = outsider(fx)
    mint(fx, mallory)
    forge_approval(fx, mallory, fx.ids.draft, purpose="release")

    [(_, message)] = problems_of(fx, fx.ids.draft)
    assert "no valid signature by a trusted" in message
    with pytest.raises(PolicyError, match="not endorsed by the lab key"):
        fx.lab.sign(fx.ids.draft, key="mallory")
    with pytest.raises(IntegrityError, match="'mallory' is not endorsed by the lab key"):
        fx.lab.verify_ledger()
    assert fx.lab.key("mallory").status == "unendorsed"


@pytest.mark.parametrize("endorser", ["itself", "alice"])
def test_a_minted_key_endorsed_by_itself_or_by_a_non_lab_key_is_not_trusted(
    fx: Fixture, endorser: str
) -> None:
    mallory = outsider(fx)
    signer = mallory if endorser == "itself" else load_keypair(fx.lab.config.keys_dir, "alice")
    statement = key_statement(
        name="mallory", role="production", keyid=mallory.keyid, public_key=mallory.public_raw.hex()
    )
    envelope = fx.lab.blobs.put_bytes(dsse.sign(KEY_PAYLOAD_TYPE, statement, signer).to_bytes())
    mint(fx, mallory, endorsement=str(envelope), endorser=signer.keyid)
    forge_approval(fx, mallory, fx.ids.draft, purpose="release")

    [(_, message)] = problems_of(fx, fx.ids.draft)
    assert "no valid signature by a trusted" in message
    expected = "endorses itself" if endorser == "itself" else "not an endorsed, unrevoked 'lab'"
    with pytest.raises(IntegrityError, match=expected):
        fx.lab.verify_ledger()


def test_an_endorsement_of_a_different_public_key_does_not_verify(fx: Fixture) -> None:
    # A real endorsement by the lab key, replayed onto a key.added with another key.
    lab_key = load_keypair(fx.lab.config.keys_dir, "lab")
    honest, mallory = KeyPair.generate("mallory"), outsider(fx)
    statement = key_statement(
        name="mallory", role="production", keyid=honest.keyid, public_key=honest.public_raw.hex()
    )
    envelope = fx.lab.blobs.put_bytes(dsse.sign(KEY_PAYLOAD_TYPE, statement, lab_key).to_bytes())
    mint(fx, mallory, endorsement=str(envelope), endorser=lab_key.keyid)

    with pytest.raises(IntegrityError, match="different name, role or public key"):
        fx.lab.verify_ledger()
    with pytest.raises(PolicyError, match="not endorsed"):
        fx.lab.approve(fx.ids.draft, purpose="release", key="mallory")


def test_keys_added_by_the_lab_are_endorsed_and_an_older_key_can_be_endorsed_by_hand(
    fx: Fixture,
) -> None:
    assert {k.status for k in fx.lab.keys()} == {"trusted"}
    fx.lab.verify_ledger()
    older = outsider(fx, "older")
    mint(fx, older, role="model")  # as versions before endorsements wrote it
    assert fx.lab.key("older").status == "unendorsed"

    [info] = fx.lab.endorse_keys(["older"])

    assert info.status == "trusted"
    with pytest.raises(UnauthorizedChange, match="not signed"):
        fx.lab.verify_ledger()  # its key.added was written unsigned, as old versions did
    attested = fx.lab.sign_history()  # the lab key vouches for that history once
    assert attested.payload["unsigned"] == 1
    assert fx.lab.verify_ledger().attested == 1
    fx.lab.sign(fx.ids.draft, key="older")
    assert not problems_of(fx, fx.ids.draft)
    with pytest.raises(Conflict, match="endorsed already"):
        fx.lab.endorse_keys(["older"])

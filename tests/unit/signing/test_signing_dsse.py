from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from breedlab.errors import Conflict, InvalidRequest, SignatureInvalid
from breedlab.signing import dsse
from breedlab.signing.keys import KeyPair, Role, load_keypair
from breedlab.signing.statements import SLSA_PREDICATE, Statement, Subject

ALICE = KeyPair.generate("alice")
MALLORY = KeyPair.generate("mallory")


def test_pae_matches_the_dsse_spec_example() -> None:
    # https://github.com/secure-systems-lab/dsse/blob/master/protocol.md#signature-definition
    assert dsse.pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


@settings(max_examples=20, deadline=None)
@given(st.binary(max_size=200), st.text(min_size=1, max_size=30))
def test_an_envelope_verifies_only_with_the_signers_key(payload: bytes, kind: str) -> None:
    env = dsse.sign(kind, payload, ALICE)
    parsed = dsse.Envelope.from_bytes(env.to_bytes())
    assert parsed == env
    assert dsse.verify(parsed, {ALICE.keyid: ALICE.public}) == (ALICE.keyid,)
    with pytest.raises(SignatureInvalid):
        dsse.verify(parsed, {MALLORY.keyid: MALLORY.public})


def test_a_changed_payload_or_type_does_not_verify() -> None:
    env = dsse.sign("t", b"payload", ALICE)
    trusted = {ALICE.keyid: ALICE.public}
    for forged in (
        dsse.Envelope(payload_type="t", payload=b"paylaod", signatures=env.signatures),
        dsse.Envelope(payload_type="u", payload=b"payload", signatures=env.signatures),
    ):
        with pytest.raises(SignatureInvalid):
            dsse.verify(forged, trusted)


def test_a_signature_claiming_a_trusted_key_id_but_made_by_another_key_fails() -> None:
    env = dsse.sign("t", b"p", MALLORY)
    lying = dsse.Envelope(
        payload_type="t",
        payload=b"p",
        signatures=(dsse.Signature(keyid=ALICE.keyid, sig=env.signatures[0].sig),),
    )
    with pytest.raises(SignatureInvalid):
        dsse.verify(lying, {ALICE.keyid: ALICE.public})


def test_private_keys_are_0600_never_overwritten_and_loose_modes_refused(tmp_path: Path) -> None:
    key = KeyPair.generate("k1")
    private, public = key.save(tmp_path)
    assert private.stat().st_mode & 0o777 == 0o600
    assert public.exists()
    with pytest.raises(Conflict):
        key.save(tmp_path)
    assert load_keypair(tmp_path, "k1").keyid == key.keyid
    os.chmod(private, 0o644)
    with pytest.raises(InvalidRequest, match="chmod 600"):
        load_keypair(tmp_path, "k1")


def test_roles_and_key_names_are_validated() -> None:
    assert Role.parse("security") is Role.SECURITY
    with pytest.raises(InvalidRequest):
        Role.parse("root")
    with pytest.raises(InvalidRequest):
        KeyPair.generate("../etc/passwd")


def test_statements_round_trip_as_in_toto_v1() -> None:
    st_ = Statement(
        subjects=(Subject(name="m", sha256="a" * 64),),
        predicate_type=SLSA_PREDICATE,
        predicate={"buildDefinition": {"buildType": "x"}},
    )
    assert Statement.from_bytes(st_.to_bytes()) == st_
    assert b'"_type":"https://in-toto.io/Statement/v1"' in st_.to_bytes()

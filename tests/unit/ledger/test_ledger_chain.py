from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from breedlab.errors import ChainBroken
from breedlab.ledger.chain import GENESIS, Event, seal, verify_chain
from breedlab.ledger.merkle import leaf_hash, node_hash, root


def build(n: int) -> list[Event]:
    events = []
    prev = GENESIS
    for i in range(1, n + 1):
        ev = seal(
            seq=i, at=f"2026-01-01T00:00:{i:02d}.000000Z", actor="t", kind="k",
            subject=f"s{i}", payload={"i": i}, prev_hash=prev,
        )  # fmt: skip
        events.append(ev)
        prev = ev.hash
    return events


@given(st.integers(min_value=0, max_value=30))
def test_an_untouched_chain_verifies(n: int) -> None:
    assert verify_chain(build(n)) == n


@given(st.integers(min_value=2, max_value=20), st.data())
def test_any_edited_event_is_named_by_its_seq(n: int, data: st.DataObject) -> None:
    events = build(n)
    i = data.draw(st.integers(min_value=0, max_value=n - 1))
    e = events[i]
    events[i] = Event(
        seq=e.seq, at=e.at, actor="mallory", kind=e.kind, subject=e.subject,
        payload=e.payload, prev_hash=e.prev_hash, hash=e.hash,
    )  # fmt: skip
    with pytest.raises(ChainBroken, match=f"seq {e.seq}\\b"):
        verify_chain(events)


@given(st.integers(min_value=3, max_value=20), st.data())
def test_deleted_or_reordered_events_are_named_by_seq(n: int, data: st.DataObject) -> None:
    events = build(n)
    i = data.draw(st.integers(min_value=0, max_value=n - 2))
    deleted = events[:i] + events[i + 1 :]
    with pytest.raises(ChainBroken, match=f"seq {i + 1}\\b"):
        verify_chain(deleted)
    swapped = list(events)
    swapped[i], swapped[i + 1] = swapped[i + 1], swapped[i]
    with pytest.raises(ChainBroken, match=f"seq {i + 1}\\b"):
        verify_chain(swapped)


def _reference_root(leaves: list[bytes]) -> bytes:
    """RFC 6962 §2.1, written recursively as the RFC states it."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaf_hash(leaves[0])
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node_hash(_reference_root(leaves[:k]), _reference_root(leaves[k:]))


@given(st.lists(st.binary(min_size=32, max_size=32), max_size=70))
def test_merkle_root_follows_rfc_6962(leaves: list[bytes]) -> None:
    assert root(leaves) == _reference_root(leaves)


def test_merkle_root_of_the_empty_tree_is_the_hash_of_nothing() -> None:
    assert root([]).hex() == hashlib.sha256(b"").hexdigest()


_TEXT = st.text(max_size=12)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=8,
)


@given(
    st.integers(min_value=1, max_value=2**62),
    _TEXT,
    _TEXT,
    _TEXT,
    st.dictionaries(_TEXT, _JSON, max_size=4),
    st.booleans(),
)
def test_the_hashed_bytes_are_exactly_canonical_json_of_the_body_and_signature(
    seq: int, actor: str, kind: str, subject: str, payload: dict[str, object], signed: bool
) -> None:
    from breedlab.canonical import encode
    from breedlab.ledger.chain import EventSignature

    sig = EventSignature(keyid="ab" * 32, sig=bytes(range(64))) if signed else None
    ev = Event(
        seq=seq, at="2026-01-01T00:00:00.000000Z", actor=actor, kind=kind, subject=subject,
        payload=payload, prev_hash="0" * 64, hash="", sig=sig,
    )  # fmt: skip
    body = ev.body()
    if sig is not None:
        body["sig"] = sig.to_json()
    expected = hashlib.sha256(b"0" * 64 + encode(body)).hexdigest()
    assert ev.computed_hash() == expected


@given(st.binary(min_size=64, max_size=64), st.text(alphabet="0123456789abcdef", max_size=64))
def test_a_stored_signature_is_canonical_json(sig: bytes, keyid: str) -> None:
    from breedlab.canonical import decode, encode
    from breedlab.ledger.chain import EventSignature

    stored = EventSignature(keyid=keyid, sig=sig)
    assert stored.canonical().encode() == encode(stored.to_json())
    assert EventSignature.from_json(decode(stored.canonical().encode())) == stored

"""The ledger's hash chain (pure).

An event is ``seq, at, actor, kind, subject, payload, prev_hash`` plus its ``hash``::

    hash = sha256(prev_hash || canonical(event without hash))        (DESIGN §6)

with ``prev_hash`` the previous event's hash as ASCII hex (64 zeros before the first
event). Any edited, deleted, inserted or reordered event breaks the chain at the first
affected ``seq``, which :func:`verify_chain` names.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from breedlab import canonical
from breedlab.canonical import JsonValue
from breedlab.errors import ChainBroken

__all__ = ["GENESIS", "Event", "event_hash", "verify_chain"]

GENESIS = "0" * 64


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    seq: int
    at: str
    actor: str
    kind: str
    subject: str
    payload: Mapping[str, JsonValue]
    prev_hash: str
    hash: str

    def body(self) -> dict[str, JsonValue]:
        """The hashed part: everything but ``hash``."""
        return {
            "seq": self.seq,
            "at": self.at,
            "actor": self.actor,
            "kind": self.kind,
            "subject": self.subject,
            "payload": dict(self.payload),
            "prev_hash": self.prev_hash,
        }

    def to_json(self) -> dict[str, JsonValue]:
        return {**self.body(), "hash": self.hash}


def event_hash(
    *,
    seq: int,
    at: str,
    actor: str,
    kind: str,
    subject: str,
    payload: Mapping[str, JsonValue],
    prev_hash: str,
) -> str:
    body = {
        "seq": seq,
        "at": at,
        "actor": actor,
        "kind": kind,
        "subject": subject,
        "payload": dict(payload),
        "prev_hash": prev_hash,
    }
    return hashlib.sha256(prev_hash.encode("ascii") + canonical.encode(body)).hexdigest()


def seal(
    *,
    seq: int,
    at: str,
    actor: str,
    kind: str,
    subject: str,
    payload: Mapping[str, JsonValue],
    prev_hash: str,
) -> Event:
    """Build an event with its hash."""
    digest = event_hash(
        seq=seq,
        at=at,
        actor=actor,
        kind=kind,
        subject=subject,
        payload=payload,
        prev_hash=prev_hash,
    )
    return Event(
        seq=seq,
        at=at,
        actor=actor,
        kind=kind,
        subject=subject,
        payload=payload,
        prev_hash=prev_hash,
        hash=digest,
    )


def verify_chain(events: Iterable[Event], *, start_hash: str = GENESIS, start_seq: int = 1) -> int:
    """Check a run of events; returns how many were checked.

    Raises:
        ChainBroken: names the first bad ``seq`` and what is wrong with it.
    """
    prev = start_hash
    expected_seq = start_seq
    count = 0
    for event in events:
        if event.seq != expected_seq:
            raise ChainBroken(
                f"ledger seq {expected_seq}: missing or reordered (found seq {event.seq} there)"
            )
        if event.prev_hash != prev:
            raise ChainBroken(
                f"ledger seq {event.seq}: prev_hash does not match seq {event.seq - 1}"
            )
        actual = event_hash(
            seq=event.seq,
            at=event.at,
            actor=event.actor,
            kind=event.kind,
            subject=event.subject,
            payload=event.payload,
            prev_hash=event.prev_hash,
        )
        if actual != event.hash:
            raise ChainBroken(f"ledger seq {event.seq}: contents were edited (hash mismatch)")
        prev = event.hash
        expected_seq += 1
        count += 1
    return count

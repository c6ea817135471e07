"""The ledger's hash chain and its event signatures (pure).

An event is ``seq, at, actor, kind, subject, payload, prev_hash``, a ``sig`` by the key of
the actor that made it, and its ``hash``::

    body = {seq, at, actor, kind, subject, payload, prev_hash}
    sig  = Ed25519 over PAE(EVENT_PAYLOAD_TYPE, canonical(body))     (DESIGN §13)
    hash = sha256(prev_hash || canonical(body + {"sig": sig}))        (DESIGN §6)

``prev_hash`` is the previous event's hash as ASCII hex (64 zeros before the first
event). The signature is a DSSE signature whose payload -- the event's canonical body,
``prev_hash`` included -- is not repeated: it is rebuilt from the row. So a signature
binds the event to its place in the chain, and the hash binds the signature. Events
from before signatures existed have no ``sig``, and their hashes are computed without
one, exactly as they were written.

Any edited, deleted, inserted or reordered event breaks the chain at the first affected
``seq``, which :func:`verify_chain` names. Whether a signature is *allowed* -- by a key
trusted at that seq, of a role that may make that change -- is the business of
:mod:`breedlab.authority`, which replays the chain.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from json.encoder import encode_basestring as _str  # the escaping json.dumps uses
from typing import TypedDict, Unpack

from breedlab import canonical
from breedlab.canonical import JsonValue
from breedlab.errors import ChainBroken, IntegrityError, InvalidRequest
from breedlab.signing.dsse import pae
from breedlab.signing.keys import KeyPair

__all__ = [
    "EVENT_PAYLOAD_TYPE",
    "GENESIS",
    "Event",
    "EventFields",
    "EventSignature",
    "Head",
    "event_hash",
    "seal",
    "verify_chain",
]

GENESIS = "0" * 64
#: The DSSE payload type of an event signature (the payload is the event's body).
EVENT_PAYLOAD_TYPE = "application/vnd.breedlab.event+json"


@dataclass(frozen=True, slots=True, kw_only=True)
class EventSignature:
    """A detached DSSE signature over an event's body: the key id and the raw bytes."""

    keyid: str
    sig: bytes

    def to_json(self) -> dict[str, JsonValue]:
        return {"keyid": self.keyid, "sig": base64.b64encode(self.sig).decode("ascii")}

    def canonical(self) -> str:
        """``canonical.encode(self.to_json())``, written out (what is stored and hashed)."""
        b64 = base64.b64encode(self.sig).decode("ascii")
        return f'{{"keyid":{_str(self.keyid)},"sig":{_str(b64)}}}'

    @classmethod
    def from_json(cls, obj: object) -> EventSignature:
        """Raises IntegrityError: not ``{"keyid": hex, "sig": base64}``."""
        try:
            assert isinstance(obj, dict)
            keyid, sig = obj["keyid"], obj["sig"]
            assert isinstance(keyid, str) and isinstance(sig, str) and len(obj) == 2
            return cls(keyid=keyid, sig=base64.b64decode(sig, validate=True))
        except (AssertionError, KeyError, binascii.Error) as e:
            raise IntegrityError(f"malformed event signature {obj!r}") from e


class EventFields(TypedDict):
    """An event's body as keywords: what :func:`seal` and :func:`event_hash` take."""

    seq: int
    at: str
    actor: str
    kind: str
    subject: str
    payload: Mapping[str, JsonValue]
    prev_hash: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Head:
    """The chain's newest event: its seq and hash (seq 0 and :data:`GENESIS` when empty)."""

    seq: int
    hash: str


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
    sig: EventSignature | None = None
    # The payload's canonical bytes, when already known (sealed here, or read from a
    # row): saves encoding it again. Never compared; derived from ``payload``.
    payload_json: bytes | None = field(default=None, compare=False, repr=False)

    def body(self) -> dict[str, JsonValue]:
        """What the signature covers: everything but ``sig`` and ``hash``."""
        return {
            "seq": self.seq,
            "at": self.at,
            "actor": self.actor,
            "kind": self.kind,
            "subject": self.subject,
            "payload": dict(self.payload),
            "prev_hash": self.prev_hash,
        }

    def canonical_payload(self) -> bytes:
        if self.payload_json is not None:
            return self.payload_json
        return canonical.encode(dict(self.payload))

    def _parts(self) -> tuple[str, str]:
        """``canonical.encode(self.body())`` in two pieces, built from the payload's
        canonical bytes: everything up to ``seq``, and ``subject`` with the closing brace --
        a signature goes between them, as ``sig`` sorts there. The same bytes as the
        canonical encoder (keys in code-point order, strings escaped by the function
        json.dumps uses; a test checks), without encoding the payload a second time."""
        if type(self.seq) is not int:
            raise InvalidRequest(f"an event's seq is an integer (got {self.seq!r})")
        head = (
            f'{{"actor":{_str(self.actor)},"at":{_str(self.at)},"kind":{_str(self.kind)},'
            f'"payload":{self.canonical_payload().decode("utf-8")},'
            f'"prev_hash":{_str(self.prev_hash)},"seq":{self.seq}'
        )
        return head, f',"subject":{_str(self.subject)}}}'

    def signed_message(self) -> bytes:
        """The bytes an event signature signs: DSSE PAE over the canonical body."""
        head, tail = self._parts()
        return pae(EVENT_PAYLOAD_TYPE, (head + tail).encode("utf-8"))

    def computed_hash(self) -> str:
        """``sha256(prev_hash || canonical(body + sig))``: what ``hash`` must be."""
        return _hash(self.prev_hash, *self._parts(), self.sig)

    def to_json(self) -> dict[str, JsonValue]:
        out = {**self.body(), "hash": self.hash}
        if self.sig is not None:
            out["sig"] = self.sig.to_json()
        return out


def _hash(prev_hash: str, head: str, tail: str, sig: EventSignature | None) -> str:
    signed = "" if sig is None else f',"sig":{sig.canonical()}'
    data = prev_hash + head + signed + tail
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


def event_hash(*, sig: EventSignature | None = None, **body: Unpack[EventFields]) -> str:
    """The hash an event with this body and signature has (see the module docstring)."""
    return Event(**body, hash="", sig=sig).computed_hash()


def seal(*, signer: KeyPair | None = None, **body: Unpack[EventFields]) -> Event:
    """Build an event, signed by ``signer`` (unsigned only if None), with its hash.

    Raises:
        InvalidRequest: the payload is not canonical JSON material (a float, ...).
    """
    event = Event(**body, hash="", payload_json=canonical.encode(dict(body["payload"])))
    head, tail = event._parts()  # encoded once, for the signature and the hash
    sig = None
    if signer is not None:
        message = pae(EVENT_PAYLOAD_TYPE, (head + tail).encode("utf-8"))
        sig = EventSignature(keyid=signer.keyid, sig=signer.sign(message))
    return replace(event, sig=sig, hash=_hash(body["prev_hash"], head, tail, sig))


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
        if event.computed_hash() != event.hash:
            raise ChainBroken(f"ledger seq {event.seq}: contents were edited (hash mismatch)")
        prev = event.hash
        expected_seq += 1
        count += 1
    return count

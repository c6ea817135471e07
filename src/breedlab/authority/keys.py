"""Which keys the lab trusts, seq by seq: endorsements by the lab key, and revocations.

:class:`KeyRing` walks ``key.added`` / ``key.endorsed`` / ``key.revoked`` in chain order.
The lab's first key endorses itself and has role ``lab``; every later key is endorsed by
a ``lab`` key that is endorsed and unrevoked at that point (a DSSE envelope over
:func:`key_statement`, stored as a blob and named by the event). A key without an
endorsement -- minted by a write to the ledger, or added before endorsements existed --
is not trusted until ``breedlab keys endorse`` records one (decision record 0009).

Because the ring is walked in order, it answers "was this key trusted *at seq s*?",
which is how :mod:`breedlab.authority.replay` checks every event's signature.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from breedlab import canonical
from breedlab.digest import Digest
from breedlab.errors import IntegrityError, LabError
from breedlab.ledger import Event, EventKind, Reader
from breedlab.registry.blobs import BlobStore
from breedlab.signing import dsse
from breedlab.signing.keys import Role, public_key_from_raw

__all__ = [
    "KEY_KINDS",
    "KEY_PAYLOAD_TYPE",
    "KeyRing",
    "KeyState",
    "key_endorsements",
    "key_statement",
    "trusted_keys",
]

KEY_PAYLOAD_TYPE = "application/vnd.breedlab.key+json"
KEY_KINDS = (EventKind.KEY_ADDED, EventKind.KEY_ENDORSED, EventKind.KEY_REVOKED)


def key_statement(*, name: str, role: str, keyid: str, public_key: str) -> bytes:
    """What an endorsement signs: the key's name, role, id and public key."""
    return canonical.encode({"keyid": keyid, "name": name, "public_key": public_key, "role": role})


@dataclass(slots=True)
class KeyState:
    """One key as the ring knows it at the point it has walked to."""

    name: str
    role: str
    keyid: str
    public_key: str
    added_seq: int
    endorsed_seq: int | None = None
    revoked_seq: int | None = None

    def trusted_at(self, seq: int) -> bool:
        """Endorsed before ``seq`` and not revoked before it."""
        return (
            self.endorsed_seq is not None
            and self.endorsed_seq < seq
            and (self.revoked_seq is None or self.revoked_seq > seq)
        )

    @property
    def public(self) -> Ed25519PublicKey:
        return public_key_from_raw(bytes.fromhex(self.public_key))


class KeyRing:
    """The keys, walked event by event (feed :meth:`apply` every key event in order)."""

    def __init__(self, blobs: BlobStore) -> None:
        self.blobs = blobs
        self.keys: dict[str, KeyState] = {}
        self.problems: list[tuple[int, str]] = []
        self.first: str | None = None
        self._refused: set[str] = set()  # keys whose endorsement was there and did not hold

    def get(self, keyid: str) -> KeyState | None:
        return self.keys.get(keyid)

    def apply(self, e: Event) -> None:
        p = e.payload
        keyid = str(p.get("keyid", ""))
        if e.kind == EventKind.KEY_ADDED:
            self.keys[keyid] = KeyState(
                name=str(p["name"]),
                role=str(p["role"]),
                keyid=keyid,
                public_key=str(p["public_key"]),
                added_seq=e.seq,
            )
            self.first = keyid if self.first is None else self.first
            if p.get("endorsement") is None:
                return
        elif e.kind == EventKind.KEY_REVOKED:
            if keyid in self.keys:
                self.keys[keyid].revoked_seq = e.seq
            return
        elif e.kind != EventKind.KEY_ENDORSED:
            return
        if keyid not in self.keys:  # key.endorsed of a key never added
            self.problems.append((e.seq, f"an endorsement of an unknown key {keyid[:12]}"))
            return
        why = self._endorse(e.seq, self.keys[keyid], p.get("endorsement"), p.get("endorser"))
        if why is not None:
            self.problems.append((e.seq, why))
            self._refused.add(keyid)

    def _endorse(self, seq: int, k: KeyState, digest: object, endorser: object) -> str | None:
        """Record ``k`` endorsed at ``seq``, or say why the endorsement does not hold."""
        by = self.keys.get(str(endorser))
        if by is k:
            if k.keyid != self.first or k.role != Role.LAB.value:
                return f"key {k.name!r} endorses itself; only the lab's first key may"
        elif (
            by is None
            or by.role != Role.LAB.value
            or by.endorsed_seq is None
            or (by.revoked_seq is not None and by.revoked_seq < seq)
        ):
            return (
                f"key {k.name!r} is endorsed by "
                f"{by.name if by is not None else str(endorser)[:12]!r}, which is not an "
                "endorsed, unrevoked 'lab' key at that point"
            )
        try:
            envelope = dsse.Envelope.from_bytes(self.blobs.get_bytes(Digest.parse(str(digest))))
            if envelope.payload_type != KEY_PAYLOAD_TYPE:
                raise IntegrityError(f"payload type {envelope.payload_type!r}")
            dsse.verify(envelope, {by.keyid: by.public})
            want = key_statement(name=k.name, role=k.role, keyid=k.keyid, public_key=k.public_key)
            if envelope.payload != want:
                raise IntegrityError("it endorses a different name, role or public key")
        except LabError as e:
            return f"the endorsement of key {k.name!r} does not verify: {e.message}"
        k.endorsed_seq = seq
        return None

    def unendorsed(self) -> list[tuple[int, str]]:
        """Keys never endorsed (and not refused: those are reported where it happened)."""
        return [
            (
                0,
                f"key {k.name!r} is not endorsed by the lab key (minted by a write to the "
                f"ledger, or added before endorsements: 'breedlab keys endorse {k.name}')",
            )
            for k in self.keys.values()
            if k.endorsed_seq is None and k.keyid not in self._refused
        ]

    def trusted_now(self) -> dict[str, Ed25519PublicKey]:
        """Key id → public key for every endorsed, unrevoked key."""
        return {
            k.keyid: k.public
            for k in self.keys.values()
            if k.endorsed_seq is not None and k.revoked_seq is None
        }


def _walk(blobs: BlobStore, events: Iterable[Event]) -> KeyRing:
    ring = KeyRing(blobs)
    for e in events:
        ring.apply(e)
    return ring


def key_endorsements(
    blobs: BlobStore, r: Reader
) -> tuple[dict[str, KeyState], list[tuple[int, str]]]:
    """Every key with the seq its endorsement was checked at, and the problems
    ``(seq, message)`` of endorsements that do not hold (seq 0: never endorsed)."""
    ring = _walk(blobs, r.events(kinds=KEY_KINDS))
    return ring.keys, ring.problems + ring.unendorsed()


def trusted_keys(r: Reader, blobs: BlobStore) -> dict[str, Ed25519PublicKey]:
    """Key id → public key for every endorsed, unrevoked key."""
    return _walk(blobs, r.events(kinds=KEY_KINDS)).trusted_now()

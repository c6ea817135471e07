"""Replay the ledger through the authority table (the shell around :mod:`.policy`).

For every event in chain order:

1. its signature verifies under a key the lab trusted *at that seq* (endorsed before it,
   not revoked before it; the lab's first key signs its own ``key.added``);
2. the facts its kind needs are read from blobs: a registered package's manifest, the
   verified signers of a signature or approval envelope;
3. :func:`~breedlab.authority.policy.authorize` says whether that key's role may make
   that change in the state the ledger is in at that seq;
4. the event is folded into the state (and into the key ring).

An event with no signature is accepted only as history that a ``ledger.attested`` event
-- signed by a lab key, over the Merkle root of every event before it -- vouches for
(labs from before signed events; ``breedlab ledger sign-history``). The first problem
is raised, naming its seq: an attacker who could write the database but holds no key
cannot add a change that passes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from breedlab.authority.keys import KEY_KINDS, KeyRing
from breedlab.authority.policy import (
    AuthorityState,
    EnvelopeFacts,
    Facts,
    PackageFacts,
    Signer,
    authorize,
)
from breedlab.digest import Digest
from breedlab.errors import ChainBroken, IntegrityError, LabError, UnauthorizedChange
from breedlab.ledger import GENESIS, Event, EventKind, Reader, verify_chain
from breedlab.ledger.merkle import Frontier
from breedlab.registry.blobs import BlobStore
from breedlab.registry.manifest import Manifest, RiskTier
from breedlab.signing import dsse
from breedlab.signing.keys import Role, public_key_from_raw, verify_raw
from breedlab.signing.statements import (
    APPROVAL_PREDICATE,
    INTOTO_PAYLOAD_TYPE,
    SIGNATURE_PREDICATE,
    Statement,
)

__all__ = ["AuthorityReport", "Replayer", "check_pinned", "envelope_facts", "replay"]


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthorityReport:
    """What the replay checked."""

    events: int
    signed: int  # events whose signature and authority were checked
    attested: int  # unsigned history vouched for by a lab attestation
    first_key: str | None  # the key id of the lab's first key
    state: AuthorityState


def envelope_facts(
    blobs: BlobStore,
    digest: str,
    *,
    predicate_type: str,
    trusted: Mapping[str, Ed25519PublicKey],
) -> EnvelopeFacts:
    """Verify a stored signature or approval envelope against ``trusted`` keys."""
    try:
        data = blobs.get_bytes(Digest.parse(digest))
    except LabError as e:
        return EnvelopeFacts(signers=frozenset(), package="", problem=e.message, unreadable=True)
    try:
        envelope = dsse.Envelope.from_bytes(data)
        if envelope.payload_type != INTOTO_PAYLOAD_TYPE:
            raise IntegrityError(f"envelope payload type is {envelope.payload_type!r}")
        signers = dsse.verify(envelope, trusted)
        statement = Statement.from_bytes(envelope.payload)
        if statement.predicate_type != predicate_type:
            raise IntegrityError(f"statement predicate is {statement.predicate_type!r}")
    except LabError as e:
        return EnvelopeFacts(signers=frozenset(), package="", problem=e.message)
    about = [s.sha256 for s in statement.subjects]
    return EnvelopeFacts(
        signers=frozenset(signers),
        package=f"sha256:{about[0]}" if len(about) == 1 else "",
        predicate=dict(statement.predicate),
    )


def _trusted_at(ring: KeyRing, seq: int) -> dict[str, Ed25519PublicKey]:
    return {k.keyid: k.public for k in ring.keys.values() if k.trusted_at(seq)}


def _signer(ring: KeyRing, ev: Event) -> Signer:
    """The key that signed ``ev``, trusted at its seq, with a verifying signature."""
    assert ev.sig is not None
    keyid = ev.sig.keyid
    p = ev.payload
    first = ring.get(ring.first) if ring.first is not None else None
    if ev.kind == EventKind.KEY_ADDED and ring.first is None and p.get("keyid") == keyid:
        # The lab's first key signs its own addition (it is the root of trust).
        name, role, public = str(p["name"]), str(p["role"]), str(p["public_key"])
        key = public_key_from_raw(bytes.fromhex(public))
    elif (
        ev.kind == EventKind.KEY_ENDORSED
        and first is not None
        and keyid == first.keyid == p.get("keyid")
    ):
        # ... and its own late endorsement, in a lab from before endorsements.
        name, role, key = first.name, first.role, first.public
    else:
        state = ring.get(keyid)
        if state is None:
            raise UnauthorizedChange(
                f"ledger seq {ev.seq} ({ev.kind}): signed by an unknown key {keyid[:12]}"
            )
        if not state.trusted_at(ev.seq):
            why = (
                f"revoked at seq {state.revoked_seq}"
                if state.revoked_seq is not None and state.revoked_seq <= ev.seq
                else "not endorsed by the lab key at that seq"
            )
            raise UnauthorizedChange(
                f"ledger seq {ev.seq} ({ev.kind}): signed by key {state.name!r}, {why}"
            )
        name, role, key = state.name, state.role, state.public
    if not verify_raw(key, ev.sig.sig, ev.signed_message()):
        raise UnauthorizedChange(
            f"ledger seq {ev.seq} ({ev.kind}): its signature by {name!r} does not verify"
        )
    try:
        return Signer(keyid=keyid, name=name, role=Role(role))
    except ValueError:
        raise UnauthorizedChange(
            f"ledger seq {ev.seq}: key {name!r} has unknown role {role!r}"
        ) from None


def _facts(blobs: BlobStore, ring: KeyRing, ev: Event) -> Facts:
    p = ev.payload
    if ev.kind == EventKind.PACKAGE_REGISTERED:
        try:
            manifest = Manifest.from_bytes(blobs.get_bytes(Digest.parse(str(p["id"]))))
            kind, capability, tier = manifest.kind.value, manifest.capability, manifest.risk_tier
        except LabError:
            # A missing or corrupt manifest is a storage fault that 'verify' names; here
            # the signed event says what was registered, and the tier fails closed.
            kind, capability, tier = str(p["kind"]), str(p["capability"]), RiskTier.HIGH
        return Facts(
            package=PackageFacts(id=str(p["id"]), kind=kind, capability=capability, risk_tier=tier)
        )
    if ev.kind in (EventKind.PACKAGE_SIGNED, EventKind.PACKAGE_APPROVED):
        predicate = (
            SIGNATURE_PREDICATE if ev.kind == EventKind.PACKAGE_SIGNED else APPROVAL_PREDICATE
        )
        return Facts(
            envelope=envelope_facts(
                blobs,
                str(p["envelope"]),
                predicate_type=predicate,
                trusted=_trusted_at(ring, ev.seq),
            )
        )
    return Facts()


def _legacy_signer(ring: KeyRing, ev: Event, facts: Facts) -> Signer | None:
    """Unsigned history: an approval is credited to its envelope's one verified signer."""
    env = facts.envelope
    if ev.kind != EventKind.PACKAGE_APPROVED or env is None or len(env.signers) != 1:
        return None
    [keyid] = env.signers
    state = ring.get(keyid)
    if state is None or state.keyid != ev.payload.get("keyid"):
        return None
    try:
        return Signer(keyid=keyid, name=state.name, role=Role(state.role))
    except ValueError:
        return None


def check_pinned(first: Event | None, pinned: str | None) -> None:
    """The ledger's first event adds the pinned lab key (nothing to check if unpinned).

    Raises:
        ChainBroken: it adds another key, or is not a key at all: a rebuilt ledger.
    """
    if pinned is None:
        return
    found = (
        str(first.payload.get("keyid", "")) if first and first.kind == EventKind.KEY_ADDED else ""
    )
    if found != pinned:
        raise ChainBroken(
            f"ledger seq 1: the ledger's first key is {found[:16] or 'missing'}, not the "
            f"pinned lab key {pinned[:16]} (breedlab.toml [signing] lab_key_id): this "
            "ledger was rebuilt under another key"
        )


class Replayer:
    """The replay, event by event: feed it the ledger in order (all at once, or a little
    at a time, as a server does when the head moves); it raises at the first problem.

    It also checks the chain (seq, ``prev_hash``, hash) of what it is fed, so a reader
    that feeds it only new events verifies them completely.
    """

    def __init__(self, blobs: BlobStore, *, pinned: str | None = None) -> None:
        self.blobs = blobs
        self.pinned = pinned
        self.ring = KeyRing(blobs)
        self.state = AuthorityState()
        self.pending: list[Event] = []  # unsigned events waiting for an attestation
        self.frontier = Frontier()  # the tree of every event fed so far
        self.head = GENESIS
        self.signed = self.attested = 0

    @property
    def count(self) -> int:
        return self.frontier.size

    def feed(self, events: Iterable[Event]) -> None:
        """Check and fold ``events``, which continue what was fed before.

        Raises:
            ChainBroken: they do not continue the chain, or the first key is not the
                pinned lab key, or an attestation's root is wrong.
            UnauthorizedChange: a signature by a key untrusted at that seq, or a change
                that key's role may not make.
        """
        for ev in events:
            verify_chain([ev], start_hash=self.head, start_seq=self.count + 1)
            self._one(ev)
            self.head = ev.hash

    def _one(self, ev: Event) -> None:
        if ev.seq == 1:
            check_pinned(ev, self.pinned)
        facts = _facts(self.blobs, self.ring, ev)
        signer: Signer | None = None
        if ev.sig is None:
            self.pending.append(ev)
            signer = _legacy_signer(self.ring, ev, facts)
        else:
            signer = _signer(self.ring, ev)
            why = authorize(self.state, ev, signer, facts)
            if why is not None:
                raise UnauthorizedChange(f"ledger seq {ev.seq} ({ev.kind}): {why}")
            self.signed += 1
            if ev.kind == EventKind.LEDGER_ATTESTED:
                self._attest(ev)
        self.frontier.append(bytes.fromhex(ev.hash))
        if ev.kind in KEY_KINDS:
            self.ring.apply(ev)
        self.state.apply(ev, signer, facts)

    def _attest(self, ev: Event) -> None:
        """A ``ledger.attested`` event vouches for every event before it: their Merkle
        root must be the one it signed."""
        size = int(str(ev.payload.get("tree_size", -1)))
        if size != self.count or self.frontier.root().hex() != ev.payload.get("root"):
            raise ChainBroken(
                f"ledger seq {ev.seq}: the attestation's Merkle root does not match the "
                f"{self.count} events before it"
            )
        self.attested += len(self.pending)
        self.pending.clear()

    def settled(self) -> AuthorityReport:
        """What was checked, once every unsigned event is vouched for.

        Raises:
            UnauthorizedChange: an unsigned change that no attestation covers.
        """
        if self.pending:
            first = self.pending[0]
            raise UnauthorizedChange(
                f"ledger seq {first.seq} ({first.kind}): not signed, and no lab attestation "
                "vouches for it (an unsigned change written around breedlab)"
            )
        return AuthorityReport(
            events=self.count,
            signed=self.signed,
            attested=self.attested,
            first_key=self.ring.first,
            state=self.state,
        )


def replay(r: Reader, blobs: BlobStore, *, pinned: str | None = None) -> AuthorityReport:
    """Check every event's chain link, signature and authority, in chain order.

    ``pinned`` is the lab key id kept outside the ledger (``breedlab.toml``): the
    ledger's first key must be that key.

    Raises:
        UnauthorizedChange: an unsigned change that no attestation covers, a signature by
            a key untrusted at that seq, or a change that key's role may not make.
        ChainBroken: a broken link; the first key is not the pinned lab key; a bad
            attestation.
    """
    replayer = Replayer(blobs, pinned=pinned)
    replayer.feed(r.events())
    return replayer.settled()

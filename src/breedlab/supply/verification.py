"""Verification: re-derive every claim the store and the ledger make about a package.

For a package: the manifest re-hashes to the id and is canonical; every file re-hashes
to its recorded digest and size; the provenance statement exists, is an in-toto SLSA
statement and names exactly the package's files; every signature and approval envelope
re-hashes, verifies against a trusted, unrevoked key and names this package; the package
is not revoked; its parents are registered and not revoked. Problems are collected, not
raised, so one run names every bad file.

For checkpoints: the Merkle root over the first ``tree_size`` event hashes matches, and
the signed tree head verifies, by a key of role ``lab`` (a trusted model or release key
cannot vouch for the ledger). A checkpoint signed by a key revoked *after* it was
written still counts (the chain orders both); a key revoked before cannot have signed.
"""

from __future__ import annotations

from collections.abc import Mapping

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from breedlab import canonical
from breedlab.authority import (
    KEY_PAYLOAD_TYPE,
    Approval,
    envelope_facts,
    key_endorsements,
    key_statement,
    trusted_keys,
)
from breedlab.digest import Digest
from breedlab.errors import ChainBroken, IntegrityError, LabError
from breedlab.ledger import ApprovalRecord, Reader
from breedlab.ledger.merkle import Frontier
from breedlab.registry.blobs import BlobStore
from breedlab.registry.cluster_keys import recorded_scope
from breedlab.registry.manifest import Manifest
from breedlab.signing import dsse
from breedlab.signing.keys import Role, public_key_from_raw
from breedlab.signing.statements import (
    APPROVAL_PREDICATE,
    INTOTO_PAYLOAD_TYPE,
    SIGNATURE_PREDICATE,
    SLSA_PREDICATE,
    Statement,
)
from breedlab.supply.values import CheckpointInfo, Problem, ProblemKind, VerifyResult

__all__ = [
    "CHECKPOINT_PAYLOAD_TYPE",
    "KEY_PAYLOAD_TYPE",
    "check_checkpoints",
    "check_key_endorsements",
    "check_package",
    "checkpoint_payload",
    "key_endorsements",
    "key_statement",
    "trusted_keys",
    "valid_approvals",
]

CHECKPOINT_PAYLOAD_TYPE = "application/vnd.breedlab.checkpoint+json"


def valid_approvals(
    blobs: BlobStore,
    r: Reader,
    pid: Digest,
    *,
    purpose: str,
    trusted: Mapping[str, Ed25519PublicKey] | None = None,
) -> tuple[Approval, ...]:
    """Every ``purpose`` approval of ``pid`` that counts now, credited to the key that
    really signed its envelope (endorsed, unrevoked) with that key's role from the
    trusted-key projection; rows whose key id or role disagree with the envelope are
    left out (``verify`` reports them)."""
    if trusted is None:
        trusted = trusted_keys(r, blobs)
    out = []
    for row in r.approvals(str(pid)):
        if row.purpose != purpose:
            continue
        if _approval_problem(blobs, r, row, pid, trusted) is None:
            key = r.key_by_id(row.keyid)
            assert key is not None  # _approval_problem checked it
            out.append(
                Approval(keyid=str(row.keyid), role=Role(key.role), purpose=purpose, seq=row.seq)
            )
    return tuple(out)


def _approval_problem(
    blobs: BlobStore,
    r: Reader,
    row: ApprovalRecord,
    pid: Digest,
    trusted: Mapping[str, Ed25519PublicKey],
) -> str | None:
    """Why an approval row does not count (None: it does)."""
    claimed = r.key_by_id(row.keyid)
    if claimed is not None and claimed.revoked_seq is not None:
        return f"signed by revoked key {claimed.name!r} ({claimed.revoked_reason})"
    facts = envelope_facts(
        blobs, str(row.envelope), predicate_type=APPROVAL_PREDICATE, trusted=trusted
    )
    if facts.problem is not None:
        return facts.problem
    if facts.package != str(pid):
        return "statement is about a different package"
    key = r.key_by_id(row.keyid)
    if row.keyid not in facts.signers or key is None:
        return (
            f"the row credits key {str(row.keyid)[:12]}, which did not sign the envelope "
            f"(signed by {', '.join(k[:12] for k in sorted(facts.signers))})"
        )
    if not (row.role == key.role == facts.predicate.get("role")):
        return (
            f"the row claims role {row.role!r} and the envelope {facts.predicate.get('role')!r}, "
            f"but key {key.name!r} has role {key.role!r}"
        )
    if facts.predicate.get("purpose") != row.purpose:
        return "approval envelope names a different purpose"
    if recorded_scope(facts.predicate) != row.scope:
        return "approval envelope names a different cluster scope"
    return None


def check_key_endorsements(blobs: BlobStore, r: Reader) -> int:
    """Every key is endorsed by a lab key; returns how many keys.

    Raises:
        IntegrityError: naming the first key whose endorsement is missing or wrong.
    """
    keys, problems = key_endorsements(blobs, r)
    if problems:
        seq, message = min(problems, key=lambda sp: sp[0] or 1 << 62)
        raise IntegrityError(message if not seq else f"ledger seq {seq}: {message}")
    return len(keys)


def _key_name(r: Reader, keyid: str) -> str:
    row = r.key_by_id(keyid)
    return str(row.name) if row is not None else keyid[:12]


def check_envelope(
    blobs: BlobStore,
    r: Reader,
    envelope_digest: str,
    *,
    package: Digest,
    predicate_type: str,
    trusted: Mapping[str, Ed25519PublicKey],
) -> tuple[tuple[str, ...], Statement]:
    """Verify one stored DSSE envelope about ``package``; returns signer names and statement.

    Raises:
        LabError: (Integrity, Signature) the envelope is corrupt, untrusted or about
            something else.
    """
    data = blobs.get_bytes(Digest.parse(envelope_digest))
    envelope = dsse.Envelope.from_bytes(data)
    if envelope.payload_type != INTOTO_PAYLOAD_TYPE:
        raise IntegrityError(f"envelope payload type is {envelope.payload_type!r}")
    for sig in envelope.signatures:
        row = r.key_by_id(sig.keyid)
        if row is not None and row.revoked_seq is not None:
            raise IntegrityError(f"signed by revoked key {row.name!r} ({row.revoked_reason})")
    signers = dsse.verify(envelope, trusted)
    statement = Statement.from_bytes(envelope.payload)
    if statement.predicate_type != predicate_type:
        raise IntegrityError(f"statement predicate is {statement.predicate_type!r}")
    if [s.sha256 for s in statement.subjects] != [package.hex]:
        raise IntegrityError("statement is about a different package")
    return tuple(_key_name(r, k) for k in signers), statement


def check_package(
    blobs: BlobStore,
    r: Reader,
    package: Digest,
    *,
    trusted: Mapping[str, Ed25519PublicKey] | None = None,
) -> VerifyResult:
    """Check one package; the result names every problem found (none: it verifies).

    ``trusted`` is :func:`trusted_keys` of ``r`` when the caller checks many packages
    and has it already (the key walk verifies every endorsement).
    """
    problems: list[Problem] = []
    pid = str(package)
    if r.package(pid) is None:
        problems.append(Problem(where="index", message="not registered in the ledger"))
    try:
        manifest = Manifest.from_bytes(blobs.get_bytes(package))
    except LabError as e:
        problems.append(Problem(where="manifest", message=e.message))
        return VerifyResult(package=pid, name="?", files=0, signed_by=(), problems=tuple(problems))

    for entry in manifest.files:
        try:
            size = blobs.check(entry.digest)
        except LabError as e:
            problems.append(Problem(where=entry.path, message=e.message))
            continue
        if size != entry.size:
            problems.append(
                Problem(where=entry.path, message=f"size {size} differs from recorded {entry.size}")
            )

    try:
        statement = Statement.from_bytes(blobs.get_bytes(manifest.provenance))
        if statement.predicate_type != SLSA_PREDICATE:
            raise IntegrityError(f"provenance predicate is {statement.predicate_type!r}")
        named = sorted((s.name, s.sha256) for s in statement.subjects)
        files = sorted((f.path, f.sha256) for f in manifest.files)
        if named != files:
            raise IntegrityError("provenance names different files than the manifest")
    except LabError as e:
        problems.append(Problem(where="provenance", message=e.message))

    if trusted is None:
        trusted = trusted_keys(r, blobs)
    signers: list[str] = []
    for signature in r.signatures(pid):
        try:
            names, _ = check_envelope(
                blobs,
                r,
                signature.envelope,
                package=package,
                predicate_type=SIGNATURE_PREDICATE,
                trusted=trusted,
            )
            signers.extend(names)
        except LabError as e:
            where = f"signature {signature.envelope[:19]}"
            problems.append(Problem(where=where, message=e.message))
    for approval in r.approvals(pid):
        why = _approval_problem(blobs, r, approval, package, trusted)
        if why is not None:
            problems.append(Problem(where=f"approval {approval.envelope[:19]}", message=why))

    revoked = r.revocation(pid)
    if revoked is not None:
        problems.append(
            Problem(
                where="revocation",
                message=f"package revoked: {revoked.reason}",
                kind=ProblemKind.REVOKED,
            )
        )
    for parent in manifest.parents:
        if r.package(str(parent)) is None:
            problems.append(Problem(where=f"parent {parent.short}", message="not registered"))
        elif (revoked_parent := r.revocation(str(parent))) is not None:
            problems.append(
                Problem(
                    where=f"parent {parent.short}",
                    message=f"parent revoked: {revoked_parent.reason}",
                )
            )
    return VerifyResult(
        package=pid,
        name=manifest.name,
        files=len(manifest.files),
        signed_by=tuple(dict.fromkeys(signers)),
        problems=tuple(problems),
    )


def checkpoint_payload(*, lab: str, tree_size: int, root_hex: str) -> bytes:
    return canonical.encode({"lab": lab, "root": root_hex, "tree_size": tree_size})


def check_checkpoints(blobs: BlobStore, r: Reader) -> list[CheckpointInfo]:
    """Recompute and check every signed tree head.

    Raises:
        ChainBroken-family IntegrityError: a root or a signature does not verify.
    """
    rows = r.checkpoints()
    if not rows:
        return []
    leaves = r.event_hashes()
    # One pass over the leaves: the root at every checkpointed size (checkpoints grow
    # with their seq, so a frontier extended in order reaches each size in turn).
    roots: dict[int, str] = {}
    frontier = Frontier()
    for size in sorted({int(row.tree_size) for row in rows if 0 <= row.tree_size <= len(leaves)}):
        frontier.extend(leaves[frontier.size : size])
        roots[size] = frontier.root().hex()
    endorsed, _ = key_endorsements(blobs, r)
    out: list[CheckpointInfo] = []
    for row in rows:
        key = r.key_by_id(row.keyid)
        name = str(key.name) if key is not None else row.keyid[:12]
        if row.tree_size > len(leaves) or row.tree_size >= row.seq or row.tree_size < 0:
            raise IntegrityError(f"checkpoint at seq {row.seq} covers events that do not exist")
        want = roots[int(row.tree_size)]
        if want != row.root:
            raise IntegrityError(
                f"checkpoint at seq {row.seq}: Merkle root over {row.tree_size} events differs "
                "(an event up to there was changed)"
            )
        if key is None:
            raise IntegrityError(f"checkpoint at seq {row.seq} is signed by an unknown key")
        state = endorsed.get(row.keyid)
        if state is None or state.endorsed_seq is None:
            raise IntegrityError(
                f"checkpoint at seq {row.seq} is signed by {name!r}, a key the lab key "
                "never endorsed"
            )
        if str(key.role) != Role.LAB.value:
            raise IntegrityError(
                f"checkpoint at seq {row.seq} is signed by {name!r} of role '{key.role}': "
                f"only a '{Role.LAB.value}' key signs checkpoints"
            )
        try:
            envelope = dsse.Envelope.from_bytes(blobs.get_bytes(Digest.parse(row.envelope)))
            public = {row.keyid: public_key_from_raw(bytes.fromhex(key.public_key))}
            dsse.verify(envelope, public)
            payload = canonical.decode(envelope.payload)
        except LabError as e:  # missing, corrupt or forged envelope: name the checkpoint
            raise ChainBroken(f"checkpoint at seq {row.seq}: signed tree head: {e.message}") from e
        if payload.get("root") != row.root or payload.get("tree_size") != row.tree_size:
            raise IntegrityError(f"checkpoint at seq {row.seq}: signed head differs from the row")
        revoked_before = key.revoked_seq is not None and key.revoked_seq < row.seq
        if revoked_before:
            raise IntegrityError(f"checkpoint at seq {row.seq} signed by a key revoked before it")
        status = "verified" if key.revoked_seq is None else "verified (key revoked later)"
        out.append(
            CheckpointInfo(
                seq=row.seq, tree_size=row.tree_size, root=row.root, key=name, status=status
            )
        )
    return out

"""Approvals: what trusted keys say about a registered package after the fact -- a
signature, an approval for a purpose (``parent`` or ``release``), a revocation.

Each is a DSSE envelope (a revocation: a signed event) written after the package is
checked intact and the key trusted, and checked again inside the writing transaction
(another writer may have revoked either meanwhile). Leaves who may approve to
``breedlab.authority`` and the package's own signature at import to ``packages``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from breedlab.authority import may
from breedlab.canonical import JsonValue
from breedlab.digest import Digest
from breedlab.errors import Conflict, InvalidRequest, NotFound, PolicyError
from breedlab.ledger.kinds import EventKind
from breedlab.registry import cluster_keys
from breedlab.signing import dsse
from breedlab.signing.keys import KeyPair, Role
from breedlab.signing.statements import APPROVAL_PREDICATE, INTOTO_PAYLOAD_TYPE, Statement, Subject
from breedlab.supply.keys import acting, lab_signer, signer
from breedlab.supply.packages import (
    append_signature,
    check_registered_model,
    manifest,
    package,
    require_intact,
    resolve,
    signature_envelope,
)
from breedlab.supply.service import Supply, require_reason
from breedlab.supply.values import ApprovalInfo, PackageInfo

if TYPE_CHECKING:
    from breedlab.ledger import ApprovalRecord
    from breedlab.ledger.engine import Txn

__all__ = ["PURPOSES", "approve", "revoke", "sign"]

PURPOSES = ("parent", "release")


def _recheck(tx: Txn, pid: Digest, by: KeyPair) -> None:
    """Inside the writing transaction: the package and the key are still good."""
    if tx.revocation(str(pid)) is not None:
        raise PolicyError(f"package {pid.short} was revoked")
    row = tx.key_by_id(by.keyid)
    if row is None or row.revoked_seq is not None:
        raise PolicyError(f"key {by.name!r} was revoked")


# -- sign, approve, revoke -------------------------------------------------------------------


def sign(supply: Supply, ref: str, *, key: str) -> PackageInfo:
    """Sign a registered, intact package with a trusted key (a DSSE envelope).

    Raises:
        PolicyError: untrusted or revoked key, or the package is revoked.
        IntegrityError: the package does not verify.
        Conflict: this key signed it already.
    """
    pid = resolve(supply, ref)
    with supply.ledger.reader() as r:
        by, _ = signer(supply, key, r)
        require_intact(supply, r, pid)
        if by.keyid in {s.keyid for s in r.signatures(str(pid))}:
            raise Conflict(f"key {key!r} signed {pid.short} already")
    envelope = supply.blobs.put_bytes(signature_envelope(manifest(supply, pid), pid, by))
    with supply.ledger.transaction() as tx:  # re-check: another writer may have won
        _recheck(tx, pid, by)
        if by.keyid in {s.keyid for s in tx.signatures(str(pid))}:
            raise Conflict(f"key {key!r} signed {pid.short} already")
        append_signature(supply, tx, pid, by, envelope)
    return package(supply, pid)


def _covered(
    rows: Iterable[ApprovalRecord], keyid: str, purpose: str, clusters: Sequence[str]
) -> bool:
    """Whether this key's approvals for ``purpose`` already cover the asked scope (an
    unscoped one covers every scope; a scoped one, the scopes within it)."""
    return any(
        row.keyid == keyid
        and row.purpose == purpose
        and (not row.scope or (clusters and set(clusters) <= set(row.scope)))
        for row in rows
    )


def approve(
    supply: Supply, ref: str, *, purpose: str, key: str, clusters: Sequence[str] = ()
) -> ApprovalInfo:
    """Record a signed approval of a package for a purpose (``parent`` or ``release``).

    ``clusters``: scope a parent approval to these failure clusters (keys as
    ``breedlab failures`` shows them, ``registry.cluster_keys``): a round uses the package
    as a parent only when it breeds against one of them. The scope is in the signed
    statement and the event. Empty: every round.

    Raises:
        InvalidRequest: unknown purpose; a malformed cluster key, or clusters with a
            purpose other than parent; the ``lab`` key cannot approve.
        PolicyError: untrusted or revoked key; revoked package.
        IntegrityError: the package does not verify.
        Conflict: this key's approvals for this purpose cover that scope already.
    """
    if purpose not in PURPOSES:
        raise InvalidRequest(f"unknown purpose {purpose!r}; use parent or release")
    scoped = cluster_keys.scope(clusters)
    if scoped and purpose != "parent":
        raise InvalidRequest(
            f"only a parent approval is scoped to failure clusters, not a {purpose} approval",
            hint="a release approval is for the package as a whole; drop --cluster",
        )
    pid = resolve(supply, ref)
    already = f"key {key!r} approved {pid.short} for {purpose}" + (
        f" (covering {', '.join(scoped)})" if scoped else ""
    )
    with supply.ledger.reader() as r:
        by, role = signer(supply, key, r)
        if not may(Role(role), EventKind.PACKAGE_APPROVED):
            raise InvalidRequest(
                f"the {role} key does not approve (the lab key and the factory key act "
                "for the lab itself); use a model, evaluation, security or production key"
            )
        require_intact(supply, r, pid)
        if _covered(r.approvals(str(pid)), by.keyid, purpose, scoped):
            raise Conflict(f"{already} already")
    if purpose == "release":
        check_registered_model(supply, pid)  # released means served: it must answer its contract
    found = manifest(supply, pid)
    scope_field: dict[str, JsonValue] = {"clusters": list(scoped)} if scoped else {}
    statement = Statement(
        subjects=(Subject(name=found.name, sha256=pid.hex),),
        predicate_type=APPROVAL_PREDICATE,
        predicate={
            "purpose": purpose,
            "role": role,
            "capability": found.capability,
            **scope_field,
        },
    )
    envelope = supply.blobs.put_bytes(
        dsse.sign(INTOTO_PAYLOAD_TYPE, statement.to_bytes(), by).to_bytes()
    )
    with supply.ledger.transaction() as tx:  # re-check: another writer may have won
        _recheck(tx, pid, by)
        if _covered(tx.approvals(str(pid)), by.keyid, purpose, scoped):
            raise Conflict(f"{already} already")
        ev = tx.append(
            EventKind.PACKAGE_APPROVED,
            str(pid),
            {
                "package": str(pid),
                "purpose": purpose,
                "key": key,
                "keyid": by.keyid,
                "role": role,
                "envelope": str(envelope),
                **scope_field,
            },
            signer=by,
            actor=supply.actor,
        )
    return ApprovalInfo(
        package=str(pid), purpose=purpose, key=key, role=role, seq=ev.seq, clusters=scoped
    )


def revoke(supply: Supply, ref: str, *, reason: str, key: str | None = None) -> PackageInfo:
    """Revoke a package: it can no longer be a parent, champion or release target.

    Signed by ``key`` (a lab, security or production key; default: the lab key).
    """
    require_reason(reason)
    pid = resolve(supply, ref)
    with supply.ledger.reader() as r:
        by = (
            lab_signer(supply, r)
            if key is None
            else acting(supply, key, r, EventKind.PACKAGE_REVOKED)
        )
    with supply.ledger.transaction() as tx:
        if tx.package(str(pid)) is None:
            raise NotFound(f"package {pid.short} is not registered")
        if tx.revocation(str(pid)) is not None:
            raise Conflict(f"package {pid.short} was revoked already")
        tx.append(
            EventKind.PACKAGE_REVOKED,
            str(pid),
            {"package": str(pid), "reason": reason},
            signer=by,
            actor=supply.actor,
        )
    return package(supply, pid)

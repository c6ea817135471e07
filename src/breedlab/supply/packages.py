"""Packages (seed, stage 1): import, store, record and resolve content-addressed,
write-once packages, capability contracts among them.

Controllers here follow read → decide → write: read the ledger and the store, check the
rules, then write blobs first and the ledger event last. A crash between the two leaves
unreferenced blobs (harmless, content-addressed), never a ledger entry that points at
something missing. Leaves the checks a package must pass to ``verification``, the
contract probe to ``conformance`` and what keys say about a registered package later
(signatures, approvals, revocations) to ``approvals``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from breedlab.authority import trusted_keys
from breedlab.canonical import JsonValue
from breedlab.digest import Digest, parse_prefix
from breedlab.errors import IntegrityError, InvalidRequest, NotFound, PolicyError
from breedlab.ledger import Event, Reader
from breedlab.ledger.kinds import EventKind
from breedlab.registry import source
from breedlab.registry.capability import Contract, parse_contract
from breedlab.registry.licenses import check_license
from breedlab.registry.manifest import DataClass, FileEntry, Kind, Manifest, RiskTier
from breedlab.signing import dsse
from breedlab.signing.keys import KeyPair
from breedlab.signing.statements import (
    INTOTO_PAYLOAD_TYPE,
    SIGNATURE_PREDICATE,
    SLSA_PREDICATE,
    Statement,
    Subject,
    provenance_predicate,
)
from breedlab.supply import conformance
from breedlab.supply.keys import lab_signer, signer
from breedlab.supply.service import Supply
from breedlab.supply.values import (
    ApprovalInfo,
    PackageDetails,
    PackageInfo,
    ProblemKind,
    VerifyResult,
)
from breedlab.supply.verification import check_package

if TYPE_CHECKING:
    from breedlab.ledger.engine import Txn

__all__ = [
    "add_capability",
    "append_signature",
    "capabilities",
    "capability",
    "check",
    "check_registered_model",
    "import_path",
    "manifest",
    "package",
    "packages",
    "record_package",
    "register",
    "require_intact",
    "resolve",
    "resolve_in",
    "show",
    "signature_envelope",
    "store_package",
]

Files = Sequence[source.SourceFile] | Sequence[tuple[str, bytes]]

# -- capabilities ------------------------------------------------------------------------


def add_capability(supply: Supply, path: Path, *, sign_with: str | None = None) -> PackageInfo:
    """Validate a capability contract (TOML) and register it as a package."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"no such file: {path}") from None
    except IsADirectoryError:
        raise InvalidRequest(f"{path} is a folder; pass the contract's .toml file") from None
    contract = parse_contract(data, str(path))
    return register(
        supply,
        files=[("capability.toml", data)],
        kind=Kind.CAPABILITY,
        name=contract.name,
        capability=contract.name,
        license="CC0-1.0",
        data_class=contract.data_class,
        risk_tier=contract.risk_tier,
        build_type="import",
        external={"source": "capability.toml"},
        meta={"contract": contract.to_json()},
        sign_with=sign_with,
    )


def capability(supply: Supply, name: str) -> tuple[PackageInfo, Contract]:
    """The current contract of a capability (its latest registered version)."""
    with supply.ledger.reader() as r:
        rows = r.packages(capability=name, kind=Kind.CAPABILITY.value)
    if not rows:
        raise NotFound(f"no capability {name!r}; add one with 'breedlab capability add FILE'")
    info = package(supply, Digest.parse(rows[-1].id))
    data = supply.blobs.get_bytes(info.manifest.files[0].digest)
    return info, parse_contract(data, f"{name} ({info.id.short})")


def capabilities(supply: Supply) -> list[PackageInfo]:
    with supply.ledger.reader() as r:
        rows = r.packages(kind=Kind.CAPABILITY.value)
    latest = {row.capability: row.id for row in rows}
    return [package(supply, Digest.parse(pid)) for pid in latest.values()]


def check_registered_model(supply: Supply, pid: Digest) -> None:
    """:func:`conformance.check_answers_contract` for a registered model package
    (materialised); other kinds pass."""
    found = manifest(supply, pid)
    if found.kind is not Kind.MODEL:
        return
    _, contract = capability(supply, found.capability)
    folder = supply.workspace.materialise(pid, found)
    what = f"model {pid.short} ({found.name})"
    conformance.check_answers_contract(folder, found.family, contract, what=what)


# -- import, store, record ---------------------------------------------------------------


def import_path(
    supply: Supply,
    path: Path,
    *,
    kind: Kind | str,
    capability: str,
    license: str,
    data_class: DataClass | str | None = None,
    name: str | None = None,
    sign_with: str | None = None,
    family: str | None = None,
    parents: Sequence[str] = (),
) -> PackageInfo:
    """Import a file or folder as a package (stage 1: content-addressed, write-once).

    ``parents`` (ids, prefixes or aliases) record what it was made from, e.g. the
    dataset a model was trained on outside the lab.

    Everything is checked before anything is written. Re-importing identical content
    returns the same id and writes nothing new.

    Raises:
        InvalidRequest: refused source (traversal, pickle, empty), bad kind or license.
        NotFound: no such path or capability.
        PolicyError: the signing key is untrusted or revoked.
        IntegrityError: a model that does not load or does not answer the capability's
            contract (``supply.conformance``); InvalidRequest if it names no family and
            its ``config.json`` declares none.
    """
    kind = Kind.parse(kind) if isinstance(kind, str) else kind
    if kind is Kind.CAPABILITY:
        raise InvalidRequest("import a capability contract with 'breedlab capability add FILE'")
    spdx = check_license(license)
    _, contract = _capability(supply, capability)
    if data_class is None:
        klass = contract.data_class
    else:
        klass = DataClass.parse(data_class) if isinstance(data_class, str) else data_class
    parent_ids = [resolve(supply, p) for p in parents]
    files = source.scan(path)
    if kind is Kind.MODEL:
        family = family or conformance.declared_family(path)

    def answers_contract(stored: Manifest) -> None:
        # The stored bytes are probed (not the source, which may change meanwhile).
        if stored.kind is Kind.MODEL:
            folder = supply.workspace.materialise(stored.id, stored)
            conformance.check_answers_contract(
                folder, stored.family, contract, what=f"model {path}", base=True
            )

    return register(
        supply,
        files=files,
        kind=kind,
        name=name or _default_name(path),
        capability=capability,
        license=spdx,
        data_class=klass,
        risk_tier=contract.risk_tier,
        build_type="import",
        external={"kind": kind.value, "license": spdx, "data_class": klass.value},
        parents=parent_ids,
        family=family,
        sign_with=sign_with,
        check=answers_contract,
    )


_capability = capability  # import_path's parameter of that name shadows the function


def register(
    supply: Supply,
    *,
    files: Files,
    kind: Kind,
    name: str,
    capability: str,
    license: str,
    data_class: DataClass,
    risk_tier: RiskTier,
    build_type: str,
    external: dict[str, JsonValue],
    parents: Sequence[Digest] = (),
    dependencies: Sequence[tuple[str, Digest]] = (),
    family: str | None = None,
    meta: dict[str, JsonValue] | None = None,
    sign_with: str | None = None,
    check: Callable[[Manifest], None] | None = None,
) -> PackageInfo:
    """Store a package and record it; ``check`` sees the stored manifest before it is
    recorded (a refusal leaves only unreferenced blobs: the package does not exist).
    Signed by ``sign_with`` (a trusted key's name) if given; the lab key registers it."""
    by: KeyPair | None = None
    with supply.ledger.reader() as r:
        if sign_with is not None:
            by, _ = signer(supply, sign_with, r)
        registrar = by or lab_signer(supply, r)
    stored = store_package(
        supply,
        files=files,
        kind=kind,
        name=name,
        capability=capability,
        license=license,
        data_class=data_class,
        risk_tier=risk_tier,
        build_type=build_type,
        external=external,
        parents=parents,
        dependencies=dependencies,
        family=family,
        meta=meta,
    )
    if check is not None:
        check(stored)
    return record_package(supply, stored, by, registrar=registrar)


def store_package(
    supply: Supply,
    *,
    files: Files,
    kind: Kind,
    name: str,
    capability: str,
    license: str,
    data_class: DataClass,
    risk_tier: RiskTier,
    build_type: str,
    external: dict[str, JsonValue],
    parents: Sequence[Digest] = (),
    dependencies: Sequence[tuple[str, Digest]] = (),
    family: str | None = None,
    meta: dict[str, JsonValue] | None = None,
) -> Manifest:
    """Store a package's files, provenance and manifest as blobs (idempotent); the
    ledger is not touched, so a package stored but never recorded does not exist."""
    entries = [_store_file(supply, f) for f in files]
    entries.sort(key=lambda e: e.path)
    resolved = [Subject(name="parent", sha256=p.hex) for p in parents]
    resolved += [Subject(name=label, sha256=d.hex) for label, d in dependencies]
    statement = Statement(
        subjects=tuple(Subject(name=e.path, sha256=e.sha256) for e in entries),
        predicate_type=SLSA_PREDICATE,
        predicate=provenance_predicate(
            build_type=build_type,
            external_parameters={"name": name, "capability": capability, **external},
            resolved_dependencies=resolved,
        ),
    )
    provenance = supply.blobs.put_bytes(statement.to_bytes())
    stored = Manifest(
        kind=kind,
        name=name,
        capability=capability,
        license=license,
        data_class=data_class,
        risk_tier=risk_tier,
        files=tuple(entries),
        parents=tuple(parents),
        provenance=provenance,
        family=family,
        meta=meta or {},
    )
    supply.blobs.put_bytes(stored.to_bytes())
    return stored


def record_package(
    supply: Supply,
    stored: Manifest,
    by: KeyPair | None = None,
    *,
    registrar: KeyPair,
    about: Mapping[str, JsonValue] | None = None,
) -> PackageInfo:
    """Register a stored manifest in the ledger (and sign it), in one transaction.

    ``registrar`` signs the ``package.registered`` event; ``by`` (if any) vouches for the
    package with a DSSE signature whose statement also carries ``about`` (the factory
    names the round and operator that made it).
    """
    pid = stored.id
    envelope_digest = None
    if by is not None:
        envelope_digest = supply.blobs.put_bytes(signature_envelope(stored, pid, by, about=about))
    with supply.ledger.transaction() as tx:
        row = tx.package(str(pid))
        created = row is None
        if row is not None:
            seq = row.registered_seq
        else:
            for parent in stored.parents:
                if tx.package(str(parent)) is None:
                    raise NotFound(f"parent {parent} is not registered")
                if (rev := tx.revocation(str(parent))) is not None:
                    raise PolicyError(f"parent {parent.short} is revoked: {rev.reason}")
            seq = tx.append(
                EventKind.PACKAGE_REGISTERED,
                str(pid),
                {
                    "id": str(pid),
                    "kind": stored.kind.value,
                    "name": stored.name,
                    "capability": stored.capability,
                    "parents": [str(p) for p in stored.parents],
                    "provenance": str(stored.provenance),
                    "files": len(stored.files),
                    "size": stored.total_size,
                },
                signer=registrar,
                actor=supply.actor,
            ).seq
        if by is not None and envelope_digest is not None:
            already = {s.keyid for s in tx.signatures(str(pid))}
            if by.keyid not in already:
                append_signature(supply, tx, pid, by, envelope_digest)
    return PackageInfo(id=pid, manifest=stored, registered_seq=seq, created=created)


def _store_file(supply: Supply, f: source.SourceFile | tuple[str, bytes]) -> FileEntry:
    if isinstance(f, tuple):
        path, data = f
        return FileEntry(path=path, sha256=supply.blobs.put_bytes(data).hex, size=len(data))
    fd = source.open_source_file(f)
    with os.fdopen(fd, "rb", buffering=0) as stream:
        digest, size = supply.blobs.put_stream(stream)
    return FileEntry(path=f.path, sha256=digest.hex, size=size)


def signature_envelope(
    stored: Manifest,
    pid: Digest,
    by: KeyPair,
    *,
    about: Mapping[str, JsonValue] | None = None,
) -> bytes:
    """A DSSE envelope in which ``by`` vouches for package ``pid``."""
    statement = Statement(
        subjects=(Subject(name=stored.name, sha256=pid.hex),),
        predicate_type=SIGNATURE_PREDICATE,
        predicate={**(about or {}), "kind": stored.kind.value, "capability": stored.capability},
    )
    return dsse.sign(INTOTO_PAYLOAD_TYPE, statement.to_bytes(), by).to_bytes()


def append_signature(supply: Supply, tx: Txn, pid: Digest, by: KeyPair, envelope: Digest) -> Event:
    return tx.append(
        EventKind.PACKAGE_SIGNED,
        str(pid),
        {"package": str(pid), "key": by.name, "keyid": by.keyid, "envelope": str(envelope)},
        signer=by,
        actor=supply.actor,
    )


# -- reading ---------------------------------------------------------------------------------


def resolve(supply: Supply, ref: str) -> Digest:
    """A package id from ``sha256:<hex>``, a unique prefix (≥ 4 hex) or ``CAP@alias``.

    Raises:
        NotFound: no such package or alias. InvalidRequest: an ambiguous prefix.
    """
    with supply.ledger.reader() as r:
        return resolve_in(r, ref)


def resolve_in(r: Reader, ref: str) -> Digest:
    """:func:`resolve` with a reader already open."""
    if "@" in ref:
        cap, _, alias = ref.partition("@")
        target = r.alias(cap, alias)
        if target is None:
            raise NotFound(f"alias {ref} is not set; see 'breedlab alias history {cap}'")
        return Digest.parse(target)
    prefix = parse_prefix(ref)
    matches = r.packages_with_prefix(prefix)
    if not matches:
        raise NotFound(f"no package {ref}; see 'breedlab packages'")
    if len(matches) > 1:
        shown = ", ".join(Digest.parse(m).short for m in matches[:5])
        raise InvalidRequest(f"package prefix {ref} is ambiguous ({shown}); type more digits")
    return Digest.parse(matches[0])


def manifest(supply: Supply, package: Digest) -> Manifest:
    return Manifest.from_bytes(supply.blobs.get_bytes(package))


def package(supply: Supply, package: Digest | str) -> PackageInfo:
    """A registered package by id, or by any reference :func:`resolve` takes."""
    pid = package if isinstance(package, Digest) else resolve(supply, package)
    with supply.ledger.reader() as r:
        row = r.package(str(pid))
    if row is None:
        raise NotFound(f"package {pid.short} is not registered")
    return PackageInfo(id=pid, manifest=manifest(supply, pid), registered_seq=row.registered_seq)


def packages(supply: Supply, *, capability: str | None = None) -> list[PackageInfo]:
    with supply.ledger.reader() as r:
        rows = r.packages(capability=capability)
    return [
        PackageInfo(
            id=Digest.parse(row.id),
            manifest=manifest(supply, Digest.parse(row.id)),
            registered_seq=row.registered_seq,
        )
        for row in rows
    ]


def show(supply: Supply, ref: str) -> PackageDetails:
    """A package with its signers, approvals, aliases, revocation and children (its
    release records are the Lab's to join)."""
    pid = resolve(supply, ref)
    info = package(supply, pid)
    with supply.ledger.reader() as r:
        approvals = tuple(
            ApprovalInfo(
                package=str(pid),
                purpose=row.purpose,
                key=_name_of(r, row.keyid),
                role=row.role,
                seq=row.seq,
                clusters=row.scope,
            )
            for row in r.approvals(str(pid))
        )
        return PackageDetails(
            info=info,
            signed_by=tuple(_name_of(r, row.keyid) for row in r.signatures(str(pid))),
            approvals=approvals,
            aliases=tuple(f"{row.capability}@{row.name}" for row in r.aliases_of(str(pid))),
            revoked=None if (revoked := r.revocation(str(pid))) is None else revoked.reason,
            children=tuple(r.children(str(pid))),
        )


def _name_of(r: Reader, keyid: str) -> str:
    row = r.key_by_id(keyid)
    return row.name if row is not None else keyid[:12]


# -- verification in a verb ----------------------------------------------------------------


def check(supply: Supply, r: Reader, pid: Digest) -> VerifyResult:
    """:func:`~breedlab.supply.verification.check_package`, once per command: inside
    :meth:`Supply.command` a package that passed is not checked again, and the trusted
    keys are derived once."""
    cache = supply.cache
    if cache is None:
        return check_package(supply.blobs, r, pid)
    if (hit := cache.passed.get(str(pid))) is not None:
        return hit
    if cache.trusted is None:
        cache.trusted = trusted_keys(r, supply.blobs)
    result = check_package(supply.blobs, r, pid, trusted=cache.trusted)
    if result.ok:
        cache.passed[str(pid)] = result
    return result


def require_intact(supply: Supply, r: Reader, pid: Digest) -> None:
    """Raise unless ``pid`` verifies.

    Raises:
        PolicyError: it is revoked. IntegrityError: any other problem.
    """
    problems = check(supply, r, pid).problems
    if problems:
        first = problems[0]
        if first.kind is ProblemKind.REVOKED:
            raise PolicyError(f"package {pid.short} is revoked ({first.message})")
        raise IntegrityError(f"package {pid.short} does not verify: {first.where}: {first.message}")


def _default_name(path: Path) -> str:
    base = path.resolve().name
    stem = base.split(".")[0] if path.is_file() else base
    cleaned = re.sub(r"[^A-Za-z0-9_.+-]", "-", stem).strip("-.") or "package"
    return cleaned[:128]

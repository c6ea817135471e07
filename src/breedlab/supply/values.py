"""Values the registry service (and the Lab) returns: what the CLI renders and library
users read."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from breedlab.canonical import JsonValue
from breedlab.digest import Digest
from breedlab.registry.manifest import Manifest

__all__ = [
    "AliasMove",
    "ApprovalInfo",
    "CheckpointInfo",
    "EvidenceReport",
    "KeyInfo",
    "LedgerReport",
    "LineageGraph",
    "LineageNode",
    "PackageDetails",
    "PackageInfo",
    "Problem",
    "ProblemKind",
    "Reconstruction",
    "ReleaseRecord",
    "StoreReport",
    "VerifyResult",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class PackageInfo:
    id: Digest
    manifest: Manifest
    registered_seq: int
    created: bool = False

    def to_json(self) -> dict[str, JsonValue]:
        m = self.manifest
        return {
            "id": str(self.id),
            "kind": m.kind.value,
            "name": m.name,
            "capability": m.capability,
            "license": m.license,
            "data_class": m.data_class.value,
            "risk_tier": m.risk_tier.value,
            "files": len(m.files),
            "size": m.total_size,
            "parents": [str(p) for p in m.parents],
            "registered_seq": self.registered_seq,
            "created": self.created,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyInfo:
    name: str
    role: str
    keyid: str
    added_seq: int
    revoked_seq: int | None
    revoked_reason: str | None
    has_private: bool
    endorsed: bool = True  # the lab key endorsed it (a key without is not trusted)

    @property
    def status(self) -> str:
        if self.revoked_seq is not None:
            return "revoked"
        return "trusted" if self.endorsed else "unendorsed"

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "name": self.name,
            "role": self.role,
            "keyid": self.keyid,
            "status": self.status,
            "added_seq": self.added_seq,
            "revoked_seq": self.revoked_seq,
            "revoked_reason": self.revoked_reason,
            "has_private_key": self.has_private,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ApprovalInfo:
    package: str
    purpose: str
    key: str
    role: str
    seq: int
    clusters: tuple[str, ...] = ()  # a parent approval's cluster scope; empty: unscoped

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "package": self.package,
            "purpose": self.purpose,
            "key": self.key,
            "role": self.role,
            "seq": self.seq,
            "clusters": list(self.clusters),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ReleaseRecord:
    """One ledger record of a package's way to production (seed, stage 3: release
    evidence joins to lineage): a decision, a shadow or canary run and its verdicts, a
    promotion or rollback, with the digests of the sealed evidence it names."""

    seq: int
    at: str
    kind: str
    capability: str
    summary: str
    evidence: tuple[str, ...] = ()

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "seq": self.seq,
            "at": self.at,
            "kind": self.kind,
            "capability": self.capability,
            "summary": self.summary,
            "evidence": list(self.evidence),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class PackageDetails:
    info: PackageInfo
    signed_by: tuple[str, ...]
    approvals: tuple[ApprovalInfo, ...]
    aliases: tuple[str, ...]
    revoked: str | None
    children: tuple[str, ...]
    release: tuple[ReleaseRecord, ...] = ()

    def to_json(self) -> dict[str, JsonValue]:
        out = self.info.to_json()
        out.update(
            {
                "manifest": self.info.manifest.to_json(),
                "signed_by": list(self.signed_by),
                "approvals": [a.to_json() for a in self.approvals],
                "aliases": list(self.aliases),
                "revoked": self.revoked,
                "children": list(self.children),
                "release": [r.to_json() for r in self.release],
            }
        )
        return out


class ProblemKind(Enum):
    """What a problem means for the caller: the data is not what it claims (an
    IntegrityError), or the package was revoked on purpose (a PolicyError)."""

    INTEGRITY = "integrity"
    REVOKED = "revoked"


@dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    where: str  # "manifest", a file path, "signature <key>", "parent <id>", ...
    message: str
    kind: ProblemKind = ProblemKind.INTEGRITY

    def to_json(self) -> dict[str, JsonValue]:
        return {"where": self.where, "message": self.message}


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifyResult:
    """One package checked (``supply.verification.check_package``): every problem found."""

    package: str
    name: str
    files: int
    signed_by: tuple[str, ...]
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "package": self.package,
            "name": self.name,
            "ok": self.ok,
            "files": self.files,
            "signed_by": list(self.signed_by),
            "problems": [p.to_json() for p in self.problems],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointInfo:
    seq: int
    tree_size: int
    root: str
    key: str
    status: str  # "verified" | "key revoked" | a problem

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "seq": self.seq,
            "tree_size": self.tree_size,
            "root": self.root,
            "key": self.key,
            "status": self.status,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class LedgerReport:
    events: int
    head: str
    checkpoints: tuple[CheckpointInfo, ...]
    signed: int = 0  # events whose signature and authority verified
    attested: int = 0  # unsigned history vouched for by a lab attestation
    lab_key: str = ""  # the ledger's first key (the lab key)
    pinned: bool = False  # breedlab.toml pins that key
    witness: str | None = None  # what a witness file proved, when one was given

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "events": self.events,
            "head": self.head,
            "checkpoints": [c.to_json() for c in self.checkpoints],
            "signed": self.signed,
            "attested": self.attested,
            "lab_key": self.lab_key,
            "pinned": self.pinned,
            "witness": self.witness,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class EvidenceReport:
    """Sealed release evidence, re-hashed and compared with the files it came from."""

    segments: int
    problems: tuple[Problem, ...]

    def to_json(self) -> dict[str, JsonValue]:
        return {"segments": self.segments, "problems": [p.to_json() for p in self.problems]}


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreReport:
    objects: int
    bytes: int
    problems: tuple[Problem, ...]
    #: Temporary files of interrupted writes, removed (findings, not failures).
    cleaned: tuple[Problem, ...] = ()

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "objects": self.objects,
            "bytes": self.bytes,
            "problems": [p.to_json() for p in self.problems],
            "cleaned": [p.to_json() for p in self.cleaned],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class AliasMove:
    seq: int
    at: str
    actor: str
    capability: str
    alias: str
    old: str | None
    new: str
    reason: str

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "seq": self.seq,
            "at": self.at,
            "actor": self.actor,
            "capability": self.capability,
            "alias": self.alias,
            "old": self.old,
            "new": self.new,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class LineageNode:
    id: str
    name: str
    kind: str
    build_type: str
    parents: tuple[str, ...]
    release: tuple[ReleaseRecord, ...] = ()  # its release evidence, in ledger order

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "build_type": self.build_type,
            "parents": list(self.parents),
            "release": [r.to_json() for r in self.release],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class LineageGraph:
    root: str
    ancestors: tuple[LineageNode, ...]  # the root first, then breadth-first
    descendants: tuple[LineageNode, ...]

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "package": self.root,
            "ancestors": [n.to_json() for n in self.ancestors],
            "descendants": [n.to_json() for n in self.descendants],
        }

    def to_dot(self) -> str:
        lines = ["digraph lineage {", "  rankdir=LR;", '  node [shape=box, fontname="monospace"];']
        seen: set[str] = set()
        for node in (*self.ancestors, *self.descendants):
            if node.id in seen:
                continue
            seen.add(node.id)
            style = ", style=bold" if node.id == self.root else ""
            label = f"{node.name}\\n{node.kind} ({node.build_type})\\n{node.id[:19]}"
            lines.append(f'  "{node.id}" [label="{label}"{style}];')
            for parent in node.parents:
                lines.append(f'  "{parent}" -> "{node.id}";')
        lines.append("}")
        return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True, kw_only=True)
class Reconstruction:
    """A package rebuilt from the store; ``replayed`` lists the operator-made packages of
    its lineage re-run from their recipes as ``(package, operator, recomputed id)``."""

    package: str
    folder: str
    recomputed: str
    files: int
    replayed: tuple[tuple[str, str, str | None], ...] = ()

    @property
    def match(self) -> bool:
        return self.package == self.recomputed and all(p == r for p, _, r in self.replayed)

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "package": self.package,
            "folder": self.folder,
            "recomputed": self.recomputed,
            "match": self.match,
            "files": self.files,
            "replayed": [
                {"package": p, "operator": op, "recomputed": r, "match": p == r}
                for p, op, r in self.replayed
            ],
        }

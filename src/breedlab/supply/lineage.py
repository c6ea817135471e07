"""Lineage: a package's ancestors and descendants, its folder rebuilt from the store, and
the decision records of the rounds that kept or archived candidates.

Owns walking the parent links of manifests, re-deriving a package's id from the files it
rebuilds and finding a ``decision.made`` record. Leaves re-running operators (a replayed
lineage) and the release records joined to each node to ``breedlab.lab``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from breedlab import canonical
from breedlab.canonical import JsonValue
from breedlab.digest import Digest, parse_prefix, sha256_stream
from breedlab.errors import InvalidRequest, LabError, NotFound
from breedlab.ledger import Event, Reader
from breedlab.ledger.kinds import EventKind
from breedlab.registry import source
from breedlab.registry.manifest import FileEntry
from breedlab.signing.statements import Statement
from breedlab.supply.packages import manifest
from breedlab.supply.service import Supply
from breedlab.supply.values import LineageGraph, LineageNode
from breedlab.supply.workspace import discard

__all__ = ["decision", "empty_target", "lineage", "rebuild"]


def lineage(supply: Supply, pid: Digest) -> LineageGraph:
    """Ancestors (the package first, then breadth-first) and descendants of a package."""
    with supply.ledger.reader() as r:
        ancestors = _walk(supply, r, pid, up=True)
        descendants = _walk(supply, r, pid, up=False)[1:]
    return LineageGraph(root=str(pid), ancestors=tuple(ancestors), descendants=tuple(descendants))


def _walk(supply: Supply, r: Reader, start: Digest, *, up: bool) -> list[LineageNode]:
    seen: set[str] = set()
    order: list[LineageNode] = []
    queue = [str(start)]
    while queue:
        pid = queue.pop(0)
        if pid in seen:
            continue
        seen.add(pid)
        found = manifest(supply, Digest.parse(pid))
        statement = Statement.from_bytes(supply.blobs.get_bytes(found.provenance))
        build = statement.predicate.get("buildDefinition", {}).get("buildType", "")
        order.append(
            LineageNode(
                id=pid,
                name=found.name,
                kind=found.kind.value,
                build_type=str(build).rsplit("/", 2)[-2] if build else "?",
                parents=tuple(str(p) for p in found.parents),
            )
        )
        queue.extend(str(p) for p in found.parents) if up else queue.extend(r.children(pid))
    return order


def empty_target(supply: Supply, pid: Digest, out: Path | None) -> Path:
    """The folder a package is rebuilt into: ``out``, else one under ``work/``.

    Raises:
        InvalidRequest: it exists and is not empty.
    """
    folder = out or supply.config.work_dir / "reconstruct" / pid.hex[:16]
    if folder.exists() and any(folder.iterdir()):
        raise InvalidRequest(f"{folder} exists and is not empty; pass --out to a new folder")
    return folder


def rebuild(supply: Supply, pid: Digest, folder: Path) -> tuple[str, int]:
    """Copy a package's files from the store into ``folder`` (made if missing) and derive
    its id from those files again; returns ``(recomputed id, file count)``.

    Raises:
        IntegrityError: a blob is corrupt (nothing half-written is left behind).
    """
    found = manifest(supply, pid)
    existed = folder.exists()  # an empty folder the user made: on failure, emptied, kept
    folder.mkdir(parents=True, exist_ok=True)
    try:
        for entry in found.files:
            target = folder / entry.path
            target.parent.mkdir(parents=True, exist_ok=True)
            supply.blobs.copy_to(entry.digest, target)
    except LabError:
        discard(folder, existed=existed)
        raise
    rebuilt = []
    for f in source.scan(folder):
        with f.location.open("rb") as stream:
            hex_, size = sha256_stream(stream)
        rebuilt.append(FileEntry(path=f.path, sha256=hex_, size=size))
    derived = dataclasses.replace(found, files=tuple(rebuilt))
    return str(derived.id), len(rebuilt)


def decision(supply: Supply, ref: str) -> tuple[Event, dict[str, JsonValue]]:
    """A ``decision.made`` event and its record: ``latest``, the event's seq,
    ``round-N`` (``CAP/round-N`` when two capabilities have one), or a prefix of the
    record's digest.

    Raises:
        NotFound: no such decision. InvalidRequest: an ambiguous digest prefix.
    """
    with supply.ledger.reader() as r:
        events = list(r.events(kinds=(EventKind.DECISION_MADE,)))
    if ref == "latest":
        found = events[-1:]
    elif ref.isdigit():
        found = [e for e in events if e.seq == int(ref)]
    elif "round-" in ref:
        cap, _, round_id = ref.rpartition("/")
        found = [e for e in events if e.payload.get("round") == round_id and cap in ("", e.subject)]
        if len({e.subject for e in found}) > 1:
            names = ", ".join(sorted(f"{e.subject}/{round_id}" for e in found))
            raise InvalidRequest(
                f"{ref} names a round of more than one capability",
                hint=f"name one of: {names}",
            )
    else:
        prefix = parse_prefix(ref)
        found = [
            e
            for e in events
            if str(e.payload.get("decision", "")).removeprefix("sha256:").startswith(prefix)
        ]
        if len(found) > 1:
            raise InvalidRequest(f"decision prefix {ref} is ambiguous; type more digits")
    if not found:
        raise NotFound(f"no decision {ref!r}; name one by seq, round-N, digest or 'latest'")
    chosen = found[-1]
    record = canonical.decode(supply.blobs.get_bytes(Digest.parse(str(chosen.payload["decision"]))))
    return chosen, record

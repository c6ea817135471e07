"""``breedlab migrate``: copy a lab to other backends -- the embedded default to the
scale-out ones (S3, PostgreSQL) and back -- verifying everything on the way.

The target is a new lab folder whose ``breedlab.toml`` is the source's with the store and
ledger URLs replaced; the signing keys are copied beside it. Then:

1. the source ledger is verified (chain, head, projections);
2. every object is read from the source (verified by its digest), written to the target
   (write-once) and re-hashed there;
3. every event is copied in order, unchanged: each must extend the target's chain
   (seq, prev_hash, hash), and the projections are rebuilt by applying the events;
4. the target's ledger is verified like the source's, checkpoints included, and must end
   at the source's head.

A target whose store or ledger holds anything is refused before anything is written;
the new folder is removed again on any failure (objects already copied to a fresh
bucket stay: they are content-addressed and harmless, and a re-run finds the store
non-empty -- empty the bucket first).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from breedlab.config import CONFIG_NAME, load_config
from breedlab.errors import Conflict, InvalidRequest
from breedlab.supply import audit
from breedlab.supply.service import Supply
from breedlab.supply.workspace import discard

__all__ = ["MigrationReport", "migrate"]


@dataclass(frozen=True, slots=True, kw_only=True)
class MigrationReport:
    target: str
    store: str
    ledger: str
    objects: int
    bytes: int
    events: int
    head: str


def _toml(doc: dict[str, dict[str, Any]]) -> str:
    """Our config's TOML: flat tables of strings and integers (JSON strings are TOML)."""
    lines = ["# breedlab lab configuration (written by 'breedlab migrate')."]
    for section, table in doc.items():
        lines.append(f"\n[{section}]")
        lines.extend(f"{key} = {json.dumps(value)}" for key, value in table.items())
    return "\n".join(lines) + "\n"


def _target_config(source: Path, store: dict[str, str], ledger_url: str) -> str:
    doc: dict[str, dict[str, Any]] = tomllib.loads((source / CONFIG_NAME).read_text("utf-8"))
    doc["store"] = {key: value for key, value in store.items() if value}
    doc["ledger"] = {"url": ledger_url}
    return _toml(doc)


def migrate(
    supply: Supply,
    target: Path,
    *,
    store_url: str = "objects",
    ledger_url: str = "ledger.db",
    store_endpoint: str = "",
    store_region: str = "",
) -> MigrationReport:
    """Copy the lab ``supply`` serves into a new lab folder ``target`` on the given backends,
    verifying every object and the ledger chain. The defaults are the embedded ones, so a
    scale-out lab migrates back with just a target.

    Raises:
        InvalidRequest: ``target`` exists and is not an empty folder.
        Conflict: the target store or ledger is not empty.
        IntegrityError: an object or the chain did not verify (source or target).
    """
    target = target.resolve()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise InvalidRequest(f"{target} exists and is not an empty folder")
    store = {"url": store_url, "endpoint": store_endpoint, "region": store_region}
    text = _target_config(supply.config.root, store, ledger_url)
    supply.ledger.verify_chain()  # 1. the source first: never spread a broken ledger
    existed = target.exists()  # an empty folder the user made: on failure, emptied, kept
    target.mkdir(parents=True, exist_ok=True)
    try:
        for folder in ("objects", "work"):
            (target / folder).mkdir()
        shutil.copytree(supply.config.keys_dir, target / "keys")
        os.chmod(target / "keys", 0o700)
        (target / CONFIG_NAME).write_text(text, "utf-8")
        copy = Supply(load_config(target), clock=supply.clock)
        with contextlib.closing(copy.ledger):
            try:
                copy.blobs.ensure()
            except OSError as e:  # a file where the store's folder should be
                raise InvalidRequest(f"cannot use {store_url} as a store: {e.strerror}") from e
            if next(iter(copy.blobs.digests()), None) is not None or copy.blobs.strays():
                raise Conflict(f"the target store {store_url} is not empty; refusing to copy")
            copy.ledger.create()
            with copy.ledger.reader() as r:
                if r.event_count():
                    raise Conflict(f"the target ledger {ledger_url} is not empty; refusing")
            objects = total = 0
            for digest in supply.blobs.digests():  # 2. every object, verified both sides
                data = supply.blobs.get_bytes(digest)
                if copy.blobs.put_bytes(data) != digest:
                    raise Conflict(f"object {digest} was stored under another digest")
                total += copy.blobs.check(digest)
                objects += 1
            # The copy holds the source's events, not changes of its own: no checkpoint
            # is added to them (the copy must end at the source's head, byte for byte).
            copy.ledger.after_commit = None
            with supply.ledger.reader() as r, copy.ledger.transaction() as tx:  # 3. events
                for event in r.events():
                    tx.append_sealed(event)
                source_head = r.head()
            report = audit.verify_ledger(copy)  # 4. chain, projections, checkpoints
            if (report.events, report.head) != source_head:
                raise Conflict("the copied ledger does not end at the source's head")
    except BaseException:
        discard(target, existed=existed)
        raise
    return MigrationReport(
        target=str(target),
        store=store_url,
        ledger=ledger_url,
        objects=objects,
        bytes=total,
        events=report.events,
        head=report.head,
    )

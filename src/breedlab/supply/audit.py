"""Audit: verify what the lab holds, and anchor the ledger (checkpoints, witness files).

Owns ``verify`` (packages), the store walk, the evidence walk, ``ledger verify`` (chain,
authority replay, endorsements, checkpoints, witness), signed checkpoints -- automatic
ones included --, the one-time attestation of unsigned history and the temporary files
of interrupted writes. Leaves the individual checks to ``verification``, ``witness`` and
``breedlab.authority``.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from breedlab.authority import replay, trusted_keys
from breedlab.authority.replay import check_pinned
from breedlab.config import CONFIG_NAME, load_config
from breedlab.digest import Digest
from breedlab.errors import (
    ChainBroken,
    Conflict,
    IntegrityError,
    InvalidRequest,
    LabError,
    NotFound,
    PolicyError,
    UnauthorizedChange,
)
from breedlab.ledger import Event
from breedlab.ledger.kinds import EventKind
from breedlab.ledger.merkle import Frontier
from breedlab.ledger.merkle import root as merkle_root
from breedlab.registry.blobs import Leftover
from breedlab.signing import dsse
from breedlab.signing.keys import Role
from breedlab.supply.evidence import verify_evidence as walk_evidence
from breedlab.supply.keys import endorser, generate_key, signer
from breedlab.supply.packages import resolve_in
from breedlab.supply.service import Supply
from breedlab.supply.values import (
    EvidenceReport,
    LedgerReport,
    Problem,
    StoreReport,
    VerifyResult,
)
from breedlab.supply.verification import (
    CHECKPOINT_PAYLOAD_TYPE,
    check_checkpoints,
    check_key_endorsements,
    check_package,
    checkpoint_payload,
)
from breedlab.supply.witness import Witness, check_witness

__all__ = [
    "anchor_automatically",
    "checkpoint",
    "clean_temporary",
    "close",
    "sign_history",
    "verify",
    "verify_evidence",
    "verify_ledger",
    "verify_store",
    "witness_export",
]


# -- packages, store, evidence ----------------------------------------------------------------


def verify(supply: Supply, refs: Iterable[str] = ()) -> list[VerifyResult]:
    """Verify the named packages (or every registered package if none are named)."""
    with supply.ledger.reader() as r:
        ids = [resolve_in(r, ref) for ref in refs]
        if not ids:
            ids = [Digest.parse(row.id) for row in r.packages()]
        trusted = trusted_keys(r, supply.blobs)  # once, not per package
        return [check_package(supply.blobs, r, pid, trusted=trusted) for pid in ids]


def clean_temporary(supply: Supply) -> tuple[Leftover, ...]:
    """Remove the temporary files interrupted writes left in the store and the
    workspace (never those of a write in progress in another process)."""
    try:
        return (*supply.blobs.clean_temporary(), *supply.workspace.clean_leftovers())
    except OSError:  # a lab this user may read but not write: leave it be
        return ()


def verify_store(supply: Supply) -> StoreReport:
    """Re-hash every object in the store (referenced or not) and report bad ones, and the
    temporary files of interrupted writes removed since this lab was opened."""
    problems: list[Problem] = []
    count = 0
    total = 0
    for digest in supply.blobs.digests():
        count += 1
        try:
            total += supply.blobs.check(digest)
        except LabError as e:
            problems.append(Problem(where=f"object {digest.short}", message=e.message))
    for stray in supply.blobs.strays():
        problems.append(Problem(where=stray, message="stray file in the object store"))
    cleaned = tuple(
        Problem(
            where=leftover.path,
            message=(
                f"left by an interrupted write or job ({leftover.size} bytes"
                + ("" if leftover.writer is None else f", by pid {leftover.writer}")
                + "), removed"
            ),
        )
        for leftover in (*supply.leftovers, *clean_temporary(supply))
    )
    return StoreReport(objects=count, bytes=total, problems=tuple(problems), cleaned=cleaned)


def verify_evidence(supply: Supply) -> EvidenceReport:
    """Re-hash every sealed shadow and canary segment and compare each evidence file with
    what was sealed from it (an edit after sealing is reported)."""
    segments, problems = walk_evidence(supply)
    return EvidenceReport(segments=segments, problems=tuple(problems))


# -- the ledger ---------------------------------------------------------------------------------


def verify_ledger(supply: Supply, *, witness: Path | None = None) -> LedgerReport:
    """Recompute the chain and the projections, replay every event through the authority
    table (signature by a key trusted at that seq, a role allowed to make that change),
    check the pinned lab key and every signed checkpoint; with a ``witness`` file, prove
    the ledger is a consistent extension of the tree head it holds (RFC 9162
    consistency proof).

    Raises:
        ChainBroken: names the first bad seq or checkpoint, a ledger whose first key is
            not the pinned lab key, or one that is not an extension of the witness.
        UnauthorizedChange: names the first unsigned or unauthorized change.
        InvalidRequest: ``witness`` is not a witness file.
    """
    seen = None
    if witness is not None:
        try:
            seen = Witness.from_bytes(witness.read_bytes(), str(witness))
        except FileNotFoundError:
            raise NotFound(f"no witness file {witness}") from None
        except OSError as e:  # a folder, or not readable
            raise InvalidRequest(f"cannot read witness file {witness}: {e.strerror}") from e
    report = supply.ledger.verify_chain()
    pinned = supply.config.lab_key_id or None
    proved = None
    with supply.ledger.reader() as r:
        try:
            check_pinned(next(r.events(), None), pinned)  # a rebuilt ledger, named first
            check_key_endorsements(supply.blobs, r)
            # Checkpoints before signatures: an edit under a signed tree head is reported
            # as what it is (a rewritten history); one after the last checkpoint is
            # caught by its event's signature.
            checkpoints = check_checkpoints(supply.blobs, r)
            authority = replay(r, supply.blobs, pinned=pinned)
            if seen is not None:
                leaves = r.event_hashes()
                at = r.event(seen.checkpoint_seq) if len(leaves) >= seen.checkpoint_seq else None
                recorded = at.payload if at and at.kind == EventKind.CHECKPOINT_SIGNED else None
                proved = check_witness(seen, leaves, authority.first_key, recorded)
        except (ChainBroken, UnauthorizedChange):
            raise
        except IntegrityError as e:
            raise ChainBroken(e.message) from e
    return LedgerReport(
        witness=None
        if proved is None
        else (
            f"consistent extension of the witnessed {proved['witness_size']} events "
            f"(root {str(proved['witness_root'])[:16]}): RFC 9162 proof of "
            f"{len(proved['proof'])} hash(es) to {proved['size']} events"
        ),
        events=report.events,
        head=report.head_hash,
        checkpoints=tuple(checkpoints),
        signed=authority.signed,
        attested=authority.attested,
        lab_key=authority.first_key or "",
        pinned=pinned is not None,
    )


def checkpoint(supply: Supply, *, key: str | None = None) -> Event:
    """Sign an RFC 6962 tree head over every event so far (``checkpoint.signed``)."""
    name = key or supply.config.checkpoint_key
    with supply.ledger.reader() as r:
        by, role = signer(supply, name, r)
    if role != Role.LAB.value:
        raise PolicyError(
            f"only a '{Role.LAB.value}' key signs ledger checkpoints; {name!r} has role '{role}'"
        )
    with supply.ledger.transaction() as tx:
        size = tx.locked_head()[0]
        cached = supply.frontier
        if cached is None or cached.size > size:
            cached = Frontier()
        frontier = cached.copy().extend(tx.event_hashes(after=cached.size))
        root_hex = frontier.root().hex()
        payload = checkpoint_payload(lab=supply.config.name, tree_size=size, root_hex=root_hex)
        envelope = supply.blobs.put_bytes(
            dsse.sign(CHECKPOINT_PAYLOAD_TYPE, payload, by).to_bytes()
        )
        ev = tx.append(
            EventKind.CHECKPOINT_SIGNED,
            f"tree:{size}",
            {
                "tree_size": size,
                "root": root_hex,
                "key": name,
                "keyid": by.keyid,
                "envelope": str(envelope),
            },
            signer=by,
            actor=supply.actor,
        )
    # Read the next checkpoint's leaves from here on (the events before are fixed: an
    # edit to them is what verification reports).
    supply.frontier = frontier
    return ev


def anchor_automatically(supply: Supply) -> None:
    """DESIGN §13 (checkpoints are automatic): after each commit of this process, sign
    a checkpoint once ``[ledger] checkpoint_every`` events are uncovered; :func:`close`
    signs the last one."""
    supply.ledger.after_commit = functools.partial(_after_commit, supply)


def _after_commit(supply: Supply, events: Sequence[Event]) -> None:
    supply.forget(events)
    if all(e.kind == EventKind.CHECKPOINT_SIGNED for e in events):
        return
    supply.unanchored = True
    every = supply.config.checkpoint_every
    if every:
        with supply.ledger.reader() as r:
            covered = r.last_checkpoint_size()
        if events[-1].seq - covered >= every:
            _auto_checkpoint(supply)


def _auto_checkpoint(supply: Supply) -> None:
    """A checkpoint when the lab key is at hand; a process without it (a server holding
    only the factory key) leaves the next one to a process that has it."""
    with supply.checkpoint_lock:
        with supply.ledger.reader() as r:
            if r.head()[0] == 0 or r.last_event_kind() == EventKind.CHECKPOINT_SIGNED:
                supply.unanchored = False
                return
        try:
            checkpoint(supply)
        except (NotFound, PolicyError):
            return
        supply.unanchored = False


def close(supply: Supply) -> None:
    """Sign a checkpoint over what this process appended, then release the database."""
    try:
        if supply.unanchored:
            _auto_checkpoint(supply)
    finally:
        supply.ledger.close()


def witness_export(supply: Supply, path: Path) -> Witness:
    """Write the latest signed tree head to ``path`` for safekeeping outside the lab (a
    checkpoint is signed first if events came after the last one).

    Raises:
        PolicyError: the lab key is not at hand to sign a checkpoint.
        InvalidRequest: ``path`` cannot be written.
    """
    with supply.ledger.reader() as r:
        current = r.last_event_kind() == EventKind.CHECKPOINT_SIGNED
    if not current:
        checkpoint(supply)
    with supply.ledger.reader() as r:
        row = r.checkpoints()[-1]
        key = r.key_by_id(row.keyid)
    assert key is not None  # checkpoint() signs with a trusted lab key
    seen = Witness(
        lab=supply.config.name,
        lab_key_id=row.keyid,
        lab_public_key=key.public_key,
        tree_size=row.tree_size,
        root=row.root,
        checkpoint_seq=row.seq,
        envelope=supply.blobs.get_bytes(Digest.parse(row.envelope)),
    )
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_bytes(seen.to_bytes())
        os.replace(tmp, path)
    except OSError as e:  # no such folder, a folder in the way, not writable
        tmp.unlink(missing_ok=True)
        raise InvalidRequest(f"cannot write witness file {path}: {e.strerror}") from e
    return seen


def sign_history(supply: Supply) -> Event:
    """Vouch once, with the lab key, for ledger history written before events were signed
    (a ``ledger.attested`` event over the Merkle root of every event so far), and give a
    lab from before then what it now needs: a factory key and the lab key's id pinned in
    ``breedlab.toml``.

    Check the history by hand first (``ledger verify`` on a copy you trust): the
    attestation makes unsigned events count as the lab's own.

    Raises:
        PolicyError: the lab key is not at hand, or not endorsed yet (``keys endorse lab``).
        Conflict: nothing unsigned is left to vouch for.
    """
    with supply.ledger.reader() as r:
        lab_key = endorser(supply, r)
        attested = [e.seq for e in r.events(kinds=(EventKind.LEDGER_ATTESTED,))]
        after = attested[-1] if attested else 0  # what an attestation covers already
        unsigned = sum(1 for e in r.events(after=after) if e.sig is None)
        has_factory = r.key(supply.config.factory_key) is not None
        first = r.all_keys()[0] if r.all_keys() else None
    if not has_factory:
        generate_key(supply, supply.config.factory_key, Role.FACTORY)
    if not supply.config.lab_key_id and first is not None:
        _pin_lab_key(supply, first.keyid)
    if not unsigned:
        raise Conflict("every event in this ledger is signed; nothing to vouch for")
    with supply.ledger.transaction() as tx:
        leaves = tx.event_hashes()
        return tx.append(
            EventKind.LEDGER_ATTESTED,
            f"tree:{len(leaves)}",
            {
                "tree_size": len(leaves),
                "root": merkle_root(leaves).hex(),
                "unsigned": unsigned,
                "keyid": lab_key.keyid,
                "reason": "history written before events were signed, vouched for once",
            },
            signer=lab_key,
            actor=supply.actor,
        )


def _pin_lab_key(supply: Supply, keyid: str) -> None:
    """Write ``lab_key_id`` into ``[signing]`` of this lab's breedlab.toml."""
    path = supply.config.root / CONFIG_NAME
    text = path.read_text("utf-8")
    if re.search(r"(?m)^lab_key_id\s*=", text):
        text = re.sub(r"(?m)^lab_key_id\s*=.*$", f'lab_key_id = "{keyid}"', text)
    elif re.search(r"(?m)^\[signing\]", text):
        text = re.sub(r"(?m)^\[signing\]$", f'[signing]\nlab_key_id = "{keyid}"', text, count=1)
    else:
        text += f'\n[signing]\nlab_key_id = "{keyid}"\n'
    path.write_text(text, "utf-8")
    supply.config = load_config(supply.config.root)

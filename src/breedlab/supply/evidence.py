"""Release evidence: shadow pairs and canary observations, streamed, then sealed.

The server appends each run's records to a JSON-lines file under
``LAB/release/<capability>/<stream>-<seq>.jsonl`` (``stream`` is ``shadow`` or ``canary``,
``seq`` the event that started the run). A file is only as trustworthy as the disk it
is on, so the records are *sealed*: the bytes after the last seal, up to the last whole
line, become a write-once blob, and a ``release.evidence_sealed`` event (signed by the
lab's factory key) names the blob, its byte range and record count. Seals happen at
least every ``[release] seal_every`` records, when a run stops or is judged (shadow
stop, canary start, every canary verdict, promotion) and when the server shuts down.

Readers take sealed records from the store (verified by digest on every read) and only
the unsealed tail from the file; the release events that decide something name the
digests of the evidence they decided on. ``verify --all`` re-hashes every sealed blob
and compares each file's sealed prefix with it, so an edited record is reported even
when nothing reads it again. What an attacker can still do: change records in the
window before they are sealed (at most ``seal_every`` of them).
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from breedlab.canonical import JsonValue
from breedlab.digest import Digest
from breedlab.errors import Conflict, IntegrityError, LabError
from breedlab.ledger import Event
from breedlab.ledger.kinds import EventKind
from breedlab.supply.keys import factory_signer
from breedlab.supply.service import Supply
from breedlab.supply.values import Problem

__all__ = [
    "STREAMS",
    "Evidence",
    "EvidenceLog",
    "Segment",
    "evidence_log",
    "read_evidence",
    "sealed_segments",
    "verify_evidence",
]

STREAMS = ("shadow", "canary")
SEALED = EventKind.EVIDENCE_SEALED


@dataclass(frozen=True, slots=True, kw_only=True)
class Segment:
    """One sealed byte range of a run's evidence file."""

    seq: int  # the release.evidence_sealed event
    start: int
    end: int
    records: int
    digest: Digest


@dataclass(frozen=True, slots=True, kw_only=True)
class Evidence:
    """A run's records: the sealed ones (from the store) then the unsealed tail."""

    records: tuple[dict[str, Any], ...]
    sealed: int  # how many of them come from sealed blobs
    digests: tuple[str, ...]  # the sealed blobs, in order

    @property
    def unsealed(self) -> int:
        return len(self.records) - self.sealed


def release_dir(supply: Supply, capability: str) -> Path:
    folder = supply.config.root / "release" / capability
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _path(supply: Supply, capability: str, stream: str, run: int) -> Path:
    return release_dir(supply, capability) / f"{stream}-{run}.jsonl"


def sealed_segments(supply: Supply, capability: str, stream: str, run: int) -> list[Segment]:
    """The run's sealed segments, in order (from the ledger)."""
    with supply.ledger.reader() as r:
        events = list(r.events(kinds=(SEALED,), subject=capability))
    return _segments(events, stream, run)


def _segments(events: Iterable[Event], stream: str, run: int) -> list[Segment]:
    return [
        Segment(
            seq=e.seq,
            start=int(str(e.payload["start"])),
            end=int(str(e.payload["end"])),
            records=int(str(e.payload["records"])),
            digest=Digest.parse(str(e.payload["digest"])),
        )
        for e in events
        if e.payload.get("stream") == stream and e.payload.get("run") == run
    ]


def _lines(data: bytes, where: str) -> list[dict[str, Any]]:
    out = []
    for n, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise IntegrityError(f"{where}: record {n} is not JSON") from None
        if not isinstance(record, dict):
            raise IntegrityError(f"{where}: record {n} is not a JSON object")
        out.append(record)
    return out


def read_evidence(supply: Supply, capability: str, stream: str, run: int) -> Evidence:
    """Sealed records from the store, then the file's unsealed whole lines.

    Raises:
        IntegrityError: a sealed blob is missing or corrupt; the tail is not JSON.
    """
    segments = sealed_segments(supply, capability, stream, run)
    records: list[dict[str, Any]] = []
    for seg in segments:
        records.extend(_lines(supply.blobs.get_bytes(seg.digest), f"sealed evidence {seg.digest}"))
    sealed = len(records)
    path = _path(supply, capability, stream, run)
    end = segments[-1].end if segments else 0
    with contextlib.suppress(FileNotFoundError), path.open("rb") as f:
        f.seek(end)
        tail = f.read()
        records.extend(_lines(tail[: tail.rfind(b"\n") + 1], f"{path} after byte {end}"))
    return Evidence(
        records=tuple(records), sealed=sealed, digests=tuple(str(s.digest) for s in segments)
    )


class EvidenceLog:
    """One run's evidence file: thread-safe appends, sealed every ``seal_every`` records
    (on a background thread, so a request never waits for the store or the ledger)."""

    def __init__(self, supply: Supply, capability: str, stream: str, run: int) -> None:
        self.supply = supply
        self.capability = capability
        self.stream = stream
        self.run = run
        self.path = _path(supply, capability, stream, run)
        self._lock = threading.Lock()
        self._seal_lock = threading.Lock()
        self._since_seal = 0
        self._sealing = False

    def append(self, records: Iterable[Mapping[str, JsonValue]]) -> None:
        lines = [json.dumps(r, sort_keys=True) + "\n" for r in records]
        if not lines:
            return
        with self._lock, self.path.open("a", encoding="utf-8") as f:
            f.write("".join(lines))
            self._since_seal += len(lines)
            due = self._since_seal >= self.supply.config.seal_every and not self._sealing
            if due:
                self._sealing = True
        if due:
            threading.Thread(target=self._seal_in_background, daemon=True).start()

    def _seal_in_background(self) -> None:
        try:
            self.seal()
        except LabError:
            pass  # the next seal (at the latest when the run stops) takes these records
        finally:
            with self._lock:
                self._sealing = False

    def read(self) -> list[dict[str, Any]]:
        return list(read_evidence(self.supply, self.capability, self.stream, self.run).records)

    def seal(self) -> tuple[str, ...]:
        """Seal every whole line not sealed yet; returns every sealed digest of the run.

        Raises:
            Conflict: another process kept sealing the same run (three tries).
            PolicyError: the factory key is not at hand.
        """
        with self._seal_lock:
            for _ in range(3):
                try:
                    return self._seal_once()
                except Conflict:
                    continue
            raise Conflict(f"could not seal {self.path}: other writers kept sealing it")

    def _seal_once(self) -> tuple[str, ...]:
        segments = sealed_segments(self.supply, self.capability, self.stream, self.run)
        start = segments[-1].end if segments else 0
        try:
            with self.path.open("rb") as f:
                f.seek(start)
                data = f.read()
        except FileNotFoundError:
            data = b""
        data = data[: data.rfind(b"\n") + 1]
        if not data:
            return tuple(str(s.digest) for s in segments)
        records = len(_lines(data, str(self.path)))
        signer = factory_signer(self.supply)
        digest = self.supply.blobs.put_bytes(data)
        with self._lock:
            self._since_seal = 0
        with self.supply.ledger.transaction() as tx:
            now = _segments(
                tx.events(kinds=(SEALED,), subject=self.capability), self.stream, self.run
            )
            if (now[-1].end if now else 0) != start:
                raise Conflict("sealed meanwhile")
            tx.append(
                SEALED,
                self.capability,
                {
                    "capability": self.capability,
                    "stream": self.stream,
                    "run": self.run,
                    "start": start,
                    "end": start + len(data),
                    "records": records,
                    "digest": str(digest),
                },
                signer=signer,
                actor=self.supply.actor,
            )
        return (*(str(s.digest) for s in segments), str(digest))


def evidence_log(supply: Supply, capability: str, stream: str, run: int) -> EvidenceLog:
    return EvidenceLog(supply, capability, stream, run)


def verify_evidence(supply: Supply) -> tuple[int, list[Problem]]:
    """Re-hash every sealed segment, check the segments of each run are contiguous, and
    that each file still holds exactly the sealed bytes; returns (segments, problems)."""
    with supply.ledger.reader() as r:
        events = list(r.events(kinds=(SEALED,)))
    runs: dict[tuple[str, str, int], list[Event]] = {}
    for e in events:
        key = (e.subject, str(e.payload.get("stream")), int(str(e.payload.get("run", -1))))
        runs.setdefault(key, []).append(e)
    problems: list[Problem] = []
    for (capability, stream, run), evs in runs.items():
        where = f"release/{capability}/{stream}-{run}.jsonl"
        segments = _segments(evs, stream, run)
        sealed = bytearray()
        for seg in segments:
            if seg.start != len(sealed):
                problems.append(
                    Problem(where=where, message=f"seal at seq {seg.seq} leaves a gap or overlap")
                )
                break
            try:
                data = supply.blobs.get_bytes(seg.digest)
            except LabError as e:
                problems.append(Problem(where=where, message=f"seal at seq {seg.seq}: {e.message}"))
                break
            if len(data) != seg.end - seg.start:
                problems.append(
                    Problem(where=where, message=f"seal at seq {seg.seq}: wrong byte range")
                )
                break
            sealed += data
        path = _path(supply, capability, stream, run)
        try:
            with path.open("rb") as f:
                prefix = f.read(len(sealed))
        except FileNotFoundError:
            continue  # the store holds the evidence; the working copy is gone
        if prefix != bytes(sealed):
            at = next(
                (i for i, (a, b) in enumerate(zip(prefix, sealed, strict=False)) if a != b),
                min(len(prefix), len(sealed)),
            )
            problems.append(
                Problem(
                    where=where,
                    message=f"edited after it was sealed (first difference at byte {at}); "
                    "reports read the sealed copy in the store",
                )
            )
    return sum(len(v) for v in runs.values()), problems

"""Job inputs on disk: packages materialised read-only for sandboxed jobs, and job folders.

A package is copied out of the store into ``work/inputs/<id>/`` (verified while copying;
an existing copy is re-hashed before reuse, so a tampered cache is rebuilt, never used).
Each job gets a fresh folder under ``work/jobs/``, removed once its results are in the
store (:meth:`Workspace.finish_job`); of a failed job, its ``job.json`` and the tail of
its log are kept for diagnosis under ``work/jobs/failed/``, the newest
:data:`KEPT_FAILED_JOBS` only. Everything under ``work/`` is scratch: the staging and
job folders a killed process left (its pid is in their names) are removed when a lab
opens, and ``verify --all`` reports them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from pathlib import Path

from breedlab.digest import Digest, sha256_stream
from breedlab.registry.blobs import BlobStore, Leftover, running
from breedlab.registry.manifest import Manifest

__all__ = ["KEPT_FAILED_JOBS", "KEPT_LOG_BYTES", "Workspace", "discard"]

#: Failed jobs whose ``job.json`` and log tail stay under ``work/jobs/failed/``.
KEPT_FAILED_JOBS = 5
#: The bytes of a failed job's log that are kept (its end: where a job fails).
KEPT_LOG_BYTES = 1 << 20
_FAILED = "failed"


def discard(folder: Path, *, existed: bool) -> None:
    """Undo a failed write into ``folder``: remove it, or, when it ``existed`` before (an
    empty folder the user chose), remove only what was written into it."""
    for made in folder.iterdir() if existed else (folder,):
        if made.is_dir() and not made.is_symlink():
            shutil.rmtree(made, ignore_errors=True)
        else:
            made.unlink(missing_ok=True)


class Workspace:
    def __init__(self, root: Path, blobs: BlobStore) -> None:
        self.root = root
        self.blobs = blobs

    def job_folder(self, label: str) -> Path:
        """A new, not yet existing folder for one job (this process's pid in its name:
        a job folder whose process died is a leftover)."""
        safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in label)[:40]
        (self.root / "jobs").mkdir(parents=True, exist_ok=True)
        return self.root / "jobs" / f"{safe}.{os.getpid()}-{uuid.uuid4().hex[:12]}"

    def finish_job(self, folder: Path, *, failed: bool) -> None:
        """A job's results are in the store (or it failed): remove its folder. Of a
        failed job, ``job.json`` and the last :data:`KEPT_LOG_BYTES` of ``log.txt`` are
        kept in ``work/jobs/failed/<n>-<job>`` (``n`` counts up); only the newest
        :data:`KEPT_FAILED_JOBS` stay."""
        if failed:
            with contextlib.suppress(OSError):
                kept = self._next_failed(folder.name)
                for name in ("job.json", "log.txt"):
                    with contextlib.suppress(FileNotFoundError):
                        _copy_tail(folder / name, kept / name, KEPT_LOG_BYTES)
                for old in sorted(kept.parent.iterdir())[:-KEPT_FAILED_JOBS]:
                    shutil.rmtree(old, ignore_errors=True)
        shutil.rmtree(folder, ignore_errors=True)

    def _next_failed(self, name: str) -> Path:
        """A new folder for a failed job's log, numbered after the newest (a counter,
        not a time: file times are too coarse to order jobs that fail together)."""
        failed = self.root / "jobs" / _FAILED
        failed.mkdir(parents=True, exist_ok=True)
        while True:
            numbers = [int(n) for p in failed.iterdir() if (n := p.name[:8]).isdigit()]
            kept = failed / f"{max(numbers, default=0) + 1:08d}-{name}"
            with contextlib.suppress(FileExistsError):  # another process took the number
                kept.mkdir()
                return kept

    def materialise(self, package: Digest, manifest: Manifest) -> Path:
        """A read-only folder holding the package's files, verified."""
        folder = self.root / "inputs" / package.hex[:32]
        if folder.is_dir() and self._intact(folder, manifest):
            return folder
        if folder.exists():
            shutil.rmtree(folder)
        # The writer's pid in the name: a staging folder whose writer died is a leftover.
        staging = folder.with_name(f"{folder.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
        staging.mkdir(parents=True)
        try:
            for entry in manifest.files:
                target = staging / entry.path
                target.parent.mkdir(parents=True, exist_ok=True)
                self.blobs.copy_to(entry.digest, target)
                os.chmod(target, 0o444)
            try:
                os.rename(staging, folder)
            except OSError:  # another job materialised it meanwhile
                if not (folder.is_dir() and self._intact(folder, manifest)):
                    raise
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        return folder

    def clean_leftovers(self) -> list[Leftover]:
        """Remove the staging folders of materialisations and the job folders whose
        process died (a killed round). A folder of a live process is kept, and so is a
        staging folder without a pid in its name, and the failed jobs kept for
        diagnosis; a job folder without one predates pids in names: no live process of
        this version made it, and it is removed."""
        inputs, jobs = self.root / "inputs", self.root / "jobs"
        found = [
            *((p, False) for p in (inputs.glob("*.tmp") if inputs.is_dir() else ())),
            *((p, True) for p in (jobs.iterdir() if jobs.is_dir() else ()) if p.name != _FAILED),
        ]
        removed: list[Leftover] = []
        for path, job in sorted(found):
            # <name>.<pid>-<random>[.tmp]: the pid of the process that made it
            named, _, rest = path.name.removesuffix(".tmp").rpartition(".")
            pid_part = rest.partition("-")[0]
            writer = int(pid_part) if named and pid_part.isdigit() else None
            if (writer is None and not job) or (writer is not None and running(writer)):
                continue
            size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
            shutil.rmtree(path, ignore_errors=True)
            removed.append(Leftover(path=str(path), size=size, writer=writer))
        return removed

    @staticmethod
    def _intact(folder: Path, manifest: Manifest) -> bool:
        expected = {e.path: e.sha256 for e in manifest.files}
        found = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
        if found != set(expected):
            return False
        for path, digest in expected.items():
            with contextlib.suppress(OSError), (folder / path).open("rb") as f:
                if sha256_stream(f)[0] == digest:
                    continue
            return False
        return True


def _copy_tail(source: Path, target: Path, limit: int) -> None:
    """Copy the last ``limit`` bytes of ``source`` to ``target``."""
    with source.open("rb") as f:
        f.seek(max(0, f.seek(0, os.SEEK_END) - limit))
        target.write_bytes(f.read())

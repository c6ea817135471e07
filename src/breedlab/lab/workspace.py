"""Job inputs on disk: packages materialised read-only for sandboxed jobs, and job folders.

A package is copied out of the store into ``work/inputs/<id>/`` (verified while copying;
an existing copy is re-hashed before reuse, so a tampered cache is rebuilt, never used).
Each job gets a fresh folder under ``work/jobs/``. Everything under ``work/`` is scratch;
the staging folders a killed process left are removed when a lab opens.
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

__all__ = ["Workspace", "discard"]


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
        """A new, not yet existing folder for one job."""
        safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in label)[:40]
        (self.root / "jobs").mkdir(parents=True, exist_ok=True)
        return self.root / "jobs" / f"{safe}-{uuid.uuid4().hex[:12]}"

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

    def clean_staging(self) -> list[Leftover]:
        """Remove the staging folders of materialisations whose process died (a killed
        round); a folder of a live process, or without a pid in its name, is kept."""
        removed: list[Leftover] = []
        inputs = self.root / "inputs"
        for path in inputs.glob("*.tmp") if inputs.is_dir() else ():
            pid_part = path.name.removesuffix(".tmp").rpartition(".")[2].partition("-")[0]
            if not pid_part.isdigit() or running(int(pid_part)):
                continue
            size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
            shutil.rmtree(path, ignore_errors=True)
            removed.append(Leftover(path=str(path), size=size, writer=int(pid_part)))
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

"""What an import reads: the safe listing of a source file or folder.

The whole source is checked before one byte is stored, so a refused import writes
nothing. Refused (DESIGN §4): symlinks that leave the source folder, special files,
pickle-format weights (``.bin .pt .pth .pkl .ckpt`` and ``.pickle``: unpickling runs
arbitrary code), and empty sources. Files are later opened with ``O_NOFOLLOW`` so a file
swapped for a symlink between this check and the copy is refused too.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from breedlab.errors import InvalidRequest, NotFound
from breedlab.registry.manifest import check_relative_path

__all__ = ["PICKLE_SUFFIXES", "SourceFile", "open_source_file", "scan"]

PICKLE_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"})


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceFile:
    path: str  # relative POSIX path inside the package
    location: Path  # where to read it from
    size: int
    root: Path | None = None  # the source folder; ``location`` lies inside it


def _refuse_pickle(rel: str) -> None:
    suffix = Path(rel).suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        raise InvalidRequest(
            f"refused {rel}: {suffix} weights are pickle-based and unpickling runs code; "
            "convert them to safetensors first"
        )


def scan(source: Path) -> list[SourceFile]:
    """List the files of ``source`` (a file or a folder), sorted by package path.

    Raises:
        NotFound: the source does not exist.
        InvalidRequest: anything refused by the rules above.
    """
    if not source.exists() and not source.is_symlink():
        raise NotFound(f"no such file or folder: {source}")
    if source.is_symlink():
        raise InvalidRequest(f"refused {source}: the source itself is a symlink; pass its target")
    if source.is_file():
        rel = check_relative_path(source.name)
        _refuse_pickle(rel)
        return [SourceFile(path=rel, location=source.resolve(), size=source.stat().st_size)]
    if not source.is_dir():
        raise InvalidRequest(f"refused {source}: not a regular file or folder")
    root = source.resolve()
    files: list[SourceFile] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        for d in list(dirnames):
            if (here / d).is_symlink():
                raise InvalidRequest(
                    f"refused {here / d}: symlinked folders are not imported; copy the folder"
                )
        dirnames.sort()
        for name in sorted(filenames):
            location = here / name
            rel = check_relative_path(location.relative_to(root).as_posix())
            _refuse_pickle(rel)
            st = location.lstat()
            if stat.S_ISLNK(st.st_mode):
                target = location.resolve()
                if not target.is_relative_to(root):
                    raise InvalidRequest(f"refused {rel}: symlink leaves the source ({target})")
                if not target.is_file():
                    raise InvalidRequest(f"refused {rel}: symlink to a non-file ({target})")
                _refuse_pickle(target.name)
                files.append(
                    SourceFile(path=rel, location=target, size=target.stat().st_size, root=root)
                )
                continue
            if not stat.S_ISREG(st.st_mode):
                raise InvalidRequest(f"refused {rel}: not a regular file")
            files.append(SourceFile(path=rel, location=location, size=st.st_size, root=root))
    if not files:
        raise InvalidRequest(f"refused {source}: the folder holds no files (empty package)")
    files.sort(key=lambda f: f.path)
    return files


def open_source_file(f: SourceFile) -> int:
    """Open a scanned file for reading, refusing any symlink swapped in since the scan.

    Inside a source folder the path is walked one component at a time from the folder's
    own descriptor with ``O_NOFOLLOW`` (``openat``), so a sub-folder replaced by a
    symlink after the scan is refused too -- ``O_NOFOLLOW`` on the whole path would only
    guard its last component.
    """
    try:
        if f.root is None:
            return os.open(f.location, os.O_RDONLY | os.O_NOFOLLOW)
        parts = f.location.relative_to(f.root).parts
        fd = os.open(f.root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            for part in parts[:-1]:
                next_fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                os.close(fd)
                fd = next_fd
            return os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW, dir_fd=fd)
        finally:
            os.close(fd)
    except (OSError, ValueError) as e:
        reason = e.strerror if isinstance(e, OSError) else str(e)
        raise InvalidRequest(
            f"refused {f.path}: {reason} (the source changed during import?)"
        ) from e

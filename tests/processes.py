"""Finding and waiting for processes in tests (Linux ``/proc``): sandbox workers of a
folder, and whether a pid is gone. Waits poll with generous bounds, never tight ones."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

__all__ = [
    "alive",
    "descendants",
    "parent_of",
    "sandbox_workers",
    "wait_for_worker",
    "wait_gone",
    "zygotes",
]

#: Generous: the machine may be busy; a process that should die dies in well under this.
BOUND_SECONDS = 60.0


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting to be reaped counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _process_folders() -> list[Path]:
    """``/proc/<pid>`` of every process now."""
    return [entry for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def descendants(pid: int) -> dict[int, str]:
    """Every process below ``pid`` (children, theirs, ...) with its command line."""
    children: dict[int, list[int]] = {}
    for entry in _process_folders():
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    found: dict[int, str] = {}
    todo = list(children.get(pid, []))
    while todo:
        child = todo.pop()
        try:
            argv = (Path("/proc") / str(child) / "cmdline").read_bytes()
        except OSError:
            continue
        found[child] = argv.replace(b"\0", b" ").decode(errors="replace")[:120]
        todo.extend(children.get(child, []))
    return found


def sandbox_workers(under: Path) -> list[int]:
    """Pids of running sandbox workers whose job folder is under ``under``: cold ones
    (``python -m breedlab.sandbox.worker FOLDER/job.json ...``) and children forked by
    the zygote (named ``breedlab-job``, working in their job's ``tmp/``)."""
    found = []
    for entry in _process_folders():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            comm = (entry / "comm").read_text().strip()
            cwd = Path(os.readlink(entry / "cwd")) if comm == "breedlab-job" else None
        except OSError:
            continue
        cold = b"breedlab.sandbox.worker" in argv and any(str(under).encode() in a for a in argv)
        forked = cwd is not None and cwd.is_relative_to(under)
        if (cold or forked) and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def zygotes() -> list[int]:
    """Pids of running zygotes (``python -m breedlab.sandbox.zygote``, named
    ``breedlab-zygote`` once started; the jobs it forks are renamed), whoever started
    them."""
    found = []
    for entry in _process_folders():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        zygote = b"breedlab.sandbox.zygote" in argv and comm != "breedlab-job"
        if zygote and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def parent_of(pid: int) -> int:
    """The parent pid of ``pid`` (0 if it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0
    return int(stat.rsplit(")", 1)[1].split()[1])


def wait_for_worker(under: Path, parent: subprocess.Popen[bytes]) -> int:
    """The pid of a sandbox worker under ``under``, once one runs (``parent`` must not
    end first)."""
    deadline = time.monotonic() + BOUND_SECONDS
    while time.monotonic() < deadline:
        workers = sandbox_workers(under)
        if workers:
            return workers[0]
        if parent.poll() is not None:
            _, err = parent.communicate()
            raise AssertionError(f"the parent ended before any job ran: {err!r}")
        time.sleep(0.05)
    raise AssertionError(f"no sandbox worker started under {under}")


def wait_gone(pid: int) -> bool:
    """Poll until ``pid`` is gone; False if it still runs after the bound."""
    deadline = time.monotonic() + BOUND_SECONDS
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return not alive(pid)

"""Misbehaving jobs for the sandbox's own tests (catalogue ``faults``, never allowlisted).

Each one attempts what the sandbox must contain: a crash, a hang, a memory blow-up, a
write outside its folder, a network connection, a child process, and one that catches
the refusal and pretends all is well. ``breedlab.sandbox.worker`` runs them only when a
job explicitly names the ``faults`` catalogue.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from breedlab.jobs import Job, Log, OutputPackage

__all__ = ["FAULTS"]


def _segfault(job: Job, log: Log) -> tuple[OutputPackage, ...]:
    os.kill(os.getpid(), signal.SIGSEGV)
    return ()


def _hang(job: Job, log: Log) -> tuple[OutputPackage, ...]:
    time.sleep(3600)
    return ()


def _spin(job: Job, log: Log) -> tuple[OutputPackage, ...]:
    while True:
        pass


def _hog_memory(job: Job, log: Log) -> tuple[OutputPackage, ...]:
    blocks = []
    while True:
        blocks.append(bytearray(256 * 1024 * 1024))


def _write_outside(job: Job, log: Log) -> tuple[OutputPackage, ...]:
    target = Path(str(job.params.get("target", "/tmp/breedlab-escape")))
    target.write_text("escaped")
    return ()


def _connect(job: Job, log: Log) -> tuple[OutputPackage, ...]:
    with socket.create_connection(("127.0.0.1", 9), timeout=1):
        pass
    return ()


def _spawn(job: Job, log: Log) -> tuple[OutputPackage, ...]:
    subprocess.run(["/bin/true"], check=False)
    return ()


def _swallow(job: Job, log: Log) -> tuple[OutputPackage, ...]:
    try:
        _write_outside(job, log)
    except PermissionError:
        log("refusal caught; pretending nothing happened")
    return _honest(job, log)


def _honest(job: Job, log: Log) -> tuple[OutputPackage, ...]:
    folder = job.out_dir / "model"
    folder.mkdir()
    (folder / "weights.txt").write_text(f"seed {job.seed}")
    return (OutputPackage(folder="model", kind="model", name="honest", family="torch"),)


FAULTS: Mapping[str, Callable[[Job, Log], tuple[OutputPackage, ...]]] = {
    "segfault": _segfault,
    "hang": _hang,
    "spin": _spin,
    "hog_memory": _hog_memory,
    "write_outside": _write_outside,
    "connect": _connect,
    "spawn": _spawn,
    "swallow": _swallow,
    "honest": _honest,
}

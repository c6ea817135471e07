"""Misbehaving jobs for the sandbox's own tests (catalogue ``faults``, never allowlisted).

Each one attempts what the sandbox must contain: a crash, a hang, a memory blow-up, a
write outside its folder, a network connection, a child process, a signal to its parent
(the zygote, or the lab), and one that catches the refusal and pretends all is well.
``inventory`` logs what a job can see of its confinement (descriptors, environment,
limits, session, threads, network namespace), so the tests can compare a cold start
with a forked one. ``breedlab.sandbox.worker`` runs them only when a job explicitly
names the ``faults`` catalogue.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import sys
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


def _signal_parent(job: Job, log: Log) -> tuple[OutputPackage, ...]:
    # SIGCONT harms no one if the tripwire failed: the attempt is what must be refused
    os.kill(os.getppid(), signal.SIGCONT)
    return ()


def _swallow(job: Job, log: Log) -> tuple[OutputPackage, ...]:
    try:
        _write_outside(job, log)
    except PermissionError:
        log("refusal caught; pretending nothing happened")
    return _honest(job, log)


def _inventory(job: Job, log: Log) -> tuple[OutputPackage, ...]:
    import torch

    listing = f"/proc/{os.getpid()}/fd"
    descriptors = {}
    for name in os.listdir(listing):
        try:
            descriptors[name] = os.readlink(f"{listing}/{name}")
        except FileNotFoundError:
            continue  # the descriptor of the listing itself, closed again
    limits = {
        name: resource.getrlimit(getattr(resource, name))
        for name in ("RLIMIT_AS", "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_CORE")
    }
    seen = {
        "descriptors": descriptors,
        "environment": dict(os.environ),
        "cwd": os.getcwd(),
        "own_session": os.getsid(0) == os.getpid() == os.getpgrp(),
        "threads": len(os.listdir(f"/proc/{os.getpid()}/task")),
        "torch_threads": torch.get_num_threads(),
        "limits": limits,
        "network_namespace": os.readlink(f"/proc/{os.getpid()}/ns/net"),
        "parent": Path(f"/proc/{os.getppid()}/comm").read_text().strip(),
        "flags": [sys.flags.isolated, sys.flags.dont_write_bytecode],
    }
    log("inventory " + json.dumps(seen, sort_keys=True))
    return ()


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
    "signal_parent": _signal_parent,
    "swallow": _swallow,
    "inventory": _inventory,
    "honest": _honest,
}

"""Warm starts (issue 11): a job forked by the zygote is confined exactly like a cold
one, the zygote holds nothing of the lab, and a zygote that dies or cannot start costs
speed, never a guarantee."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from breedlab.jobs import Job
from breedlab.sandbox import FailureKind, JobSpec, Limits, Outcome, run_job
from breedlab.sandbox import warm as warm_starts
from breedlab.sandbox.executors import make_executor
from breedlab.sandbox.runner import _environment
from processes import BOUND_SECONDS, parent_of, sandbox_workers, wait_gone, zygotes

FAST = Limits(memory_mib=2048, cpu_seconds=20, file_mib=64, wall_seconds=60.0)
HANG = Limits(memory_mib=2048, cpu_seconds=600, file_mib=64, wall_seconds=600.0)


def _run(folder: Path, operator: str, *, warm: bool = True, limits: Limits = FAST) -> Outcome:
    job = Job(operator=operator, params={}, seed=3, out_dir=folder.parent / "unused")
    return run_job(JobSpec(job=job, catalogue="faults", limits=limits), folder, warm=warm)


def _our_zygotes() -> list[int]:
    return [z for z in zygotes() if parent_of(z) == os.getpid()]


@pytest.fixture
def fresh() -> Iterator[None]:
    """No zygote of this process before the test, none left after it."""
    warm_starts.shutdown()
    yield
    warm_starts.shutdown()


def _inventory(folder: Path, *, warm: bool) -> dict[str, Any]:
    outcome = _run(folder, "inventory", warm=warm)
    assert outcome.ok, outcome.reason
    [line] = [x for x in outcome.log.splitlines() if x.startswith("inventory ")]
    seen: dict[str, Any] = json.loads(line.removeprefix("inventory "))
    # what differs by nature: the job's own folder, the pipe's inode, the result's fd
    text = json.dumps(seen).replace(str(folder), "FOLDER")
    seen = json.loads(text)
    seen["descriptors"] = sorted(
        t.split("[")[0] for t in seen["descriptors"].values()
    )  # "pipe:[123]" -> "pipe:"
    return seen


def test_a_forked_job_is_confined_exactly_like_a_cold_one(tmp_path: Path) -> None:
    forked = _inventory(tmp_path / "warm", warm=True)
    cold = _inventory(tmp_path / "cold", warm=False)
    ours = os.readlink(f"/proc/{os.getpid()}/ns/net")
    for seen in (forked, cold):
        assert seen.pop("network_namespace") != ours  # unshared (root on these machines)
    assert forked.pop("parent") == "breedlab-zygote"
    assert cold.pop("parent") != "breedlab-zygote"  # the lab's waiting thread
    assert forked == cold
    # and what both are: nothing of the lab's but the log and the result pipe
    assert forked["descriptors"] == ["/dev/null", "FOLDER/log.txt", "FOLDER/log.txt", "pipe:"]
    assert forked["cwd"] == "FOLDER/tmp"
    assert forked["environment"]["HOME"] == forked["environment"]["TMPDIR"] == "FOLDER/tmp"
    assert forked["own_session"] and forked["threads"] == 1 and forked["torch_threads"] == 1
    assert forked["limits"]["RLIMIT_AS"] == [2048 << 20, 2048 << 20]
    assert forked["limits"]["RLIMIT_CORE"] == [0, 0]
    assert forked["flags"] == [1, 1]  # -I -B


def test_the_zygote_holds_no_secret_and_no_descriptor_of_the_lab(
    tmp_path: Path, fresh: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "hunter2")
    ledger = (tmp_path / "ledger.sqlite").open("wb")  # stands for anything the lab holds open
    try:
        assert _run(tmp_path / "job", "honest").ok
        [zygote] = _our_zygotes()
        environ = Path(f"/proc/{zygote}/environ").read_bytes()
        cmdline = Path(f"/proc/{zygote}/cmdline").read_bytes().split(b"\0")
        held = _descriptors(zygote)
        threads = len(list(Path(f"/proc/{zygote}/task").iterdir()))
        said = Path(f"/proc/{zygote}/fd/2").read_bytes()  # its stderr, unlinked
    finally:
        ledger.close()
    assert b"hunter2" not in environ and b"AWS_" not in environ
    assert b"OMP_NUM_THREADS=1" in environ.split(b"\0")
    assert cmdline[1:5] == [b"-I", b"-B", b"-m", b"breedlab.sandbox.zygote"]
    assert str(tmp_path) not in " ".join(held)
    files = {h for h in held if h.startswith("/")} - {"/dev/null"}  # stdin, stdout
    [stderr] = files  # its own, unlinked: read back if it fails to start
    assert "/breedlab-zygote-" in stderr and stderr.endswith("stderr.txt (deleted)")
    assert threads == 1  # single-threaded between forks
    assert said == b""  # a clean start: no warning (runpy's, of a module imported twice)


def test_the_local_executor_starts_the_zygote_before_the_first_job(
    tmp_path: Path, fresh: None
) -> None:
    executor = make_executor("local", 2)
    early = _started_zygote()  # importing torch while the command prepares its jobs
    job = Job(operator="honest", params={}, seed=3, out_dir=tmp_path / "unused")
    [outcome] = executor.run([(JobSpec(job=job, catalogue="faults", limits=FAST), tmp_path / "j")])
    assert outcome.ok, outcome.reason
    assert _our_zygotes() == [early]  # the job was forked by it


def test_a_zygote_started_early_and_never_used_leaves_nothing_behind(fresh: None) -> None:
    make_executor("local", 1)  # a command that then runs no job
    early = _started_zygote()
    home = Path(os.readlink(f"/proc/{early}/cwd"))  # its private folder, for its imports
    assert home.name.startswith("breedlab-zygote-")
    warm_starts.shutdown()  # as at exit
    assert wait_gone(early)
    assert not home.exists()


def _started_zygote() -> int:
    """The zygote this process has just started: waited for, since ``Popen`` may return
    before ``/proc/PID/cmdline`` shows the new program's arguments."""
    deadline = time.monotonic() + BOUND_SECONDS
    while not (found := _our_zygotes()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(found) == 1, [(z, parent_of(z)) for z in zygotes()]
    return found[0]


def _descriptors(pid: int) -> list[str]:
    """What ``pid``'s open descriptors point at; one closed meanwhile is left out (the
    zygote closes a finished job's socket when it gets to it)."""
    held = []
    for entry in Path(f"/proc/{pid}/fd").iterdir():
        try:
            held.append(os.readlink(entry))
        except FileNotFoundError:
            continue
    return held


def test_a_dead_zygote_is_replaced_for_the_next_job(tmp_path: Path, fresh: None) -> None:
    assert _run(tmp_path / "first", "honest").ok
    [old] = _our_zygotes()
    os.kill(old, signal.SIGKILL)
    assert wait_gone(old)
    outcome = _run(tmp_path / "second", "honest")
    assert outcome.ok, outcome.reason
    [new] = _our_zygotes()
    assert new != old


def test_a_job_dies_with_its_zygote_and_ends_as_a_crash(tmp_path: Path, fresh: None) -> None:
    outcomes: list[Outcome] = []
    runner = threading.Thread(target=lambda: outcomes.append(_run(tmp_path / "job", "hang")))
    runner.start()
    try:
        worker = _wait_for_job(tmp_path, runner)
        [zygote] = _our_zygotes()
        assert parent_of(worker) == zygote
        os.kill(zygote, signal.SIGKILL)
        runner.join(BOUND_SECONDS)
        assert not runner.is_alive(), "the runner still waits for a job whose zygote died"
        assert wait_gone(worker), "a job outlived its zygote"
    finally:
        for pid in sandbox_workers(tmp_path):
            os.kill(pid, signal.SIGKILL)
        runner.join(BOUND_SECONDS)
    [outcome] = outcomes
    assert outcome.failure is FailureKind.CRASH
    assert "zygote" in outcome.reason
    assert _run(tmp_path / "next", "honest").ok  # and the next job gets a new zygote


def test_a_retired_zygote_lets_its_running_job_end_and_then_ends(
    tmp_path: Path, fresh: None
) -> None:
    outcomes: list[Outcome] = []
    runner = threading.Thread(
        target=lambda: outcomes.append(_run(tmp_path / "job", "hang", limits=HANG))
    )
    runner.start()
    try:
        worker = _wait_for_job(tmp_path, runner)
        [old] = _our_zygotes()
        zygote = warm_starts.shared(_environment)
        assert zygote is not None and zygote.proc.pid == old
        warm_starts.retire(zygote)  # what a refused job does
        assert _run(tmp_path / "meanwhile", "honest").ok  # on a fresh zygote
        assert old in _our_zygotes() and len(_our_zygotes()) == 2
        assert parent_of(worker) == old  # still running, not killed by the retirement
        os.killpg(worker, signal.SIGKILL)
        runner.join(BOUND_SECONDS)
        assert not runner.is_alive()
    finally:
        for pid in sandbox_workers(tmp_path):
            os.kill(pid, signal.SIGKILL)
        runner.join(BOUND_SECONDS)
    [outcome] = outcomes
    assert outcome.failure is FailureKind.CRASH and "SIGKILL" in outcome.reason
    assert wait_gone(old)  # released its last job: closed


def test_a_malformed_request_is_refused_and_the_zygote_serves_on(tmp_path: Path) -> None:
    zygote = warm_starts.Zygote.start(_environment)
    try:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with (tmp_path / "log").open("wb") as log:
            r, w = os.pipe()
            socket.send_fds(zygote.control, [b"{not json"], [theirs.fileno(), log.fileno(), w])
            for fd in (theirs.fileno(), r, w):
                os.close(fd)
            theirs.detach()
        ours.settimeout(BOUND_SECONDS)
        reply = json.loads(ours.recv(warm_starts.MAX_MESSAGE))
        ours.close()
        assert "JSONDecodeError" in reply["error"] and "pid" not in reply
        assert zygote.alive()
    finally:
        zygote.close()
    assert not zygote.alive()


def test_a_zygote_that_cannot_start_leaves_the_jobs_to_cold_starts(
    tmp_path: Path, fresh: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(warm_starts, "MODULE", "breedlab.sandbox.no_such_zygote")
    with caplog.at_level(logging.WARNING, logger="breedlab.sandbox.warm"):
        first = _run(tmp_path / "first", "honest")
        second = _run(tmp_path / "second", "write_outside")
    assert first.ok, first.reason
    assert second.failure is FailureKind.ESCAPE  # confined all the same
    assert _our_zygotes() == []
    [record] = caplog.records  # said once, not once per job
    assert "jobs start cold" in record.getMessage()
    assert "No module named breedlab.sandbox.no_such_zygote" in record.getMessage()


def _wait_for_job(under: Path, runner: threading.Thread) -> int:
    """The pid of the sandbox job under ``under``, once it runs."""
    deadline = time.monotonic() + BOUND_SECONDS
    while time.monotonic() < deadline:
        found = sandbox_workers(under)
        if found:
            return found[0]
        assert runner.is_alive(), "the job ended before it was seen running"
        time.sleep(0.05)
    raise AssertionError(f"no sandbox job started under {under}")

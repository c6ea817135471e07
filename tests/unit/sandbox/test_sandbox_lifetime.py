"""A sandbox job never outlives the lab process that started it (issue 10, "Interrupts and
cleanup"): a SIGKILLed parent takes its workers with it (``PR_SET_PDEATHSIG``), and
SIGINT or SIGTERM kills the running job's process group, starts no queued job and ends
in ``Interrupted``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from breedlab import interrupts
from breedlab.errors import Interrupted
from processes import alive, parent_of, wait_for_worker, wait_gone, zygotes

CHILD = Path(__file__).with_name("lifetime_child.py")


def _start(mode: str, where: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(CHILD), mode, str(where)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.mark.parametrize("mode", ["orphan", "orphan-cold"])
def test_a_worker_dies_with_its_sigkilled_parent(tmp_path: Path, mode: str) -> None:
    parent = _start(mode, tmp_path / "job")
    worker = None
    spares: list[int] = []
    try:
        worker = wait_for_worker(tmp_path, parent)
        spares = [z for z in zygotes() if parent_of(z) == parent.pid]
        assert len(spares) == (1 if mode == "orphan" else 0)
        if spares:
            assert parent_of(worker) == spares[0]  # forked by the lab's own zygote
        parent.kill()
        parent.communicate(timeout=60)
        assert parent.returncode == -signal.SIGKILL
        # The worker sleeps for an hour in its own session: only the kernel's
        # parent-death signal (or its zygote, which saw the lab's end) can end it now.
        assert wait_gone(worker), f"sandbox worker {worker} outlived its SIGKILLed parent"
        for zygote in spares:
            assert wait_gone(zygote), f"zygote {zygote} outlived its SIGKILLed lab"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.communicate()
        for pid in [p for p in (worker, *spares) if p is not None]:
            if alive(pid):  # an orphan left by a failure: end it
                os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_kills_the_running_job_and_starts_no_other(
    tmp_path: Path, sig: signal.Signals
) -> None:
    parent = _start("interrupt", tmp_path)
    try:
        worker = wait_for_worker(tmp_path, parent)
        parent.send_signal(sig)
        out, err = parent.communicate(timeout=60)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.communicate()
    assert parent.returncode == 130, err.decode()
    report = json.loads(out.decode())
    assert report["code"] == "interrupted"
    assert f"interrupted ({sig.name}) while the sandbox job job-0 ran" in report["interrupted"]
    assert not alive(worker)  # killed, not left to sleep out its hour
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job-0"]  # job-1 never started


def test_a_safe_point_raises_only_once_a_stop_is_requested() -> None:
    interrupts.check("anything")  # no request: nothing happens
    before = signal.getsignal(signal.SIGTERM)
    with interrupts.stop_on_signals() as outermost:
        assert outermost
        with interrupts.stop_on_signals() as inner:
            assert not inner
        signal.raise_signal(signal.SIGTERM)  # handled: recorded, not raised here
        assert interrupts.requested() == "SIGTERM"
        with pytest.raises(Interrupted, match=r"interrupted \(SIGTERM\) before the next step"):
            interrupts.check("the next step")
    assert interrupts.requested() is None  # the request ends with the command
    assert signal.getsignal(signal.SIGTERM) == before

"""SIGINT or SIGTERM during ``breedlab round`` (issue 10, "Interrupts and cleanup"), on the
local executor and on Ray: the round stops at its next safe point, its sandbox jobs die
(on Ray with the actors that ran them, and the private cluster the command started is
gone), nothing is recorded after the interrupt, one line says so, the exit code is 130
and the lab verifies, the killed jobs' folders removed when it next opens.

Issue 10 saw ``kill -INT`` of a background round do nothing (a shell starts background
commands with SIGINT ignored): the round finished 48 s later and moved ``@shadow``. On
Ray, ``ray.init`` replaced the round's SIGTERM handler with one that exits at once
(exit 1 and Ray's stack dump, wherever the signal landed), and Ray warned on stderr
about token authentication at every start.
"""

from __future__ import annotations

import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from breedlab.config import CONFIG_NAME
from breedlab.lab import Lab
from processes import BOUND_SECONDS, descendants, sandbox_workers, wait_for_worker, wait_gone

pytestmark = pytest.mark.slow

# The CLI as a shell would start it; ``ignore_sigint`` is what ``breedlab round &`` gets.
_CLI = "import sys; from breedlab.cli import main; sys.exit(main(sys.argv[1:]))"
_CLI_IN_BACKGROUND = "import signal; signal.signal(signal.SIGINT, signal.SIG_IGN); " + _CLI
#: The Ray cases run beside the other Ray tests (one Ray cluster at a time in a run).
_ON_RAY = pytest.mark.xdist_group("ray")


@pytest.fixture(scope="module")
def bootstrapped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lab with digits bootstrapped and its failures mined (a round starts its
    operators at once)."""
    root = tmp_path_factory.mktemp("interrupts") / "lab"
    with Lab.init(root) as lab:
        for name, role in (("alice", "model"), ("erin", "evaluation"), ("pat", "production")):
            lab.generate_key(name, role)
        lab.bootstrap_digits(model_key="alice", evaluation_key="erin", production_key="pat")
        lab.failures("digits")
    return root


def _round_started(root: Path) -> int | None:
    with sqlite3.connect(f"file:{root / 'ledger.db'}?mode=ro", uri=True) as db:
        row = db.execute("SELECT max(seq) FROM events WHERE kind = 'round.started'").fetchone()
    return None if row is None else row[0]


@pytest.mark.parametrize(
    ("sig", "code", "executor"),
    [
        pytest.param(signal.SIGINT, _CLI_IN_BACKGROUND, "local", id="sigint-in-background"),
        pytest.param(signal.SIGTERM, _CLI, "local", id="sigterm"),
        pytest.param(
            signal.SIGINT, _CLI_IN_BACKGROUND, "ray", id="ray-sigint-in-background", marks=_ON_RAY
        ),
        pytest.param(signal.SIGTERM, _CLI, "ray", id="ray-sigterm", marks=_ON_RAY),
    ],
)
def test_an_interrupted_round_kills_its_jobs_records_nothing_more_and_exits_130(
    bootstrapped: Path, tmp_path: Path, sig: signal.Signals, code: str, executor: str
) -> None:
    root = tmp_path / "lab"
    shutil.copytree(bootstrapped, root)
    config = root / CONFIG_NAME
    config.write_text(config.read_text("utf-8").replace('"local"', f'"{executor}"'), "utf-8")
    with Lab.open(root) as lab:
        assert lab.config.executor == executor
        shadow = lab.alias("digits", "shadow")
    # adapter: the longest operator (~15 s), so the signal lands while it runs
    argv = ["--lab", str(root), "round", "digits", "--operators", "adapter"]
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        worker = wait_for_worker(root, proc)
        deadline = time.monotonic() + BOUND_SECONDS
        while (started := _round_started(root)) is None:
            assert time.monotonic() < deadline, "the round never started"
            time.sleep(0.05)
        below = descendants(proc.pid)  # on Ray: its GCS, raylet, workers, actors and jobs
        assert worker in below
        if executor == "ray":
            assert any("ray::_SandboxWorker" in argv for argv in below.values()), below
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=BOUND_SECONDS)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    lines = err.decode().strip().splitlines()
    assert proc.returncode == 130, lines
    assert len(lines) == 1, lines
    assert f"interrupted ({sig.name})" in lines[0]
    assert f"nothing was recorded after event {started} (round.started)" in lines[0]
    left = {pid: argv for pid, argv in below.items() if not wait_gone(pid)}
    assert left == {}, left  # no job, and on Ray no actor or cluster process, runs on
    assert sandbox_workers(root) == []
    with Lab.open(root) as lab:
        after = [e.kind for e in lab.events() if e.seq > started]
        assert set(after) <= {"checkpoint.signed"}, after  # no candidate, decision or move
        assert lab.alias("digits", "shadow") == shadow
        lab.verify_ledger()
        store = lab.verify_store()
    assert not store.problems
    # the killed jobs' folders: removed when the lab opened again, and reported
    assert store.cleaned and all("/work/jobs/" in c.where for c in store.cleaned)
    assert [p.name for p in (root / "work" / "jobs").iterdir() if p.name != "failed"] == []

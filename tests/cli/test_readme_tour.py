"""The README's tour runs as written (issue 10): every ``sh`` block of "A tour of the
CLI", in order, in one shell, in a fresh folder, with nothing but the installed
``breedlab`` on the PATH -- stage 3's server in the background and its traffic included.
A command that fails fails the test and names itself (with the seconds since the start,
to show where the time goes)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"

pytestmark = pytest.mark.slow


def tour_blocks() -> list[str]:
    text = README.read_text("utf-8")
    tour = text[text.index("## A tour of the CLI") :]
    tour = tour[: tour.index("\n## ", 1)]
    return re.findall(r"```sh\n(.*?)```", tour, re.DOTALL)


def test_the_tour_has_every_stage_as_a_runnable_block() -> None:
    blocks = tour_blocks()
    assert [b.splitlines()[0] for b in blocks] == [
        "# Stage 0: the boundary",
        "# Stage 1: the immutable supply chain",
        "# Stage 2: the challenger loop",
        "# Stage 3: release controls, against a server on this machine",
        "# The ledger",
    ]


def test_the_readme_tour_runs_as_written(tmp_path: Path) -> None:
    script = "set -euo pipefail\nPS4='+ [${SECONDS}s] '\nset -x\n" + "\n".join(tour_blocks())
    bin_dir = Path(sys.executable).parent  # the venv's breedlab
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": str(tmp_path),
        "TMPDIR": str(tmp_path),  # where the tour's `mktemp -d` lands
        "COLUMNS": "100",
    }
    # Files, not pipes: stage 3's server runs in the background, and a pipe it inherited
    # would keep a failed run's output from ending. Its own session, so a run that fails
    # before the block stops the server leaves nothing behind.
    out_file, err_file = tmp_path / "tour.out", tmp_path / "tour.err"
    with out_file.open("w") as stdout, err_file.open("w") as stderr:
        shell = subprocess.Popen(
            ["bash", "-c", script],
            cwd=tmp_path,
            env=env,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
        try:
            code = shell.wait(timeout=2400)  # a round, its reproductions, a server: busy host
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(shell.pid, signal.SIGKILL)
            shell.wait()
    out, err = out_file.read_text(), err_file.read_text()
    trace = [line for line in err.splitlines() if line.startswith("+ ")]
    assert code == 0, f"failed at {trace[-1:]}:\n{err[-3000:]}"
    assert "Traceback" not in out + err
    assert "registered capability digits" in out
    assert "wrote digits-data (data) and my-model (a model)" in out
    assert out.count("ids match") >= 2  # reconstruct and reproduce
    # Stage 3: the round's winner went through shadow and canary, was promoted and
    # rolled back, each step seen by the server the traffic went to.
    assert "shadow started for digits" in out
    assert re.search(r"sent 200 request\(s\) from digits@data-dev \S+ to \S+: 200 answered", out)
    canary = re.search(
        r"sent 500 request\(s\) .*: 500 answered, 0 failed\s+answered by\s+(.*)", out
    )
    assert canary and re.match(r"canary \d+, champion \d+", canary[1]), canary
    assert re.search(r"canary sha256:\w+: passed, stage 0 at\s+50%", out)
    promoted = re.search(r"promoted (sha256:\w+) to digits@champion", out)
    rolled = re.search(r"rolled back digits@champion to\s+(sha256:\w+)", out)
    assert promoted and rolled
    served = re.findall(
        r"sent 20 request\(s\) .*\s+answered by\s+champion 20\s+packages\s+(\S+) 20", out
    )
    assert served == [promoted[1][:19], rolled[1][:19]]  # the server followed both moves
    assert "alice's signature no longer counts" in out  # verify failed after the revocation

"""`make demo`'s job, end to end in the suite: the tour must finish on a fresh lab.

A faster round once made the tour reach its promotion inside the champion's minimum
dwell, and nothing in the suite ran the demo; this test runs the tour `breedlab demo`
runs, and checks what it promises (a fault drill aborted, a promotion, a rollback,
every v1 exit criterion passed) and that the lab it leaves verifies."""

from __future__ import annotations

from pathlib import Path

import pytest

from breedlab.cli import main
from breedlab.demo import Step, run_demo

pytestmark = pytest.mark.slow


def test_the_demo_tour_finishes_and_leaves_a_lab_that_verifies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    steps: list[Step] = []
    # --quick: the reviews half is tests/integration/test_reviews_round.py, which runs the
    # same demo_reviews.reviews_tour on its own lab (one MiniLM round in the suite, not two).
    run_demo(tmp_path / "demo-lab", steps.append, quick=True)
    titles = [s.title for s in steps]
    assert {"canary abort", "promote", "rollback"} <= set(titles), titles
    criteria = [s.detail for s in steps if s.title == "exit criteria"]
    assert criteria and all(d.startswith("pass: ") for d in criteria), criteria
    capsys.readouterr()
    assert main(["--lab", str(tmp_path / "demo-lab"), "verify", "--all"]) == 0

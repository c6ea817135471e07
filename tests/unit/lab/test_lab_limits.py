"""Every sandbox job has a wall-clock limit, set in ``[sandbox]`` (issue 10: a job over it
is killed and recorded as failed, never a hang -- the sandbox's own tests show the kill,
``tests/unit/sandbox/test_sandbox_escapes.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from breedlab.config import CONFIG_NAME, load_config
from breedlab.errors import ConfigError
from breedlab.lab import Lab
from breedlab.lab.operator_runs import Plan, run_plans
from breedlab.sandbox import FailureKind, JobSpec, Outcome
from breedlab.sandbox.executors import OnDone


class _Recording:
    """An executor that runs nothing: it keeps the specs and reports each job timed out."""

    def __init__(self) -> None:
        self.specs: list[JobSpec] = []

    def run(
        self, jobs: Sequence[tuple[JobSpec, Path]], on_done: OnDone | None = None
    ) -> list[Outcome]:
        self.specs.extend(spec for spec, _ in jobs)
        return [
            Outcome(
                ok=False,
                failure=FailureKind.TIMEOUT,
                reason=f"wall-clock limit of {spec.limits.wall_seconds:g} s",
                outputs=(),
                result={},
                log="",
                wall_seconds=spec.limits.wall_seconds,
                peak_rss_kib=0,
                network_isolated=True,
                out_dir=folder / "out",
            )
            for spec, folder in jobs
        ]


def _configure(root: Path, text: str) -> None:
    config = root / CONFIG_NAME
    config.write_text(config.read_text("utf-8") + text, "utf-8")


def test_operator_jobs_run_under_the_configured_wall_clock_limit(lab: Lab) -> None:
    root = lab.config.root
    lab.close()
    _configure(root, "\n[sandbox]\noperator_wall_seconds = 7\nevaluation_wall_seconds = 5\n")
    with Lab.open(root) as configured:
        assert configured.config.evaluation_wall_seconds == 5
        _, contract = configured.capability("digits")
        executor = _Recording()
        plan = Plan(operator="train", label="train/slow", params={}, parents=())
        [generated] = run_plans(
            configured.supply, [plan], contract, executor=executor, round_id="round-1"
        )
        [failed] = [e for e in configured.events() if e.kind == "candidate.failed"]
    assert [spec.limits.wall_seconds for spec in executor.specs] == [7.0]
    assert generated.failure_kind == "timeout"
    assert failed.payload["failure"] == "timeout"
    assert failed.payload["reason"] == "wall-clock limit of 7 s"


def test_a_wall_clock_limit_below_one_second_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "lab"
    Lab.init(root).close()
    _configure(root, "\n[sandbox]\noperator_wall_seconds = 0\n")
    with pytest.raises(ConfigError, match=r"'sandbox\.operator_wall_seconds' must be at least 1"):
        load_config(root)

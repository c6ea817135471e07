"""Each sandbox escape attempt is contained and ends as a failure with its reason
(DESIGN §8); an honest job's outputs come back. Every test runs twice: with the job
forked by the zygote (the default) and started cold (the fallback)."""

from __future__ import annotations

from pathlib import Path

import pytest

from breedlab.jobs import Job
from breedlab.sandbox import FailureKind, JobSpec, Limits, run_job

FAST = Limits(memory_mib=2048, cpu_seconds=20, file_mib=64, wall_seconds=30.0)


@pytest.fixture(params=[True, False], ids=["warm", "cold"])
def warm(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def _run(tmp_path: Path, operator: str, warm: bool, limits: Limits = FAST, **params: str) -> object:
    job = Job(operator=operator, params=params, seed=7, out_dir=tmp_path / "unused")
    spec = JobSpec(job=job, catalogue="faults", limits=limits)
    return run_job(spec, tmp_path / "job", warm=warm)


def test_an_honest_job_returns_its_outputs_inside_its_folder(tmp_path: Path, warm: bool) -> None:
    outcome = _run(tmp_path, "honest", warm)
    assert outcome.ok, outcome.reason  # type: ignore[attr-defined]
    [output] = outcome.outputs  # type: ignore[attr-defined]
    assert (outcome.out_dir / output.folder / "weights.txt").read_text() == "seed 7"  # type: ignore[attr-defined]
    assert outcome.network_isolated  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("operator", "kind", "words"),
    [
        ("segfault", FailureKind.CRASH, "SIGSEGV"),
        ("write_outside", FailureKind.ESCAPE, "write outside"),
        ("connect", FailureKind.NETWORK, "network access refused"),
        ("spawn", FailureKind.ESCAPE, "starting a process refused"),
        ("swallow", FailureKind.ESCAPE, "the job caught it"),
        ("signal_parent", FailureKind.ESCAPE, "signalling another process refused"),
        ("hog_memory", FailureKind.MEMORY, "address-space limit"),
    ],
)
def test_each_escape_attempt_is_contained_with_a_reason(
    tmp_path: Path, operator: str, kind: FailureKind, words: str, warm: bool
) -> None:
    target = tmp_path / "escaped.txt"
    outcome = _run(tmp_path, operator, warm, target=str(target))
    assert not outcome.ok  # type: ignore[attr-defined]
    assert outcome.failure is kind, outcome.reason  # type: ignore[attr-defined]
    assert words in outcome.reason  # type: ignore[attr-defined]
    assert not target.exists()
    assert outcome.outputs == ()  # type: ignore[attr-defined]


def test_a_hanging_job_is_killed_at_the_wall_clock_limit(tmp_path: Path, warm: bool) -> None:
    outcome = _run(
        tmp_path, "hang", warm, Limits(memory_mib=2048, cpu_seconds=20, wall_seconds=3.0)
    )
    assert outcome.failure is FailureKind.TIMEOUT  # type: ignore[attr-defined]
    assert outcome.wall_seconds < 20  # type: ignore[attr-defined]


def test_a_spinning_job_is_stopped_by_the_cpu_limit(tmp_path: Path, warm: bool) -> None:
    outcome = _run(
        tmp_path, "spin", warm, Limits(memory_mib=2048, cpu_seconds=3, wall_seconds=60.0)
    )
    assert outcome.failure is FailureKind.CPU, outcome.reason  # type: ignore[attr-defined]


def test_an_operator_outside_the_catalogue_is_refused(tmp_path: Path, warm: bool) -> None:
    outcome = _run(tmp_path, "rm_rf", warm)
    assert outcome.failure is FailureKind.ERROR  # type: ignore[attr-defined]
    assert "not in the faults catalogue" in outcome.reason  # type: ignore[attr-defined]


def test_the_environment_is_scrubbed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "hunter2")
    from breedlab.sandbox.runner import _environment

    env = _environment(tmp_path)
    assert "AWS_SECRET_ACCESS_KEY" not in env
    assert env["OMP_NUM_THREADS"] == "1" and env["HF_HUB_OFFLINE"] == "1"

"""The Ray executor runs the same sandboxed jobs as the local one, with the same outcomes
(each job is still ``run_job``'s subprocess), on reused workers of a private cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from breedlab.jobs import Job
from breedlab.sandbox import FailureKind, JobSpec, Limits
from breedlab.sandbox.executors import LocalExecutor, make_executor

pytestmark = [pytest.mark.usefixtures("ray_cluster"), pytest.mark.xdist_group("ray")]

FAST = Limits(memory_mib=2048, cpu_seconds=20, file_mib=64, wall_seconds=30.0)
OPERATORS = ("honest", "segfault", "connect", "write_outside", "hog_memory", "honest")


def _jobs(tmp_path: Path, name: str) -> list[tuple[JobSpec, Path]]:
    jobs = []
    for i, operator in enumerate(OPERATORS):
        job = Job(
            operator=operator,
            params={"target": str(tmp_path / "escaped.txt")},
            seed=7,
            out_dir=tmp_path / "unused",
        )
        jobs.append((JobSpec(job=job, catalogue="faults", limits=FAST), tmp_path / f"{name}{i}"))
    return jobs


def _summary(outcome: object) -> tuple[object, ...]:
    return (
        outcome.ok,  # type: ignore[attr-defined]
        outcome.failure,  # type: ignore[attr-defined]
        outcome.reason,  # type: ignore[attr-defined]
        tuple(str(o.to_json()) for o in outcome.outputs),  # type: ignore[attr-defined]
        outcome.network_isolated,  # type: ignore[attr-defined]
    )


def test_ray_jobs_are_sandboxed_and_end_like_local_ones(tmp_path: Path) -> None:
    ray = make_executor("ray", 2)
    seen: list[int] = []
    outcomes = ray.run(_jobs(tmp_path, "ray"), on_done=lambda i, _: seen.append(i))
    local = LocalExecutor(2).run(_jobs(tmp_path, "local"))

    assert sorted(seen) == list(range(len(OPERATORS)))
    assert [_summary(o) for o in outcomes] == [_summary(o) for o in local]
    assert [o.failure for o in outcomes] == [
        None,
        FailureKind.CRASH,
        FailureKind.NETWORK,
        FailureKind.ESCAPE,
        FailureKind.MEMORY,
        None,
    ]
    assert not (tmp_path / "escaped.txt").exists()


def test_ray_workers_are_reused_across_runs(tmp_path: Path) -> None:
    import ray

    from breedlab.sandbox import ray_executor

    make_executor("ray", 2).run(_jobs(tmp_path, "a")[:1])
    first = [a._actor_id for a in ray_executor._actors]
    make_executor("ray", 2).run(_jobs(tmp_path, "b")[:1])
    assert [a._actor_id for a in ray_executor._actors] == first
    [outcome] = make_executor("ray", 1).run(_jobs(tmp_path, "c")[:1])  # resized, not stuck
    assert outcome.ok and len(ray_executor._actors) == 1
    address = ray.get_runtime_context().gcs_address
    assert address.startswith("127.0.0.1:"), address  # loopback only

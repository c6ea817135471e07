"""Executors: where sandboxed jobs run in parallel, behind one small interface.

``local`` (the default) keeps ``workers`` jobs in flight on this machine; each job is
still its own sandboxed process (:func:`breedlab.sandbox.runner.run_job`, forked by the
zygote, which :func:`make_executor` starts early), so the pool only schedules. ``ray``
(scale-out) runs the same function as Ray tasks. Results come back in submission order;
``on_done`` hears about each as it finishes, for progress displays. An interrupt
(``breedlab.interrupts``) kills the running jobs, starts no queued one and raises
:class:`~breedlab.errors.Interrupted`.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Protocol

from breedlab.errors import ConfigError
from breedlab.sandbox.runner import JobSpec, OnDone, Outcome, run_job, warm_up

__all__ = ["Executor", "LocalExecutor", "OnDone", "make_executor"]


class Executor(Protocol):
    def run(
        self, jobs: Sequence[tuple[JobSpec, Path]], on_done: OnDone | None = None
    ) -> list[Outcome]:
        """Run every ``(spec, folder)``; outcomes in the order given."""
        ...


class LocalExecutor:
    """A pool of ``workers`` concurrent sandbox processes on this machine."""

    def __init__(self, workers: int = 2) -> None:
        if workers < 1:
            raise ConfigError("executor workers must be at least 1")
        self.workers = workers

    def run(
        self, jobs: Sequence[tuple[JobSpec, Path]], on_done: OnDone | None = None
    ) -> list[Outcome]:
        results: list[Outcome | None] = [None] * len(jobs)
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="sandbox") as pool:
            futures = {
                pool.submit(run_job, spec, folder): i for i, (spec, folder) in enumerate(jobs)
            }
            try:
                for future in as_completed(futures):
                    index = futures[future]
                    outcome = future.result()
                    results[index] = outcome
                    if on_done is not None:
                        on_done(index, outcome)
            except BaseException:  # Interrupted, or a bug: start no queued job
                pool.shutdown(wait=True, cancel_futures=True)
                raise
        return [r for r in results if r is not None]


def make_executor(kind: str, workers: int, *, ray_address: str = "") -> Executor:
    """The executor named by the lab's config (``ray`` is imported only when chosen)."""
    if kind == "local":
        warm_up()  # the zygote imports torch while the command prepares its first jobs
        return LocalExecutor(workers)
    if kind == "ray":
        from breedlab.sandbox.ray_executor import RayExecutor

        return RayExecutor(workers, address=ray_address)
    raise ConfigError(f"executor {kind!r} is not available (known: local, ray)")

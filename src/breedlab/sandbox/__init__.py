"""The sandbox: operator and evaluation jobs, each in its own confined process.

- ``runner``: :func:`run_job` -- lays out a job folder, starts the job's process with a
  scrubbed environment (warm or cold), enforces the wall-clock limit, and turns every
  ending into an Outcome.
- ``worker``: the confined side (network namespace, rlimits, audit-hook tripwire).
- ``zygote``: the warm parent -- torch and the catalogues imported once, single-threaded
  -- that forks one job's process per request, which confines itself as ``worker``.
- ``warm``: the lab's side of the zygote: started on first use, replaced when dead, the
  cold start as fallback.
- ``executors``: where jobs run in parallel: ``local`` (a process pool) or ``ray``
  (``ray_executor``, scale-out: the same jobs on reused Ray workers).
- ``faults``: misbehaving jobs that the sandbox's tests use to attack it.

It sits above the factory and the evaluator (whose catalogues it runs) and below the Lab.
"""

from __future__ import annotations

from breedlab.sandbox.runner import FailureKind, JobSpec, Limits, Outcome, run_job

__all__ = ["FailureKind", "JobSpec", "Limits", "Outcome", "run_job"]

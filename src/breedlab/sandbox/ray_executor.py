"""The Ray executor (scale-out, the ``breedlab[ray]`` extra): the same sandboxed jobs as
Ray actor calls.

Each job is still :func:`breedlab.sandbox.runner.run_job` -- the sandboxed subprocess,
its limits and its outcome are identical to the local executor's; Ray only decides on
which worker process (and machine) it starts. Workers are long-lived actors, one per
``workers``, reused for every job of the process, so imports are paid once per worker.

Safe on a shared machine (notes/scale-out.md, "Ray gotchas"):

- no address: a private cluster, ``ray.init(address="local")`` -- never an address file
  left by someone else's ``ray start`` -- bound to 127.0.0.1, no dashboard, no usage
  stats, Ray's token authentication (its default for a new cluster; the warning it logs
  about that on stderr at every start is silenced); shut down at exit, and only because
  this process started it;
- an address: an existing cluster is joined, and left running at exit.
- never ``ray stop`` (it kills every Ray process on the machine).

An interrupt (``breedlab.interrupts``) is seen within :data:`_POLL_SECONDS`: the actors
running jobs are killed (their sandboxed jobs die with them) and the run raises
:class:`~breedlab.errors.Interrupted`. ``ray.init`` installs a SIGTERM handler that
exits at once; the command's own handlers are put back after it.

Job folders are plain paths: on a multi-machine cluster the lab's ``work/`` folder must
be on a filesystem every node mounts at the same path. Specs and outcomes travel in
Ray's own serialisation between the lab's processes; model bytes never do (they go
through the object store, by digest).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from breedlab import interrupts
from breedlab.errors import ConfigError, Interrupted, LabError
from breedlab.sandbox.runner import JobSpec, OnDone, Outcome, run_job

__all__ = ["RayExecutor", "shutdown"]

#: Memory for the private cluster's object store: only specs and outcomes pass through it.
OBJECT_STORE_BYTES = 100 << 20
#: How long the driver waits for a job before it looks for an interrupt again.
_POLL_SECONDS = 0.5
_AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"

_lock = threading.Lock()
_started_here = False
#: The process's one pool of workers; resized (old actors killed) if another size is asked.
_actors: list[Any] = []


class _SandboxWorker:
    """A Ray actor: one long-lived worker process that runs sandboxed jobs."""

    def run(self, spec: JobSpec, folder: str) -> Outcome:
        return run_job(spec, Path(folder))


def _connect(address: str, cpus: int) -> Any:
    """Import Ray and join or start the cluster once per process."""
    global _started_here
    if not address:
        # Before importing Ray: local-only node (127.0.0.1, not the host's interface).
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ImportError as e:  # pragma: no cover - the extra is part of dev
        raise ConfigError("executor 'ray' needs the breedlab[ray] extra") from e
    if ray.is_initialized():
        return ray
    try:
        if address:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        else:
            # "Token authentication is enabled ..." on every start: a line on the stderr
            # of every command that is no news (setting RAY_AUTH_MODE would silence it
            # too, but a process that imported Ray before keeps its mode from then).
            logging.getLogger(_AUTH_LOGGER).setLevel(logging.ERROR)
            ray.init(
                address="local",
                num_cpus=max(cpus, os.cpu_count() or 1),
                object_store_memory=OBJECT_STORE_BYTES,
                include_dashboard=False,
                logging_level=logging.WARNING,
                log_to_driver=False,
            )
            _started_here = True
            atexit.register(shutdown)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise ConfigError(f"cannot start or join the Ray cluster {address or 'local'}: {e}") from e
    finally:
        interrupts.reclaim()  # its SIGTERM handler would exit mid-step
    return ray


def shutdown() -> None:
    """Shut down the private cluster if this process started it (never anyone else's)."""
    global _started_here
    with _lock:
        _actors.clear()  # the actors end with the cluster (or with this driver)
        if _started_here:
            import ray

            ray.shutdown()
            _started_here = False


def _stop(ray: Any, busy: list[Any]) -> None:
    """Kill the busy actors: their sandboxed jobs die with them (``PR_SET_PDEATHSIG``)."""
    with _lock:
        for actor in busy:
            ray.kill(actor)
        _actors.clear()  # a fresh pool next time


class RayExecutor:
    """``workers`` long-lived Ray actors, each running one sandboxed job at a time."""

    def __init__(self, workers: int = 2, *, address: str = "") -> None:
        if workers < 1:
            raise ConfigError("executor workers must be at least 1")
        self.workers = workers
        self.address = address

    def _pool(self) -> tuple[Any, list[Any]]:
        with _lock:
            ray = _connect(self.address, self.workers)
            if len(_actors) != self.workers:
                cpus = ray.cluster_resources().get("CPU", 0)
                if _started_here and cpus < self.workers:
                    raise ConfigError(
                        f"{self.workers} workers asked of a private Ray cluster of {cpus:g} "
                        "CPUs; start it with more workers first, or lower --workers"
                    )
                for old in _actors:  # free their CPUs for the new pool
                    ray.kill(old)
                actor = ray.remote(num_cpus=1)(_SandboxWorker)
                _actors[:] = [actor.remote() for _ in range(self.workers)]
            return ray, list(_actors)

    def run(
        self, jobs: Sequence[tuple[JobSpec, Path]], on_done: OnDone | None = None
    ) -> list[Outcome]:
        ray, idle = self._pool()
        results: list[Outcome | None] = [None] * len(jobs)
        waiting = list(enumerate(jobs))
        pending: dict[Any, tuple[int, Any]] = {}
        try:
            while waiting or pending:
                while idle and waiting:
                    index, (spec, folder) = waiting.pop(0)
                    worker = idle.pop()
                    pending[worker.run.remote(spec, str(folder))] = (index, worker)
                # A bounded wait: this (main) thread runs the signal handlers in between.
                done, _ = ray.wait(list(pending), num_returns=1, timeout=_POLL_SECONDS)
                signal_name = interrupts.requested()
                if signal_name is not None:
                    _stop(ray, [worker for _, worker in pending.values()])
                    raise Interrupted(
                        f"interrupted ({signal_name}) with {len(pending)} sandbox job(s) "
                        "running on Ray; their workers were killed"
                    )
                for ref in done:
                    index, worker = pending.pop(ref)
                    outcome: Outcome = ray.get(ref)
                    idle.append(worker)
                    results[index] = outcome
                    if on_done is not None:
                        on_done(index, outcome)
        except ray.exceptions.RayError as e:
            with _lock:
                _actors.clear()  # a dead worker: start a fresh pool next time
            raise LabError(f"the Ray cluster failed to run a job: {e}") from e
        return [r for r in results if r is not None]

"""Benchmark: what starting one sandbox job costs, warm (forked by the zygote) and cold.

Runs the ``honest`` fault job (it writes one small file) ``--jobs`` times each way,
interleaved so that both see the same machine, and prints the median wall time of a
job (``run_job`` called to outcome returned), the ratio, and how long the zygote took
to get ready. Decision record 0012 quotes these figures.

    .venv/bin/python benchmarks/sandbox_start.py [--jobs 10]

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from breedlab.jobs import Job
from breedlab.sandbox import JobSpec, Limits, run_job, warm

LIMITS = Limits(memory_mib=2048, cpu_seconds=60, file_mib=64, wall_seconds=120.0)


def one(folder: Path, *, warm_start: bool) -> float:
    job = Job(operator="honest", params={}, seed=1, out_dir=folder.parent / "unused")
    started = time.perf_counter()
    outcome = run_job(JobSpec(job=job, catalogue="faults", limits=LIMITS), folder, warm=warm_start)
    seconds = time.perf_counter() - started
    if not outcome.ok:
        raise SystemExit(f"the job failed: {outcome.reason}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=10)
    args = parser.parse_args()
    print(f"cpus {os.cpu_count()}, load {os.getloadavg()[0]:.2f}")
    warm.shutdown()
    with tempfile.TemporaryDirectory(prefix="breedlab-start-") as scratch:
        first = one(Path(scratch) / "first", warm_start=True)  # starts the zygote
    times: dict[bool, list[float]] = {True: [], False: []}
    with tempfile.TemporaryDirectory(prefix="breedlab-start-") as scratch:
        for i in range(args.jobs):
            for warm_start in (True, False):
                name = f"{'warm' if warm_start else 'cold'}-{i}"
                times[warm_start].append(one(Path(scratch) / name, warm_start=warm_start))
    warm.shutdown()
    hot, cold = statistics.median(times[True]), statistics.median(times[False])
    print(f"first warm job, the zygote's start included: {first:.2f} s (once per process)")
    print(f"job, warm: median {hot * 1000:.0f} ms over {args.jobs}")
    print(f"job, cold: median {cold * 1000:.0f} ms over {args.jobs}")
    print(f"cold / warm: {cold / hot:.0f}x")


if __name__ == "__main__":
    main()

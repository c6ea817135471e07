"""Benchmark: one digits breeding round, end to end, wall time and peak memory.

In a fresh lab (files + SQLite) this sets up the built-in digits capability (data
splits, a champion trained from source, a robust sibling, the frozen suite), then times
``failures`` and one full ``round`` (every allowed operator in the sandbox, the champion
evaluated three times for the A/A no-op, every candidate evaluated, the viability
decision, the HTML report). Each phase is measured in its own child process so that
peak RSS is per phase; the largest sandbox job's peak RSS is reported too (jobs forked
by the zygote count once it is reaped, which the phase does before it measures).

    .venv/bin/python benchmarks/round.py [--runs 3] [--workers 2]

Targets: round <= 60 s (the challenger-loop issue); <= 20 s on 2 quiet cores with warm
starts (issue 11, decision record 0013). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PHASE = r"""
import json, resource, sys, time
from pathlib import Path
from breedlab.lab import Lab
lab_path, phase, workers = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
started = time.perf_counter()
if phase == "setup":
    lab = Lab.init(lab_path)
    for name, role in (("alice", "model"), ("erin", "evaluation"), ("pat", "production")):
        lab.generate_key(name, role)
    lab.bootstrap_digits(model_key="alice", evaluation_key="erin", production_key="pat",
                         workers=workers)
    out = {}
elif phase == "failures":
    lab = Lab.open(lab_path)
    out = {"clusters": len(lab.failures("digits", workers=workers))}
else:
    lab = Lab.open(lab_path)
    result = lab.run_round("digits", workers=workers)
    out = {"candidates": len(result.record["candidates"]), "failed": len(result.record["failed"]),
           "winner": None if result.winner is None else str(result.winner)}
lab.close()
out["seconds"] = time.perf_counter() - started
from breedlab.sandbox import warm
warm.shutdown()  # reaps the zygote: its jobs' peak RSS joins RUSAGE_CHILDREN
out["self_rss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out["children_rss_kib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps(out))
"""


def phase(lab: Path, name: str, workers: int) -> dict[str, object]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", PHASE, str(lab), name, str(workers)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall"] = time.perf_counter() - started
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    print(f"cpus {os.cpu_count()}, load {os.getloadavg()[0]:.2f}, workers {args.workers}")
    rounds: list[float] = []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="breedlab-round-") as scratch:
            lab = Path(scratch) / "lab"
            setup = phase(lab, "setup", args.workers)
            failures = phase(lab, "failures", args.workers)
            result = phase(lab, "round", args.workers)
            rounds.append(float(result["wall"]))  # type: ignore[arg-type]
            print(
                f"run {run + 1}: setup {setup['wall']:.1f} s, failures {failures['wall']:.1f} s, "
                f"round {result['wall']:.1f} s ({result['candidates']} candidates, "
                f"{result['failed']} failed, winner {str(result['winner'])[:19]}); "
                f"peak RSS round process {int(result['self_rss_kib']) / 1024:.0f} MiB, "
                f"largest sandbox job {int(result['children_rss_kib']) / 1024:.0f} MiB"
            )
    median = statistics.median(rounds)
    print(
        f"\nround wall time: median {median:.1f} s over {len(rounds)} runs "
        f"(target <= 60 s: {median / 60:.2f}x of budget)"
    )
    print(
        f"this process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
    )


if __name__ == "__main__":
    main()

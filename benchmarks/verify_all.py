"""Benchmark: how long ``breedlab verify --all`` takes on a lab (median of runs).

Times what the command does, each part separately: every package (files re-hashed,
signatures, approvals), every object in the store, the sealed release evidence (where
the breedlab being measured has it), and the ledger (chain, projections and, where the
breedlab being measured has them, every event's signature and authority, checkpoints).

Run it against the code of another commit to compare (the code comes from PYTHONPATH):

    .venv/bin/python benchmarks/verify_all.py LAB [--runs 7]
    PYTHONPATH=/path/to/old/checkout/src .venv/bin/python benchmarks/verify_all.py OLD_LAB

Prints figures; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import breedlab
from breedlab.lab import Lab


def timed(fn: Callable[[], object], runs: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("lab", type=Path)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    print(f"breedlab from {Path(breedlab.__file__).parent}")
    print(f"cpus {os.cpu_count()}, load {os.getloadavg()[0]:.2f}, median of {args.runs} runs\n")
    with Lab.open(args.lab) as lab:
        parts: dict[str, Callable[[], object]] = {
            "packages": lab.verify,
            "store": lab.verify_store,
            "ledger": lab.verify_ledger,
        }
        if hasattr(lab, "verify_evidence"):
            parts["release evidence"] = lab.verify_evidence
        total = 0.0
        for name, fn in parts.items():
            median, times = timed(fn, args.runs)
            total += median
            shown = ", ".join(f"{t * 1000:.0f}" for t in times)
            print(f"{name:<18} {median * 1000:8.1f} ms   runs (ms): {shown}")
        events = len(lab.events())
        print(f"{'verify --all':<18} {total * 1000:8.1f} ms   ({events} ledger events)")


if __name__ == "__main__":
    main()

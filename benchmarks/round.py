"""Benchmark: one breeding round (digits, or the reviews text capability), end to end,
wall time and peak memory.

In a fresh lab (files + SQLite) this sets up the built-in digits capability (data
splits, a champion trained from source, a robust sibling, the frozen suite), then times
``failures`` and one full ``round`` (every allowed operator in the sandbox, the champion
evaluated three times for the A/A no-op, every candidate evaluated, the viability
decision, the HTML report). Each phase is measured in its own child process so that
peak RSS is per phase; the largest sandbox job's peak RSS is reported too (jobs forked
by the zygote count once it is reaped, which the phase does before it measures).

    .venv/bin/python benchmarks/round.py [--runs 3] [--workers 2]
    .venv/bin/python benchmarks/round.py --capability reviews --size ci [--runs 1]

Targets: digits round <= 60 s (the challenger-loop issue); <= 20 s on 2 quiet cores with
warm starts (issue 11, decision record 0013). reviews (issue 12): the round <= 3 min at
CI size and <= 10 min at full size on 2 quiet cores; it also prints the int8 MiniLM
candidate's dev accuracy and size against the fp32 champion's, from the round's own
scorecards. Prints figures; asserts nothing.
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
capability, size = sys.argv[4], sys.argv[5]
started = time.perf_counter()
if phase == "setup":
    lab = Lab.init(lab_path)
    for name, role in (("alice", "model"), ("erin", "evaluation"), ("pat", "production")):
        lab.generate_key(name, role)
    keys = dict(model_key="alice", evaluation_key="erin", production_key="pat", workers=workers)
    if capability == "reviews":
        lab.bootstrap_reviews(size=size, **keys)
    else:
        lab.bootstrap_digits(**keys)
    out = {}
elif phase == "failures":
    lab = Lab.open(lab_path)
    clusters = lab.failures(capability, workers=workers)
    out = {"clusters": len(clusters), "worst": str(clusters[0].id) if clusters else None}
else:
    lab = Lab.open(lab_path)
    cluster = sys.argv[6] if len(sys.argv) > 6 and sys.argv[6] != "None" else None
    result = lab.run_round(capability, workers=workers, failure_cluster=cluster)
    record = result.record
    out = {"candidates": len(record["candidates"]), "failed": len(record["failed"]),
           "winner": None if result.winner is None else str(result.winner),
           "champion": record["champion_scorecard"],
           "int8": next((c["scorecard"] for c in record["candidates"]
                         if c["label"] == "quantize/int8_pc"), None)}
lab.close()
out["seconds"] = time.perf_counter() - started
from breedlab.sandbox import warm
warm.shutdown()  # reaps the zygote: its jobs' peak RSS joins RUSAGE_CHILDREN
out["self_rss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out["children_rss_kib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps(out))
"""


def phase(
    lab: Path, name: str, workers: int, capability: str, size: str, *extra: str
) -> dict[str, object]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", PHASE, str(lab), name, str(workers), capability, size, *extra],
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
    parser.add_argument("--capability", choices=("digits", "reviews"), default="digits")
    parser.add_argument("--size", choices=("ci", "full"), default="ci", help="reviews only")
    args = parser.parse_args()
    what = args.capability + (f" ({args.size})" if args.capability == "reviews" else "")
    print(f"{what}: cpus {os.cpu_count()}, load {os.getloadavg()[0]:.2f}, workers {args.workers}")
    target = {"digits": 60.0, "reviews": 180.0 if args.size == "ci" else 600.0}[args.capability]
    rounds: list[float] = []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="breedlab-round-") as scratch:
            lab = Path(scratch) / "lab"
            common = (args.workers, args.capability, args.size)
            setup = phase(lab, "setup", *common)
            failures = phase(lab, "failures", *common)
            # The round on the worst cluster, as the demo runs it (the adapter needs one).
            result = phase(lab, "round", *common, str(failures["worst"]))
            rounds.append(float(result["wall"]))  # type: ignore[arg-type]
            print(
                f"run {run + 1}: setup {setup['wall']:.1f} s, failures {failures['wall']:.1f} s, "
                f"round {result['wall']:.1f} s ({result['candidates']} candidates, "
                f"{result['failed']} failed, winner {str(result['winner'])[:19]}); "
                f"peak RSS round process {int(result['self_rss_kib']) / 1024:.0f} MiB, "
                f"largest sandbox job {int(result['children_rss_kib']) / 1024:.0f} MiB"
            )
            _int8_figures(result)
    median = statistics.median(rounds)
    print(
        f"\nround wall time: median {median:.1f} s over {len(rounds)} runs "
        f"(target <= {target:.0f} s: {median / target:.2f}x of budget)"
    )
    print(
        f"this process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
    )


def _int8_figures(result: dict[str, object]) -> None:
    """The int8 candidate against the fp32 champion, from the round's scorecards."""
    champion, int8 = result.get("champion"), result.get("int8")
    if not isinstance(champion, dict) or not isinstance(int8, dict):
        return
    acc = (float(champion["dev"]["accuracy"]), float(int8["dev"]["accuracy"]))
    size = (champion["resources"]["size_bytes"], int8["resources"]["size_bytes"])
    print(
        f"  int8 vs fp32 champion: dev accuracy {acc[1]:.3f} vs {acc[0]:.3f} "
        f"({acc[1] - acc[0]:+.3f}); size {size[1] / 2**20:.1f} vs {size[0] / 2**20:.1f} MiB "
        f"({size[1] / size[0]:.2f}x)"
    )


if __name__ == "__main__":
    main()

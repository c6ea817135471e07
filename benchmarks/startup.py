"""Benchmark: how long a CLI command takes from process start to exit (median of runs).

Times ``breedlab --help``, ``keys list`` and ``packages`` as fresh processes -- mostly
imports, which is what issue 10's "``--help`` and ``keys list`` under 0.5 s" is about --
beside ``python -c pass`` measured in the same rounds, so the ratios hold on a busy
machine too; the CPU time (user + system) moves less with the load than the wall time.
The lab is made in a temporary folder (``init``, a ``model`` key, the built-in
``digits`` capability), or given with ``--lab``.

    .venv/bin/python benchmarks/startup.py [--runs 15] [--lab LAB]
    PYTHONPATH=/path/to/old/checkout/src .venv/bin/python benchmarks/startup.py

Prints figures; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import breedlab

_CLI = "import sys; from breedlab.cli import main; sys.exit(main())"


def breedlab_cmd(*args: str) -> list[str]:
    return [sys.executable, "-c", _CLI, *args]


def run_once(cmd: list[str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one run of ``cmd``, in seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def make_lab(root: Path) -> Path:
    lab = root / "lab"
    for args in (
        ("init",),
        ("keys", "generate", "alice", "--role", "model"),
        ("capability", "add", "digits"),
    ):
        subprocess.run(breedlab_cmd("--lab", str(lab), *args), check=True, capture_output=True)
    return lab


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--lab", type=Path, help="an existing lab (default: a new one)")
    args = parser.parse_args()
    print(f"breedlab from {Path(breedlab.__file__).parent}")
    print(f"cpus {os.cpu_count()}, load {os.getloadavg()[0]:.2f}, median of {args.runs} runs\n")
    with tempfile.TemporaryDirectory(prefix="breedlab-startup-") as tmp:
        lab = args.lab or make_lab(Path(tmp))
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "breedlab --help": breedlab_cmd("--help"),
            "breedlab keys list": breedlab_cmd("--lab", str(lab), "keys", "list"),
            "breedlab packages": breedlab_cmd("--lab", str(lab), "packages"),
        }
        wall: dict[str, list[float]] = {name: [] for name in commands}
        cpu: dict[str, list[float]] = {name: [] for name in commands}
        for cmd in commands.values():  # warm the file cache and the .pyc files
            run_once(cmd)
        for _ in range(args.runs):  # rounds: each command once, so drift hits all alike
            for name, cmd in commands.items():
                w, c = run_once(cmd)
                wall[name].append(w)
                cpu[name].append(c)
    base_wall = statistics.median(wall["python -c pass"])
    base_cpu = statistics.median(cpu["python -c pass"])
    print(f"{'':<20} {'wall':>7}    {'ratio':>6}   {'cpu':>7}    {'ratio':>6}   wall range")
    for name in commands:
        w, c = statistics.median(wall[name]), statistics.median(cpu[name])
        spread = f"{min(wall[name]) * 1000:.0f}-{max(wall[name]) * 1000:.0f} ms"
        print(
            f"{name:<20} {w * 1000:7.0f} ms x{w / base_wall:5.1f}   "
            f"{c * 1000:7.0f} ms x{c / base_cpu:5.1f}   {spread}"
        )
    print("\nratio: against python -c pass in the same rounds; cpu: user + system time")


if __name__ == "__main__":
    main()

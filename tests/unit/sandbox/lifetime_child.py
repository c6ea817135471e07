"""The parent processes of the sandbox lifetime tests (a script; pytest does not collect it).

python lifetime_child.py orphan FOLDER
python lifetime_child.py orphan-cold FOLDER
    Run one ``hang`` job (an hour's sleep) in the sandbox rooted at FOLDER, forked by the
    zygote (or started cold), with no signal handling of its own: the test SIGKILLs this
    process while the job runs.

python lifetime_child.py interrupt WORK
    Inside ``stop_on_signals``, run two ``hang`` jobs one at a time under WORK; print
    what ended the run (the Interrupted message, or the outcomes) as one JSON line. The
    test sends SIGINT or SIGTERM while the first job runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from breedlab import interrupts
from breedlab.errors import Interrupted
from breedlab.jobs import Job
from breedlab.sandbox import JobSpec, Limits, run_job
from breedlab.sandbox.executors import LocalExecutor

HANG = Limits(memory_mib=2048, cpu_seconds=600, file_mib=64, wall_seconds=600.0)


def _spec(tmp: Path) -> JobSpec:
    job = Job(operator="hang", params={}, seed=0, out_dir=tmp)
    return JobSpec(job=job, catalogue="faults", limits=HANG)


def main(argv: list[str]) -> int:
    mode, where = argv[0], Path(argv[1])
    if mode in ("orphan", "orphan-cold"):
        run_job(_spec(where), where, warm=mode == "orphan")
        return 0
    if mode == "interrupt":
        jobs = [(_spec(where), where / f"job-{i}") for i in range(2)]
        try:
            with interrupts.stop_on_signals():
                outcomes = LocalExecutor(1).run(jobs)
        except Interrupted as e:
            print(json.dumps({"interrupted": e.message, "code": e.code}), flush=True)
            return 130
        print(json.dumps({"outcomes": [o.reason for o in outcomes]}), flush=True)
        return 0
    raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The child processes of the race and kill attacks (a script; pytest does not collect it).

python lab_child.py race READY GO -- ARGS...
    Touch READY, wait until GO exists, then run ``breedlab ARGS...`` in this process
    and exit with its exit code: racers start their one command at the same instant.

python lab_child.py churn LAB SEED SCRATCH READY
    Open the lab, touch READY, then import fresh random packages (one small file, a
    folder of several files, or a file of a few MiB so a kill lands mid-copy), sign
    and approve some, and move ``digits@latest`` and ``digits@approved`` to them with
    the right ``expect`` -- forever, until the parent kills the process. Touches
    SCRATCH/done-SEED-N when its N-th import and moves are recorded.

python lab_child.py put-stdin LAB
    Open the lab and store what arrives on stdin as one blob: a write in progress for as
    long as the parent keeps the pipe open (or kills the process).
"""

from __future__ import annotations

import contextlib
import json
import random
import shutil
import sys
import time
from pathlib import Path

POLL_SECONDS = 0.0005


def race(workdir: Path, index: int) -> int:
    from breedlab.cli import main  # imported before the first READY

    for n in range(1_000_000):
        (workdir / f"ready-{n}-{index}").touch()
        go, stop = workdir / f"go-{n}", workdir / "stop"
        while not go.exists():
            if stop.exists():
                return 0
            time.sleep(POLL_SECONDS)
        argv = json.loads((workdir / f"argv-{n}-{index}.json").read_text("utf-8"))
        with (workdir / f"err-{n}-{index}").open("w") as err, contextlib.redirect_stderr(err):
            code = main(argv)
        partial = workdir / f"code-{n}-{index}.partial"
        partial.write_text(str(code), "utf-8")
        partial.rename(workdir / f"code-{n}-{index}")
    return 0


def _write_source(folder: Path, rng: random.Random) -> Path:
    shape = rng.choice(["file", "folder", "large"])
    folder.mkdir(parents=True)
    if shape == "file":
        target = folder / "model.safetensors"
        target.write_bytes(rng.randbytes(rng.randrange(1, 64 << 10)))
        return target
    if shape == "folder":
        for i in range(rng.randrange(2, 6)):
            part = folder / ("shards" if i % 2 else "") / f"part-{i}.safetensors"
            part.parent.mkdir(exist_ok=True)
            part.write_bytes(rng.randbytes(rng.randrange(1, 256 << 10)))
        (folder / "config.json").write_text('{"architecture": "churn"}', "utf-8")
        return folder
    (folder / "model.safetensors").write_bytes(rng.randbytes(rng.randrange(1 << 20, 4 << 20)))
    (folder / "config.json").write_text('{"architecture": "large"}', "utf-8")
    return folder


def churn(lab_path: Path, seed: int, scratch: Path, ready: Path) -> int:
    from breedlab.lab import Lab

    rng = random.Random(seed)
    lab = Lab.open(lab_path)
    ready.touch()
    for n in range(1, 1_000_000):
        folder = scratch / f"{seed}-{n}"
        source = _write_source(folder, rng)
        info = lab.import_path(
            source,
            kind="dataset",  # random bytes: a model would have to answer the digits contract
            capability="digits",
            license="MIT",
            name=f"churn-{seed}-{n}",
            sign_with="alice" if rng.random() < 0.5 else None,
        )
        latest = lab.alias("digits", "latest")
        lab.set_alias(
            "digits",
            "latest",
            str(info.id),
            expect=None if latest is None else str(latest),
            reason=f"churn {seed}-{n}",
        )
        if rng.random() < 0.4:
            lab.approve(str(info.id), purpose="release", key="pat")
            approved = lab.alias("digits", "approved")
            lab.set_alias(
                "digits",
                "approved",
                str(info.id),
                expect=None if approved is None else str(approved),
                reason=f"churn {seed}-{n}",
                key="pat",
            )
        shutil.rmtree(folder)
        (scratch / f"done-{seed}-{n}").touch()  # one import and its alias moves recorded
    return 0


def put_stdin(lab_path: Path) -> int:
    from breedlab.lab import Lab

    with Lab.open(lab_path) as lab, open(sys.stdin.fileno(), "rb", buffering=0) as source:
        print(lab.blobs.put_stream(source)[0], flush=True)
    return 0


def main(argv: list[str]) -> int:
    mode, *rest = argv
    if mode == "put-stdin":
        return put_stdin(Path(rest[0]))
    if mode == "race":
        workdir, index = rest
        return race(Path(workdir), int(index))
    if mode == "churn":
        lab, seed, scratch, ready = rest
        return churn(Path(lab), int(seed), Path(scratch), Path(ready))
    raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

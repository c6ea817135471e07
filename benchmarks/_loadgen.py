"""Open-loop HTTP load for ``benchmarks/serve.py``, in a process of its own.

Imports only the standard library and httpx: a load generator that shares a heap with
torch measures its own garbage collector (a 200-300 ms gen-2 pass in the middle of a
phase became the with-shadow p99). Collection is off while a phase runs; each phase is a
fresh process, so nothing accumulates from one phase to the next.

Usage: ``python benchmarks/_loadgen.py URL RATE SECONDS THREADS BODIES.json`` (a JSON list
of request bodies, sent in turn) prints one JSON object:
``{"latencies_s": [...], "errors": n, "elapsed_s": t}``.
"""

from __future__ import annotations

import gc
import json
import sys
import threading
import time

import httpx


def run(
    url: str, *, rate: float, seconds: float, threads: int, bodies: list[object]
) -> dict[str, object]:
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    interval = threads / rate

    def client(k: int, start: float) -> None:
        nonlocal errors
        with httpx.Client(base_url=url, timeout=10) as c:
            i = 0
            while True:
                due = start + (k / threads) * interval + i * interval
                if due - start > seconds:
                    return
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                t0 = time.perf_counter()
                r = c.post("/v1/digits/predict", json=bodies[(k * 31 + i) % len(bodies)])
                dt = time.perf_counter() - t0
                with lock:
                    latencies.append(dt)
                    errors += r.status_code != 200
                i += 1

    gc.collect()
    gc.freeze()
    gc.disable()
    start = time.perf_counter() + 0.3
    workers = [threading.Thread(target=client, args=(k, start)) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - start
    gc.enable()
    return {"latencies_s": latencies, "errors": errors, "elapsed_s": elapsed}


def main() -> None:
    url, rate, seconds, threads, path = sys.argv[1:6]
    with open(path, encoding="utf-8") as f:
        bodies = json.load(f)
    out = run(url, rate=float(rate), seconds=float(seconds), threads=int(threads), bodies=bodies)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()

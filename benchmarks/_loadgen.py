"""Open-loop HTTP load for ``benchmarks/serve.py``, in a process of its own.

Imports only the standard library and httpx: a load generator that shares a heap with
torch measures its own garbage collector (a 200-300 ms gen-2 pass in the middle of a
phase became the with-shadow p99). Collection is off while a phase runs; each phase is a
fresh process, so nothing accumulates from one phase to the next.

Usage: ``python benchmarks/_loadgen.py URL RATE SECONDS THREADS BODIES.json`` (a JSON list
of request bodies, sent in turn) prints one JSON object:
``{"latencies_s": [...], "errors": n, "elapsed_s": t}``. With ``BODIES`` ``-`` it sends
``GET /healthz`` instead (the health probe).

``python benchmarks/_loadgen.py oversize URL SECONDS SENDERS MB`` keeps ``SENDERS``
connections busy sending ``MB``-megabyte bodies to the predict route for ``SECONDS``
(alternately with a ``Content-Length`` and chunked), each as fast as the server refuses
it, and prints ``{"sent": n, "statuses": {...}, "bytes_out": b, "elapsed_s": t}``.
"""

from __future__ import annotations

import gc
import json
import socket
import sys
import threading
import time
from collections import Counter
from urllib.parse import urlsplit

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
                if bodies:
                    r = c.post("/v1/digits/predict", json=bodies[(k * 31 + i) % len(bodies)])
                else:
                    r = c.get("/healthz")
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


def _oversized_once(host: str, port: int, size: int, chunked: bool) -> tuple[str, int]:
    """Send one body of ``size`` bytes until the server refuses it; (status, bytes sent)."""
    piece = b" " * (64 << 10)
    head = f"POST /v1/digits/predict HTTP/1.1\r\nHost: {host}\r\n"
    head += "Content-Type: application/json\r\n"
    head += "Transfer-Encoding: chunked\r\n" if chunked else f"Content-Length: {size}\r\n"
    sent = 0
    with socket.create_connection((host, port), timeout=30) as s:
        try:
            s.sendall((head + "\r\n").encode())
            while sent < size:
                data = piece if not chunked else b"%x\r\n%s\r\n" % (len(piece), piece)
                s.sendall(data)
                sent += len(piece)
            if chunked:
                s.sendall(b"0\r\n\r\n")
        except OSError:  # the server answered and closed: the rest is refused unread
            pass
        try:
            answer = s.recv(4096)
        except OSError:
            answer = b""
    status = answer.split(b" ", 2)[1].decode() if answer.startswith(b"HTTP/") else "reset"
    return status, sent


def oversize(url: str, *, seconds: float, senders: int, mb: float) -> dict[str, object]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    size = int(mb * (1 << 20))
    statuses: Counter[str] = Counter()
    out_bytes = 0
    lock = threading.Lock()
    end = time.perf_counter() + seconds

    def sender(k: int) -> None:
        nonlocal out_bytes
        i = k
        while time.perf_counter() < end:
            status, sent = _oversized_once(host, port, size, chunked=i % 2 == 1)
            with lock:
                statuses[status] += 1
                out_bytes += sent
            i += 1

    start = time.perf_counter()
    workers = [threading.Thread(target=sender, args=(k,)) for k in range(senders)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return {
        "sent": sum(statuses.values()),
        "statuses": dict(statuses),
        "bytes_out": out_bytes,
        "elapsed_s": time.perf_counter() - start,
    }


def main() -> None:
    if sys.argv[1] == "oversize":
        url, seconds, senders, mb = sys.argv[2:6]
        result = oversize(url, seconds=float(seconds), senders=int(senders), mb=float(mb))
        json.dump(result, sys.stdout)
        return
    url, rate, seconds, threads, path = sys.argv[1:6]
    bodies: list[object] = []
    if path != "-":
        with open(path, encoding="utf-8") as f:
            bodies = json.load(f)
    out = run(url, rate=float(rate), seconds=float(seconds), threads=int(threads), bodies=bodies)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()

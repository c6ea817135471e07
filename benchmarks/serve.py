"""Measure the serving path (DESIGN §11; the release-controls issue's targets).

1. Requests per second and p50/p99 latency of the primary path, with and without a
   shadow, at the same offered load (open loop: each client thread sends on a fixed
   schedule, so a slow server cannot lower the load it is offered). The server runs in
   its own process (uvicorn on 127.0.0.1); the load generator is a fresh, lean process per
   phase (``benchmarks/_loadgen.py``: httpx clients in threads, no torch, collection off
   while it measures). Target: shadow adds <= 5% to the primary p99.
2. An injected canary fault (5% of the canary's answers fail): requests until the
   automatic abort and time to mitigate, over repeated drills, each with a new artifact
   (an aborted id is deny-listed). Targets: median <= 100 requests; mitigation <= 50 ms.
3. The ledger head read every request starts with (``Ledger.head()``), against the
   floor: the same one-row ``SELECT`` on a kept ``sqlite3`` connection (issue 11: no
   slower than the raw SQL the router used to run itself).
4. Oversized bodies (issue 10): the primary load and a ``/healthz`` probe, alone and
   while other clients keep sending bodies far over the server's limit (``--oversize-mb``,
   alternately with a ``Content-Length`` and chunked, each resent as soon as it is
   refused). The p99 of predicts and of ``/healthz`` with and without the senders (medians
   over alternating phases, and their ratios), and the server's resident memory (VmRSS)
   before, during (the most seen) and after. Target: the limit keeps RSS flat and the
   refusals cheap.
5. ``predict:batch`` (issue 12): the same 512 requests sent one at a time and as batches
   of 64 on one kept-alive connection, closed loop, alternating; the median time per
   request of each and their ratio (each batched request is still routed alone: the
   saving is the round trips and the HTTP and JSON work per request).
6. Text (issue 12): the same for a text capability's champion (a tiny 2-layer BERT), 256
   distinct short texts; a batch of texts is one forward pass of the model.

Usage: ``.venv/bin/python benchmarks/serve.py [--rate 150] [--seconds 8] [--drills 15]
[--parts primary,head,oversize,drills,batch,text]``. Nothing is sent anywhere but 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import torch

ROOT = Path(__file__).resolve().parents[1]
LOADGEN = ROOT / "benchmarks" / "_loadgen.py"
sys.path.insert(0, str(ROOT / "tests"))  # the small real models of the tests

from breedlab.families.torch_family import build_module, save_torch_model  # noqa: E402
from breedlab.lab import Lab  # noqa: E402
from breedlab.lab import release as controller  # noqa: E402
from breedlab.release import CanaryPolicy  # noqa: E402
from release_lab import CONFIG, body, release_lab  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_load(
    url: str, bodies: Path | None, *, rate: float, seconds: float, threads: int = 8
) -> subprocess.Popen[str]:
    """Open-loop load: ``rate`` requests/s over ``threads`` clients, from a lean process
    (``bodies`` None: ``GET /healthz``)."""
    args = [url, str(rate), str(seconds), str(threads), str(bodies or "-")]
    return subprocess.Popen(
        [sys.executable, str(LOADGEN), *args], stdout=subprocess.PIPE, text=True
    )


def _finish(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"the load generator failed ({proc.returncode})")
    return json.loads(out)  # type: ignore[no-any-return]


def _load(
    url: str, bodies: Path | None, *, rate: float, seconds: float, threads: int = 8
) -> dict[str, Any]:
    return _summary(_finish(_start_load(url, bodies, rate=rate, seconds=seconds, threads=threads)))


def _summary(result: dict[str, Any]) -> dict[str, Any]:
    latencies = result["latencies_s"]
    q = statistics.quantiles(latencies, n=100)
    return {
        "latencies_s": latencies,
        "requests": len(latencies),
        "errors": result["errors"],
        "rps": len(latencies) / result["elapsed_s"],
        "p50_ms": q[49] * 1000,
        "p99_ms": q[98] * 1000,
    }


def _p99(latencies: list[float]) -> float:
    return statistics.quantiles(latencies, n=100)[98]


def _pooled_p99_ratio(
    without: list[dict[str, Any]], with_shadow: list[dict[str, Any]], *, draws: int = 2000
) -> tuple[float, float, float]:
    """p99 of every with-shadow request over p99 of every request without, and a 90%
    interval from resampling whole phase pairs (the host's noise comes in bursts that
    span a phase, so phases, not requests, are the independent units)."""

    def ratio(pairs: list[int]) -> float:
        a = [x for i in pairs for x in with_shadow[i]["latencies_s"]]
        b = [x for i in pairs for x in without[i]["latencies_s"]]
        return _p99(a) / _p99(b)

    n = len(without)
    rng = random.Random(0)
    draws_ = sorted(ratio([rng.randrange(n) for _ in range(n)]) for _ in range(draws))
    return ratio(list(range(n))), draws_[int(0.05 * draws)], draws_[int(0.95 * draws) - 1]


@contextlib.contextmanager
def _server(lab_path: Path, rate: float) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    """``breedlab serve`` in a process of its own, started and warmed up: its URL, the
    process and a file of request bodies."""
    with _serving(lab_path) as (url, proc):
        bodies = lab_path.parent / "bodies.json"
        bodies.write_text(json.dumps([body(i) for i in range(512)]), "utf-8")
        _load(url, bodies, rate=rate, seconds=1.0)  # warm up
        yield url, proc, bodies


@contextlib.contextmanager
def _serving(lab_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``breedlab serve`` in a process of its own, once ``/healthz`` answers."""
    port = _free_port()
    cli = [sys.executable, "-c", "from breedlab.cli import main; main()"]
    proc = subprocess.Popen(  # exactly what `breedlab serve` runs
        [*cli, "--lab", str(lab_path), "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300  # a loaded host imports torch slowly
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.2)
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def primary_path(
    lab_path: Path, good: str, *, rate: float, seconds: float, reps: int
) -> dict[str, object]:
    with _server(lab_path, rate) as (url, _, bodies):
        token = (lab_path / "keys" / "admin.token").read_text().strip()
        headers = {"Authorization": f"Bearer {token}"}
        without: list[dict[str, Any]] = []
        with_shadow: list[dict[str, Any]] = []
        # Alternate the phases (A B A B ...): the host is shared, its noise drifts.
        for _ in range(reps):
            without.append(_load(url, bodies, rate=rate, seconds=seconds))
            r = httpx.post(  # answers once the shadow process has loaded: a loaded host is slow
                f"{url}/admin/digits/shadow/start",
                json={"package": good},
                headers=headers,
                timeout=120,
            )
            r.raise_for_status()
            with_shadow.append(_load(url, bodies, rate=rate, seconds=seconds))
            report = httpx.get(f"{url}/admin/digits/shadow/report", headers=headers, timeout=60)
            shadow = report.json()
            httpx.post(f"{url}/admin/digits/shadow/stop", headers=headers).raise_for_status()

    med = _median
    pooled, low, high = _pooled_p99_ratio(without, with_shadow)

    return {
        "offered_rps": rate,
        "phases": reps,
        "seconds_per_phase": seconds,
        "without_shadow": {k: med(without, k) for k in without[0] if k != "latencies_s"},
        "with_shadow": {k: med(with_shadow, k) for k in with_shadow[0] if k != "latencies_s"},
        "p99_ratio_pooled": pooled,
        "p99_ratio_pooled_90ci": [low, high],
        "p99_ratio_of_medians": med(with_shadow, "p99_ms") / med(without, "p99_ms"),
        "p99_ratio_median_of_pairs": statistics.median(
            w["p99_ms"] / o["p99_ms"] for w, o in zip(with_shadow, without, strict=True)
        ),
        "p50_ratio_of_medians": med(with_shadow, "p50_ms") / med(without, "p50_ms"),
        "p99_ms_each_phase": {
            "without": [round(r["p99_ms"], 2) for r in without],
            "with": [round(r["p99_ms"], 2) for r in with_shadow],
        },
        "last_shadow_mirrored": shadow["mirrored"],
        "last_shadow_dropped": shadow["dropped"],
    }


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


def _rss_kib(pid: int) -> int:
    """The process's resident set (VmRSS), KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def _cpu_s(pid: int) -> float:
    """The process's CPU time so far (user + system, /proc/PID/stat), seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _watch_rss(pid: int, rss: dict[str, Any], stop: threading.Event) -> None:
    """Keep the most RSS seen in ``rss["during_max_kib"]`` until ``stop``."""
    while not stop.wait(0.1):
        rss["during_max_kib"] = max(rss["during_max_kib"], _rss_kib(pid))


def oversized_bodies(
    lab_path: Path, *, rate: float, seconds: float, reps: int, senders: int, mb: float
) -> dict[str, object]:
    """Predicts and /healthz, alone and beside clients sending bodies over the limit."""
    probe_rate = 20.0
    with _server(lab_path, rate) as (url, proc, bodies):
        rss: dict[str, Any] = {"before_kib": _rss_kib(proc.pid), "during_max_kib": 0}
        alone: list[dict[str, Any]] = []
        beside: list[dict[str, Any]] = []
        flood: list[dict[str, Any]] = []
        after_phase: list[float] = []  # MiB after each phase: without, with, without, ...
        for _ in range(reps):  # alternate (A B A B ...): the host's noise drifts
            for oversize in (False, True):
                senders_proc = None
                if oversize:
                    args = ["oversize", url, str(seconds + 0.6), str(senders), str(mb)]
                    senders_proc = subprocess.Popen(
                        [sys.executable, str(LOADGEN), *args], stdout=subprocess.PIPE, text=True
                    )
                    time.sleep(0.3)  # the senders are at it before the measured load starts
                stop = threading.Event()
                watcher = threading.Thread(target=_watch_rss, args=(proc.pid, rss, stop))
                watcher.start()
                cpu0 = _cpu_s(proc.pid)
                load = _start_load(url, bodies, rate=rate, seconds=seconds)
                health = _start_load(url, None, rate=probe_rate, seconds=seconds, threads=2)
                phase: dict[str, Any] = {
                    "predict": _summary(_finish(load)),
                    "healthz": _summary(_finish(health)),
                }
                phase["server_cpu_s"] = _cpu_s(proc.pid) - cpu0
                if senders_proc is not None:
                    flood.append(_finish(senders_proc))
                stop.set()
                watcher.join()
                (beside if oversize else alone).append(phase)
                after_phase.append(round(_rss_kib(proc.pid) / 1024, 1))
        time.sleep(1.0)
        rss["after_kib"] = _rss_kib(proc.pid)

    def side(runs: list[dict[str, Any]], route: str) -> dict[str, float]:
        rows = [r[route] for r in runs]
        keys = ("requests", "errors", "rps", "p50_ms", "p99_ms")
        return {k: round(_median(rows, k), 3) for k in keys}

    def ratio(route: str, key: str) -> dict[str, float]:
        pairs = [b[route][key] / a[route][key] for a, b in zip(alone, beside, strict=True)]
        return {
            "of_medians": round(side(beside, route)[key] / side(alone, route)[key], 3),
            "median_of_pairs": round(statistics.median(pairs), 3),
        }

    statuses: dict[str, int] = {}
    for f in flood:
        for status, n in f["statuses"].items():
            statuses[status] = statuses.get(status, 0) + n
    return {
        "offered_rps": rate,
        "healthz_probe_rps": probe_rate,
        "phases": reps,
        "seconds_per_phase": seconds,
        "oversized": {
            "senders": senders,
            "body_mb": mb,
            "sent_per_phase_median": statistics.median(f["sent"] for f in flood),
            "statuses": statuses,
            "mb_written_per_phase_median": round(
                statistics.median(f["bytes_out"] for f in flood) / (1 << 20), 1
            ),
        },
        "without_oversized": {"predict": side(alone, "predict"), "healthz": side(alone, "healthz")},
        "with_oversized": {"predict": side(beside, "predict"), "healthz": side(beside, "healthz")},
        "p99_ratio": {"predict": ratio("predict", "p99_ms"), "healthz": ratio("healthz", "p99_ms")},
        "server_cpu_s_per_phase_median": {
            "without": round(statistics.median(r["server_cpu_s"] for r in alone), 2),
            "with": round(statistics.median(r["server_cpu_s"] for r in beside), 2),
        },
        "p99_ms_each_phase": {
            route: {
                "without": [round(r[route]["p99_ms"], 2) for r in alone],
                "with": [round(r[route]["p99_ms"], 2) for r in beside],
            }
            for route in ("predict", "healthz")
        },
        "server_rss_mib": {
            **{k.removesuffix("_kib"): round(v / 1024, 1) for k, v in rss.items()},
            "after_each_phase_without_with": after_phase,
        },
    }


def canary_drills(lab: Lab, champion_dir: Path, work: Path, drills: int) -> dict[str, object]:
    """5% injected canary failures; each drill a fresh artifact (a new id)."""
    router = lab.router(faults={"canary": 0.05}, seed=1)
    champion = build_module(CONFIG)
    from breedlab.tensors.quantized import load_state_dict

    champion.load_state_dict(load_state_dict(champion_dir / "model.safetensors"))
    until: list[int] = []
    mitigate: list[float] = []
    missed = 0
    try:
        for k in range(drills):
            torch.manual_seed(1000 + k)
            with torch.no_grad():
                for p in champion.parameters():
                    p.add_(torch.randn_like(p) * 1e-6)
            folder = work / f"variant-{k}"
            save_torch_model(folder, CONFIG, champion)
            pkg = lab.import_path(
                folder, kind="model", capability="digits", license="MIT", family="torch"
            )
            lab.approve(str(pkg.id), purpose="release", key="pat")
            controller.start_shadow(lab.supply, "digits", str(pkg.id))
            route = router.refresh().routes["digits"]
            for i in range(60):
                router.predict(
                    route, unit=f"s{i}", inputs=body(i)["inputs"], truth=None, low_risk=True
                )  # type: ignore[arg-type]
            router.mirror.flush()
            controller.start_canary(lab.supply, "digits", percent=100)
            aborted = False
            for i in range(3000):
                route = router.refresh().routes["digits"]
                if route.canary_run is None and i:
                    aborted = bool(lab.events(kinds=("release.canary_aborted",))) and (
                        lab.events(kinds=("release.canary_aborted",))[-1].payload["package"]
                        == str(pkg.id)
                    )
                    break
                b = body(k * 10_000 + i)
                router.predict(
                    route,
                    unit=f"d{k}-{i}",
                    inputs=b["inputs"],  # type: ignore[arg-type]
                    truth=str(b["label"]),
                    low_risk=True,
                )
            if aborted:
                rec = lab.events(kinds=("release.canary_aborted",))[-1].payload["recovery"]
                until.append(int(rec["detection_latency_requests"]))  # type: ignore[index,call-overload]
                mitigate.append(float(rec["time_to_mitigate_s"]) * 1000)  # type: ignore[index,call-overload]
            else:
                missed += 1
                if controller.release_state(lab.supply, "digits").canary is not None:
                    controller.stop_canary(lab.supply, "digits", reason="drill missed")
            controller.stop_shadow(lab.supply, "digits")
    finally:
        router.close()
    return {
        "drills": drills,
        "aborted": len(until),
        "missed": missed,
        "requests_until_abort_median": statistics.median(until) if until else None,
        "requests_until_abort": until,
        "time_to_mitigate_ms_median": statistics.median(mitigate) if mitigate else None,
        "time_to_mitigate_ms_max": max(mitigate) if mitigate else None,
    }


def batched(lab_path: Path, *, reps: int, size: int = 64) -> dict[str, object]:
    with _server(lab_path, 150.0) as (url, _, bodies):
        requests = json.loads(bodies.read_text("utf-8"))
        single_s: list[float] = []
        batch_s: list[float] = []
        with httpx.Client(base_url=url, timeout=60) as c:
            for _ in range(reps):
                t0 = time.perf_counter()
                singles = [c.post("/v1/digits/predict", json=b).json() for b in requests]
                single_s.append((time.perf_counter() - t0) / len(requests))
                t0 = time.perf_counter()
                answers: list[Any] = []
                for at in range(0, len(requests), size):
                    r = c.post(
                        "/v1/digits/predict:batch", json={"requests": requests[at : at + size]}
                    )
                    answers += r.json()["results"]
                batch_s.append((time.perf_counter() - t0) / len(requests))
                assert answers == singles, "a batch answered otherwise than single requests"
    single, batch = statistics.median(single_s), statistics.median(batch_s)
    return {
        "requests": len(requests),
        "batch_size": size,
        "single_ms_per_request": round(single * 1e3, 3),
        "batch_ms_per_request": round(batch * 1e3, 3),
        "speedup": round(single / batch, 2),
    }


def text_batched(root: Path, *, reps: int, count: int = 256, size: int = 64) -> dict[str, object]:
    """Part 5 for text: a tiny BERT champion of a text capability, ``count`` distinct
    texts sent one at a time and as batches of ``size`` (one forward pass per batch)."""
    from release_lab import text_release_lab
    from text_models import WORDS

    root.mkdir(parents=True, exist_ok=True)
    lab, _, _ = text_release_lab(root)
    lab.close()
    rng = random.Random(0)
    texts = [" ".join(rng.choices(WORDS, k=rng.randint(2, 12))) for _ in range(count)]
    requests = [{"unit": f"user-{i}", "inputs": t} for i, t in enumerate(texts)]
    single_s: list[float] = []
    batch_s: list[float] = []
    with _serving(root / "lab") as (url, _), httpx.Client(base_url=url, timeout=60) as c:
        for _ in range(reps):
            t0 = time.perf_counter()
            singles = [c.post("/v1/notes/predict", json=b).json() for b in requests]
            single_s.append((time.perf_counter() - t0) / count)
            t0 = time.perf_counter()
            answers: list[Any] = []
            for at in range(0, count, size):
                r = c.post("/v1/notes/predict:batch", json={"requests": requests[at : at + size]})
                answers += r.json()["results"]
            batch_s.append((time.perf_counter() - t0) / count)
            labels = [a["label"] for a in answers]
            assert labels == [a["label"] for a in singles], "a batch labelled otherwise"
    single, batch = statistics.median(single_s), statistics.median(batch_s)
    return {
        "requests": count,
        "batch_size": size,
        "single_ms_per_request": round(single * 1e3, 3),
        "batch_ms_per_request": round(batch * 1e3, 3),
        "speedup": round(single / batch, 2),
    }


def head_reads(root: Path, calls: int = 20000, rounds: int = 7) -> dict[str, Any]:
    """Microseconds per ``Ledger.head()`` and per raw head ``SELECT``, alternating rounds."""
    import sqlite3

    with Lab.open(root) as lab:
        path = Path(lab.config.ledger_sqlalchemy_url.removeprefix("sqlite:///"))
        raw = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        head, typed, floor = lab.ledger.head, [], []
        for _ in range(rounds):
            t0 = time.perf_counter()
            for _ in range(calls):
                head()
            typed.append((time.perf_counter() - t0) / calls * 1e6)
            t0 = time.perf_counter()
            for _ in range(calls):
                raw.execute("SELECT seq FROM head WHERE id = 1").fetchone()
            floor.append((time.perf_counter() - t0) / calls * 1e6)
        raw.close()
    med_typed, med_floor = statistics.median(typed), statistics.median(floor)
    return {
        "ledger_head_us_median": round(med_typed, 2),
        "raw_select_us_median": round(med_floor, 2),
        "ratio": round(med_typed / med_floor, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=150.0, help="offered requests/s")
    parser.add_argument("--seconds", type=float, default=5.0, help="per phase")
    parser.add_argument("--reps", type=int, default=3, help="phases of each kind")
    parser.add_argument("--drills", type=int, default=15, help="canary fault drills")
    parser.add_argument("--senders", type=int, default=2, help="oversized-body senders")
    parser.add_argument("--oversize-mb", type=float, default=50.0, help="each oversized body")
    parser.add_argument(
        "--parts",
        default="primary,head,oversize,drills,batch,text",
        help="which measurements, comma-separated",
    )
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    out: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="breedlab-bench-serve-") as tmp:
        root = Path(tmp)
        if parts - {"text"}:  # the digits lab
            lab, ids = release_lab(root)
            lab.approve(ids["good"], purpose="release", key="pat")
            lab.close()
        if "primary" in parts:
            out["primary_path"] = primary_path(
                root / "lab", ids["good"], rate=args.rate, seconds=args.seconds, reps=args.reps
            )
        if "head" in parts:
            out["head_read"] = head_reads(root / "lab")
        if "oversize" in parts:
            out["oversized_bodies"] = oversized_bodies(
                root / "lab",
                rate=args.rate,
                seconds=args.seconds,
                reps=args.reps,
                senders=args.senders,
                mb=args.oversize_mb,
            )
        if "batch" in parts:
            out["predict_batch"] = batched(root / "lab", reps=args.reps)
        if "text" in parts:
            out["predict_text"] = text_batched(root / "text", reps=args.reps)
        if "drills" in parts:
            with Lab.open(root / "lab") as lab:
                out["canary_fault_5pct"] = canary_drills(
                    lab, root / "models" / "champion", root / "variants", args.drills
                )
    _ = CanaryPolicy  # the drills use the default guardrails
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

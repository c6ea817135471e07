"""The shadow process: challenger and champion inference outside the server's GIL.

Started by :class:`breedlab.serving.mirror.ShadowMirror` as ``python -I -B -c "from
breedlab.serving.shadow_process import main; main()" SPEC JOBS_FD RESULTS_FD`` (a fresh
interpreter: nothing of the server's ``__main__`` is imported again, as
``multiprocessing``'s spawn would). SPEC is a JSON list of models ``[folder, family,
labels, input size, max bytes]``; each is loaded here from its materialised package
folder, bounded by its capability's memory budget (``max bytes``) as the server loaded it.
A model that does not load answers every job as failed, and one line on stderr says why.

Two pipes carry fixed binary frames -- nothing is pickled, in either direction:

* a job: ``<QHHH`` (job id, shadow model index, champion model index, n) and n float64
  inputs (converted to float32 exactly as the primary path converts them);
* a result: ``<Qhdd`` (job id, shadow label index or -1 when the shadow failed, shadow
  seconds, champion seconds). A result with job id :data:`READY` comes first, once the
  models are loaded.

The process wakes every 25 ms, takes every job that arrived meanwhile, and labels them
with one batched forward pass of the challenger (the champion's answers are the ones the
primary path gave). One job in four is also *timed*: the champion and the challenger each
answer that single input, back to back, in alternating order, and their thread CPU times
are the pair's latencies (NaN for the untimed three). So a shadow costs the host a small
fraction of what answering every request twice would, and the latency ratio still
compares like with like. It runs with idle priority (``SCHED_IDLE``): the serving process
comes first.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import struct
import sys
import time
from collections.abc import Sequence
from typing import Any

__all__ = [
    "JOB",
    "READY",
    "RESULT",
    "ModelSpec",
    "idle_priority",
    "job_frame",
    "main",
    "results_from",
    "write_all",
]

#: (folder, family, labels, input size, max bytes of float32 weights its config may describe)
ModelSpec = tuple[str, str, tuple[str, ...], int, int]

JOB = struct.Struct("<QHHH")
RESULT = struct.Struct("<Qhdd")
READY = 2**64 - 1
_BATCH = 64
_LINGER_S = 0.025  # the pause before each read: jobs gather into one batch meanwhile
_TIME_EVERY = 4  # one job in this many is timed on both models, one request at a time


def idle_priority(pid: int = 0) -> None:
    """Give process ``pid`` (0: this one) idle capacity only: ``SCHED_IDLE`` where the
    kernel has it (it runs only when no normal task wants the CPU), else nice 19.

    Best effort: a platform without either leaves the priority as it is.
    """
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))
        return
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, pid, 19)


def job_frame(job_id: int, shadow: int, champion: int, inputs: Sequence[float]) -> bytes:
    """One job as bytes (raises ``struct.error`` for values that do not fit)."""
    n = len(inputs)
    return JOB.pack(job_id, shadow, champion, n) + struct.pack(f"<{n}d", *inputs)


def write_all(fd: int, data: bytes | bytearray) -> None:
    """Write every byte of ``data`` to a blocking ``fd``."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def results_from(buf: bytearray) -> list[tuple[int, int, float, float]]:
    """Take every whole result frame off the front of ``buf``."""
    whole = len(buf) - len(buf) % RESULT.size
    out = [RESULT.unpack_from(buf, at) for at in range(0, whole, RESULT.size)]
    del buf[:whole]
    return out


def _labels(
    loaded: tuple[Any, tuple[str, ...], int] | None, rows: list[tuple[float, ...]]
) -> list[int]:
    """Label indices for ``rows`` from one batched forward pass (-1: that row failed)."""
    import numpy as np

    out = [-1] * len(rows)
    if loaded is None:
        return out
    model, labels, size = loaded
    ok = [i for i, r in enumerate(rows) if len(r) == size]
    if not ok:
        return out
    try:
        x = np.asarray([rows[i] for i in ok], dtype=np.float32)
        finite = np.isfinite(x).all(axis=1)
        probs = model.predict_proba(x)
        if probs.shape != (len(ok), len(labels)):
            return out
        good = finite & np.isfinite(probs).all(axis=1)
        best = probs.argmax(axis=1)
    except Exception:  # noqa: BLE001 -- a failing model is a recorded error
        return out
    for k, i in enumerate(ok):
        if good[k]:
            out[i] = int(best[k])
    return out


def _timed(loaded: tuple[Any, tuple[str, ...], int] | None, row: tuple[float, ...]) -> float:
    """Thread CPU seconds of one single-request prediction (NaN when it failed)."""
    import numpy as np

    c0 = time.thread_time()
    try:
        if loaded is None or len(row) != loaded[2]:
            return math.nan
        probs = loaded[0].predict_proba(np.asarray([row], dtype=np.float32))
        if probs.shape != (1, len(loaded[1])) or not np.isfinite(probs).all():
            return math.nan
    except Exception:  # noqa: BLE001 -- a failing model is a recorded error
        return math.nan
    return max(time.thread_time() - c0, 1e-9)


def _serve(specs: list[ModelSpec], jobs_fd: int, results_fd: int) -> None:
    from pathlib import Path

    import torch

    torch.set_num_threads(1)
    from breedlab.families import load_model

    models: list[tuple[Any, tuple[str, ...], int] | None] = []
    for folder, family, labels, size, max_bytes in specs:
        try:
            model = load_model(Path(folder), family, max_bytes=max_bytes)
        except Exception as e:  # noqa: BLE001 -- a model that will not load answers errors
            message = getattr(e, "message", None) or f"{type(e).__name__}: {e}"
            print(f"breedlab shadow process: {message}", file=sys.stderr, flush=True)
            models.append(None)
        else:
            models.append((model, tuple(labels), int(size)))

    write_all(results_fd, RESULT.pack(READY, 0, 0.0, 0.0))
    buf = bytearray()
    seen = 0
    while True:
        time.sleep(_LINGER_S)  # let jobs gather: one wakeup per batch, not per request
        chunk = os.read(jobs_fd, 1 << 16)
        if not chunk:
            return  # the server closed the pipe: stop
        buf += chunk
        groups: dict[tuple[int, int], list[tuple[int, tuple[float, ...]]]] = {}
        while len(buf) >= JOB.size and len(buf) >= JOB.size + 8 * JOB.unpack_from(buf)[3]:
            job_id, shadow, champion, n = JOB.unpack_from(buf)
            groups.setdefault((shadow, champion), []).append(
                (job_id, struct.unpack_from(f"<{n}d", buf, JOB.size))
            )
            del buf[: JOB.size + 8 * n]
        out = bytearray()
        for (shadow, champion), jobs in groups.items():
            answers = _labels(models[shadow], [row for _, row in jobs])
            for (job_id, row), label in zip(jobs, answers, strict=True):
                shadow_s = champion_s = math.nan
                if label >= 0 and seen % _TIME_EVERY == 0:  # the first, then every 4th
                    # A timed pair: both models on this one input, back to back, in
                    # alternating order so a warm cache favours neither side.
                    if (seen // _TIME_EVERY) % 2:
                        champion_s = _timed(models[champion], row)
                        shadow_s = _timed(models[shadow], row)
                    else:
                        shadow_s = _timed(models[shadow], row)
                        champion_s = _timed(models[champion], row)
                seen += 1
                out += RESULT.pack(job_id, label, shadow_s, champion_s)
                if len(out) >= _BATCH * RESULT.size:
                    write_all(results_fd, out)
                    out.clear()
        if out:
            write_all(results_fd, out)


def main(argv: Sequence[str] | None = None) -> None:
    """``SPEC JOBS_FD RESULTS_FD [idle|normal]``: serve shadow jobs until the jobs pipe
    closes (at idle priority unless told ``normal``)."""
    args = list(argv if argv is not None else sys.argv[1:5])
    if (args[3] if len(args) > 3 else "idle") == "idle":
        idle_priority()  # before the heavy imports, not after them
    spec_json, jobs_fd, results_fd = args[:3]
    specs = [
        (str(f), str(fam), tuple(str(x) for x in labels), int(size), int(max_bytes))
        for f, fam, labels, size, max_bytes in json.loads(spec_json)
    ]
    with contextlib.suppress(BrokenPipeError, KeyboardInterrupt):
        _serve(specs, int(jobs_fd), int(results_fd))

"""The shadow process: challenger and champion inference outside the server's GIL.

Started by :class:`breedlab.serving.mirror.ShadowMirror` as ``python -I -B -c "from
breedlab.serving.shadow_process import main; main()" SPEC JOBS_FD RESULTS_FD`` (a fresh
interpreter: nothing of the server's ``__main__`` is imported again, as
``multiprocessing``'s spawn would). SPEC is a JSON list of models ``[folder, family,
labels, input size, max bytes, max length]`` (max length: a text model's ``max_length``
in characters, 0 for a model of float rows); each is loaded here from its materialised package
folder, bounded by its capability's memory budget (``max bytes``) as the server loaded it.
A model that does not load answers every job as failed, and one line on stderr says why.

Two pipes carry binary frames -- nothing is pickled, in either direction:

* a job for models of float rows: ``<QHHH`` (job id, shadow model index, champion model
  index, n) and n float64 inputs (converted to float32 exactly as the primary path
  converts them);
* a job for text models (issue 12): ``<QHHI`` (job id, shadow model index, champion
  model index, byte length) and that many bytes of UTF-8 text. The length is bounded by
  :func:`text_bound` of the shadow model's ``max_length`` (4 bytes per character, UTF-8's
  most): the server never writes a longer frame, and a longer length read here is a torn
  stream, which ends this process (the server starts it again). Which of the two a frame
  is follows from its shadow model (the ``<QHH`` both begin with): a model takes text or
  float rows, never both;
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
    "TEXT_JOB",
    "ModelSpec",
    "frame_bound",
    "idle_priority",
    "job_frame",
    "main",
    "results_from",
    "text_bound",
    "text_frame",
    "write_all",
]

#: (folder, family, labels, input size, max bytes of float32 weights its config may
#: describe, max length of a text in characters: 0 for a model of float rows)
ModelSpec = tuple[str, str, tuple[str, ...], int, int, int]

JOB = struct.Struct("<QHHH")
TEXT_JOB = struct.Struct("<QHHI")
_MODELS = struct.Struct("<QHH")  # what both kinds of job begin with
_UTF8_MAX = 4  # bytes per character, at most
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


def text_bound(max_length: int) -> int:
    """The most bytes of UTF-8 a text of ``max_length`` characters takes."""
    return _UTF8_MAX * max_length


def frame_bound(size: int, max_length: int) -> int:
    """The longest job frame for a model of ``size`` floats, or of texts of at most
    ``max_length`` characters (when ``max_length`` is not 0)."""
    if max_length:
        return TEXT_JOB.size + text_bound(max_length)
    return JOB.size + 8 * size


def text_frame(job_id: int, shadow: int, champion: int, text: str, max_length: int) -> bytes:
    """One text job as bytes.

    Raises:
        ValueError: the text is not valid Unicode, or its UTF-8 exceeds
            :func:`text_bound` of ``max_length``. ``struct.error``: values that do not fit.
    """
    data = text.encode("utf-8")
    if len(data) > text_bound(max_length):
        raise ValueError(f"a text of {len(data)} bytes exceeds the frame bound")
    return TEXT_JOB.pack(job_id, shadow, champion, len(data)) + data


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


#: A loaded model: (model, labels, input size, max length of a text: 0 for float rows).
_Loaded = tuple[Any, tuple[str, ...], int, int]
#: One job's row: floats, or a text.
_Row = tuple[float, ...] | str


def _take(buf: bytearray, lengths: Sequence[int]) -> tuple[int, int, int, _Row] | None:
    """Take the first whole job frame off the front of ``buf`` (None: none is whole yet).

    ``lengths`` holds each model's max length (0: a model of float rows); the frame's
    shadow model says which kind of frame it is.

    Raises:
        ValueError: a frame the server never writes (an unknown model, a text over its
            bound, or not UTF-8): the stream is torn.
    """
    if len(buf) < _MODELS.size:
        return None
    shadow = _MODELS.unpack_from(buf)[1]
    if shadow >= len(lengths):
        raise ValueError(f"a job for model {shadow} of {len(lengths)}")
    if max_length := lengths[shadow]:
        if len(buf) < TEXT_JOB.size:
            return None
        job_id, shadow, champion, n = TEXT_JOB.unpack_from(buf)
        if n > text_bound(max_length):
            raise ValueError(f"a text frame of {n} bytes, over {text_bound(max_length)}")
        if len(buf) < TEXT_JOB.size + n:
            return None
        text = bytes(buf[TEXT_JOB.size : TEXT_JOB.size + n]).decode("utf-8")
        del buf[: TEXT_JOB.size + n]
        return job_id, shadow, champion, text
    if len(buf) < JOB.size or len(buf) < JOB.size + 8 * JOB.unpack_from(buf)[3]:
        return None
    job_id, shadow, champion, n = JOB.unpack_from(buf)
    row = struct.unpack_from(f"<{n}d", buf, JOB.size)
    del buf[: JOB.size + 8 * n]
    return job_id, shadow, champion, row


def _inputs(loaded: _Loaded, rows: Sequence[_Row]) -> tuple[list[int], Any]:
    """The rows ``loaded`` takes (their indices) as one batch of its input: a list of
    texts, or a float32 array (converted as the primary path converts them)."""
    import numpy as np

    _, _, size, max_length = loaded
    if max_length:
        ok = [i for i, r in enumerate(rows) if isinstance(r, str)]
        return ok, [rows[i] for i in ok]
    ok = [i for i, r in enumerate(rows) if not isinstance(r, str) and len(r) == size]
    return ok, np.asarray([rows[i] for i in ok], dtype=np.float32)


def _labels(loaded: _Loaded | None, rows: list[_Row]) -> list[int]:
    """Label indices for ``rows`` from one batched forward pass (-1: that row failed)."""
    import numpy as np

    out = [-1] * len(rows)
    if loaded is None:
        return out
    model, labels = loaded[0], loaded[1]
    try:
        ok, x = _inputs(loaded, rows)
        if not ok:
            return out
        finite = np.ones(len(ok), dtype=bool) if isinstance(x, list) else np.isfinite(x).all(1)
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


def _timed(loaded: _Loaded | None, row: _Row) -> float:
    """Thread CPU seconds of one single-request prediction (NaN when it failed)."""
    import numpy as np

    c0 = time.thread_time()
    try:
        if loaded is None:
            return math.nan
        ok, x = _inputs(loaded, [row])
        if not ok:
            return math.nan
        probs = loaded[0].predict_proba(x)
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

    models: list[_Loaded | None] = []
    for folder, family, labels, size, max_bytes, max_length in specs:
        try:
            model = load_model(Path(folder), family, max_bytes=max_bytes)
        except Exception as e:  # noqa: BLE001 -- a model that will not load answers errors
            message = getattr(e, "message", None) or f"{type(e).__name__}: {e}"
            print(f"breedlab shadow process: {message}", file=sys.stderr, flush=True)
            models.append(None)
        else:
            models.append((model, tuple(labels), int(size), int(max_length)))
    lengths = [spec[5] for spec in specs]

    write_all(results_fd, RESULT.pack(READY, 0, 0.0, 0.0))
    buf = bytearray()
    seen = 0
    while True:
        time.sleep(_LINGER_S)  # let jobs gather: one wakeup per batch, not per request
        chunk = os.read(jobs_fd, 1 << 16)
        if not chunk:
            return  # the server closed the pipe: stop
        buf += chunk
        groups: dict[tuple[int, int], list[tuple[int, _Row]]] = {}
        try:
            while (job := _take(buf, lengths)) is not None:
                job_id, shadow, champion, row = job
                groups.setdefault((shadow, champion), []).append((job_id, row))
        except ValueError as e:  # a torn stream: stop; the server counts drops, restarts
            print(f"breedlab shadow process: a torn job stream ({e})", file=sys.stderr)
            return
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
        (str(f), str(fam), tuple(str(x) for x in labels), int(size), int(max_bytes), int(length))
        for f, fam, labels, size, max_bytes, length in json.loads(spec_json)
    ]
    with contextlib.suppress(BrokenPipeError, KeyboardInterrupt):
        _serve(specs, int(jobs_fd), int(results_fd))

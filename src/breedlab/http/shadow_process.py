"""The shadow process: challenger and champion inference outside the server's GIL.

:func:`shadow_main` runs in a child process (spawn context) started by
:class:`breedlab.http.routing.ShadowMirror`. It loads each model itself from its
materialised package folder and answers plain-data jobs: ``(job_id, shadow_pkg,
champion_pkg, inputs)`` in, ``(job_id, shadow_label | None, shadow_s, champion_s | None)``
out (latencies: this process's thread CPU time, back to back); a ``("ready",)`` first,
once the models are loaded. Nothing but lists, strings
and numbers crosses the queues; model objects never do.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from multiprocessing.queues import Queue

__all__ = ["ModelSpec", "shadow_main"]

#: package id -> (folder, family, labels, input size)
ModelSpec = tuple[str, str, tuple[str, ...], int]


def _predict(model: Any, labels: tuple[str, ...], size: int, inputs: list[float]) -> str:
    import numpy as np

    if len(inputs) != size:
        raise ValueError("wrong input length")
    x = np.asarray([inputs], dtype=np.float32)
    if not np.isfinite(x).all():
        raise ValueError("non-finite input")
    probs = model.predict_proba(x)[0]
    if probs.shape != (len(labels),) or not np.isfinite(probs).all():
        raise ValueError("malformed output")
    return labels[int(probs.argmax())]


def shadow_main(specs: dict[str, ModelSpec], jobs: Queue[Any], results: Queue[Any]) -> None:
    """Serve shadow jobs until a ``None`` job arrives (the child's entry point)."""
    from pathlib import Path

    with contextlib.suppress(OSError):
        os.nice(10)  # idle capacity only: the serving process comes first
    import torch

    torch.set_num_threads(1)
    from breedlab.families import load_model

    models: dict[str, tuple[Any, tuple[str, ...], int]] = {}
    for pkg, (folder, family, labels, size) in specs.items():
        with contextlib.suppress(Exception):  # a model that will not load answers errors
            models[pkg] = (load_model(Path(folder), family), tuple(labels), int(size))

    def run(pkg: str, inputs: list[float]) -> tuple[str | None, float]:
        c0 = time.thread_time()
        try:
            model, labels, size = models[pkg]
            label: str | None = _predict(model, labels, size, inputs)
        except Exception:  # noqa: BLE001 -- a failing model is a recorded error
            label = None
        return label, max(time.thread_time() - c0, 1e-9)

    results.put(("ready",))  # the models are loaded: mirrors are answered from now on
    turn = 0
    while True:
        job = jobs.get()
        if job is None:
            return
        job_id, shadow_pkg, champion_pkg, inputs = job
        turn += 1
        if turn % 2:  # alternate the order: a warm cache favours neither side
            champ, champion_s = run(champion_pkg, inputs)
        label, shadow_s = run(shadow_pkg, inputs)
        if not turn % 2:
            champ, champion_s = run(champion_pkg, inputs)
        results.put((job_id, label, shadow_s, champion_s if champ is not None else None))

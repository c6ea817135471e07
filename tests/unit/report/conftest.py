"""A realistic ``breedlab.round/v1`` record for the report tests.

Scorecards are written by hand from simulated per-item results (digits-sized: 270 dev
items, 180 sealed, 50 critical); the decisions are the real viability controller's
``Decision.to_record()`` on the same per-item data, so the report is tested against the
record format the lab actually writes. Four candidates cover the four outcomes: one
shadow (better worst-case accuracy, confirmed on the sealed split), one archive (same
quality, far smaller), one no-op (indistinguishable), one retire (fails critical items);
one operator run failed.
"""

from __future__ import annotations

import copy
import functools
import hashlib
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from breedlab.viability import (
    AggregateValue,
    Direction,
    Evidence,
    Group,
    MetricData,
    MetricEvidence,
    MetricKind,
    MetricSpec,
    PairedBinary,
    PairedContinuous,
    Policy,
    Role,
    confirm,
    contender,
    decide,
)
from breedlab.viability import assess as assess_round


def digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


SUITE = digest("suite:digits/v3")
CHAMPION = digest("model:champion")
CLUSTER = digest("dataset:cluster-shift")

SPECS = (
    MetricSpec(
        name="robust_accuracy",
        group=Group.ROBUSTNESS,
        direction=Direction.HIGHER,
        role=Role.PRIMARY,
        kind=MetricKind.BINARY,
        margin=0.02,
    ),
    MetricSpec(
        name="accuracy",
        group=Group.TASK,
        direction=Direction.HIGHER,
        role=Role.GUARDRAIL,
        kind=MetricKind.BINARY,
        margin=0.02,
    ),
    MetricSpec(
        name="nll",
        group=Group.CALIBRATION,
        direction=Direction.LOWER,
        role=Role.GUARDRAIL,
        kind=MetricKind.CONTINUOUS,
        margin=0.05,
    ),
    MetricSpec(
        name="brier",
        group=Group.CALIBRATION,
        direction=Direction.LOWER,
        role=Role.GUARDRAIL,
        kind=MetricKind.CONTINUOUS,
        margin=0.02,
    ),
    MetricSpec(
        name="critical",
        group=Group.SAFETY,
        direction=Direction.HIGHER,
        role=Role.ZERO_TOLERANCE,
        kind=MetricKind.BINARY,
    ),
    MetricSpec(
        name="latency_p95_ms",
        group=Group.RESOURCE,
        direction=Direction.LOWER,
        role=Role.GUARDRAIL,
        kind=MetricKind.AGGREGATE,
        margin=0.10,
    ),
    MetricSpec(
        name="size_bytes",
        group=Group.RESOURCE,
        direction=Direction.LOWER,
        role=Role.GUARDRAIL,
        kind=MetricKind.AGGREGATE,
        margin=0.10,
    ),
    MetricSpec(
        name="accuracy_shift",
        group=Group.TASK,
        direction=Direction.HIGHER,
        role=Role.SLICE,
        kind=MetricKind.BINARY,
        margin=0.0,
    ),
)

POLICY = Policy(
    metrics=SPECS, epsilon_min=0.01, sigma_aa=0.004, seed=20260101, bootstrap_samples=2000
)


@dataclass(frozen=True, kw_only=True)
class Model:
    """One model's per-item results on one split, and its resources."""

    clean: NDArray[np.bool_]
    shift: NDArray[np.bool_]
    robust: NDArray[np.bool_]
    nll: NDArray[np.float64]
    brier: NDArray[np.float64]
    critical: NDArray[np.bool_]
    latency_p95_ms: float
    size_bytes: int
    parameters: int
    ece: float


def _champion(n: int, seed: int) -> Model:
    rng = np.random.default_rng(seed)
    clean = rng.random(n) < 0.96
    shift = clean & (rng.random(n) < 0.31)
    robust = shift & (rng.random(n) < 0.95)
    nll = rng.gamma(0.6, 0.25, n)
    return Model(
        clean=clean,
        shift=shift,
        robust=robust,
        nll=nll,
        brier=np.minimum(nll * 0.4, 2.0),
        critical=np.ones(50, dtype=bool),
        latency_p95_ms=0.081,
        size_bytes=70_456,
        parameters=17_226,
        ece=0.021,
    )


def _fix(model: Model, count: int, seed: int) -> Model:
    """``count`` items the model got wrong under every perturbation, now right."""
    rng = np.random.default_rng(seed)
    wrong = np.flatnonzero(~model.robust)
    chosen = rng.choice(wrong, size=count, replace=False)
    clean, shift, robust = model.clean.copy(), model.shift.copy(), model.robust.copy()
    clean[chosen] = shift[chosen] = robust[chosen] = True
    return replace(model, clean=clean, shift=shift, robust=robust)


def _break(model: Model, count: int, seed: int) -> Model:
    """``count`` items the model got right under every perturbation, now wrong."""
    rng = np.random.default_rng(seed)
    chosen = rng.choice(np.flatnonzero(model.robust), size=count, replace=False)
    robust, shift = model.robust.copy(), model.shift.copy()
    robust[chosen] = shift[chosen] = False
    return replace(model, robust=robust, shift=shift)


def _text(value: float) -> str:
    return repr(float(value))


def _split(model: Model, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    accuracy = float(model.clean.mean())
    n = model.clean.shape[0]
    confidence = np.sort(rng.uniform(0.3, 1.0, 10))
    bins = [
        {
            "confidence": _text(c),
            "accuracy": _text(min(1.0, c + rng.normal(0, model.ece * 2))),
            "count": n // 10,
        }
        for c in confidence
    ]
    return {
        "n": n,
        "accuracy": _text(accuracy),
        "macro_f1": _text(accuracy - 0.002),
        "ece": _text(model.ece),
        "brier": _text(model.brier.mean()),
        "nll": _text(model.nll.mean()),
        "robust_accuracy": _text(model.robust.mean()),
        "robustness_gap": _text(accuracy - model.robust.mean()),
        "variants": {
            "clean": _text(accuracy),
            "noise": _text(accuracy - 0.11),
            "shift": _text(model.shift.mean()),
            "occlusion": _text(accuracy - 0.25),
            "dropout": _text(accuracy - 0.12),
        },
        "reliability": bins,
    }


def _scorecard(package: str, dev: Model, sealed: Model, seed: int) -> dict[str, Any]:
    return {
        "suite": SUITE,
        "candidate": package,
        "dev": _split(dev, seed),
        "sealed": _split(sealed, seed + 1),
        "critical": {
            "items": 50,
            "errors": int((~dev.critical).sum()),
            "failed": [f"dev-{i:04d}" for i in np.flatnonzero(~dev.critical)],
        },
        "resources": {
            "latency_p50_ms": _text(dev.latency_p95_ms * 0.62),
            "latency_p95_ms": _text(dev.latency_p95_ms),
            "parameters": dev.parameters,
            "size_bytes": dev.size_bytes,
            "peak_rss_kib": 301_212,
        },
    }


def _evidence(package: str, champion: Model, candidate: Model) -> Evidence:
    def binary(a: NDArray[np.bool_], b: NDArray[np.bool_]) -> PairedBinary:
        return PairedBinary(champion=a, candidate=b)

    def continuous(a: NDArray[np.float64], b: NDArray[np.float64]) -> PairedContinuous:
        return PairedContinuous(champion=a, candidate=b)

    data: dict[str, MetricData] = {
        "robust_accuracy": binary(champion.robust, candidate.robust),
        "accuracy": binary(champion.clean, candidate.clean),
        "nll": continuous(champion.nll, candidate.nll),
        "brier": continuous(champion.brier, candidate.brier),
        "critical": binary(champion.critical, candidate.critical),
        "latency_p95_ms": AggregateValue(
            champion=champion.latency_p95_ms, candidate=candidate.latency_p95_ms
        ),
        "size_bytes": AggregateValue(
            champion=float(champion.size_bytes), candidate=float(candidate.size_bytes)
        ),
        "accuracy_shift": binary(champion.shift, candidate.shift),
    }
    return Evidence(
        candidate_id=package,
        metrics=tuple(MetricEvidence(metric=name, data=value) for name, value in data.items()),
    )


@functools.cache
def _build() -> dict[str, Any]:
    dev, sealed = _champion(270, 17), _champion(180, 18)
    critical_fail = np.ones(50, dtype=bool)
    critical_fail[[7, 31]] = False
    plans = [  # label, name, params, dev, sealed
        (
            "adapter/r8-cluster",
            "digits-adapter-r8",
            {"rank": 8, "alpha": 16, "data": "cluster"},
            replace(
                _fix(dev, 30, 1),
                nll=dev.nll * 0.96,
                brier=dev.brier * 0.97,
                latency_p95_ms=0.084,
                size_bytes=71_488,
                parameters=17_482,
                ece=0.018,
            ),
            _fix(sealed, 20, 2),
        ),
        (
            "quantize/int8_pc",
            "digits-int8-per-channel",
            {"bits": 8, "per_channel": True},
            replace(dev, nll=dev.nll * 1.01, latency_p95_ms=0.056, size_bytes=19_204, ece=0.027),
            sealed,
        ),
        (
            "distill/t2-student",
            "digits-student-t2",
            {"temperature": "2.0", "hidden": [64]},
            _fix(_break(dev, 4, 3), 5, 4),
            sealed,
        ),
        (
            "merge/ties-d0.5",
            "digits-ties-merge",
            {"method": "ties", "density": "0.5", "weights": ["0.5", "0.5"]},
            replace(dev, critical=critical_fail, ece=0.034),
            sealed,
        ),
    ]
    packages = [digest(f"model:{label}") for label, *_ in plans]
    evidences = [
        _evidence(pkg, dev, cand_dev)
        for pkg, (_, _, _, cand_dev, _) in zip(packages, plans, strict=True)
    ]
    assessments = assess_round(evidences, POLICY)
    best = contender(assessments, POLICY)
    assert best is not None
    best_index = packages.index(best.candidate_id)
    confirmation = confirm(_evidence(best.candidate_id, sealed, plans[best_index][4]), POLICY)
    decisions = decide(assessments, POLICY, confirmation=confirmation)
    outcome_of = {d.candidate_id: d for d in decisions}
    winner = next((d.candidate_id for d in decisions if d.outcome.value == "shadow"), None)
    return {
        "schema": "breedlab.round/v1",
        "round": "round-17",
        "capability": "digits",
        "suite": SUITE,
        "champion": CHAMPION,
        "seed": 0,
        "cluster": {
            "id": CLUSTER,
            "name": "shifted-strokes",
            "description": "digits written with a strong rightward slant",
        },
        "started": "2026-03-02T10:15:03Z",
        "finished": "2026-03-02T10:19:41Z",
        "policy": POLICY.to_record(),
        "sigma_aa": "0.0021",
        "champion_scorecard": _scorecard(CHAMPION, dev, sealed, 100),
        "candidates": [
            {
                "package": pkg,
                "name": name,
                "operator": label.split("/")[0],
                "label": label,
                "params": params,
                "parents": [CHAMPION],
                "scorecard": _scorecard(pkg, cand_dev, cand_sealed, 200 + i),
                "scorecard_blob": digest(f"scorecard:{label}"),
                "outcome": outcome_of[pkg].outcome.value,
                "reasons": list(outcome_of[pkg].reasons),
            }
            for i, (pkg, (label, name, params, cand_dev, cand_sealed)) in enumerate(
                zip(packages, plans, strict=True)
            )
        ],
        "failed": [
            {
                "operator": "train",
                "label": "train/wide-mlp",
                "failure": "timeout",
                "reason": "wall-clock limit of 900 s",
            }
        ],
        "decisions": [d.to_record() for d in decisions],
        "winner": winner,
        "action": "shadow" if winner is not None else "archive",
    }


@pytest.fixture
def round_record() -> dict[str, Any]:
    """A fresh deep copy of the realistic record: tests may edit it."""
    return copy.deepcopy(_build())

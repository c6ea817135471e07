"""Scorecards: every metric of a suite, derived from a model's stored per-item outputs.

Pure numpy. Given the suite, the labels of its splits and the probabilities the runner
stored, :func:`score` computes per-item vectors (what the viability controller pairs
across models) and aggregates (what people read). Metric names are a fixed vocabulary
that suites refer to:

    accuracy            binary per item, clean inputs
    macro_f1            continuous per item, clean inputs: terms whose mean is macro-F1
                        (``metrics.macro_f1_per_item``)
    ece                 continuous per item, clean inputs: terms whose mean is the
                        equal-mass ECE (``metrics.ece_per_item``; lower is better)
    robust_accuracy     binary per item: right on the clean input and every perturbation
    accuracy_<kind>     binary per item under one perturbation (slices)
    brier, nll          continuous per item, clean inputs (lower is better)
    critical            binary per critical item (zero tolerance)
    latency_p95_ms      aggregate: batch-1 latency over the suite's replay
    size_bytes          aggregate: the package's bytes
    peak_rss_mib        aggregate: the evaluation process's peak resident memory
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from breedlab.canonical import JsonValue
from breedlab.errors import IntegrityError, InvalidRequest
from breedlab.evaluator.metrics import (
    ClassificationScores,
    classification_scores,
    ece_per_item,
    macro_f1_per_item,
    reliability,
)
from breedlab.evaluator.suite import SuiteSpec

__all__ = ["AGGREGATES", "Resources", "Scorecard", "SplitScores", "score"]

AGGREGATES = ("latency_p95_ms", "size_bytes", "peak_rss_mib")


def _text(value: float) -> str:
    return repr(float(value))


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class SplitScores:
    split: str
    ids: tuple[str, ...]
    labels: npt.NDArray[np.int64]
    clean: ClassificationScores
    correct: Mapping[str, npt.NDArray[np.bool_]]  # variant -> per item
    robust: npt.NDArray[np.bool_]

    def accuracy(self, variant: str) -> float:
        return float(np.mean(self.correct[variant]))


@dataclass(frozen=True, slots=True, kw_only=True)
class Resources:
    latency_p50_ms: float
    latency_p95_ms: float
    parameters: int
    size_bytes: int
    peak_rss_kib: int


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Scorecard:
    suite: str
    candidate: str
    splits: Mapping[str, SplitScores]
    critical_ids: tuple[str, ...]
    critical: npt.NDArray[np.bool_]
    resources: Resources

    def per_item(self, metric: str, split: str) -> npt.NDArray[np.generic] | float:
        """The values the controller pairs: an array per item, or one number (aggregates).

        Raises:
            InvalidRequest: an unknown metric name.
        """
        s = self.splits[split]
        if metric == "accuracy":
            return s.correct["clean"]
        if metric == "robust_accuracy":
            return s.robust
        if metric.startswith("accuracy_") and metric[len("accuracy_") :] in s.correct:
            return s.correct[metric[len("accuracy_") :]]
        if metric == "macro_f1":
            return macro_f1_per_item(s.labels, np.asarray(s.clean.items.predicted))
        if metric == "ece":
            items = s.clean.items
            return ece_per_item(np.asarray(items.confidence), np.asarray(items.correct))
        if metric == "brier":
            return np.asarray(s.clean.items.brier)
        if metric == "nll":
            return np.asarray(s.clean.items.nll)
        if metric == "critical":
            return self.critical
        if metric == "latency_p95_ms":
            return self.resources.latency_p95_ms
        if metric == "size_bytes":
            return float(self.resources.size_bytes)
        if metric == "peak_rss_mib":
            return self.resources.peak_rss_kib / 1024.0
        raise InvalidRequest(f"unknown metric {metric!r}")

    def summary(self) -> dict[str, JsonValue]:
        """Aggregates for people and for the ledger (floats as exact strings)."""
        out: dict[str, JsonValue] = {"suite": self.suite, "candidate": self.candidate}
        for name, s in self.splits.items():
            clean = s.clean
            out[name] = {
                **clean.to_record(),
                "robust_accuracy": _text(float(np.mean(s.robust))),
                "robustness_gap": _text(clean.accuracy - float(np.mean(s.robust))),
                "variants": {v: _text(s.accuracy(v)) for v in s.correct},
                "reliability": [
                    b.to_record()
                    for b in reliability(
                        np.asarray(clean.items.confidence), np.asarray(clean.items.correct)
                    )
                ],
            }
        out["critical"] = {
            "items": len(self.critical_ids),
            "errors": int(np.sum(~self.critical)),
            "failed": [i for i, ok in zip(self.critical_ids, self.critical, strict=True) if not ok],
        }
        r = self.resources
        out["resources"] = {
            "latency_p50_ms": _text(r.latency_p50_ms),
            "latency_p95_ms": _text(r.latency_p95_ms),
            "parameters": r.parameters,
            "size_bytes": r.size_bytes,
            "peak_rss_kib": r.peak_rss_kib,
        }
        return out


def _split(
    suite: SuiteSpec,
    split: str,
    ids: Sequence[str],
    labels: npt.NDArray[np.int64],
    outputs: Mapping[str, npt.NDArray[np.float64]],
) -> SplitScores:
    correct: dict[str, npt.NDArray[np.bool_]] = {}
    clean: ClassificationScores | None = None
    for variant in suite.variants():
        key = f"{split}/{variant}"
        if key not in outputs:
            raise IntegrityError(f"evaluation outputs lack {key}")
        probs = outputs[key]
        if probs.shape[0] != labels.shape[0]:
            raise IntegrityError(f"evaluation outputs {key} have {probs.shape[0]} rows")
        scores = classification_scores(labels, probs)
        if variant == "clean":
            clean = scores
        correct[variant] = np.asarray(scores.items.correct, dtype=bool)
    assert clean is not None
    robust = np.logical_and.reduce([correct[v] for v in suite.variants()])
    return SplitScores(
        split=split, ids=tuple(ids), labels=labels, clean=clean, correct=correct, robust=robust
    )


def score(
    *,
    suite: SuiteSpec,
    suite_id: str,
    candidate: str,
    labels: Mapping[str, tuple[Sequence[str], npt.NDArray[np.int64]]],
    outputs: Mapping[str, npt.NDArray[np.float64]],
    resources: Resources,
) -> Scorecard:
    """Derive a scorecard from stored outputs.

    Raises:
        IntegrityError: outputs missing or the wrong shape, or critical items unknown.
    """
    splits = {
        name: _split(suite, name, ids, y, outputs) for name, (ids, y) in sorted(labels.items())
    }
    dev = splits["dev"]
    index = {item: i for i, item in enumerate(dev.ids)}
    try:
        rows = [index[i] for i in suite.critical_items]
    except KeyError as e:
        raise IntegrityError(f"critical item {e.args[0]} is not in the dev split") from None
    critical = dev.correct["clean"][rows] if rows else np.zeros(0, dtype=bool)
    return Scorecard(
        suite=suite_id,
        candidate=candidate,
        splits=splits,
        critical_ids=suite.critical_items,
        critical=np.asarray(critical, dtype=bool),
        resources=resources,
    )

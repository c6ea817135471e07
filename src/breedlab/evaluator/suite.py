"""Frozen evaluation suites (DESIGN §9): what is scored, on which items, how, under
which budget -- stored as ``suite.json`` (canonical JSON) in a ``suite`` package whose
parents are the dataset packages it scores.

A suite names its splits (``dev`` decides, ``sealed`` only confirms a winner), the
perturbations applied to every item (seeded by suite seed and item id, so the suite is
the same in every process), a critical item set with zero tolerance, the metric specs
and decision policy the viability controller applies (margins written here, never in
code), and the budget under which results are comparable (batch size 1 latency over a
fixed replay, one thread, a hardware class). Results carry the suite id and budget; the
controller refuses to compare results whose suite id or budget differ.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from breedlab import canonical
from breedlab.canonical import JsonValue
from breedlab.errors import IntegrityError, InvalidRequest
from breedlab.evaluator.perturbations import SuitePerturbation, spec_from_record

__all__ = ["SUITE_FILE", "SUITE_SCHEMA", "Budget", "SuiteSpec"]

SUITE_FILE = "suite.json"
SUITE_SCHEMA = "breedlab.suite/v1"


@dataclass(frozen=True, slots=True, kw_only=True)
class Budget:
    """The conditions results are comparable under (DESIGN §9)."""

    latency_items: int = 200
    batch_size: int = 1
    threads: int = 1

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "latency_items": self.latency_items,
            "batch_size": self.batch_size,
            "threads": self.threads,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class SuiteSpec:
    capability: str
    name: str
    seed: int
    splits: Mapping[str, str]  # "dev" / "sealed" -> dataset package id
    perturbations: tuple[SuitePerturbation, ...]  # array or text kinds
    critical_items: tuple[str, ...]  # dev item ids that must never be wrong
    metrics: tuple[Mapping[str, JsonValue], ...]  # viability MetricSpec records
    policy: Mapping[str, JsonValue]  # epsilon_min, alpha, bootstrap_samples, ...
    budget: Budget

    def __post_init__(self) -> None:
        if set(self.splits) != {"dev", "sealed"}:
            raise InvalidRequest("a suite needs exactly a 'dev' and a 'sealed' split")
        kinds = [p.kind for p in self.perturbations]
        if len(set(kinds)) != len(kinds):
            raise InvalidRequest("a suite lists a perturbation kind twice")
        names = [str(m.get("name")) for m in self.metrics]
        if len(set(names)) != len(names):
            raise InvalidRequest("a suite lists a metric twice")

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "schema": SUITE_SCHEMA,
            "capability": self.capability,
            "name": self.name,
            "seed": self.seed,
            "splits": dict(self.splits),
            "perturbations": [p.to_record() for p in self.perturbations],
            "critical_items": list(self.critical_items),
            "metrics": [dict(m) for m in self.metrics],
            "policy": dict(self.policy),
            "budget": self.budget.to_json(),
        }

    def to_bytes(self) -> bytes:
        return canonical.encode(self.to_json())

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> SuiteSpec:
        if obj.get("schema") != SUITE_SCHEMA:
            raise IntegrityError(f"not a {SUITE_SCHEMA} document")
        try:
            budget = obj["budget"]
            return cls(
                capability=str(obj["capability"]),
                name=str(obj["name"]),
                seed=int(obj["seed"]),
                splits={str(k): str(v) for k, v in obj["splits"].items()},
                perturbations=tuple(spec_from_record(p) for p in obj["perturbations"]),
                critical_items=tuple(str(i) for i in obj["critical_items"]),
                metrics=tuple(dict(m) for m in obj["metrics"]),
                policy=dict(obj["policy"]),
                budget=Budget(
                    latency_items=int(budget["latency_items"]),
                    batch_size=int(budget["batch_size"]),
                    threads=int(budget["threads"]),
                ),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise IntegrityError(f"malformed suite: {e}") from e

    @classmethod
    def from_bytes(cls, data: bytes) -> SuiteSpec:
        return cls.from_json(canonical.decode(data))

    def variants(self) -> Sequence[str]:
        """The input variants scored per split: ``clean`` then each perturbation kind."""
        return ("clean", *(p.kind for p in self.perturbations))

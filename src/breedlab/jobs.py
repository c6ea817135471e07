"""Jobs: the contract between the sandbox and an operator or evaluator -- what a job gets
and what it returns.

An operator is a function ``(job, log) -> tuple[OutputPackage, ...]`` that reads its
inputs from read-only folders, writes only inside ``job.out_dir`` and never touches the
registry or the ledger. The parent process ingests what it returns (DESIGN §8).

Parameters arrive as canonical JSON values -- numbers whose exactness matters are decimal
strings ("0.5"), read with :func:`param_float` -- and are recorded verbatim in the SLSA
provenance of every package the job produces, with the seed and the parents. Same
inputs, parameters and seed must give byte-identical outputs: operators seed every
generator from ``job.seed`` and run torch with one thread.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from breedlab.canonical import JsonValue
from breedlab.errors import InvalidRequest

__all__ = [
    "DataInput",
    "Job",
    "Log",
    "Operator",
    "OutputPackage",
    "ParentInput",
    "param_float",
    "param_int",
    "param_str",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class ParentInput:
    """A parent model, materialised read-only. ``max_bytes`` bounds the float32 weights
    its config may describe: its capability's memory budget, checked by the family
    before anything is allocated (no default, so no path loads it unbounded)."""

    id: str
    name: str
    family: str
    folder: Path
    max_bytes: int


@dataclass(frozen=True, slots=True, kw_only=True)
class DataInput:
    """A dataset package (``breedlab.datasets`` format), materialised read-only.

    Roles: ``train`` (fit on it), ``fitness`` (early stopping, selection), ``cluster``
    (the failure cluster a round targets).
    """

    id: str
    role: str
    folder: Path


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    operator: str
    params: Mapping[str, JsonValue]
    seed: int
    parents: tuple[ParentInput, ...] = ()
    data: tuple[DataInput, ...] = ()
    out_dir: Path
    failure_cluster: str | None = None

    def dataset(self, role: str) -> DataInput:
        """The one input with this role. Raises InvalidRequest if absent."""
        found = [d for d in self.data if d.role == role]
        if len(found) != 1:
            raise InvalidRequest(f"operator {self.operator} needs exactly one {role!r} dataset")
        return found[0]

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "operator": self.operator,
            "params": dict(self.params),
            "seed": self.seed,
            "parents": [
                {
                    "id": p.id,
                    "name": p.name,
                    "family": p.family,
                    "folder": str(p.folder),
                    "max_bytes": p.max_bytes,
                }
                for p in self.parents
            ],
            "data": [{"id": d.id, "role": d.role, "folder": str(d.folder)} for d in self.data],
            "out_dir": str(self.out_dir),
            "failure_cluster": self.failure_cluster,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Job:
        return cls(
            operator=str(obj["operator"]),
            params=dict(obj["params"]),
            seed=int(obj["seed"]),
            parents=tuple(
                ParentInput(
                    id=p["id"],
                    name=p["name"],
                    family=p["family"],
                    folder=Path(p["folder"]),
                    max_bytes=int(p["max_bytes"]),
                )
                for p in obj["parents"]
            ),
            data=tuple(
                DataInput(id=d["id"], role=d["role"], folder=Path(d["folder"])) for d in obj["data"]
            ),
            out_dir=Path(obj["out_dir"]),
            failure_cluster=obj.get("failure_cluster"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class OutputPackage:
    """One package an operator produced, in ``out_dir / folder``.

    ``parents`` name package ids (``sha256:...``) or earlier outputs of the same job as
    ``output:<folder>`` (an adapter's merged model names its adapter). ``role`` is
    ``candidate`` (to be evaluated) or ``artifact`` (kept for lineage, e.g. the adapter).
    """

    folder: str
    kind: str
    name: str
    family: str
    role: str = "candidate"
    parents: tuple[str, ...] = ()
    meta: Mapping[str, JsonValue] = field(default_factory=dict)

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "folder": self.folder,
            "kind": self.kind,
            "name": self.name,
            "family": self.family,
            "role": self.role,
            "parents": list(self.parents),
            "meta": dict(self.meta),
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> OutputPackage:
        return cls(
            folder=str(obj["folder"]),
            kind=str(obj["kind"]),
            name=str(obj["name"]),
            family=str(obj["family"]),
            role=str(obj["role"]),
            parents=tuple(str(p) for p in obj["parents"]),
            meta=dict(obj["meta"]),
        )


Log = Callable[[str], None]
Operator = Callable[[Job, Log], tuple[OutputPackage, ...]]


def param_str(params: Mapping[str, JsonValue], key: str, default: str) -> str:
    value = params.get(key, default)
    if not isinstance(value, str):
        raise InvalidRequest(f"parameter {key!r} must be a string")
    return value


def param_int(params: Mapping[str, JsonValue], key: str, default: int) -> int:
    value = params.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"parameter {key!r} must be an integer")
    return value


def param_float(params: Mapping[str, JsonValue], key: str, default: str) -> float:
    """A float parameter written as a decimal string (canonical JSON has no floats)."""
    value = params.get(key, default)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidRequest(f'parameter {key!r} must be a decimal string like "0.5"')
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise InvalidRequest(f"parameter {key!r} is not a number: {value!r}") from None
    if not number.is_finite():
        raise InvalidRequest(f"parameter {key!r} must be finite")
    return float(number)

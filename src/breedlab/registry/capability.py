"""Capability contracts (seed, stage 0: "Define the boundary").

A contract is a TOML file naming one narrow capability: its task type, request contract
(input and output schemas), labels, data classification, current baseline, risk tier,
operational budget, named owners (model, evaluation, security, production) and the
operators allowed to breed it. ``parse_contract`` validates it at the edge and converts
it to a frozen :class:`Contract`; every missing or unknown field is an error naming the
field and the file. The registry stores the TOML bytes as a ``capability`` package.
"""

from __future__ import annotations

import enum
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from breedlab.canonical import JsonValue
from breedlab.errors import InvalidRequest
from breedlab.registry.manifest import DataClass, RiskTier

__all__ = [
    "CAPABILITY_NAME",
    "OPERATOR_NAMES",
    "Budget",
    "Contract",
    "InputType",
    "Owners",
    "TaskType",
    "parse_contract",
]

#: The candidate factory's catalogue (DESIGN §8); contracts may allow a subset.
OPERATOR_NAMES = ("train", "distill", "adapter", "quantize", "merge")
#: A capability's name (also a package name and an alias prefix).
CAPABILITY_NAME = re.compile(r"[a-z][a-z0-9_-]{0,63}")


class InputType(enum.StrEnum):
    """``input.type``: what one request carries."""

    TENSOR = "tensor"  # float32 of ``input.shape`` (an image: digits' 8x8 scans)
    TABULAR = "tabular"  # float32 values of the named ``input.features``, in that order
    TEXT = "text"  # one string of at most ``input.max_length`` characters


class TaskType(enum.StrEnum):
    CLASSIFICATION = "classification"
    REGRESSION = "regression"
    EMBEDDING = "embedding"
    GENERATION = "generation"


@dataclass(frozen=True, slots=True, kw_only=True)
class Budget:
    """Operational budget: latency p95 (ms, batch 1), memory (MiB), artifact size (MiB)."""

    latency_p95_ms: Decimal
    memory_mib: Decimal
    size_mib: Decimal

    @property
    def memory_bytes(self) -> int:
        """``memory_mib`` in bytes: the bound on a model's float32 weights, checked from
        its config before anything is allocated."""
        return int(self.memory_mib * 2**20)


@dataclass(frozen=True, slots=True, kw_only=True)
class Owners:
    model: str
    evaluation: str
    security: str
    production: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Contract:
    name: str
    description: str
    task: TaskType
    input_schema: Mapping[str, JsonValue]
    output_schema: Mapping[str, JsonValue]
    labels: tuple[str, ...]
    data_class: DataClass
    risk_tier: RiskTier
    baseline: Mapping[str, JsonValue]
    budget: Budget
    owners: Owners
    allowed_operators: tuple[str, ...]
    input_shape: tuple[int, ...]  # ``input.shape``; () when the contract gives none
    input_range: tuple[float, float] | None  # ``input.range`` "LOW..HIGH ..."; None if absent
    input_type: InputType = InputType.TENSOR
    features: tuple[str, ...] = ()  # tabular: ``input.features``; input_shape is (len,)
    feature_ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    max_length: int | None = None  # text: ``input.max_length`` in characters

    def range_of(self, feature: str) -> tuple[float, float] | None:
        """A tabular feature's range: its ``[input.ranges]`` entry, else ``input.range``."""
        return self.feature_ranges.get(feature, self.input_range)

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "name": self.name,
            "description": self.description,
            "task": self.task.value,
            "input": dict(self.input_schema),
            "output": dict(self.output_schema),
            "labels": list(self.labels),
            "data_class": self.data_class.value,
            "risk_tier": self.risk_tier.value,
            "baseline": dict(self.baseline),
            "budget": {
                "latency_p95_ms": str(self.budget.latency_p95_ms),
                "memory_mib": str(self.budget.memory_mib),
                "size_mib": str(self.budget.size_mib),
            },
            "owners": {
                "model": self.owners.model,
                "evaluation": self.owners.evaluation,
                "security": self.owners.security,
                "production": self.owners.production,
            },
            "allowed_operators": list(self.allowed_operators),
        }


class _Fields:
    """Reads one TOML table, remembering which keys were used, naming the file in errors."""

    def __init__(self, table: Mapping[str, Any], where: str, source: str) -> None:
        self.table = table
        self.where = where
        self.source = source
        self.used: set[str] = set()

    def _name(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def fail(self, key: str, problem: str) -> InvalidRequest:
        return InvalidRequest(f"{self.source}: field '{self._name(key)}' {problem}")

    def get(self, key: str, kind: type | tuple[type, ...], *, required: bool = True) -> Any:
        self.used.add(key)
        if key not in self.table:
            if required:
                raise self.fail(key, "is missing")
            return None
        value = self.table[key]
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise self.fail(key, f"has the wrong type ({type(value).__name__})")
        return value

    def text(self, key: str, *, required: bool = True) -> str:
        value = self.get(key, str, required=required)
        if value is None:
            return ""
        if required and not value.strip():
            raise self.fail(key, "is empty")
        return str(value)

    def number(self, key: str) -> Decimal:
        value = self.get(key, (int, float, str))
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            raise self.fail(key, f"is not a number ({value!r})") from None
        if not number.is_finite() or number <= 0:
            raise self.fail(key, f"must be a positive number ({value!r})")
        return number

    def table_of(self, key: str) -> _Fields:
        value = self.get(key, dict)
        return _Fields(value, self._name(key), self.source)

    def done(self) -> None:
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            names = ", ".join(f"'{self._name(k)}'" for k in unknown)
            raise InvalidRequest(f"{self.source}: unknown field {names}")


def _jsonable(value: Any, where: str, source: str) -> JsonValue:
    """TOML values to canonical-JSON values: floats become decimal strings."""
    if isinstance(value, float):
        return str(Decimal(repr(value)))
    if isinstance(value, dict):
        return {k: _jsonable(v, f"{where}.{k}", source) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v, where, source) for v in value]
    if isinstance(value, str | int | bool):
        return value
    raise InvalidRequest(f"{source}: field '{where}' has an unsupported value ({value!r})")


_RANGE = re.compile(r"\s*(-?\d+(?:\.\d+)?)\s*\.\.\s*(-?\d+(?:\.\d+)?)")
_FLOAT32 = 4


def _input_shape(fields: _Fields, budget: Budget) -> tuple[int, ...]:
    """``input.shape``: positive int dimensions whose float32 input fits the memory budget."""
    shape = fields.get("shape", list, required=False)
    if shape is None:
        return ()
    if not shape or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        raise fields.fail("shape", f"must be a non-empty list of integers ({shape!r})")
    if any(d <= 0 for d in shape):
        raise fields.fail("shape", f"must have positive dimensions ({shape!r})")
    if math.prod(shape) * _FLOAT32 > budget.memory_bytes:
        raise fields.fail(
            "shape", f"{shape!r} does not fit the memory budget of {budget.memory_mib} MiB"
        )
    return tuple(shape)


def _input_range(fields: _Fields, key: str = "range") -> tuple[float, float] | None:
    """``input.range``, ``"LOW..HIGH"`` with LOW <= HIGH and an optional description after."""
    text = fields.get(key, str, required=False)
    if text is None:
        return None
    match = _RANGE.match(text)
    if match is None:
        raise fields.fail(key, f"must read 'LOW..HIGH' ({text!r})")
    low, high = float(match[1]), float(match[2])
    if low > high:
        raise fields.fail(key, f"has its minimum above its maximum ({text!r})")
    return low, high


@dataclass(frozen=True, slots=True, kw_only=True)
class _Input:
    type: InputType
    shape: tuple[int, ...]
    range: tuple[float, float] | None
    features: tuple[str, ...] = ()
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    max_length: int | None = None


def _features(fields: _Fields) -> tuple[str, ...]:
    names = fields.get("features", list)
    if not names or not all(isinstance(n, str) and n.strip() for n in names):
        raise fields.fail("features", "must be a non-empty list of column names")
    if len(set(names)) != len(names):
        raise fields.fail("features", "lists a feature twice")
    return tuple(names)


def _feature_ranges(fields: _Fields, features: tuple[str, ...]) -> dict[str, tuple[float, float]]:
    """``[input.ranges]``: ``feature = "LOW..HIGH"`` for some of the named features."""
    if fields.get("ranges", dict, required=False) is None:
        return {}
    table = fields.table_of("ranges")
    out: dict[str, tuple[float, float]] = {}
    for name in list(table.table):
        if name not in features:
            raise table.fail(name, "is not one of 'input.features'")
        found = _input_range(table, name)
        assert found is not None  # the key is in the table
        out[name] = found
    table.done()
    return out


def _input(fields: _Fields, budget: Budget) -> _Input:
    """``[input]`` by its type: ``tensor`` (shape, range), ``tabular`` (features, float32,
    a global range or per-feature ``[input.ranges]``) or ``text`` (max_length)."""
    try:
        kind = InputType(fields.text("type"))
    except ValueError:
        allowed = ", ".join(t.value for t in InputType)
        raise fields.fail("type", f"must be one of: {allowed}") from None
    dtype = fields.text("dtype", required=False)
    if kind is InputType.TEXT:
        for key in ("shape", "range", "dtype", "features", "ranges"):
            if key in fields.table:
                raise fields.fail(key, "does not apply to text input (give max_length)")
        length = fields.get("max_length", int)
        if length <= 0:
            raise fields.fail("max_length", f"must be a positive number of characters ({length})")
        return _Input(type=kind, shape=(), range=None, max_length=length)
    if "max_length" in fields.table:
        raise fields.fail("max_length", f"applies to text input only, not {kind.value}")
    if dtype and dtype != "float32":
        raise fields.fail("dtype", f"must be float32 ({dtype!r})")
    if kind is InputType.TENSOR:
        if "features" in fields.table or "ranges" in fields.table:
            raise fields.fail("features", 'applies to tabular input only (type = "tabular")')
        return _Input(type=kind, shape=_input_shape(fields, budget), range=_input_range(fields))
    if "shape" in fields.table:
        raise fields.fail("shape", "does not apply to tabular input (it is len(features))")
    features = _features(fields)
    ranges = _feature_ranges(fields, features)
    if len(features) * _FLOAT32 > budget.memory_bytes:
        raise fields.fail("features", f"do not fit the memory budget of {budget.memory_mib} MiB")
    return _Input(
        type=kind,
        shape=(len(features),),
        range=_input_range(fields),
        features=features,
        ranges=ranges,
    )


def _output_classes(fields: _Fields, labels: tuple[str, ...]) -> None:
    classes = fields.get("classes", int, required=False)
    if classes is not None and classes != len(labels):
        raise fields.fail("classes", f"is {classes} but 'labels' lists {len(labels)}")


def parse_contract(data: bytes, source: str) -> Contract:
    """Validate a capability contract's TOML bytes.

    Beyond presence and types: ``input.type`` is ``tensor``, ``tabular`` or ``text``
    (:class:`InputType`); ``input.shape`` (tensor, when given) is positive integers whose
    float32 input fits ``budget.memory_mib``; ``input.features`` (tabular) are distinct
    names, ``[input.ranges]`` names only those; ``input.max_length`` (text) is a positive
    number of characters; ``input.range`` and each range (when given) read
    ``LOW..HIGH`` with LOW <= HIGH; ``output.classes`` (when given) counts the labels;
    labels are non-empty and distinct. Other keys of ``[input]`` and ``[output]`` are
    kept as written.

    Raises:
        InvalidRequest: not TOML, or a field is missing, unknown, or has a bad value; the
            message names the field and ``source``.
    """
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise InvalidRequest(f"{source}: not valid TOML: {e}") from e
    top = _Fields(doc, "", source)
    name = top.text("name")
    if not CAPABILITY_NAME.fullmatch(name):
        raise top.fail("name", f"must be lowercase letters, digits, '_' or '-' ({name!r})")
    description = top.text("description", required=False)
    try:
        task = TaskType(top.text("task"))
    except ValueError:
        allowed = ", ".join(t.value for t in TaskType)
        raise top.fail("task", f"must be one of: {allowed}") from None
    try:
        data_class = DataClass.parse(top.text("data_class"))
        risk_tier = RiskTier.parse(top.text("risk_tier"))
    except InvalidRequest as e:
        raise InvalidRequest(f"{source}: {e.message}") from None

    labels_raw = top.get("labels", list)
    if not labels_raw or not all(isinstance(label, str) and label for label in labels_raw):
        raise top.fail("labels", "must be a non-empty list of strings")
    if len(set(labels_raw)) != len(labels_raw):
        raise top.fail("labels", "lists a label twice")

    input_schema = top.table_of("input")
    output_schema = top.table_of("output")
    output_schema.text("type")
    _output_classes(output_schema, tuple(labels_raw))

    baseline = top.table_of("baseline")
    baseline.text("description")
    baseline.text("metric")
    baseline.number("value")
    baseline.done()

    budget_fields = top.table_of("budget")
    budget = Budget(
        latency_p95_ms=budget_fields.number("latency_p95_ms"),
        memory_mib=budget_fields.number("memory_mib"),
        size_mib=budget_fields.number("size_mib"),
    )
    budget_fields.done()
    given = _input(input_schema, budget)

    owner_fields = top.table_of("owners")
    owners = Owners(
        model=owner_fields.text("model"),
        evaluation=owner_fields.text("evaluation"),
        security=owner_fields.text("security"),
        production=owner_fields.text("production"),
    )
    owner_fields.done()

    operators = top.get("allowed_operators", list)
    for op in operators:
        if op not in OPERATOR_NAMES:
            raise top.fail(
                "allowed_operators", f"names unknown operator {op!r} (known: {OPERATOR_NAMES})"
            )
    top.done()
    return Contract(
        name=name,
        description=description,
        task=task,
        input_schema=_jsonable(input_schema.table, "input", source),
        output_schema=_jsonable(output_schema.table, "output", source),
        labels=tuple(labels_raw),
        data_class=data_class,
        risk_tier=risk_tier,
        baseline=_jsonable(baseline.table, "baseline", source),
        budget=budget,
        owners=owners,
        allowed_operators=tuple(operators),
        input_shape=given.shape,
        input_range=given.range,
        input_type=given.type,
        features=given.features,
        feature_ranges=given.ranges,
        max_length=given.max_length,
    )

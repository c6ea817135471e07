"""Reading a round record: the JSON of one breeding round into frozen values to render.

Owns the edge between the stored record (``breedlab.round/v1``, canonical JSON whose
floats are decimal strings as :func:`breedlab.viability.record.number` writes them) and
the renderer: which fields are read, how they parse, and what an absent or malformed
field becomes. A report of a partial round is still worth reading, so a missing or
unparseable field becomes ``None`` (a number), ``""`` (a string) or an empty tuple, and
the renderer shows a dash; only a record that is not a round record at all is refused.
Leaves the layout to :mod:`breedlab.report.html` and the charts to
:mod:`breedlab.report.svg`. Nothing here checks digests or signatures: the record is
rendered as stored.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from breedlab.errors import InvalidRequest

__all__ = [
    "ROUND_SCHEMA",
    "Bin",
    "Candidate",
    "Cluster",
    "Confirmation",
    "Decision",
    "Failure",
    "MetricVerdict",
    "Parent",
    "Parents",
    "Policy",
    "Round",
    "Scorecard",
    "Spec",
    "Split",
    "Term",
    "read_parents",
    "read_round",
]

#: The ``schema`` of a round record (written by ``breedlab.lab.breeding``).
ROUND_SCHEMA = "breedlab.round/v1"

# The suite families of DESIGN §9 in their usual order; mappings in a record are read in
# a fixed order, never in key order, so a canonical (key-sorted) copy renders the same.
_GROUP_ORDER = {g: i for i, g in enumerate(("task", "calibration", "robustness", "safety",
                                            "resource"))}  # fmt: skip


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> Sequence[Any]:
    return value if isinstance(value, list | tuple) else ()


def _text(value: Any) -> str:
    """A string field; numbers and other JSON values as their JSON text, None as ''."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _optional_text(value: Any) -> str | None:
    return None if value is None else _text(value)


def _float(value: Any) -> float | None:
    """A decimal string (or a JSON number) as a float; None if absent or not a number.

    Non-finite values ("nan", "inf") parse: the renderer shows them, the charts skip them.
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    number = _float(value)
    if number is None or not math.isfinite(number) or number != int(number):
        return None
    return int(number)


def _texts(value: Any) -> tuple[str, ...]:
    return tuple(_text(v) for v in _list(value))


@dataclass(frozen=True, slots=True, kw_only=True)
class Bin:
    """One reliability bin: mean confidence, accuracy and item count."""

    confidence: float
    accuracy: float
    count: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Split:
    """One split's aggregates from a scorecard (``dev`` or ``sealed``); ``variants``
    are ``clean`` first, then by name."""

    n: int | None
    accuracy: float | None
    macro_f1: float | None
    ece: float | None
    brier: float | None
    nll: float | None
    robust_accuracy: float | None
    robustness_gap: float | None
    variants: tuple[tuple[str, float | None], ...]
    reliability: tuple[Bin, ...]

    def value(self, metric: str) -> float | None:
        """The aggregate a suite metric name refers to (see ``evaluator.scoring``):
        ``accuracy``, ``robust_accuracy``, ``macro_f1``, ``ece``, ``brier``, ``nll`` or
        ``accuracy_<variant>``; None for any other name."""
        direct = {
            "accuracy": self.accuracy,
            "robust_accuracy": self.robust_accuracy,
            "macro_f1": self.macro_f1,
            "ece": self.ece,
            "brier": self.brier,
            "nll": self.nll,
        }
        if metric in direct:
            return direct[metric]
        if metric.startswith("accuracy_"):
            wanted = metric.removeprefix("accuracy_")
            return next((v for name, v in self.variants if name == wanted), None)
        return None


def _split(value: Any) -> Split | None:
    if not isinstance(value, Mapping):
        return None
    bins = []
    for item in _list(value.get("reliability")):
        entry = _mapping(item)
        confidence, accuracy = _float(entry.get("confidence")), _float(entry.get("accuracy"))
        if confidence is None or accuracy is None:
            continue  # a bin without both coordinates cannot be drawn
        bins.append(Bin(confidence=confidence, accuracy=accuracy, count=_int(entry.get("count"))))
    return Split(
        n=_int(value.get("n")),
        accuracy=_float(value.get("accuracy")),
        macro_f1=_float(value.get("macro_f1")),
        ece=_float(value.get("ece")),
        brier=_float(value.get("brier")),
        nll=_float(value.get("nll")),
        robust_accuracy=_float(value.get("robust_accuracy")),
        robustness_gap=_float(value.get("robustness_gap")),
        variants=tuple(
            sorted(
                ((_text(k), _float(v)) for k, v in _mapping(value.get("variants")).items()),
                key=lambda item: (item[0] != "clean", item[0]),
            )
        ),
        reliability=tuple(bins),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Scorecard:
    """A model's scorecard summary: both splits, the critical set, resources."""

    dev: Split | None
    sealed: Split | None
    critical_items: int | None
    critical_errors: int | None
    critical_failed: tuple[str, ...]
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    parameters: int | None
    size_bytes: int | None
    peak_rss_kib: int | None


def _scorecard(value: Any) -> Scorecard | None:
    if not isinstance(value, Mapping):
        return None
    critical = _mapping(value.get("critical"))
    resources = _mapping(value.get("resources"))
    return Scorecard(
        dev=_split(value.get("dev")),
        sealed=_split(value.get("sealed")),
        critical_items=_int(critical.get("items")),
        critical_errors=_int(critical.get("errors")),
        critical_failed=_texts(critical.get("failed")),
        latency_p50_ms=_float(resources.get("latency_p50_ms")),
        latency_p95_ms=_float(resources.get("latency_p95_ms")),
        parameters=_int(resources.get("parameters")),
        size_bytes=_int(resources.get("size_bytes")),
        peak_rss_kib=_int(resources.get("peak_rss_kib")),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Spec:
    """One metric of the policy (``MetricSpec.to_record()``)."""

    name: str
    group: str
    direction: str
    role: str
    kind: str
    margin: float | None
    scale: float | None

    @property
    def higher_is_better(self) -> bool:
        return self.direction != "lower"


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    """The decision policy (``Policy.to_record()``), as far as the report shows it."""

    metrics: tuple[Spec, ...]
    alpha: float | None
    epsilon_up: float | None
    epsilon_down: float | None
    sigma_aa: float | None
    utility_min: float | None
    power: float | None
    seed: int | None
    bootstrap_samples: int | None
    min_pairs: int | None
    weights: tuple[tuple[str, float | None], ...]

    @property
    def primary(self) -> Spec | None:
        """The metric whose role is ``primary`` (the first, if a record has several)."""
        return next((m for m in self.metrics if m.role == "primary"), None)


def _policy(value: Any) -> Policy | None:
    if not isinstance(value, Mapping):
        return None
    metrics = tuple(
        Spec(
            name=_text(m.get("name")),
            group=_text(m.get("group")),
            direction=_text(m.get("direction")),
            role=_text(m.get("role")),
            kind=_text(m.get("kind")),
            margin=_float(m.get("margin")),
            scale=_float(m.get("scale")),
        )
        for m in map(_mapping, _list(value.get("metrics")))
    )
    return Policy(
        metrics=metrics,
        alpha=_float(value.get("alpha")),
        epsilon_up=_float(value.get("epsilon_up")),
        epsilon_down=_float(value.get("epsilon_down")),
        sigma_aa=_float(value.get("sigma_aa")),
        utility_min=_float(value.get("utility_min")),
        power=_float(value.get("power")),
        seed=_int(value.get("seed")),
        bootstrap_samples=_int(value.get("bootstrap_samples")),
        min_pairs=_int(value.get("min_pairs")),
        weights=tuple(
            sorted(
                ((_text(k), _float(v)) for k, v in _mapping(value.get("weights")).items()),
                key=lambda item: (_GROUP_ORDER.get(item[0], len(_GROUP_ORDER)), item[0]),
            )
        ),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricVerdict:
    """One metric's verdict for a candidate (``MetricResult.to_record()``).

    ``delta``, ``lower`` and ``upper`` are in metric units; for aggregates ``delta`` is
    ``ratio − 1`` and the margin is relative.
    """

    metric: str
    group: str
    role: str
    kind: str
    direction: str
    verdict: str
    reason: str
    margin: float | None
    delta: float | None
    lower: float | None
    upper: float | None
    mde: float | None
    p_adjusted: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Term:
    """One utility term (``UtilityTerm.to_record()``): ``value = weight · normalised``."""

    metric: str
    group: str
    weight: float | None
    normalised: float | None
    value: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Confirmation:
    """The sealed-split confirmation of the round's contender."""

    confirmed: bool | None
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """One candidate's decision (``Decision.to_record()``)."""

    candidate: str
    outcome: str
    reasons: tuple[str, ...]
    mde: float | None
    metrics: tuple[MetricVerdict, ...]
    vetoes: tuple[tuple[str, str], ...]
    terms: tuple[Term, ...]
    utility: float | None
    confirmation: Confirmation | None


def _decision(value: Mapping[str, Any]) -> Decision:
    assessment = _mapping(value.get("assessment"))
    decomposition = _mapping(assessment.get("decomposition"))
    confirmation = value.get("confirmation")
    return Decision(
        candidate=_text(value.get("candidate")),
        outcome=_text(value.get("outcome")),
        reasons=_texts(value.get("reasons")),
        mde=_float(value.get("mde")),
        metrics=tuple(
            MetricVerdict(
                metric=_text(m.get("metric")),
                group=_text(m.get("group")),
                role=_text(m.get("role")),
                kind=_text(m.get("kind")),
                direction=_text(m.get("direction")),
                verdict=_text(m.get("verdict")),
                reason=_text(m.get("reason")),
                margin=_float(m.get("margin")),
                delta=_float(m.get("delta")),
                lower=_float(m.get("lower")),
                upper=_float(m.get("upper")),
                mde=_float(m.get("mde")),
                p_adjusted=_float(m.get("p_adjusted")),
            )
            for m in map(_mapping, _list(assessment.get("metrics")))
        ),
        vetoes=tuple(
            (_text(v.get("kind")), _text(v.get("reason")))
            for v in map(_mapping, _list(assessment.get("vetoes")))
        ),
        terms=tuple(
            Term(
                metric=_text(t.get("metric")),
                group=_text(t.get("group")),
                weight=_float(t.get("weight")),
                normalised=_float(t.get("normalised")),
                value=_float(t.get("value")),
            )
            for t in map(_mapping, _list(decomposition.get("terms")))
        ),
        utility=_float(decomposition.get("utility")),
        confirmation=(
            Confirmation(
                confirmed=c if isinstance(c := confirmation.get("confirmed"), bool) else None,
                reason=_text(confirmation.get("reason")),
            )
            if isinstance(confirmation, Mapping)
            else None
        ),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    """One evaluated candidate with its scorecard and (if recorded) its decision.

    ``params`` are sorted by key, values as JSON text; ``outcome`` is the candidate's
    own, else its decision's.
    """

    package: str
    name: str
    operator: str
    label: str
    params: tuple[tuple[str, str], ...]
    parents: tuple[str, ...]
    scorecard: Scorecard | None
    outcome: str
    reasons: tuple[str, ...]
    decision: Decision | None

    @property
    def utility(self) -> float | None:
        return None if self.decision is None else self.decision.utility


@dataclass(frozen=True, slots=True, kw_only=True)
class Failure:
    """An operator run that produced no scored candidate."""

    operator: str
    label: str
    failure: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Cluster:
    """The failure cluster the round bred against."""

    id: str
    name: str
    description: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Parent:
    """A model SELECT_APPROVED_PARENTS took (``because`` "unscoped" or "scope") or left
    out for scope (``because`` empty), with the cluster keys its parent approvals name."""

    package: str
    name: str
    because: str
    scopes: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Parents:
    """Which parents a round took and which it left out for scope (records from before
    scoped approvals have none: :func:`read_parents` gives None)."""

    cluster_key: str
    taken: tuple[Parent, ...]
    left_out: tuple[Parent, ...]

    def summary(self) -> str:
        """One line: ``for cluster K: took a (unscoped), b (scoped to K); left out for
        scope: c (approved for J)``."""
        where = f"for cluster {self.cluster_key}" if self.cluster_key else "for no cluster"
        why = {"scope": f"scoped to {self.cluster_key}"}
        took = ", ".join(f"{p.name or p.package[:19]} ({why.get(p.because, p.because)})"
                         for p in self.taken)  # fmt: skip
        left = ", ".join(f"{p.name or p.package[:19]} (approved for {', '.join(p.scopes)})"
                         for p in self.left_out)  # fmt: skip
        return f"{where}: took {took or 'none'}" + (f"; left out for scope: {left}" if left else "")


def read_parents(record: Mapping[str, Any]) -> Parents | None:
    """The record's ``parent_selection``, or None if it has none."""
    found = record.get("parent_selection")
    if not isinstance(found, Mapping):
        return None

    def parents(field: str) -> tuple[Parent, ...]:
        return tuple(
            Parent(package=_text(p.get("package")), name=_text(p.get("name")),
                   because=_text(p.get("because")), scopes=_texts(p.get("scopes")))
            for p in map(_mapping, _list(found.get(field)))
        )  # fmt: skip

    return Parents(cluster_key=_text(found.get("cluster_key")), taken=parents("taken"),
                   left_out=parents("left_out"))  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class Round:
    """One breeding round, ready to render."""

    round: str
    capability: str
    suite: str
    champion: str
    seed: int | None
    cluster: Cluster | None
    parents: Parents | None
    started: str
    finished: str
    policy: Policy | None
    champion_scorecard: Scorecard | None
    candidates: tuple[Candidate, ...]
    failed: tuple[Failure, ...]
    winner: str | None
    action: str

    @property
    def winning(self) -> Candidate | None:
        """The candidate whose package is the winner, if it is listed."""
        return next((c for c in self.candidates if c.package == self.winner), None)


def _params(value: Any) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((_text(k), _text(v)) for k, v in _mapping(value).items()))


def read_round(record: Mapping[str, Any]) -> Round:
    """Convert a round record into a :class:`Round`.

    Decisions are matched to candidates by package id (the first decision for an id
    wins); the order of candidates and failures is the record's.

    Raises:
        InvalidRequest: ``record`` is not a mapping or its schema is not
            ``breedlab.round/v1``.
    """
    if not isinstance(record, Mapping):
        raise InvalidRequest(f"a round record is a JSON object, got {type(record).__name__}")
    if record.get("schema") != ROUND_SCHEMA:
        raise InvalidRequest(
            f"not a round record: schema {record.get('schema')!r}, expected {ROUND_SCHEMA!r}"
        )
    decisions: dict[str, Decision] = {}
    for item in _list(record.get("decisions")):
        recorded = _decision(_mapping(item))
        decisions.setdefault(recorded.candidate, recorded)
    candidates = []
    for item in map(_mapping, _list(record.get("candidates"))):
        package = _text(item.get("package"))
        decision = decisions.get(package)
        outcome = _text(item.get("outcome")) or (decision.outcome if decision else "")
        reasons = _texts(item.get("reasons")) or (decision.reasons if decision else ())
        candidates.append(
            Candidate(
                package=package,
                name=_text(item.get("name")),
                operator=_text(item.get("operator")),
                label=_text(item.get("label")),
                params=_params(item.get("params")),
                parents=_texts(item.get("parents")),
                scorecard=_scorecard(item.get("scorecard")),
                outcome=outcome,
                reasons=reasons,
                decision=decision,
            )
        )
    cluster = record.get("cluster")
    return Round(
        round=_text(record.get("round")),
        capability=_text(record.get("capability")),
        suite=_text(record.get("suite")),
        champion=_text(record.get("champion")),
        seed=_int(record.get("seed")),
        cluster=(
            Cluster(
                id=_text(cluster.get("id")),
                name=_text(cluster.get("name")),
                description=_text(cluster.get("description")),
            )
            if isinstance(cluster, Mapping)
            else None
        ),
        parents=read_parents(record),
        started=_text(record.get("started")),
        finished=_text(record.get("finished")),
        policy=_policy(record.get("policy")),
        champion_scorecard=_scorecard(record.get("champion_scorecard")),
        candidates=tuple(candidates),
        failed=tuple(
            Failure(
                operator=_text(f.get("operator")),
                label=_text(f.get("label")),
                failure=_text(f.get("failure")),
                reason=_text(f.get("reason")),
            )
            for f in map(_mapping, _list(record.get("failed")))
        ),
        winner=_optional_text(record.get("winner")),
        action=_text(record.get("action")),
    )

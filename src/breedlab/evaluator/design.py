"""What a new suite holds, from a capability's contract and its dev split: the
perturbations of its modality, the metric records with their margins, and the policy.

Pure: values in, records out. Owns the modality rule, the per-modality perturbation
catalogue, the metric catalogue (names ``evaluator.scoring`` scores) and how margins follow
from the dev split's size. Leaves reading datasets and registering the suite package to
``breedlab.lab.suites``, scoring to ``evaluator.scoring``, and judging to
``breedlab.viability``. The built-in digits suite keeps its own frozen records
(``lab.builtin.DIGITS_METRICS``); this module makes the records of every other suite.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from enum import Enum
from typing import Final

import numpy as np
import numpy.typing as npt

from breedlab.canonical import JsonValue
from breedlab.errors import InvalidRequest
from breedlab.evaluator.digits import DIGITS_PERTURBATIONS
from breedlab.evaluator.perturbations import PIXELS, SuitePerturbation, tabular_perturbations
from breedlab.evaluator.text_perturbations import TEXT_PERTURBATIONS

__all__ = [
    "POLICY",
    "Modality",
    "choose",
    "margin_points",
    "metric_records",
    "modality",
    "perturbation_catalogue",
]

#: The decision policy of a created suite: the digits suite's (``lab.builtin.DIGITS_POLICY``).
POLICY: Final[Mapping[str, JsonValue]] = {
    "epsilon_min": "0.01",
    "alpha": "0.05",
    "bootstrap_samples": 2000,
    "min_pairs": 30,
    "utility_min": "0",
}

#: One-sided 95% normal quantile, and the fraction of dev items on which two models of one
#: lineage disagree (the discordant pairs of McNemar's test), assumed when sizing margins.
_Z: Final = 1.645
_DISCORDANT: Final = 0.05


class Modality(Enum):
    """What a capability's inputs are, and so which perturbations its suite can use."""

    IMAGE = "image"
    TABULAR = "tabular"
    TEXT = "text"


def modality(input_schema: Mapping[str, JsonValue], input_shape: Sequence[int]) -> Modality:
    """The modality of a contract's ``[input]``, keyed on its ``type``.

    ``tabular``, ``image`` and ``text`` name themselves. A ``tensor`` is an image when it
    has the digits layout (``PIXELS`` values: 8×8 in 0..1), else a flat feature row
    (tabular): noise in pixel units means nothing for wine's 13 chemical measurements.

    Raises:
        InvalidRequest: an input type no suite knows.
    """
    kind = input_schema.get("type")
    if kind == "tensor":
        return Modality.IMAGE if math.prod(input_shape) == PIXELS else Modality.TABULAR
    try:
        return Modality(str(kind))
    except ValueError:
        raise InvalidRequest(
            f"no suite for input type {kind!r}",
            hint="a contract's [input] type is one of tensor, tabular, image, text",
        ) from None


def perturbation_catalogue(
    kind: Modality, train_x: npt.NDArray[np.generic] | None
) -> dict[str, SuitePerturbation]:
    """The perturbations a suite of this modality may use, by kind.

    Tabular specs take their per-feature std and mean from ``train_x`` (the train split,
    ``(n, d)``), so the suite records them and stays frozen. Text gets every kind of
    ``TEXT_PERTURBATIONS`` at its default fraction (``train_x`` is not used).

    Raises:
        InvalidRequest: a tabular modality without train features.
    """
    if kind is Modality.TEXT:
        return {k: spec() for k, spec in TEXT_PERTURBATIONS.items()}
    if kind is Modality.IMAGE:
        return {p.kind: p for p in DIGITS_PERTURBATIONS}
    if train_x is None:
        raise InvalidRequest("tabular perturbations need the train split's features")
    return {p.kind: p for p in tabular_perturbations(train_x)}


def choose(wanted: Sequence[str] | None, known: Sequence[str], what: str) -> tuple[str, ...]:
    """``wanted`` in the order of ``known`` (all of ``known`` if None).

    Raises:
        InvalidRequest: a name not in ``known`` (the error lists the known ones).
    """
    if wanted is None:
        return tuple(known)
    unknown = sorted(set(wanted) - set(known))
    if unknown:
        raise InvalidRequest(
            f"unknown {what} {', '.join(unknown)}; known: {', '.join(known)}",
        )
    return tuple(k for k in known if k in set(wanted))


def margin_points(dev_items: int) -> int:
    """The primary metric's margin in accuracy points for ``dev_items`` dev items.

    The reasoning of ``lab.builtin.DIGITS_METRICS``: a margin below what the dev split can
    resolve could never be shown. A one-sided 95% bound on a paired accuracy difference is
    about ``z·sqrt(p_disc/n)`` (McNemar's Wald interval with ``p_disc`` of the items
    discordant); with p_disc = 5% that is 1.645·sqrt(0.05/270) = 2.2 points for digits'
    270 items -- its 2-point primary margin -- and 6 points for 36 items (wine's 178 at
    20%). Rounded half up to whole points, never below digits' 2.

    Raises:
        InvalidRequest: fewer dev items than the policy's ``min_pairs``: every paired
            metric would be NoData and no round could decide (fail closed, at creation).
    """
    needed = int(str(POLICY["min_pairs"]))
    if dev_items < needed:
        raise InvalidRequest(
            f"the dev split has {dev_items} items; a suite judges paired metrics on at "
            f"least {needed} (min_pairs), so no round could decide",
            hint=f"make the dev split at least {needed} items",
        )
    return max(2, math.floor(100 * _Z * math.sqrt(_DISCORDANT / dev_items) + 0.5))


def _record(
    name: str, group: str, direction: str, role: str, kind: str, margin: str, scale: str
) -> dict[str, JsonValue]:
    return {
        "name": name,
        "group": group,
        "direction": direction,
        "role": role,
        "kind": kind,
        "margin": margin,
        "scale": scale,
    }


def metric_records(
    *, dev_items: int, perturbations: Sequence[str], critical: bool
) -> dict[str, dict[str, JsonValue]]:
    """Every metric a suite with these perturbations may hold, by name, in suite order.

    The primary is ``robust_accuracy`` (digits' choice: clean accuracy sits near its
    ceiling, perturbed inputs are where a champion fails) when there are perturbations,
    else ``accuracy``. Margins: the primary's from :func:`margin_points`; the task and
    calibration guardrails one point more (digits: 2 and 3), since a Brier, ECE or
    macro-F1 change is of the order of the accuracy change it comes with; NLL 0.1 nats
    and the resource ratios as digits. ``critical`` only with a critical set.
    """
    points = margin_points(dev_items)
    primary, guard = f"{points / 100:.2f}", f"{(points + 1) / 100:.2f}"
    robust = bool(perturbations)
    records = [
        _record("robust_accuracy", "robustness", "higher", "primary", "binary", primary, "0.25")
        if robust
        else None,
        _record(
            "accuracy",
            "task",
            "higher",
            "guardrail" if robust else "primary",
            "binary",
            guard if robust else primary,
            guard if robust else "0.25",
        ),
        _record("macro_f1", "task", "higher", "guardrail", "continuous", guard, guard),
        _record("ece", "calibration", "lower", "guardrail", "continuous", guard, guard),
        _record("nll", "calibration", "lower", "guardrail", "continuous", "0.1", "0.1"),
        _record("brier", "calibration", "lower", "guardrail", "continuous", guard, guard),
        *(
            _record(f"accuracy_{k}", "robustness", "higher", "slice", "binary", primary, primary)
            for k in perturbations
        ),
        _record("critical", "safety", "higher", "zero_tolerance", "binary", "0", "1")
        if critical
        else None,
        _record("latency_p95_ms", "resource", "lower", "guardrail", "aggregate", "1.0", "0.5"),
        _record("size_bytes", "resource", "lower", "guardrail", "aggregate", "0.1", "0.5"),
    ]
    return {str(r["name"]): r for r in records if r is not None}

"""breedlab.report.record and escape: reading a round record leniently, escaping its text."""

from __future__ import annotations

import copy
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from breedlab.report import ROUND_SCHEMA, read_round, render_round_report
from breedlab.report.escape import escape


def test_numbers_are_read_from_their_decimal_strings(round_record: dict[str, Any]) -> None:
    r = read_round(round_record)
    card = r.candidates[0].scorecard
    assert card is not None and card.dev is not None
    dev = round_record["candidates"][0]["scorecard"]["dev"]
    assert card.dev.accuracy == float(dev["accuracy"])  # exact: repr round-trips
    assert card.dev.value("robust_accuracy") == float(dev["robust_accuracy"])
    assert card.dev.value("accuracy_shift") == float(dev["variants"]["shift"])
    assert card.dev.value("no_such_metric") is None
    assert len(card.dev.reliability) == 10
    assert card.parameters == 17_482 and card.critical_errors == 0
    assert r.policy is not None and r.policy.primary is not None
    assert r.policy.primary.name == "robust_accuracy"


def test_decisions_are_matched_to_candidates_by_package(round_record: dict[str, Any]) -> None:
    round_record["decisions"].reverse()
    r = read_round(round_record)
    for candidate in r.candidates:
        assert candidate.decision is not None
        assert candidate.decision.candidate == candidate.package
        assert candidate.decision.outcome == candidate.outcome
    assert r.winning is not None and r.winning.outcome == "shadow"


def test_a_candidate_without_its_own_outcome_takes_its_decision_s(
    round_record: dict[str, Any],
) -> None:
    del round_record["candidates"][3]["outcome"]
    del round_record["candidates"][3]["reasons"]
    candidate = read_round(round_record).candidates[3]
    assert candidate.outcome == "retire"
    assert candidate.reasons and "critical" in candidate.reasons[0]


def test_variants_and_weights_are_read_in_a_fixed_order(round_record: dict[str, Any]) -> None:
    variants = round_record["champion_scorecard"]["dev"]["variants"]
    round_record["champion_scorecard"]["dev"]["variants"] = dict(reversed(variants.items()))
    weights = round_record["policy"]["weights"]
    round_record["policy"]["weights"] = dict(sorted(weights.items()))
    r = read_round(round_record)
    assert r.champion_scorecard is not None and r.champion_scorecard.dev is not None
    names = [name for name, _ in r.champion_scorecard.dev.variants]
    assert names == ["clean", "dropout", "noise", "occlusion", "shift"]
    assert r.policy is not None
    assert [g for g, _ in r.policy.weights] == [
        "task",
        "calibration",
        "robustness",
        "safety",
        "resource",
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0.25", 0.25), (3, 3.0), ("nan", math.nan), ("-inf", -math.inf), ("n/a", None),
     (True, None), (None, None), ([1], None)],
)  # fmt: skip
def test_a_number_field_parses_or_is_absent(
    round_record: dict[str, Any], value: object, expected: float | None
) -> None:
    round_record["champion_scorecard"]["dev"]["ece"] = value
    card = read_round(round_record).champion_scorecard
    assert card is not None and card.dev is not None
    if expected is None:
        assert card.dev.ece is None
    elif math.isnan(expected):
        assert card.dev.ece is not None and math.isnan(card.dev.ece)
    else:
        assert card.dev.ece == expected


def test_only_the_schema_is_required() -> None:
    r = read_round({"schema": ROUND_SCHEMA})
    assert (r.round, r.candidates, r.failed, r.winner, r.policy) == ("", (), (), None, None)


def test_escape_covers_markup_quotes_and_characters_xml_forbids() -> None:
    assert escape("<a href='x'>\"&\"</a>") == (
        "&lt;a href=&#x27;x&#x27;&gt;&quot;&amp;&quot;&lt;/a&gt;"
    )
    assert escape("tab\tnew\nline\r") == "tab\tnew\nline\r"
    assert escape("bell\x07 nul\x00 \ud800 \uffff") == "bell\ufffd nul\ufffd \ufffd \ufffd"
    assert escape("Δ ε σ_AA ≤ 中文 🙂") == "Δ ε σ_AA ≤ 中文 🙂"


def _paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if path:
        yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*path, index))


def _set(record: dict[str, Any], path: tuple[Any, ...], value: object) -> None:
    here: Any = record
    for key in path[:-1]:
        here = here[key]
    here[path[-1]] = value


JUNK = [None, "", "x", "nan", "-inf", "1e400", 0, -1, True, [], {}, ["a", 1], {"k": None},
        "\x00<script>alert(1)</script>"]  # fmt: skip


# The fixture is only read: each example edits its own deep copy.
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_field_replaced_by_junk_still_renders_a_well_formed_report(
    round_record: dict[str, Any], data: st.DataObject
) -> None:
    record = copy.deepcopy(round_record)
    paths = [p for p in _paths(record) if p != ("schema",)]
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        path = data.draw(st.sampled_from(paths))
        try:
            _set(record, path, data.draw(st.sampled_from(JUNK)))
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit replaced a parent of this path
    html = render_round_report(record)
    assert "<script" not in html
    for fragment in re.findall(r"<svg\b.*?</svg>", html, flags=re.S):
        ET.fromstring(fragment)

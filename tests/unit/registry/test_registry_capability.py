from __future__ import annotations

import re

import pytest

from breedlab.capabilities import contract_path
from breedlab.errors import InvalidRequest
from breedlab.registry.capability import parse_contract
from breedlab.registry.licenses import check_license

DIGITS = contract_path("digits").read_bytes()


def test_the_built_in_digits_contract_is_valid() -> None:
    c = parse_contract(DIGITS, "digits.toml")
    assert c.name == "digits"
    assert c.labels == tuple(str(i) for i in range(10))
    assert c.owners.security == "security@example.org"
    assert "merge" in c.allowed_operators
    assert c.to_json()["budget"] == {"latency_p95_ms": "5", "memory_mib": "512", "size_mib": "5"}


@pytest.mark.parametrize("field", ["name", "task", "risk_tier", "labels", "data_class"])
def test_a_missing_top_level_field_is_named_with_the_file(field: str) -> None:
    lines = [ln for ln in DIGITS.decode().splitlines() if not ln.startswith(f"{field} =")]
    with pytest.raises(InvalidRequest, match=re.escape(f"my.toml: field '{field}' is missing")):
        parse_contract("\n".join(lines).encode(), "my.toml")


def test_a_missing_owner_is_named_with_its_table() -> None:
    text = DIGITS.decode().replace('security = "security@example.org"\n', "")
    with pytest.raises(InvalidRequest, match=re.escape("field 'owners.security' is missing")):
        parse_contract(text.encode(), "c.toml")


def test_unknown_fields_are_named() -> None:
    with pytest.raises(InvalidRequest, match="unknown field 'colour'"):
        parse_contract(b'colour = "red"\n' + DIGITS, "c.toml")
    with pytest.raises(InvalidRequest, match=re.escape("unknown field 'owners.colour'")):
        parse_contract(DIGITS + b'\ncolour = "red"\n', "c.toml")
    text = DIGITS.decode().replace("memory_mib = 512", "memory_mib = 512\ngpus = 1")
    with pytest.raises(InvalidRequest, match=re.escape("unknown field 'budget.gpus'")):
        parse_contract(text.encode(), "c.toml")


def test_bad_values_are_explained() -> None:
    with pytest.raises(InvalidRequest, match="allowed_operators"):
        parse_contract(DIGITS.replace(b'"merge"]', b'"rm-rf"]'), "c.toml")
    with pytest.raises(InvalidRequest, match="risk tier"):
        parse_contract(DIGITS.replace(b'risk_tier = "low"', b'risk_tier = "yolo"'), "c.toml")
    with pytest.raises(InvalidRequest, match="positive"):
        parse_contract(DIGITS.replace(b"size_mib = 5", b"size_mib = -5"), "c.toml")
    with pytest.raises(InvalidRequest, match="not valid TOML"):
        parse_contract(b"name = ", "c.toml")


def test_licenses_must_be_spdx_expressions() -> None:
    assert check_license("apache-2.0") == "Apache-2.0"
    assert check_license("MIT OR Apache-2.0") == "MIT OR Apache-2.0"
    for bad in ("Proprietary", "GPL", "", "MIT ANDOR BSD"):
        with pytest.raises(InvalidRequest, match="SPDX"):
            check_license(bad)


def _edit(old: str, new: str) -> bytes:
    text = DIGITS.decode()
    assert old in text
    return text.replace(old, new).encode()


@pytest.mark.parametrize(
    ("contract", "match"),
    [
        (_edit("shape = [64]", 'shape = ["x"]'), r"'input.shape' must be a non-empty list of int"),
        (_edit("shape = [64]", "shape = [8, -8]"), r"'input.shape' must have positive dimensions"),
        (_edit("shape = [64]", "shape = [0]"), r"'input.shape' must have positive dimensions"),
        (_edit("shape = [64]", "shape = [true]"), r"'input.shape' must be a non-empty list of int"),
        (_edit("shape = [64]", "shape = []"), r"'input.shape' must be a non-empty list of int"),
        (_edit("shape = [64]", "shape = 64"), r"'input.shape' has the wrong type \(int\)"),
        (_edit("shape = [64]", "shape = [2147483648]"), r"'input.shape' .* memory budget of 512"),
        (_edit('dtype = "float32"', "dtype = 32"), r"'input.dtype' has the wrong type"),
        (_edit('range = "0..16', 'range = "16..0'), r"'input.range' has its minimum above its max"),
        (_edit('range = "0..16 pixel intensities"', 'range = "dark to light"'), r"'LOW..HIGH'"),
        (_edit('range = "0..16 pixel intensities"', "range = 16"), r"'input.range' has the wrong"),
        (_edit("classes = 10", "classes = 11"), r"'output.classes' is 11 but 'labels' lists 10"),
        (_edit("classes = 10", 'classes = "10"'), r"'output.classes' has the wrong type"),
        (_edit('labels = ["0", "1", "2",', "labels = []\n#"), r"'labels' must be a non-empty list"),
        (
            _edit('labels = ["0", "1", "2",', 'labels = ["0", "0", "2",'),
            r"'labels' lists a label tw",
        ),
        (
            _edit('labels = ["0", "1", "2",', 'labels = ["0", 1, "2",'),
            r"'labels' must be a non-empt",
        ),
    ],
    ids=[
        "shape-string",
        "shape-negative",
        "shape-zero",
        "shape-bool",
        "shape-empty",
        "shape-not-a-list",
        "shape-over-budget",
        "dtype-not-text",
        "range-min-above-max",
        "range-not-a-range",
        "range-not-text",
        "classes-not-the-labels",
        "classes-not-int",
        "labels-empty",
        "labels-duplicate",
        "labels-not-text",
    ],
)
def test_a_contract_that_cannot_be_served_is_refused_when_added(
    contract: bytes, match: str
) -> None:
    # Issue 10: `input.shape = ["x"]` was accepted and crashed `serve` later.
    with pytest.raises(InvalidRequest, match=match):
        parse_contract(contract, "c.toml")


def test_the_digits_contract_reads_its_shape_and_range_as_values() -> None:
    c = parse_contract(DIGITS, "digits.toml")
    assert c.input_shape == (64,)
    assert c.input_range == (0.0, 16.0)
    assert c.budget.memory_bytes == 512 * 2**20
    bare = _edit('shape = [64]\nrange = "0..16 pixel intensities"\n', "")
    assert parse_contract(bare, "c.toml").input_range is None
    assert parse_contract(bare, "c.toml").input_shape == ()

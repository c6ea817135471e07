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

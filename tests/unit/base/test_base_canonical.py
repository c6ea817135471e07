from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from breedlab import canonical
from breedlab.errors import IntegrityError, InvalidRequest

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(json_values)
def test_canonical_bytes_round_trip_exactly(value: object) -> None:
    data = canonical.encode(value)
    assert canonical.decode(data) == value
    assert canonical.encode(canonical.decode(data)) == data


@given(st.dictionaries(st.text(max_size=6), st.integers(), min_size=2, max_size=6))
def test_key_order_of_the_input_never_changes_the_bytes(value: dict[str, int]) -> None:
    reversed_order = dict(reversed(list(value.items())))
    assert canonical.encode(value) == canonical.encode(reversed_order)


def test_floats_are_refused_so_exact_numbers_are_stored_as_strings() -> None:
    with pytest.raises(InvalidRequest, match="float"):
        canonical.encode({"accuracy": 0.97})


def test_non_string_keys_and_foreign_types_are_refused() -> None:
    with pytest.raises(InvalidRequest):
        canonical.encode({1: "a"})
    with pytest.raises(InvalidRequest):
        canonical.encode({"a": {1, 2}})


@given(json_values.filter(lambda v: isinstance(v, dict) and len(v) > 0))
def test_a_re_serialisation_with_whitespace_is_not_accepted_as_canonical(value: object) -> None:
    pretty = json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False).encode()
    if pretty != canonical.encode(value):
        with pytest.raises(IntegrityError):
            canonical.decode(pretty)


def test_floats_in_stored_bytes_are_refused_on_decode() -> None:
    with pytest.raises(IntegrityError):
        canonical.decode(b'{"a":1.5}')

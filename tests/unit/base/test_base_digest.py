from __future__ import annotations

import hashlib
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from breedlab.digest import Digest, parse_prefix, sha256_stream
from breedlab.errors import InvalidRequest

hex64 = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)


@given(hex64)
def test_digest_string_and_parse_are_inverses(value: str) -> None:
    d = Digest(value)
    assert Digest.parse(str(d)) == d
    assert Digest.parse(value) == d
    assert str(d) == f"sha256:{value}"


@given(st.text(max_size=80))
def test_parse_accepts_only_sha256_hex(text: str) -> None:
    body = text.removeprefix("sha256:")
    valid = len(body) == 64 and all(c in "0123456789abcdef" for c in body)
    if valid:
        assert Digest.parse(text).hex == body
    else:
        with pytest.raises(InvalidRequest):
            Digest.parse(text)


def test_uppercase_and_other_algorithms_are_refused() -> None:
    with pytest.raises(InvalidRequest):
        Digest.parse("sha256:" + "A" * 64)
    with pytest.raises(InvalidRequest):
        Digest.parse("sha512:" + "a" * 64)


@given(st.binary(max_size=3_000_000))
def test_stream_hash_equals_hashlib(data: bytes) -> None:
    hex_, size = sha256_stream(io.BytesIO(data))
    assert hex_ == hashlib.sha256(data).hexdigest()
    assert size == len(data)
    assert Digest.of(data).hex == hex_


def test_prefixes_need_four_hex_digits() -> None:
    assert parse_prefix("sha256:ABCD") == "abcd"
    with pytest.raises(InvalidRequest):
        parse_prefix("abc")
    with pytest.raises(InvalidRequest):
        parse_prefix("zzzz")

"""Canonical JSON: the one encoder for every byte string breedlab hashes or signs.

Rules: UTF-8, keys sorted by code point, no insignificant whitespace, no floats (store
numbers whose exactness matters as decimal strings), no NaN, only JSON types
(``dict`` with ``str`` keys, ``list``, ``str``, ``int``, ``bool``, ``None``). Tuples are
encoded as lists. This is the RFC 8785 (JCS) shape minus floats; key order differs from
JCS only for characters outside the Basic Multilingual Plane (JCS sorts UTF-16 units).

``decode`` is strict: it refuses bytes that are valid JSON but not canonical, so a
re-serialisation can never slip past a check that hashes stored bytes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from breedlab.errors import IntegrityError, InvalidRequest

__all__ = ["JsonValue", "decode", "encode"]

JsonValue = Any  # recursive JSON values; checked at run time by _check


def _check(value: object, path: str) -> None:
    if value is None or isinstance(value, bool | str):
        return
    if isinstance(value, int):
        return
    if isinstance(value, float):
        raise InvalidRequest(
            f"canonical JSON refuses floats (at {path}); store {value!r} as a string"
        )
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidRequest(f"canonical JSON needs string keys (at {path}: {key!r})")
            _check(item, f"{path}.{key}")
        return
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        for i, item in enumerate(value):
            _check(item, f"{path}[{i}]")
        return
    raise InvalidRequest(f"canonical JSON cannot encode {type(value).__name__} (at {path})")


def encode(value: JsonValue) -> bytes:
    """Encode ``value`` as canonical JSON bytes.

    Raises:
        InvalidRequest: the value holds a float, a non-string key or a non-JSON type.
    """
    _check(value, "$")
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def decode(data: bytes) -> JsonValue:
    """Decode canonical JSON bytes, refusing anything that is not byte-for-byte canonical.

    Raises:
        IntegrityError: not UTF-8, not JSON, or not in canonical form.
    """
    try:
        value = json.loads(data.decode("utf-8"), parse_float=_refuse_float)
    except (UnicodeDecodeError, json.JSONDecodeError, InvalidRequest) as e:
        raise IntegrityError(f"not canonical JSON: {e}") from e
    if encode(value) != data:
        raise IntegrityError("JSON is not in canonical form (key order, spacing or escapes)")
    return value


def _refuse_float(text: str) -> object:
    raise InvalidRequest(f"float {text} in canonical JSON")

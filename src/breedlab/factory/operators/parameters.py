"""Reading operator parameters beyond the contract's scalars: closed key sets, bounds, lists.

The contract (``breedlab.jobs``) reads one scalar (``param_str``, ``param_int``,
``param_float``); this module adds what the training operators need on top -- refusing
unknown keys (a typo must not silently fall back to a default), positive and bounded
numbers, and lists of sizes. Every refusal is an :class:`InvalidRequest` naming the key.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from breedlab.canonical import JsonValue
from breedlab.errors import InvalidRequest
from breedlab.jobs import param_float, param_int

__all__ = [
    "check_known",
    "param_fraction",
    "param_names",
    "param_nonnegative_float",
    "param_nonnegative_int",
    "param_positive_float",
    "param_positive_int",
    "param_sizes",
]


def check_known(params: Mapping[str, JsonValue], known: Collection[str], operator: str) -> None:
    """Refuse parameters the operator does not read (fail closed on typos)."""
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise InvalidRequest(
            f"operator {operator} does not take parameter(s) {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(sorted(known))}"
        )


def param_positive_int(params: Mapping[str, JsonValue], key: str, default: int) -> int:
    value = param_int(params, key, default)
    if value < 1:
        raise InvalidRequest(f"parameter {key!r} must be a positive integer, got {value}")
    return value


def param_nonnegative_int(params: Mapping[str, JsonValue], key: str, default: int) -> int:
    value = param_int(params, key, default)
    if value < 0:
        raise InvalidRequest(f"parameter {key!r} must be >= 0, got {value}")
    return value


def param_positive_float(params: Mapping[str, JsonValue], key: str, default: str) -> float:
    value = param_float(params, key, default)
    if value <= 0:
        raise InvalidRequest(f"parameter {key!r} must be > 0, got {params.get(key, default)!r}")
    return value


def param_nonnegative_float(params: Mapping[str, JsonValue], key: str, default: str) -> float:
    value = param_float(params, key, default)
    if value < 0:
        raise InvalidRequest(f"parameter {key!r} must be >= 0, got {params.get(key, default)!r}")
    return value


def param_fraction(
    params: Mapping[str, JsonValue], key: str, default: str, *, below_one: bool = False
) -> float:
    """A decimal string in ``[0, 1]`` (``[0, 1)`` with ``below_one``)."""
    value = param_float(params, key, default)
    if value < 0 or value > 1 or (below_one and value == 1):
        bound = "1)" if below_one else "1]"
        raise InvalidRequest(
            f"parameter {key!r} must be in [0, {bound}, got {params.get(key, default)!r}"
        )
    return value


def param_sizes(params: Mapping[str, JsonValue], key: str, default: Sequence[int]) -> list[int]:
    """A non-empty list of positive integers (layer widths, channels, image sides)."""
    value = params.get(key, list(default))
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    ):
        raise InvalidRequest(f"parameter {key!r} must be a non-empty list of positive integers")
    return list(value)


def param_names(params: Mapping[str, JsonValue], key: str) -> list[str] | None:
    """An optional non-empty list of distinct strings (``None`` when absent)."""
    if key not in params:
        return None
    value = params[key]
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, str) for v in value)
        or len(set(value)) != len(value)
    ):
        raise InvalidRequest(f"parameter {key!r} must be a non-empty list of distinct strings")
    return list(value)

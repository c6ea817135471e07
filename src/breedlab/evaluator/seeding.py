"""What every perturbation catalogue shares (``evaluator.perturbations`` for arrays,
``evaluator.text_perturbations`` for strings): one generator per item, applying a spec
item by item with it, and the fields of spec records.

Determinism (HELM ``Perturbation.get_rng`` seeds ``Random(str(seed) + instance.id)``;
notes/evaluation-viability-release.md §2.1): each item's randomness comes from its own
generator, ``PCG64(SeedSequence(int(sha256(f"{seed}:{kind}:{item_id}"))))``. An item's
perturbation therefore depends only on the suite seed, the perturbation kind and the item
id: not on the item's position, the batch, the process or the other items. Parameters
(σ, fraction, ...) are not part of the key, so two levels of one kind draw the same
numbers (common random numbers).

Records: canonical JSON refuses floats, so a float field is its shortest round-tripping
decimal (``repr``), and only that spelling is accepted back: a spec and its record are a
bijection, so suite hashes are stable.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from typing import ClassVar, Protocol, TypeVar

import numpy as np

from breedlab.errors import InvalidRequest

__all__ = [
    "Seeded",
    "check_ids",
    "check_keys",
    "float_text",
    "item_rng",
    "parse_float",
    "parse_floats",
    "parse_int",
    "seeded_each",
]

Item = TypeVar("Item")


class Seeded(Protocol[Item]):
    """A perturbation spec: its kind keys the generators, ``apply_one`` perturbs one item."""

    kind: ClassVar[str]

    def apply_one(self, item: Item, rng: np.random.Generator, /) -> Item: ...


def item_rng(seed: int, kind: str, item_id: str) -> np.random.Generator:
    """The generator of one item under one perturbation kind (see the module docstring).

    Raises:
        InvalidRequest: ``seed`` is not an int (bools refused), or ``kind``/``item_id`` empty.
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise InvalidRequest(f"seed must be an int, not {type(seed).__name__}")
    if not kind or not item_id:
        raise InvalidRequest("perturbation kind and item id must be non-empty")
    if ":" in kind:
        # The seed (an int) and the kind hold no ':', so the key splits back unambiguously.
        raise InvalidRequest(f"perturbation kind must not contain ':', got {kind!r}")
    digest = hashlib.sha256(f"{seed}:{kind}:{item_id}".encode()).digest()
    return np.random.Generator(
        np.random.PCG64(np.random.SeedSequence(int.from_bytes(digest, "big")))
    )


def check_ids(item_ids: Sequence[str], n: int) -> None:
    """Raises InvalidRequest unless there is one unique id per item."""
    if len(item_ids) != n:
        raise InvalidRequest(f"{len(item_ids)} item ids for {n} items")
    if len(set(item_ids)) != n:
        raise InvalidRequest("item ids must be unique (each seeds its own perturbation)")


def seeded_each(
    spec: Seeded[Item], items: Sequence[Item], *, item_ids: Sequence[str], seed: int
) -> Iterator[Item]:
    """``spec`` applied to each item in order, item ``i`` with ``item_rng(seed, spec.kind,
    item_ids[i])``. Raises InvalidRequest (at once) unless ids are unique, one per item."""
    check_ids(item_ids, len(items))
    return (
        spec.apply_one(item, item_rng(seed, spec.kind, item_id))
        for item, item_id in zip(items, item_ids, strict=True)
    )


def float_text(value: float) -> str:
    """A float field as its record holds it: the shortest decimal that round-trips."""
    return repr(float(value))


def parse_float(record: Mapping[str, object], key: str) -> float:
    """Raises InvalidRequest unless ``record[key]`` is a float written as ``float_text``."""
    text = record.get(key)
    if not isinstance(text, str):
        raise InvalidRequest(f"perturbation record needs {key!r} as a decimal string")
    try:
        value = float(text)
    except ValueError as e:
        raise InvalidRequest(f"perturbation {key!r} is not a number: {text!r}") from e
    if float_text(value) != text:
        raise InvalidRequest(f"perturbation {key!r} must be written {float_text(value)!r}")
    return value


def parse_int(record: Mapping[str, object], key: str) -> int:
    """Raises InvalidRequest unless ``record[key]`` is an int (bools refused)."""
    value = record.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidRequest(f"perturbation record needs {key!r} as an integer")
    return value


def parse_floats(record: Mapping[str, object], key: str) -> tuple[float, ...]:
    """Raises InvalidRequest unless ``record[key]`` is a non-empty list of float texts."""
    texts = record.get(key)
    if not isinstance(texts, list) or not texts:
        raise InvalidRequest(f"perturbation record needs {key!r} as a list of decimal strings")
    return tuple(parse_float({key: text}, key) for text in texts)


def check_keys(record: Mapping[str, object], expected: set[str]) -> None:
    """Raises InvalidRequest unless the record has exactly the ``expected`` keys."""
    if set(record) != expected:
        raise InvalidRequest(
            f"perturbation record keys {sorted(record)} != expected {sorted(expected)}"
        )

"""Item and suite hashes: the mechanical check that two runs scored the same items.

Owns the per-item content hash and the suite hash over the ordered items. Leaves the
suite manifest (metric specs, margins, splits, perturbation records) and its package id
to the suite builder and ``breedlab.registry``, and the comparison refusal ("different
suite, no verdict") to ``breedlab.viability``.

After lm-eval's ``doc_hash``/``target_hash`` per sample rolled up into ``task_hashes``
(notes/evaluation-viability-release.md §2.1): a version number is a social contract, a
hash is the check. An item's hash is::

    sha256(canonical_json({"input": {"dtype": x.dtype.str, "shape": [...], "sha256": <hex of
           the row's exact C-order bytes>}, "target": <int>}))

so one flipped pixel, a dtype change (``<f8`` vs ``<f4``) or a reshape all change it, and
equal content always hashes equal whatever the item's position. The suite hash binds the
ordered ``(item id, item hash)`` pairs: ids matter because perturbations are seeded by them
(``evaluator.perturbations``), and order matters because per-item outputs are stored in it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from breedlab.canonical import encode
from breedlab.digest import sha256_bytes
from breedlab.errors import InvalidRequest

__all__ = ["SUITE_ITEMS_SCHEMA", "ItemHash", "hash_items", "item_hashes", "suite_hash"]

#: Schema tag inside the suite-hash preimage; bump it if the preimage's shape changes.
SUITE_ITEMS_SCHEMA = "breedlab.suite-items/v1"


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemHash:
    """One item of a suite: its stable id and its content hash (lowercase hex SHA-256)."""

    item_id: str
    sha256: str


def item_hashes(x: npt.NDArray[np.generic], y: npt.NDArray[np.generic]) -> list[str]:
    """Content hashes of the items ``(x[i], y[i])``, independent of any item id.

    Args:
        x: inputs, one item per row along axis 0; any numeric dtype, any trailing shape.
        y: integer targets, shape ``(n,)``.

    Returns:
        One lowercase hex SHA-256 per item, in order.

    Raises:
        InvalidRequest: ``x`` is 0-d or not numeric/bool, ``y`` is not 1-d integers, or the
            lengths differ.
    """
    if x.ndim < 1:
        raise InvalidRequest("inputs need an item axis (ndim >= 1)")
    if not (np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.bool_)):
        raise InvalidRequest(f"inputs must be a numeric array, got dtype {x.dtype}")
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise InvalidRequest(f"targets must be a 1-d integer array, got {y.dtype} {y.shape}")
    if x.shape[0] != y.shape[0]:
        raise InvalidRequest(f"{x.shape[0]} inputs for {y.shape[0]} targets")
    shape = list(x.shape[1:])
    dtype = x.dtype.str  # carries the byte order, which the raw bytes depend on
    hashes = []
    for row, target in zip(x, y, strict=True):
        record = {
            "input": {"dtype": dtype, "shape": shape, "sha256": sha256_bytes(row.tobytes())},
            "target": int(target),
        }
        hashes.append(sha256_bytes(encode(record)))
    return hashes


def hash_items(
    item_ids: Sequence[str], x: npt.NDArray[np.generic], y: npt.NDArray[np.generic]
) -> tuple[ItemHash, ...]:
    """Pair each item id with its content hash (``item_hashes``).

    Raises:
        InvalidRequest: as ``item_hashes``; or ids empty, duplicated, or not one per item.
    """
    hashes = item_hashes(x, y)
    if len(item_ids) != len(hashes):
        raise InvalidRequest(f"{len(item_ids)} item ids for {len(hashes)} items")
    if any(not isinstance(i, str) or not i for i in item_ids):
        raise InvalidRequest("item ids must be non-empty strings")
    if len(set(item_ids)) != len(item_ids):
        raise InvalidRequest("item ids must be unique within a suite")
    return tuple(ItemHash(item_id=i, sha256=h) for i, h in zip(item_ids, hashes, strict=True))


def suite_hash(items: Sequence[ItemHash]) -> str:
    """Hash of the ordered items: ``sha256(canonical_json({"schema", "items": [[id, hash]…]}))``.

    Raises:
        InvalidRequest: no items (an empty suite proves nothing), or duplicate ids.
    """
    if not items:
        raise InvalidRequest("a suite needs at least one item")
    if len({item.item_id for item in items}) != len(items):
        raise InvalidRequest("item ids must be unique within a suite")
    preimage = {
        "schema": SUITE_ITEMS_SCHEMA,
        "items": [[item.item_id, item.sha256] for item in items],
    }
    return sha256_bytes(encode(preimage))

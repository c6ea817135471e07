"""Item and suite hashes: any change to an item's bytes, target, id or order shows."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from breedlab.errors import InvalidRequest
from breedlab.evaluator.items import (
    SUITE_ITEMS_SCHEMA,
    ItemHash,
    hash_items,
    item_hashes,
    suite_hash,
)


def suite_arrays(n: int = 6) -> tuple[np.ndarray, np.ndarray, list[str]]:
    rng = np.random.default_rng(2)
    return rng.random((n, 64)), rng.integers(0, 10, n), [f"digits-{i}" for i in range(n)]


def test_an_item_hash_is_sha256_of_the_documented_canonical_preimage() -> None:
    x, y, _ = suite_arrays(1)
    preimage = {
        "input": {
            "dtype": "<f8",
            "shape": [64],
            "sha256": hashlib.sha256(x[0].tobytes()).hexdigest(),
        },
        "target": int(y[0]),
    }
    text = json.dumps(preimage, sort_keys=True, separators=(",", ":")).encode()
    assert item_hashes(x, y) == [hashlib.sha256(text).hexdigest()]


@given(st.integers(0, 5), st.integers(0, 63), st.floats(1e-12, 0.5))
def test_an_item_hash_changes_when_one_pixel_changes_and_only_that_item(
    item: int, pixel: int, delta: float
) -> None:
    x, y, _ = suite_arrays()
    before = item_hashes(x, y)
    x[item, pixel] += delta
    after = item_hashes(x, y)
    assert [i for i in range(6) if before[i] != after[i]] == [item]


def test_an_item_hash_changes_with_its_target_dtype_or_shape() -> None:
    x, y, _ = suite_arrays(1)
    base = item_hashes(x, y)[0]
    assert item_hashes(x, y + 1)[0] != base
    assert item_hashes(x.astype(np.float32), y)[0] != base
    assert item_hashes(x.reshape(1, 8, 8), y)[0] != base
    assert item_hashes(x.astype(">f8"), y)[0] != base  # same values, other byte order


def test_equal_content_hashes_equal_wherever_it_sits() -> None:
    x, y, _ = suite_arrays()
    hashes = item_hashes(x, y)
    assert item_hashes(x[::-1], y[::-1]) == hashes[::-1]
    assert item_hashes(np.asfortranarray(x), y) == hashes


def test_the_suite_hash_binds_ids_hashes_and_order() -> None:
    x, y, ids = suite_arrays()
    items = hash_items(ids, x, y)
    base = suite_hash(items)
    assert base == suite_hash(hash_items(ids, x.copy(), y.copy()))
    assert suite_hash(items[::-1]) != base
    renamed = (ItemHash(item_id="digits-99", sha256=items[0].sha256), *items[1:])
    assert suite_hash(renamed) != base
    y2 = y.copy()
    y2[3] = (y2[3] + 1) % 10
    assert suite_hash(hash_items(ids, x, y2)) != base
    assert SUITE_ITEMS_SCHEMA.endswith("/v1")


@pytest.mark.parametrize(
    ("call", "why"),
    [
        (lambda: suite_hash([]), "at least one item"),
        (lambda: suite_hash([ItemHash(item_id="a", sha256="0" * 64)] * 2), "unique"),
        (lambda: hash_items(["a", "a"], np.zeros((2, 3)), np.zeros(2, dtype=int)), "unique"),
        (lambda: hash_items(["a"], np.zeros((2, 3)), np.zeros(2, dtype=int)), "1 item ids"),
        (lambda: hash_items(["", "b"], np.zeros((2, 3)), np.zeros(2, dtype=int)), "non-empty"),
        (lambda: item_hashes(np.zeros((2, 3)), np.zeros(3, dtype=int)), "2 inputs for 3"),
        (lambda: item_hashes(np.zeros((2, 3)), np.zeros(2)), "integer"),
        (lambda: item_hashes(np.array(["a", "b"]), np.zeros(2, dtype=int)), "numeric"),
        (lambda: item_hashes(np.float64(1.0), np.zeros(1, dtype=int)), "item axis"),  # type: ignore[arg-type]
    ],
)
def test_malformed_items_are_refused(call: object, why: str) -> None:
    with pytest.raises(InvalidRequest, match=why):
        call()  # type: ignore[operator]

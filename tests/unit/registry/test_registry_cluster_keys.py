"""Cluster keys: every failure cluster gets a stable, readable key that an owner can scope
a parent approval to (issue 12: "parents approved for it")."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from breedlab.errors import InvalidRequest
from breedlab.evaluator.perturbations import GaussianNoise
from breedlab.evaluator.slices import LENGTH
from breedlab.registry.cluster_keys import (
    LENGTH_FEATURE,
    check_cluster_key,
    cluster_key,
    in_scope,
    recorded_scope,
    scope,
)


def _slice(feature: str, bin_: int, **more: object) -> dict[str, object]:
    return {"kind": "slice", "feature": feature, "feature_index": 3, "bin": bin_, "bins": 5,
            "description": "d", "severity": "0.1", **more}  # fmt: skip


def test_each_kind_of_cluster_has_a_readable_key() -> None:
    noise = {"kind": "perturbation", "perturbation": GaussianNoise(sigma=0.5).to_record(),
             "description": "noise inputs", "severity": "0.2"}  # fmt: skip
    assert cluster_key(noise) == "perturbation:noise"
    assert cluster_key({"kind": "confusion", "classes": [8, 1, 10]}) == "confusion:1-8-10"
    assert cluster_key(_slice("Alcohol", 3)) == "slice:alcohol:q4"
    assert cluster_key(_slice("malic acid (g/l)", 0)) == "slice:malic-acid-g-l:q1"
    assert cluster_key(_slice(LENGTH, 0)) == "length:q1"
    assert cluster_key({"kind": "length", "bin": 2}) == "length:q3"


def test_the_length_feature_is_the_evaluators() -> None:
    assert LENGTH_FEATURE == LENGTH


def test_a_key_does_not_change_with_the_description_or_severity_of_a_new_mining() -> None:
    first = _slice("alcohol", 3, edges=["1", "2"])
    again = _slice("alcohol", 3, edges=["1", "2"], description="other", severity="0.9")
    assert cluster_key(first) == cluster_key(again)
    odd = {"kind": "Drift Window", "window": [1, 2], "description": "a", "severity": "1"}
    assert cluster_key(odd) == cluster_key({**odd, "description": "b", "severity": "2"})


def test_an_unknown_shape_gets_its_kind_and_a_digest_that_tells_metas_apart() -> None:
    a = cluster_key({"kind": "Drift Window", "window": [1, 2]})
    b = cluster_key({"kind": "Drift Window", "window": [1, 3]})
    assert a.startswith("drift-window:") and b.startswith("drift-window:") and a != b
    assert len(a.split(":")[1]) == 12
    # a known kind whose fields are missing falls back the same way
    assert cluster_key({"kind": "confusion"}).startswith("confusion:")
    assert cluster_key({"kind": "slice", "feature": "x"}).startswith("slice:")
    assert cluster_key({}).startswith("cluster:")


@given(
    st.dictionaries(
        st.text(max_size=12),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=30),
            lambda inner: st.lists(inner, max_size=4),
            max_leaves=8,
        ),
        max_size=6,
    )
)
def test_every_meta_gives_a_well_formed_key_and_always_the_same(meta: dict[str, object]) -> None:
    key = cluster_key(meta)
    assert check_cluster_key(key) == key
    assert cluster_key(dict(reversed(list(meta.items())))) == key


@pytest.mark.parametrize(
    "text",
    ["", "noise", "Perturbation:noise", "slice:a b:q1", "confusion:", ":x", "a:" + "x" * 99,
     "perturbation:noise\n", "slice::q1"],
)  # fmt: skip
def test_a_malformed_key_is_refused_with_where_keys_are_shown(text: str) -> None:
    with pytest.raises(InvalidRequest, match="not a cluster key") as caught:
        check_cluster_key(text)
    assert "breedlab failures" in (caught.value.hint or "")


def test_a_scope_is_sorted_without_repeats_and_read_back_only_in_that_form() -> None:
    assert scope(["slice:a:q1", "perturbation:noise", "slice:a:q1"]) == (
        "perturbation:noise",
        "slice:a:q1",
    )
    assert scope([]) == ()
    assert recorded_scope({"purpose": "parent"}) == ()
    assert recorded_scope({"clusters": ["perturbation:noise", "slice:a:q1"]}) == (
        "perturbation:noise",
        "slice:a:q1",
    )
    for bad in ([], ["slice:a:q1", "perturbation:noise"], ["x:y", "x:y"], ["Bad"], "x:y", [1]):
        assert recorded_scope({"clusters": bad}) is None, bad


def test_unscoped_covers_every_round_and_scoped_only_its_clusters() -> None:
    assert in_scope((), "perturbation:noise") and in_scope((), None)
    assert in_scope(("perturbation:noise",), "perturbation:noise")
    assert not in_scope(("perturbation:noise",), "confusion:1-8")
    assert not in_scope(("perturbation:noise",), None)

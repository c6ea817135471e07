"""RFC 9162 §2.1.4 consistency proofs: the proofs of the RFC's own worked example, roots
checked against an independent implementation (pymerkle), and every tampering refused."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymerkle import InmemoryTree

from breedlab.ledger.merkle import (
    Frontier,
    consistency_proof,
    leaf_hash,
    node_hash,
    root,
    verify_consistency,
)

# RFC 9162 §2.1.5's example tree of seven leaves d0..d6:
#
#            hash                 a..f, j: leaf hashes of d0..d6
#           /    \                g = (a, b), h = (c, d), i = (e, f)
#          k      l               k = (g, h), l = (i, j)
#         / \    / \
#        g   h  i   j
#       / \ / \/ \  |
#       a b c d e f d6
DATA = [bytes([n]) * 32 for n in range(7)]
a, b, c, d, e, f, j = (leaf_hash(x) for x in DATA)
g, h, i = node_hash(a, b), node_hash(c, d), node_hash(e, f)
k, l = node_hash(g, h), node_hash(i, j)  # noqa: E741 (the RFC's names)


@pytest.mark.parametrize(
    ("m", "expected"),
    [
        (3, [c, d, g, l]),  # "PROOF(3, D[7]) = [c, d, g, l]"
        (4, [l]),  # "PROOF(4, D[7]) = [l]"
        (6, [i, j, k]),  # "PROOF(6, D[7]) = [i, j, k]"
    ],
)
def test_the_proofs_of_the_rfcs_worked_example(m: int, expected: list[bytes]) -> None:
    assert consistency_proof(DATA, m) == expected
    assert verify_consistency(m, 7, root(DATA[:m]), node_hash(k, l), expected)


def _oracle(leaves: list[bytes]) -> InmemoryTree:
    tree = InmemoryTree(algorithm="sha256")  # RFC 6962 leaf/node prefixes by default
    for leaf in leaves:
        tree.append_entry(leaf)
    return tree


@given(st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=40), st.data())
def test_every_proof_verifies_against_roots_an_independent_tree_computes(
    leaves: list[bytes], data: st.DataObject
) -> None:
    n = len(leaves)
    m = data.draw(st.integers(min_value=1, max_value=n))
    oracle = _oracle(leaves)
    old, new = oracle.get_root(m), oracle.get_root(n)
    assert (old, new) == (root(leaves[:m]), root(leaves))

    proof = consistency_proof(leaves, m)

    assert verify_consistency(m, n, old, new, proof)


@given(st.lists(st.binary(min_size=32, max_size=32), min_size=2, max_size=40), st.data())
def test_a_changed_history_or_a_tampered_proof_never_verifies(
    leaves: list[bytes], data: st.DataObject
) -> None:
    n = len(leaves)
    m = data.draw(st.integers(min_value=1, max_value=n - 1))
    old, new = root(leaves[:m]), root(leaves)
    proof = consistency_proof(leaves, m)
    # an edited event before m: the old root no longer matches the new tree
    at = data.draw(st.integers(min_value=0, max_value=m - 1))
    edited = list(leaves)
    edited[at] = hashlib.sha256(edited[at]).digest()
    assert not verify_consistency(m, n, old, root(edited), consistency_proof(edited, m))
    # a flipped proof element, a dropped one, an extra one
    flip = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
    bad = list(proof)
    bad[flip] = bytes([bad[flip][0] ^ 1]) + bad[flip][1:]
    assert not verify_consistency(m, n, old, new, bad)
    assert not verify_consistency(m, n, old, new, proof[:-1])
    assert not verify_consistency(m, n, old, new, [*proof, proof[0]])
    # an old tree bigger than the new one
    assert not verify_consistency(n, m, new, old, proof)


def test_equal_sizes_need_equal_roots_and_an_empty_proof() -> None:
    r = root(DATA)
    assert verify_consistency(7, 7, r, r, [])
    assert not verify_consistency(7, 7, r, r, [r])
    assert not verify_consistency(7, 7, r, root(DATA[:6]), [])
    with pytest.raises(ValueError, match="old size 0"):
        consistency_proof(DATA, 0)


@given(st.lists(st.binary(min_size=32, max_size=32), max_size=40), st.data())
def test_a_frontier_extended_in_pieces_gives_the_root_of_every_prefix(
    leaves: list[bytes], data: st.DataObject
) -> None:
    frontier = Frontier()
    cuts = sorted(data.draw(st.lists(st.integers(0, len(leaves)), max_size=5)))
    for cut in [*cuts, len(leaves)]:
        if cut < frontier.size:
            continue
        snapshot = frontier.copy()
        frontier.extend(leaves[frontier.size : cut])
        assert frontier.size == cut
        expected = _oracle(leaves[:cut]).get_root(cut) if cut else root([])
        assert frontier.root() == expected
        assert snapshot.copy().extend(leaves[snapshot.size : cut]).root() == frontier.root()

"""RFC 6962 Merkle tree heads over the ledger's event hashes (pure).

RFC 6962 §2.1: leaf hash ``SHA-256(0x00 || leaf)``, node hash ``SHA-256(0x01 || l || r)``,
and for n > 1 the tree splits at ``k``, the largest power of two smaller than n. The
empty tree's head is ``SHA-256()``. Leaves are the raw 32 bytes of each event hash.
A checkpoint is a signed tree head: ``(tree_size, root)`` signed by a lab key.

Consistency proofs (RFC 9162 §2.1.4, the same construction as RFC 6962 §2.1.2) show that
a later tree head extends an earlier one: what a witness who kept the earlier head needs
to prove that the ledger was only appended to since.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

__all__ = [
    "Frontier",
    "consistency_proof",
    "leaf_hash",
    "node_hash",
    "root",
    "verify_consistency",
]


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


class Frontier:
    """A growing tree's compact range: the roots of its perfect subtrees, left to right
    (at most log2(n) of them). Appending is amortised O(1) and the head is O(log n), so
    a process that signs a checkpoint every N events reads only the new events."""

    __slots__ = ("_nodes", "size")

    def __init__(self) -> None:
        self.size = 0
        self._nodes: list[tuple[int, bytes]] = []  # (height, subtree root)

    def append(self, leaf: bytes) -> None:
        height, node = 0, leaf_hash(leaf)
        while self._nodes and self._nodes[-1][0] == height:
            node = node_hash(self._nodes.pop()[1], node)
            height += 1
        self._nodes.append((height, node))
        self.size += 1

    def extend(self, leaves: Iterable[bytes]) -> Frontier:
        for leaf in leaves:
            self.append(leaf)
        return self

    def root(self) -> bytes:
        """The Merkle Tree Hash of every leaf so far (RFC 6962 §2.1): the subtree roots
        folded from the right, which is the RFC's split at the largest power of two."""
        if not self._nodes:
            return hashlib.sha256(b"").digest()
        acc = self._nodes[-1][1]
        for _, node in reversed(self._nodes[:-1]):
            acc = node_hash(node, acc)
        return acc

    def copy(self) -> Frontier:
        other = Frontier()
        other.size, other._nodes = self.size, list(self._nodes)
        return other


def root(leaves: Sequence[bytes]) -> bytes:
    """The Merkle Tree Hash of ``leaves`` (RFC 6962 §2.1), in O(n)."""
    return Frontier().extend(leaves).root()


def _largest_power_below(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def consistency_proof(leaves: Sequence[bytes], old_size: int) -> list[bytes]:
    """The RFC 9162 §2.1.4.1 consistency proof ``PROOF(m, D[n])`` between the tree of the
    first ``old_size`` leaves and the tree of all of them.

    Raises:
        ValueError: ``old_size`` is not in ``1..len(leaves)``.
    """
    n = len(leaves)
    if not 0 < old_size <= n:
        raise ValueError(f"old size {old_size} is not in 1..{n}")

    def subproof(m: int, d: Sequence[bytes], complete: bool) -> list[bytes]:
        if m == len(d):
            return [] if complete else [root(d)]
        k = _largest_power_below(len(d))
        if m <= k:
            return [*subproof(m, d[:k], complete), root(d[k:])]
        return [*subproof(m - k, d[k:], False), root(d[:k])]

    return subproof(old_size, leaves, True)


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Check an RFC 9162 §2.1.4.2 consistency proof: the tree of ``new_size`` leaves
    with head ``new_root`` extends the tree of ``old_size`` leaves with head
    ``old_root`` (an append-only log: nothing before ``old_size`` changed)."""
    if not 0 < old_size <= new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # an exact power of two: the old root is a node
        path.insert(0, old_root)
    if not path:
        return False
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while True:
                    fn >>= 1
                    sn >>= 1
                    if fn & 1 or fn == 0:
                        break
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0

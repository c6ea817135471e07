"""RFC 6962 Merkle tree heads over the ledger's event hashes (pure).

RFC 6962 §2.1: leaf hash ``SHA-256(0x00 || leaf)``, node hash ``SHA-256(0x01 || l || r)``,
and for n > 1 the tree splits at ``k``, the largest power of two smaller than n. The
empty tree's head is ``SHA-256()``. Leaves are the raw 32 bytes of each event hash.
A checkpoint is a signed tree head: ``(tree_size, root)`` signed by a lab key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = ["leaf_hash", "node_hash", "root"]


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root(leaves: Sequence[bytes]) -> bytes:
    """The Merkle Tree Hash of ``leaves`` (RFC 6962 §2.1), computed bottom-up in O(n).

    Pairing left to right and carrying an odd last node up unchanged yields exactly the
    RFC's recursive split at the largest power of two below n.
    """
    if not leaves:
        return hashlib.sha256(b"").digest()
    level = [leaf_hash(leaf) for leaf in leaves]
    while len(level) > 1:
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]

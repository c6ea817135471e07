"""Cluster keys: the stable, readable names of failure clusters, which parent approvals
are scoped to (issue 12: "parents approved for it").

A failure cluster is a dataset package whose manifest meta holds ``cluster`` (written by
``breedlab.lab.failures``). Its key is derived from that meta alone, so the same weakness
mined again -- by a later champion, on the same suite -- gets the same key, and an
approval scoped to it keeps applying:

=================  =====================================  ============================
cluster meta       key                                    example
=================  =====================================  ============================
perturbation       ``perturbation:<perturbation kind>``   ``perturbation:noise``
confusion          ``confusion:<classes, sorted, "-">``   ``confusion:1-8``
slice (feature)    ``slice:<feature>:q<bin, from 1>``     ``slice:alcohol:q4``
slice (length)     ``length:q<bin, from 1>``              ``length:q1``
anything else      ``<kind>:<12 hex of its meta>``        ``drift:3fa2c1d09b7e``
=================  =====================================  ============================

Names are lower-cased and every run of other characters becomes ``-``. A text-length
slice is a slice of the feature ``length`` (``evaluator.slices.LENGTH``); a tabular
feature of that name gets the same key, which names the same thing. The digest of an
unknown shape leaves out ``description`` and ``severity``, which change with every mining.

Owns the syntax, the derivation and the scope rule (:func:`in_scope`); leaves to
``supply.approvals`` recording a scope and to ``lab.breeding`` applying it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

from breedlab import canonical
from breedlab.canonical import JsonValue
from breedlab.digest import sha256_bytes
from breedlab.errors import InvalidRequest

__all__ = [
    "KEY_PATTERN",
    "MAX_KEY_LENGTH",
    "check_cluster_key",
    "cluster_key",
    "in_scope",
    "recorded_scope",
    "scope",
]

#: A key: a kind, then one or more parts, each of ``a-z 0-9 _ . -``, joined by ``:``.
KEY_PATTERN: Final = re.compile(r"[a-z0-9][a-z0-9_.-]*(?::[a-z0-9_.-]+)+")
MAX_KEY_LENGTH: Final = 100
LENGTH_FEATURE: Final = "length"  # evaluator.slices.LENGTH (a layer up; a test holds them)
_VOLATILE: Final = frozenset({"description", "severity"})


def _slug(value: object, *, fallback: str) -> str:
    text = re.sub(r"[^a-z0-9_.]+", "-", str(value).lower()).strip("-_.")
    return text or fallback


def _bin(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def cluster_key(meta: Mapping[str, JsonValue]) -> str:
    """The key of a failure cluster, from its package's ``meta["cluster"]``.

    Never fails: a shape it does not know gets ``<kind>:<digest>``.
    """
    kind = _slug(meta.get("kind") or "", fallback="cluster")
    key: str | None = None
    if kind == "perturbation" and isinstance(p := meta.get("perturbation"), Mapping):
        if p.get("kind"):
            key = f"perturbation:{_slug(p['kind'], fallback='unknown')}"
    elif kind == "confusion" and isinstance(classes := meta.get("classes"), list) and classes:
        names = sorted({_slug(c, fallback="none") for c in classes}, key=_class_order)
        key = "confusion:" + "-".join(names)
    elif kind in ("slice", "length") and (b := _bin(meta.get("bin"))) is not None:
        feature = _slug(meta.get("feature") or "", fallback=f"x{meta.get('feature_index', '')}")
        if kind == "length" or feature == LENGTH_FEATURE:
            key = f"length:q{b + 1}"
        else:
            key = f"slice:{feature}:q{b + 1}"
    if key is None or len(key) > MAX_KEY_LENGTH or not KEY_PATTERN.fullmatch(key):
        stable = {k: v for k, v in meta.items() if k not in _VOLATILE}
        key = f"{kind[:60]}:{sha256_bytes(canonical.encode(stable))[:12]}"
    return key


def _class_order(name: str) -> tuple[int, int | str]:
    """Numeric class labels in numeric order (``2`` before ``10``), then the rest."""
    return (0, int(name)) if name.isdigit() else (1, name)


def check_cluster_key(text: str) -> str:
    """``text`` if it is a cluster key.

    Raises:
        InvalidRequest: it is not (names the syntax and where keys are shown).
    """
    if len(text) > MAX_KEY_LENGTH or not KEY_PATTERN.fullmatch(text):
        raise InvalidRequest(
            f"{text[:MAX_KEY_LENGTH]!r} is not a cluster key (KIND:PART[:PART...], lower-case "
            f"letters, digits, '_', '.', '-'; at most {MAX_KEY_LENGTH} characters)",
            hint="'breedlab failures CAP' shows each cluster's key",
        )
    return text


def scope(keys: Iterable[str]) -> tuple[str, ...]:
    """A parent approval's scope: the keys checked, without repeats, sorted (empty:
    unscoped, every cluster).

    Raises:
        InvalidRequest: a key is malformed.
    """
    return tuple(sorted({check_cluster_key(k) for k in keys}))


def in_scope(clusters: Sequence[str], key: str | None) -> bool:
    """Whether an approval scoped to ``clusters`` covers a round on cluster ``key``.

    Unscoped (empty) covers every round; a scoped one only a round on one of its
    clusters -- never a round without a cluster.
    """
    return not clusters or (key is not None and key in clusters)


def recorded_scope(fields: Mapping[str, JsonValue]) -> tuple[str, ...] | None:
    """The scope a ``package.approved`` payload or an approval statement's predicate
    records: empty if it has no ``clusters`` (unscoped); None if the field is not what
    :func:`scope` writes (a non-empty, sorted list of distinct, well-formed keys)."""
    if "clusters" not in fields:
        return ()
    value = fields["clusters"]
    if not isinstance(value, list) or not value or not all(isinstance(k, str) for k in value):
        return None
    try:
        found = scope(value)
    except InvalidRequest:
        return None
    return found if list(found) == value else None

"""A capability's four data splits (seed, stage 2: train, fitness, dev, sealed) and how
imported rows are dealt into them: stratified by label, seeded, sizes by fraction.

Pure: labels and a seed in, row indices out. Storing the splits is ``lab.dataset_splits``'.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation

import numpy as np

from breedlab.errors import InvalidRequest

__all__ = [
    "DEFAULT_FRACTIONS",
    "SPLIT_NAMES",
    "grouped_split",
    "parse_fractions",
    "stratified_split",
]

SPLIT_NAMES = ("train", "fitness", "dev", "sealed")
DEFAULT_FRACTIONS: Mapping[str, float] = {
    "train": 0.6,
    "fitness": 0.1,
    "dev": 0.15,
    "sealed": 0.15,
}


def parse_fractions(text: str) -> dict[str, float]:
    """``train=0.6,fitness=0.1,dev=0.15,sealed=0.15``: every split once, each above 0,
    summing to 1.

    Raises:
        InvalidRequest: a split missing, repeated or unknown; a fraction not in (0, 1];
            a sum other than 1.
    """
    out: dict[str, Decimal] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or name not in SPLIT_NAMES or name in out:
            raise InvalidRequest(
                f"--fractions: {part.strip()!r} is not SPLIT=FRACTION for a new split "
                f"({', '.join(SPLIT_NAMES)})"
            )
        try:
            out[name] = Decimal(value.strip())
        except InvalidOperation:
            raise InvalidRequest(f"--fractions: {value.strip()!r} is not a number") from None
        if not 0 < out[name] <= 1:
            raise InvalidRequest(f"--fractions: {name} must be above 0 and at most 1")
    missing = [s for s in SPLIT_NAMES if s not in out]
    if missing:
        raise InvalidRequest(f"--fractions: no fraction for {', '.join(missing)}")
    if sum(out.values()) != 1:
        raise InvalidRequest(f"--fractions must sum to 1 (they sum to {sum(out.values())})")
    return {s: float(out[s]) for s in SPLIT_NAMES}


def _shares(n: int, fractions: Sequence[float]) -> list[int]:
    """``n`` items dealt by ``fractions``: largest remainders (ties to the earlier split),
    then, when there are enough, at least one for every split (taken from the largest)."""
    ideal = [f * n for f in fractions]
    counts = [math.floor(v) for v in ideal]
    order = sorted(range(len(ideal)), key=lambda i: (counts[i] - ideal[i], i))
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    if n >= len(counts):
        for i, c in enumerate(counts):
            if c == 0:
                counts[counts.index(max(counts))] -= 1
                counts[i] = 1
    return counts


def stratified_split(
    labels: Sequence[int], fractions: Mapping[str, float], seed: int
) -> dict[str, list[int]]:
    """Row indices per split: each label's rows shuffled by ``seed`` and dealt by
    ``fractions`` (every split gets each label that has at least four rows); within a
    split, rows keep their file order. The same labels, fractions and seed give the
    same splits.

    Raises:
        InvalidRequest: a split would be empty.
    """
    y = np.asarray(labels, dtype=np.int64)
    rng = np.random.default_rng(seed)
    share = [fractions[s] for s in SPLIT_NAMES]
    chosen: dict[str, list[int]] = {s: [] for s in SPLIT_NAMES}
    for label in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == label))
        start = 0
        for name, count in zip(SPLIT_NAMES, _shares(len(rows), share), strict=True):
            chosen[name].extend(int(r) for r in rows[start : start + count])
            start += count
    for name, picked in chosen.items():
        if not picked:
            raise InvalidRequest(
                f"split {name!r} would be empty ({len(y)} rows)",
                hint="import more rows, or give that split a larger --fractions share",
            )
        picked.sort()
    return chosen


def grouped_split(
    labels: Sequence[int], groups: Sequence[str], fractions: Mapping[str, float], seed: int
) -> dict[str, list[int]]:
    """Row indices per split with every group (a movie, a patient, a customer) whole in
    one split, so nothing a model learned about a group is scored again in another.

    Groups are stratified by their most common label (ties: the smaller label), shuffled
    by ``seed``, and each group goes to the split furthest below its share of that
    stratum's rows (ties to the earlier split). Within a split, rows keep their file
    order. The same labels, groups, fractions and seed give the same splits.

    Raises:
        InvalidRequest: fewer groups than splits, or a split would be empty.
    """
    y = np.asarray(labels, dtype=np.int64)
    members: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    if len(members) < len(SPLIT_NAMES):
        raise InvalidRequest(
            f"{len(members)} groups cannot fill {len(SPLIT_NAMES)} splits",
            hint="every group goes whole into one split: import more groups",
        )
    strata: dict[int, list[str]] = {}
    for g, rows in members.items():
        counts = np.bincount(y[rows])
        strata.setdefault(int(np.argmax(counts)), []).append(g)
    rng = np.random.default_rng(seed)
    share = [fractions[s] for s in SPLIT_NAMES]
    chosen: dict[str, list[int]] = {s: [] for s in SPLIT_NAMES}
    for label in sorted(strata):
        names = sorted(strata[label])
        order = [names[i] for i in rng.permutation(len(names))]
        total = sum(len(members[g]) for g in order)
        filled = [0] * len(SPLIT_NAMES)
        for g in order:
            behind = [share[i] * total - filled[i] for i in range(len(SPLIT_NAMES))]
            target = max(range(len(SPLIT_NAMES)), key=lambda i: (behind[i], -i))
            chosen[SPLIT_NAMES[target]].extend(members[g])
            filled[target] += len(members[g])
    for name, picked in chosen.items():
        if not picked:
            raise InvalidRequest(
                f"split {name!r} would be empty ({len(members)} groups)",
                hint="import more groups, or give that split a larger --fractions share",
            )
        picked.sort()
    return chosen

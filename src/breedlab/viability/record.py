"""How viability values render into ledger records.

Owns the one rule every ``to_record()`` in this package follows: records are plain JSON
values that :func:`breedlab.canonical.encode` accepts, so every float is written as its
``repr`` (the shortest string that parses back to the same float). A reader can re-derive
a decision bit for bit from the record. Leaves encoding and hashing to
``breedlab.canonical`` and the ledger.
"""

from __future__ import annotations

import math

__all__ = ["number", "optional_number"]


def number(value: float) -> str:
    """A float as the decimal string that parses back to exactly the same float.

    Non-finite values render as ``"inf"``, ``"-inf"`` or ``"nan"`` (``float()`` parses
    them back); viability never produces them for finite inputs.
    """
    value = float(value)
    if math.isnan(value):
        return "nan"
    return repr(value)


def optional_number(value: float | None) -> str | None:
    """:func:`number`, passing ``None`` through (a bound that does not exist)."""
    return None if value is None else number(value)

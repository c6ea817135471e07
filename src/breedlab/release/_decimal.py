"""Numbers as decimal strings for canonical JSON records.

Owns the rendering of floats and durations in the ``to_record()`` of release values.
Leaves encoding to :mod:`breedlab.canonical`, which refuses floats: every float in a
record is a string here, and ``float(text)`` gives back the same float.
"""

from __future__ import annotations

import math
from datetime import timedelta

__all__ = ["float_text", "seconds_text"]


def float_text(value: float) -> str:
    """The shortest decimal string that round-trips ``value`` (``"inf"`` and ``"nan"`` too)."""
    value = float(value)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return repr(value)


def seconds_text(duration: timedelta) -> str:
    """A duration as exact decimal seconds: ``"12.5"``, ``"0.000001"``, ``"-3"``."""
    micros = duration // timedelta(microseconds=1)
    sign = "-" if micros < 0 else ""
    whole, frac = divmod(abs(micros), 1_000_000)
    if frac == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{frac:06d}".rstrip("0")

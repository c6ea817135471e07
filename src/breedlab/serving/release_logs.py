"""The evidence a serving process writes for a release run, as records.

Owns the shape of a shadow run's records (a mirrored ``pair``, or ``dropped`` mirrors
counted) and their reading back into :class:`~breedlab.release.shadow_stats.ShadowPair`
values, and :class:`EvidenceSink`, what serving needs of a run's log (append, seal).
Leaves to others: where a log lives and how it is sealed into the ledger (the lab's
evidence logs), and what the pairs mean (:mod:`breedlab.release.shadow_stats`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from breedlab.canonical import JsonValue
from breedlab.errors import IntegrityError
from breedlab.release.shadow_stats import ShadowPair

__all__ = ["EvidenceSink", "pair_record", "shadow_pairs"]


class EvidenceSink(Protocol):
    """One run's evidence log, as serving writes it (thread-safe appends)."""

    def append(self, records: Iterable[Mapping[str, JsonValue]]) -> None:
        """Append records (JSON objects) after the ones written so far."""

    def seal(self) -> tuple[str, ...]:
        """Seal what is written; every sealed digest of the run, in order."""


def pair_record(pair: ShadowPair) -> dict[str, JsonValue]:
    """A mirrored pair as an evidence record (floats as ``repr`` text: exact)."""
    return {
        "primary": pair.primary,
        "shadow": pair.shadow,
        "primary_latency_s": None
        if pair.primary_latency_s is None
        else repr(pair.primary_latency_s),
        "shadow_latency_s": None if pair.shadow_latency_s is None else repr(pair.shadow_latency_s),
        "primary_error": pair.primary_error,
        "shadow_error": pair.shadow_error,
        "dropped": pair.dropped,
    }


def _pair(rec: Mapping[str, Any]) -> ShadowPair:
    try:
        return ShadowPair(
            primary=rec["primary"],
            shadow=rec["shadow"],
            primary_latency_s=None
            if rec["primary_latency_s"] is None
            else float(rec["primary_latency_s"]),
            shadow_latency_s=None
            if rec["shadow_latency_s"] is None
            else float(rec["shadow_latency_s"]),
            primary_error=bool(rec["primary_error"]),
            shadow_error=bool(rec["shadow_error"]),
            dropped=bool(rec["dropped"]),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise IntegrityError(f"malformed shadow record {dict(rec)!r}") from e


def shadow_pairs(records: Iterable[Mapping[str, Any]]) -> list[ShadowPair]:
    """Shadow pairs from evidence records (a ``dropped`` record counts its drops).

    Raises:
        IntegrityError: a record is malformed.
    """
    pairs: list[ShadowPair] = []
    for rec in records:
        if rec.get("kind") == "dropped":
            try:
                count = int(rec["count"])
                latency = float(rec["primary_latency_s"])
            except (KeyError, TypeError, ValueError) as e:
                raise IntegrityError(f"malformed drop record {dict(rec)!r}") from e
            pairs.extend(
                ShadowPair(
                    primary=rec["primary"],
                    shadow=None,
                    primary_latency_s=latency,
                    shadow_latency_s=None,
                    primary_error=rec["primary"] is None,
                    dropped=True,
                )
                for _ in range(count)
            )
        else:
            pairs.append(_pair(rec))
    return pairs

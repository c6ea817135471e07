"""Time, injected: the only module that reads the wall clock.

Rules never read the clock themselves; controllers take a :class:`Clock` and record
``clock.now()`` in the events they write. Timestamps are UTC, ISO 8601 with
microseconds (``2026-11-22T02:40:27.123456Z``) so they sort as strings.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["TIME_FORMAT", "Clock", "FixedClock", "SystemClock", "format_time", "parse_time"]

#: How every recorded time is written (and sorts as a string).
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


class Clock(Protocol):
    """A source of time: ``now`` for records, ``monotonic`` for durations."""

    def now(self) -> datetime: ...

    def monotonic(self) -> float: ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


@dataclass(slots=True)
class FixedClock:
    """A clock for tests: starts at ``start`` and moves only by ``step`` per ``now()``."""

    start: datetime = field(default_factory=lambda: datetime(2026, 1, 1, tzinfo=UTC))
    step: timedelta = timedelta(seconds=1)
    _ticks: int = 0

    def now(self) -> datetime:
        value = self.start + self.step * self._ticks
        self._ticks += 1
        return value

    def monotonic(self) -> float:
        return float(self._ticks) * self.step.total_seconds()


def format_time(moment: datetime) -> str:
    """UTC ISO 8601 with microseconds and a ``Z`` suffix."""
    return moment.astimezone(UTC).strftime(TIME_FORMAT)


def parse_time(text: str) -> datetime:
    """A time written by :func:`format_time`, as an aware UTC datetime.

    Raises:
        ValueError: ``text`` is not in that format.
    """
    return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=UTC)

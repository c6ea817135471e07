"""Recorded times: one format, written and read back exactly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from breedlab.clock import format_time, parse_time


def test_a_recorded_time_is_utc_with_microseconds_and_reads_back() -> None:
    moment = datetime(2026, 11, 22, 3, 40, 27, 123456, tzinfo=timezone(timedelta(hours=1)))
    assert format_time(moment) == "2026-11-22T02:40:27.123456Z"  # by hand: 03:40 at +01:00
    back = parse_time("2026-11-22T02:40:27.123456Z")
    assert back == moment and back.tzinfo is UTC


@pytest.mark.parametrize("text", ["2026-11-22T02:40:27Z", "2026-11-22 02:40:27.1Z", "yesterday"])
def test_other_spellings_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_time(text)

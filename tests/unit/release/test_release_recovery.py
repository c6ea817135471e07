"""Measured recovery of an aborted canary (seed, stage 3; DESIGN §11; notes §5.5)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from breedlab import canonical
from breedlab.clock import FixedClock
from breedlab.errors import IntegrityError, InvalidRequest
from breedlab.release.recovery import Recovery

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def drill(**overrides: object) -> Recovery:
    fields: dict[str, object] = {
        "t_onset": T0,
        "t_detect": T0 + timedelta(seconds=12.5),
        "t_switch": T0 + timedelta(seconds=12.75),
        "t_verified": T0 + timedelta(seconds=42, microseconds=250_001),
        "detection_requests": 74,
        "exposed_requests": 76,
        "exposed_units": 60,
    }
    fields.update(overrides)
    return Recovery(**fields)  # type: ignore[arg-type]


def test_recovery_figures_are_differences_of_the_four_moments() -> None:
    r = drill()
    assert r.detection_latency == timedelta(seconds=12.5)
    assert r.time_to_mitigate == timedelta(seconds=0.25)
    assert r.time_to_recover == timedelta(seconds=42, microseconds=250_001)
    assert r.exposure == timedelta(seconds=12.75)
    assert r.to_record() == {
        "t_onset": "2026-03-01T12:00:00.000000Z",
        "t_detect": "2026-03-01T12:00:12.500000Z",
        "t_switch": "2026-03-01T12:00:12.750000Z",
        "t_verified": "2026-03-01T12:00:42.250001Z",
        "detection_latency_s": "12.5",
        "detection_latency_requests": 74,
        "time_to_mitigate_s": "0.25",
        "time_to_recover_s": "42.250001",
        "exposure_s": "12.75",
        "exposure_requests": 76,
        "exposure_units": 60,
    }


def test_recovery_moments_can_come_from_an_injected_clock() -> None:
    clock = FixedClock(start=T0, step=timedelta(milliseconds=1500))
    r = Recovery(
        t_onset=clock.now(),
        t_detect=clock.now(),
        t_switch=clock.now(),
        t_verified=clock.now(),
        detection_requests=3,
        exposed_requests=5,
        exposed_units=2,
    )
    assert r.to_record()["time_to_recover_s"] == "4.5"
    assert r.to_record()["time_to_mitigate_s"] == "1.5"


def test_the_record_holds_no_floats_and_reads_back() -> None:
    record = drill().to_record()
    data = canonical.encode(record)
    assert Recovery.from_record(canonical.decode(data)) == drill()


def test_a_record_whose_figures_disagree_with_its_moments_is_refused() -> None:
    record = drill().to_record()
    record["time_to_recover_s"] = "30"
    with pytest.raises(IntegrityError):
        Recovery.from_record(record)
    del record["t_switch"]
    with pytest.raises(InvalidRequest):
        Recovery.from_record(record)


def test_moments_in_another_timezone_are_recorded_in_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    r = drill(
        t_onset=T0.astimezone(plus_two),
        t_detect=(T0 + timedelta(seconds=1)).astimezone(plus_two),
    )
    assert r.to_record()["t_onset"] == "2026-03-01T12:00:00.000000Z"
    assert r.detection_latency == timedelta(seconds=1)


@pytest.mark.parametrize(
    "overrides",
    [
        {"t_detect": T0 - timedelta(seconds=1)},
        {"t_verified": T0 + timedelta(seconds=12)},
        {"t_onset": datetime(2026, 3, 1, 12, 0, 0)},
        {"detection_requests": 80},
        {"exposed_units": 77},
        {"exposed_units": 0},
        {"exposed_requests": -1},
    ],
)
def test_impossible_timelines_are_refused(overrides: dict[str, object]) -> None:
    with pytest.raises(InvalidRequest):
        drill(**overrides)


@given(
    gaps=st.lists(st.integers(min_value=0, max_value=10**10), min_size=3, max_size=3),
    requests=st.integers(min_value=1, max_value=10**6),
    data=st.data(),
)
def test_a_recovery_record_round_trips(gaps: list[int], requests: int, data: st.DataObject) -> None:
    moments = [T0]
    for gap in gaps:
        moments.append(moments[-1] + timedelta(microseconds=gap))
    detected = data.draw(st.integers(min_value=0, max_value=requests))
    units = data.draw(st.integers(min_value=1, max_value=requests))
    r = Recovery(
        t_onset=moments[0],
        t_detect=moments[1],
        t_switch=moments[2],
        t_verified=moments[3],
        detection_requests=detected,
        exposed_requests=requests,
        exposed_units=units,
    )
    record = canonical.decode(canonical.encode(r.to_record()))
    assert Recovery.from_record(record) == r
    assert float(record["time_to_recover_s"]) == r.time_to_recover.total_seconds()

"""A promotion's baking period is read back within what a promotion may write (issue 10):
whole seconds from 0 to MAX_BAKING, as an int or the digit string ``int(str(...))`` read;
the attacks on it (huge, negative, malformed) are in ``tests/integration``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from breedlab.errors import IntegrityError
from breedlab.ledger import Event
from breedlab.release.state import DEFAULT_BAKING, MAX_BAKING, fold_release

AT = datetime(2026, 1, 1, tzinfo=UTC)


def _promoted(**payload: object) -> Event:
    return Event(
        seq=7,
        at=AT.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        actor="pat",
        kind="release.promoted",
        subject="digits",
        payload={"capability": "digits", "package": "sha256:" + "1" * 64, **payload},  # type: ignore[arg-type]
        prev_hash="0" * 64,
        hash="1" * 64,
    )


@pytest.mark.parametrize(
    ("recorded", "baking"),
    [
        ({}, DEFAULT_BAKING),  # written before baking was recorded
        ({"baking_s": 0}, timedelta(0)),
        ({"baking_s": "3600"}, timedelta(hours=1)),
        ({"baking_s": int(MAX_BAKING.total_seconds())}, MAX_BAKING),
    ],
)
def test_a_recorded_baking_period_within_bounds_is_read_back(
    recorded: dict[str, object], baking: timedelta
) -> None:
    state = fold_release("digits", [_promoted(**recorded)])
    assert state.baking_until == AT + baking


def test_one_second_over_the_longest_baking_period_is_refused() -> None:
    over = int(MAX_BAKING.total_seconds()) + 1
    with pytest.raises(IntegrityError, match=r"ledger event 7 \(release\.promoted of digits\)"):
        fold_release("digits", [_promoted(baking_s=over)])

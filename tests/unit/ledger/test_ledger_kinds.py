"""The event-kind catalogue: every kind has a payload type and an authority rule, and a
payload that does not follow its kind's type is refused at the write."""

from __future__ import annotations

from pathlib import Path

import pytest

from breedlab.authority import RULES
from breedlab.clock import FixedClock
from breedlab.ledger import PAYLOADS, EventKind, Ledger
from breedlab.ledger.kinds import payload_problems

SRC = Path(__file__).resolve().parents[3] / "src" / "breedlab"
PKG = "sha256:" + "1" * 64

MOVED = {"capability": "digits", "alias": "champion", "old": None, "new": PKG, "reason": "r"}


def test_every_kind_has_a_payload_type_and_an_authority_rule() -> None:
    assert set(PAYLOADS) == set(EventKind)
    assert set(RULES) == {k.value for k in EventKind}
    # the values are the ledger's strings: a kind read back compares equal to its member
    assert EventKind("release.promoted") is EventKind.PROMOTED
    assert str(EventKind.PROMOTED) == "release.promoted"
    assert {"release.promoted": 1}[EventKind.PROMOTED] == 1


def test_a_payload_that_follows_its_type_has_no_problems() -> None:
    assert payload_problems(EventKind.ALIAS_MOVED, MOVED) == []
    assert payload_problems(EventKind.ALIAS_MOVED, {**MOVED, "via": "promote"}) == []  # optional


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ({k: v for k, v in MOVED.items() if k != "new"}, "alias.moved: no 'new'"),
        ({**MOVED, "nwe": PKG}, "alias.moved: 'nwe' is not one of its keys"),
        ({**MOVED, "old": 3}, "alias.moved: 'old' is int, not"),
        ({**MOVED, "via": None}, "alias.moved: 'via' is NoneType, not str"),
    ],
    ids=["missing", "unknown", "wrong-type", "null-where-not-optional"],
)
def test_a_payload_that_does_not_follow_its_type_is_named(
    payload: dict[str, object], problem: str
) -> None:
    [found] = payload_problems(EventKind.ALIAS_MOVED, payload)
    assert found.startswith(problem)


def test_a_bool_is_not_an_int_and_list_items_are_checked() -> None:
    sealed = {
        "capability": "digits", "stream": "shadow", "run": 3, "digest": "d",
        "start": 0, "end": 10, "records": 2,
    }  # fmt: skip
    assert payload_problems(EventKind.EVIDENCE_SEALED, sealed) == []
    [bad] = payload_problems(EventKind.EVIDENCE_SEALED, {**sealed, "records": True})
    assert bad == "release.evidence_sealed: 'records' is bool, not int"
    stopped = {"capability": "digits", "package": PKG, "evidence": ["d1", 2]}
    [bad] = payload_problems(EventKind.SHADOW_STOPPED, stopped)
    assert bad.startswith("release.shadow_stopped: 'evidence' is list")


def test_the_ledger_refuses_a_wrong_payload_for_a_catalogue_kind_and_writes_nothing(
    tmp_path: Path,
) -> None:
    ledger = Ledger.sqlite(tmp_path / "ledger.db", FixedClock())
    ledger.create()
    try:
        with pytest.raises(TypeError, match=r"alias\.moved: no 'new'"):
            ledger.append(
                EventKind.ALIAS_MOVED,
                "digits",
                {k: v for k, v in MOVED.items() if k != "new"},
                signer=None,
                actor="t",
            )
        with ledger.reader() as r:
            assert list(r.events()) == []
        # a plain string is written as given (copied history, forged events in tests) ...
        ev = ledger.append("release.shadow_stopped", "digits", {"x": 1}, signer=None, actor="t")
        # ... and a catalogue kind is stored as its plain value
        good = ledger.append(EventKind.ALIAS_MOVED, "digits", MOVED, signer=None, actor="t")
        with ledger.reader() as r:
            assert [(e.seq, e.kind) for e in r.events()] == [
                (ev.seq, "release.shadow_stopped"),
                (good.seq, "alias.moved"),
            ]
            assert type(list(r.events())[-1].kind) is str
    finally:
        ledger.close()

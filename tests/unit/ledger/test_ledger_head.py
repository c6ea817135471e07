"""The ledger's head: what a server polls on every request, so it must be current, cheap
(one row on a kept connection) and the same whichever way it is read."""

from __future__ import annotations

import threading
from pathlib import Path

from breedlab.clock import FixedClock
from breedlab.ledger import GENESIS, Head, Ledger


def _ledger(tmp_path: Path) -> Ledger:
    ledger = Ledger.sqlite(tmp_path / "ledger.db", FixedClock())
    ledger.create()
    return ledger


def test_an_empty_ledgers_head_is_genesis(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    assert ledger.head() == Head(seq=0, hash=GENESIS)
    ledger.close()


def test_the_head_follows_every_append_and_agrees_with_a_reader(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    for n in range(1, 4):
        ev = ledger.append("note.added", "s", {"n": n}, signer=None)
        head = ledger.head()  # the same kept connection each time: never a stale snapshot
        assert head == Head(seq=ev.seq, hash=ev.hash) and head.seq == n
        with ledger.reader() as r:
            assert r.head() == (head.seq, head.hash)
    ledger.close()


def test_another_thread_and_a_reopened_ledger_see_the_same_head(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    ev = ledger.append("note.added", "s", {}, signer=None)
    seen: list[Head] = []
    thread = threading.Thread(target=lambda: seen.append(ledger.head()))
    thread.start()
    thread.join()
    assert seen == [Head(seq=ev.seq, hash=ev.hash)]
    ledger.close()  # closes the kept connections; the next read opens another
    assert ledger.head().seq == ev.seq
    ledger.close()

"""Child processes of the PostgreSQL concurrency tests (a script; pytest does not collect it).

python pg_child.py append URL COUNT NAME GO
    Wait until GO exists, then append COUNT events (one transaction each).

python pg_child.py race URL ROUNDS NAME GO_PREFIX
    For each round n: wait until GO_PREFIX-n exists, then try to move alias ``c@a`` from
    the target written in GO_PREFIX-n (empty: unset) to ``{NAME}-{n}``; print ``won n``
    or ``lost n``.

python pg_child.py hang URL READY
    Append events in one open transaction, touch READY, then sleep until killed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from breedlab.clock import SystemClock
from breedlab.errors import Conflict
from breedlab.ledger import Ledger


def _wait(path: Path) -> None:
    while not path.exists():
        time.sleep(0.001)


def main(argv: list[str]) -> int:
    mode, url = argv[0], argv[1]
    ledger = Ledger(url, SystemClock())
    if mode == "append":
        count, name, go = int(argv[2]), argv[3], Path(argv[4])
        _wait(go)
        for i in range(count):
            ledger.append("test.appended", name, {"i": i}, signer=None, actor=name)
    elif mode == "race":
        rounds, name, go = int(argv[2]), argv[3], argv[4]
        for n in range(rounds):
            release = Path(f"{go}-{n}")
            _wait(release)
            old = release.read_text("utf-8") or None
            try:
                with ledger.transaction() as tx:
                    tx.append(
                        "alias.moved",
                        "c",
                        {"capability": "c", "alias": "a", "old": old, "new": f"{name}-{n}",
                         "reason": ""},
                        signer=None,
                        actor=name,
                    )  # fmt: skip
                print(f"won {n}", flush=True)
            except Conflict:
                print(f"lost {n}", flush=True)
    elif mode == "hang":
        ready = Path(argv[2])
        with ledger.transaction() as tx:
            for i in range(20):
                tx.append("test.half-done", "hang", {"i": i}, signer=None, actor="hang")
            ready.touch()
            time.sleep(3600)
    ledger.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Racing alias moves: separate processes run ``breedlab alias set`` with the same
``--expect`` at the same instant; exactly one wins, the others exit 7 (Conflict), and the
ledger still verifies with exactly one move away from the old target.

DESIGN §5: a move is compare-and-swap in the same transaction as its ledger event; a
lost race is an error, never a silent overwrite. The same must hold for every check a
command makes before it writes: the last tests run a rival command in the gap between a
command's checks and its write, the losing interleaving made certain.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from attack_lab import Fixture, torch_model_files, write_folder

from breedlab.cli import main
from breedlab.digest import Digest
from breedlab.errors import Conflict, PolicyError

CHILD = Path(__file__).with_name("lab_child.py")
RACERS = 3
TIMEOUT = 60.0


class Racers:
    """RACERS long-lived processes that each run one ``breedlab`` command per round,
    all released by one file at the same instant (see ``lab_child.py race``)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.round = 0
        workdir.mkdir()
        self.procs = [
            subprocess.Popen(
                [sys.executable, str(CHILD), "race", str(workdir), str(i)],
                stdout=subprocess.DEVNULL,
                env={**os.environ, "COLUMNS": "250"},
            )
            for i in range(RACERS)
        ]

    def _wait_for(self, names: list[str]) -> None:
        deadline = time.monotonic() + TIMEOUT
        while not all((self.workdir / name).exists() for name in names):
            assert time.monotonic() < deadline, f"racers never wrote {names}"
            assert all(p.poll() is None for p in self.procs), "a racer died"
            time.sleep(0.002)

    def run(self, commands: list[list[str]]) -> list[tuple[int, str]]:
        """Run ``commands[i]`` in racer i, all at once; returns (exit code, stderr)."""
        n, self.round = self.round, self.round + 1
        for i, argv in enumerate(commands):
            (self.workdir / f"argv-{n}-{i}.json").write_text(json.dumps(argv), "utf-8")
        self._wait_for([f"ready-{n}-{i}" for i in range(RACERS)])
        (self.workdir / f"go-{n}").touch()
        self._wait_for([f"code-{n}-{i}" for i in range(RACERS)])
        return [
            (
                int((self.workdir / f"code-{n}-{i}").read_text("utf-8")),
                (self.workdir / f"err-{n}-{i}").read_text("utf-8"),
            )
            for i in range(RACERS)
        ]

    def stop(self) -> None:
        (self.workdir / "stop").touch()
        for proc in self.procs:
            try:
                proc.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def racers(tmp_path: Path) -> Iterator[Racers]:
    pool = Racers(tmp_path / "race")
    try:
        yield pool
    finally:
        pool.stop()


def test_racing_alias_moves_with_the_same_expect_leave_exactly_one_winner(
    fx: Fixture, racers: Racers, tmp_path: Path
) -> None:
    # Five approved models of digits: the champion, and four challengers to race with.
    extra = []
    for i in range(2):
        folder = write_folder(tmp_path / f"extra-{i}", torch_model_files(tmp_path, f"x{i}", 6 + i))
        info = fx.lab.import_path(
            folder, kind="model", capability="digits", license="MIT", name=f"extra-{i}"
        )
        fx.lab.approve(str(info.id), purpose="release", key="pat")
        extra.append(str(info.id))
    fx.lab.approve(fx.ids.draft, purpose="release", key="pat")
    models = [fx.ids.model, fx.ids.wide, fx.ids.draft, *extra]

    # a user alias set before, a new one (unset: no --expect), canary (a production key's)
    rounds = ["staging", "staging", "nightly", "canary", "staging", "nightly", "canary"]
    for n, alias in enumerate(rounds):
        old = fx.lab.alias("digits", alias)
        old_id = None if old is None else str(old)
        before = fx.last_seq()
        targets = [m for m in models if m != old_id][n % 2 : n % 2 + RACERS]
        expect = [] if old_id is None else ["--expect", old_id]
        key = ["--key", "pat"] if alias == "canary" else []
        commands = [
            ["--lab", str(fx.root), "alias", "set", "digits", alias, t, *expect, *key]
            for t in targets
        ]

        results = racers.run(commands)

        codes = [code for code, _ in results]
        assert sorted(codes) == [0] + [7] * (RACERS - 1), results
        winner = targets[codes.index(0)]
        for code, err in results:
            if code == 7:
                said = " ".join(err.split())  # lost at the read, or at the compare-and-swap
                assert "points at" in said or "someone moved it" in said, err
        assert str(fx.lab.alias("digits", alias)) == winner
        moves = [m for m in fx.lab.alias_history("digits") if m.seq > before]
        assert [(m.alias, m.old, m.new) for m in moves] == [(alias, old_id, winner)]
        fx.lab.verify_ledger()
    assert all(r.ok for r in fx.lab.verify())


def test_a_move_with_a_stale_expect_loses_even_when_it_comes_alone(fx: Fixture) -> None:
    # The sequential twin of the race: a writer that read before the last move must lose.
    fx.lab.set_alias("digits", "staging", fx.ids.wide, expect=fx.ids.draft)
    fx.lab.set_alias("digits", "nightly", fx.ids.draft)
    before = fx.last_seq()

    with pytest.raises(Conflict, match=f"points at {fx.ids.wide[:19]}, not {fx.ids.draft[:19]}"):
        fx.lab.set_alias("digits", "staging", fx.ids.model, expect=fx.ids.draft)
    with pytest.raises(Conflict, match=f"points at {fx.ids.draft[:19]}, not nothing"):
        fx.lab.set_alias("digits", "nightly", fx.ids.model)  # believes it unset
    stale = subprocess.run(
        [
            sys.executable,
            "-c",
            "from breedlab.cli import main; main()",
            "--lab",
            str(fx.root),
            "alias",
            "set",
            "digits",
            "nightly",
            fx.ids.model,
            "--expect",
            fx.ids.wide,
        ],
        capture_output=True,
        timeout=60,
        check=False,
    )

    assert stale.returncode == 7
    assert fx.last_seq() == before
    assert str(fx.lab.alias("digits", "staging")) == fx.ids.wide
    assert str(fx.lab.alias("digits", "nightly")) == fx.ids.draft


def interleave_before_write(fx: Fixture, monkeypatch: pytest.MonkeyPatch, rival: str) -> None:
    """Run ``rival`` (a CLI command, in another Lab) right after this Lab has read and
    checked, just before it writes: the losing interleaving of a race, made certain.

    The hook is the envelope write that ``approve`` and ``sign`` make between their
    checks (a read transaction) and their ledger append (a write transaction).
    """
    real_put = fx.lab.blobs.put_bytes
    done: list[int] = []

    def put_then_rival(data: bytes) -> Digest:
        digest = real_put(data)
        if not done:
            done.append(main(["--lab", str(fx.root), *rival.split()]))
        return digest

    monkeypatch.setattr(fx.lab.blobs, "put_bytes", put_then_rival)


@pytest.mark.parametrize("table", ["approvals", "signatures"])
def test_racing_duplicate_approvals_or_signatures_record_one_and_refuse_the_other(
    fx: Fixture, monkeypatch: pytest.MonkeyPatch, table: str
) -> None:
    if table == "approvals":
        interleave_before_write(
            fx, monkeypatch, f"approve {fx.ids.draft} --purpose release --key pat"
        )
        with pytest.raises(Conflict):
            fx.lab.approve(fx.ids.draft, purpose="release", key="pat")
    else:
        interleave_before_write(fx, monkeypatch, f"sign {fx.ids.draft} --key sam")
        with pytest.raises(Conflict):
            fx.lab.sign(fx.ids.draft, key="sam")

    with fx.sql() as db:
        rows = db.execute(f"SELECT count(*) FROM {table} WHERE package = ?", (fx.ids.draft,))
        assert rows.fetchone()[0] == 1


def test_a_key_revoked_while_it_approves_gets_no_approval_recorded(
    fx: Fixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    interleave_before_write(fx, monkeypatch, "keys revoke pat --reason compromised")

    with pytest.raises(PolicyError):
        fx.lab.approve(fx.ids.draft, purpose="release", key="pat")

    assert fx.lab.show(fx.ids.draft).approvals == ()

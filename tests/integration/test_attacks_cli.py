"""The same attacks seen from the shell: ``breedlab verify --all`` and ``ledger verify``
exit with the integrity code (5) and name what is wrong; refusals exit with their family's
code (DESIGN §12: 3 invalid request, 4 not found, 5 integrity, 6 policy, 7 conflict).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from attack_lab import Fixture

from breedlab.cli import main
from breedlab.digest import Digest
from breedlab.signing.keys import KeyPair


def breedlab_command() -> list[str]:
    """The installed console script next to this interpreter (else the same entry point)."""
    script = Path(sys.executable).with_name("breedlab")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from breedlab.cli import main; main()"]


def flat(text: str) -> str:
    """Output with Rich's line wrapping undone (paths may be folded across lines)."""
    return "".join(text.split())


def run(fx: Fixture, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "250", "NO_COLOR": "1"}
    return subprocess.run(
        [*breedlab_command(), "--lab", str(fx.root), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_verify_all_exits_5_naming_the_package_and_the_file_with_a_flipped_byte(
    fx: Fixture, capsys: pytest.CaptureFixture[str]
) -> None:
    fx.flip(fx.file_digest(fx.ids.model, "notes/card.md"))

    code = main(["--lab", str(fx.root), "verify", "--all"])

    out = flat(capsys.readouterr().out)
    assert code == 5
    assert f"FAIL{fx.ids.model[:19]}digits-linear:notes/card.md:" in out
    assert "verificationfailed" in out


def test_verify_all_json_names_every_problem_and_says_not_ok(
    fx: Fixture, capsys: pytest.CaptureFixture[str]
) -> None:
    fx.flip(fx.ids.wide)  # the manifest
    fx.flip(fx.file_digest(fx.ids.dataset, "README.md"))

    code = main(["--lab", str(fx.root), "verify", "--all", "--json"])

    report = json.loads(capsys.readouterr().out)
    assert code == 5 and report["ok"] is False
    problems = {
        p["package"]: [q["where"] for q in p["problems"]] for p in report["packages"] if not p["ok"]
    }
    assert problems == {fx.ids.wide: ["manifest"], fx.ids.dataset: ["README.md"]}
    assert len(report["store"]["problems"]) == 2
    assert report["ledger"]["ok"] is True


def test_verify_all_exits_5_and_names_the_seq_of_an_edited_ledger_row(
    fx: Fixture, capsys: pytest.CaptureFixture[str]
) -> None:
    seq = fx.seq_of("alias.moved")
    with fx.sql() as db:
        db.execute("UPDATE events SET actor = 'mallory' WHERE seq = ?", (seq,))

    code = main(["--lab", str(fx.root), "verify", "--all"])

    out = capsys.readouterr().out
    assert code == 5
    assert f"ledger seq {seq}:" in " ".join(out.split())


def test_ledger_verify_exits_5_with_the_first_bad_seq_on_stderr(
    fx: Fixture, capsys: pytest.CaptureFixture[str]
) -> None:
    seq = fx.seq_of("package.approved")
    with fx.sql() as db:
        db.execute("DELETE FROM events WHERE seq = ?", (seq,))

    code = main(["--lab", str(fx.root), "ledger", "verify"])

    captured = capsys.readouterr()
    assert code == 5
    assert f"ledger seq {seq}: missing" in " ".join(captured.err.split())
    assert "Traceback" not in captured.err


def test_verify_of_an_intact_package_passes_while_another_is_tampered(
    fx: Fixture, capsys: pytest.CaptureFixture[str]
) -> None:
    fx.flip(fx.file_digest(fx.ids.model, "model.safetensors"))

    assert main(["--lab", str(fx.root), "verify", fx.ids.wide[:14]]) == 0
    assert main(["--lab", str(fx.root), "verify", "digits@champion"]) == 5
    out = flat(capsys.readouterr().out)
    assert "digits-linear:model.safetensors:" in out


def test_refusals_exit_with_their_familys_code_and_record_nothing(
    fx: Fixture, capsys: pytest.CaptureFixture[str]
) -> None:
    KeyPair.generate("mallory").save(fx.lab.config.keys_dir)
    before = fx.last_seq()

    approve = ["approve", fx.ids.draft, "--purpose", "release", "--key", "mallory"]
    assert main(["--lab", str(fx.root), *approve]) == 6
    assert main(["--lab", str(fx.root), "sign", fx.ids.draft, "--key", "mallory"]) == 6
    promote = ["promote", "digits", fx.ids.draft, "--key", "pat"]
    assert main(["--lab", str(fx.root), *promote]) == 6  # unapproved
    champion = ["alias", "set", "digits", "champion", fx.ids.wide, "--expect", fx.ids.model]
    assert main(["--lab", str(fx.root), *champion]) == 6  # never by a bare alias move
    alias_set = ["alias", "set", "digits", "staging"]
    assert main(["--lab", str(fx.root), *alias_set, fx.ids.wide]) == 7  # no --expect: stale

    err = " ".join(capsys.readouterr().err.split())
    assert "key 'mallory' is not trusted" in err
    assert "no valid release approval" in err
    assert "moves only by promotion or rollback" in err
    assert "digits@staging points at" in err and "pass --expect" in err
    assert "Traceback" not in err
    assert fx.last_seq() == before


def test_the_console_script_exits_5_and_names_the_package_and_file(fx: Fixture) -> None:
    blob = fx.file_digest(fx.ids.dataset, "data.safetensors")
    fx.flip(blob, 0)

    result = run(fx, "verify", "--all")

    assert result.returncode == 5, result.stderr
    assert f"{fx.ids.dataset[:19]} digits-data: data.safetensors:" in result.stdout
    assert f"store: object {Digest.parse(blob).short}" in result.stdout
    assert "Traceback" not in result.stderr


def test_the_console_script_exits_5_for_a_resealed_history_the_checkpoint_remembers(
    fx: Fixture,
) -> None:
    seq = fx.seq_of("package.approved")
    with fx.sql() as db:
        db.execute("UPDATE events SET at = '2020-01-01T00:00:00.000000Z' WHERE seq = ?", (seq,))
    fx.reseal(seq)

    result = run(fx, "ledger", "verify")

    assert result.returncode == 5
    checkpoint = fx.seq_of("checkpoint.signed")
    assert f"checkpoint at seq {checkpoint}" in " ".join(result.stderr.split())

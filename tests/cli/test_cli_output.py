"""User text prints as it is (issue 10): no markup is interpreted in names, reasons,
file paths or messages, undecodable bytes in a file name are shown escaped, and nothing
ends in a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from breedlab.cli import main
from builders import cli_lab, make_model_dir


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "hostile"
    folder.mkdir()
    (folder / "[bold]loud.txt").write_bytes(b"a")  # file names cannot hold a '/'
    (folder / "[red]x[dim]").write_bytes(b"b")
    (Path(os.fsdecode(bytes(folder) + b"/caf\xe9.dat"))).write_bytes(b"c")
    return folder


def test_names_paths_and_reasons_print_literally_and_bytes_print_escaped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    cli_lab(tmp_path, monkeypatch)
    capfd.readouterr()
    folder = _folder(tmp_path)
    imported = ["import", str(folder), "--kind", "dataset", "--capability", "digits",
                "--license", "MIT", "--json"]  # fmt: skip
    assert main(imported) == 3  # a file name that is not UTF-8 is refused, shown escaped
    captured = capfd.readouterr()
    error = json.loads(captured.err)  # --json: the error is one object on stderr
    assert error["error"] == "invalid_request"
    assert "caf\\udce9.dat" in error["message"] and "not valid UTF-8" in error["message"]
    assert "Traceback" not in captured.err
    Path(os.fsdecode(bytes(folder) + b"/caf\xe9.dat")).unlink()
    assert main(imported) == 0
    pid = json.loads(capfd.readouterr().out)["id"]

    assert main(["show", pid]) == 0
    out = capfd.readouterr().out
    assert "[bold]loud.txt" in out and "[red]x[dim]" in out
    assert main(["revoke", pid, "--reason", "[bold red]not bold[/]"]) == 0
    assert "[bold red]not bold[/]" in " ".join(capfd.readouterr().out.split())
    assert main(["verify", pid]) == 5
    assert "[bold red]not bold[/]" in " ".join(capfd.readouterr().out.split())
    assert main(["show", "[/x]"]) in (3, 4)
    captured = capfd.readouterr()
    assert "[/x]" in captured.err and "Traceback" not in captured.err + captured.out
    assert main(["ledger", "show"]) == 0
    assert "Traceback" not in capfd.readouterr().err


def test_at_80_columns_lines_fit_and_no_id_is_split(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    lab = cli_lab(tmp_path, monkeypatch, ("alice", "model"))
    ids = []
    for name in ("a-model-with-a-rather-long-name", "b"):
        capfd.readouterr()
        src = make_model_dir(tmp_path, name, content=name.encode())
        args = ["import", str(src), "--kind", "model", "--capability", "digits",
                "--license", "MIT", "--sign-with", "alice", "--json"]  # fmt: skip
        assert main(args + [a for i in ids for a in ("--parent", i)]) == 0
        ids.append(json.loads(capfd.readouterr().out)["id"])
    reason = "a reason long enough to need wrapping at eighty columns, twice over"
    assert main(["alias", "set", "digits", "staging", ids[0], "--reason", reason]) == 0
    env = {**os.environ, "COLUMNS": "80", "BREEDLAB_LAB": str(lab)}
    for command in (
        ["packages"],
        ["show", ids[0]],
        ["capability", "show", "digits"],
        ["alias", "history", "digits"],
        ["ledger", "show"],
        ["keys", "list"],
        ["--help"],
    ):
        run = subprocess.run(
            [sys.executable, "-c", "from breedlab.cli import main; main()", *command],
            env=env, capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        lines = run.stdout.splitlines()
        assert lines and all(len(line.rstrip()) <= 80 for line in lines), (command, run.stdout)
        for pid in ids:  # every id shown is shown whole: 12 digits on one line, or in full
            hexes = pid.removeprefix("sha256:")
            if hexes[:4] in run.stdout and command != ["--help"]:
                assert hexes[:12] in run.stdout, (command, run.stdout)
    shown = subprocess.run(
        [sys.executable, "-c", "from breedlab.cli import main; main()", "show", ids[1], "--full"],
        env=env, capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    joined = "".join(shown.split())  # --full: whole ids, folded at the edge if need be
    assert ids[1] in joined and ids[0] in joined

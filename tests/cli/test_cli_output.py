"""User text prints as it is (issue 10): no markup is interpreted in names, reasons,
file paths or messages, undecodable bytes in a file name are shown escaped, and nothing
ends in a traceback."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from breedlab.cli import main


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
    lab = tmp_path / "lab"
    monkeypatch.setenv("BREEDLAB_LAB", str(lab))
    assert main(["init"]) == 0
    from breedlab.capabilities import contract_path

    assert main(["capability", "add", str(contract_path("digits"))]) == 0
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

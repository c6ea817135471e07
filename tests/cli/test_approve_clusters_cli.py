"""``breedlab approve --cluster``: a parent approval scoped to failure clusters, as a user
types it, shown back by every ``--json`` output that names the approval."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from breedlab.cli import main
from builders import cli_lab, make_model_dir


def _out(capsys: pytest.CaptureFixture[str]) -> object:
    return json.loads(capsys.readouterr().out)


def _imported_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> str:
    """A CLI lab with keys alice (model) and pat (production); one imported model's id."""
    cli_lab(tmp_path, monkeypatch, ("alice", "model"), ("pat", "production"))
    capsys.readouterr()
    src = make_model_dir(tmp_path, "m")
    assert main(["import", str(src), "--kind", "model", "--capability", "digits",
                 "--license", "MIT", "--sign-with", "alice", "--json"]) == 0  # fmt: skip
    return str(_out(capsys)["id"])  # type: ignore[index]


def test_a_scoped_parent_approval_round_trips_through_the_json_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pid = _imported_model(tmp_path, monkeypatch, capsys)
    assert main(["approve", pid[:20], "--purpose", "parent", "--key", "alice",
                 "--cluster", "slice:alcohol:q4", "--cluster", "perturbation:noise",
                 "--cluster", "slice:alcohol:q4", "--json"]) == 0  # fmt: skip
    approved = _out(capsys)
    assert approved["clusters"] == ["perturbation:noise", "slice:alcohol:q4"]  # type: ignore[index]

    assert main(["show", pid[:20], "--json"]) == 0
    [shown] = _out(capsys)["approvals"]  # type: ignore[index]
    assert shown["purpose"] == "parent" and shown["clusters"] == approved["clusters"]  # type: ignore[index]
    assert main(["ledger", "show", "--json", "--kind", "package.approved"]) == 0
    [event] = _out(capsys)  # type: ignore[misc]
    assert event["payload"]["clusters"] == approved["clusters"]  # type: ignore[index]

    # an unscoped approval says so: an empty scope, and no field in its event
    assert main(["approve", pid[:20], "--purpose", "release", "--key", "pat", "--json"]) == 0
    assert _out(capsys)["clusters"] == []  # type: ignore[index]
    assert main(["show", pid[:20]]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "parent for perturbation:noise slice:alcohol:q4 by alice" in text
    assert main(["verify", pid[:20], "--json"]) == 0
    assert main(["ledger", "verify", "--json"]) == 0


def test_a_scope_is_refused_on_a_release_approval_and_when_malformed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pid = _imported_model(tmp_path, monkeypatch, capsys)
    approve = ["approve", pid[:20], "--key", "pat", "--purpose"]
    assert main([*approve, "release", "--cluster", "perturbation:noise"]) == 3
    assert "only a parent approval is scoped" in capsys.readouterr().err
    assert main([*approve, "parent", "--cluster", "Perturbation noise"]) == 3
    err = capsys.readouterr().err
    assert "not a cluster key" in err and "breedlab failures CAP" in err
    assert main(["show", pid[:20], "--json"]) == 0
    assert _out(capsys)["approvals"] == []  # type: ignore[index]
    assert main([*approve, "parent", "--cluster", "confusion:1-8"]) == 0
    assert "only for confusion:1-8" in capsys.readouterr().out

"""``breedlab recipes show / init`` and ``round --recipes``: the resolved runs and where
they came from, as lines and as JSON; a bad recipe stops a round before anything runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from breedlab.capabilities import contract_path
from breedlab.cli import main
from builders import cli_lab


def test_recipes_show_prints_the_built_in_digits_runs_and_their_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cli_lab(tmp_path, monkeypatch)
    capsys.readouterr()
    assert main(["recipes", "show", "digits", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["source"] == "built-in (digits.toml)"
    assert shown["digest"].startswith("sha256:")
    runs = shown["runs"]
    assert [r["label"] for r in runs][:3] == [
        "train/finetune-{kind}",
        "distill/mlp-32",
        "adapter/lora-r8",
    ]
    assert runs[0]["when"] == {"cluster_kind": ["noise", "shift"]}
    assert runs[2]["data"] == ["train", "cluster"]
    assert runs[-1]["parents"] == "champion+each-same-architecture"
    assert runs[-1]["params"] == {"method": "slerp", "t": "0.5"}

    assert main(["recipes", "show", "digits"]) == 0
    out = capsys.readouterr().out
    assert "built-in (digits.toml)" in out and shown["digest"][:19] in out
    for label in ("distill/mlp-32", "quantize/int4_g32", "merge/slerp"):
        assert label in out


def test_recipes_init_writes_a_starter_that_show_reads_and_a_bad_edit_names_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lab = cli_lab(tmp_path, monkeypatch)
    contract = tmp_path / "letters.toml"
    contract.write_text(contract_path("digits").read_text().replace('"digits"', '"letters"'))
    assert main(["capability", "add", str(contract)]) == 0
    assert main(["recipes", "show", "letters"]) == 4
    assert "breedlab recipes init letters" in capsys.readouterr().err
    assert main(["recipes", "init", "letters", "--json"]) == 0
    path = Path(json.loads(capsys.readouterr().out)["path"])
    assert path == lab / "recipes" / "letters.toml"
    assert main(["recipes", "show", "letters", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["source"] == str(path) and shown["capability"] == "letters"
    assert main(["recipes", "init", "letters"]) == 3  # exists
    assert "--force" in capsys.readouterr().err

    text = path.read_text().replace('scheme = "int8_pc"', "scheme = 8")
    path.write_text(text)
    line = next(i for i, s in enumerate(text.splitlines(), 1) if "scheme = 8" in s)
    assert main(["recipes", "show", "letters"]) == 3
    err = capsys.readouterr().err
    assert f"{path}:{line}: parameter 'scheme' of quantize must be a string" in " ".join(
        err.split()
    )


def test_round_with_a_bad_recipe_file_stops_before_any_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lab = cli_lab(tmp_path, monkeypatch)
    bad = tmp_path / "bad.toml"
    bad.write_text('[[run]]\noperator = "evolve"\nlabel = "x"\n')
    capsys.readouterr()
    assert main(["round", "digits", "--recipes", str(bad), "--json"]) == 3
    error = json.loads(capsys.readouterr().err)
    assert error["message"] == f"{bad}:2: unknown operator 'evolve'"
    assert "train, distill, adapter, quantize, merge" in error["hint"]
    assert not (lab / "reports").exists()

"""Every error says what to do next (issue 10): a stale alias read names what the alias
points at and the ``--expect`` to pass, a refused promotion names the ``approve`` command,
the shadow gate says "no pairs yet" instead of "no data is below 0.8", and ``--json``
turns an error into one ``{"error", "message"}`` object on stderr."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import builders
from breedlab import canonical
from breedlab.cli import main
from breedlab.release.gates import ShadowGate
from breedlab.release.shadow_stats import summarise_shadow
from builders import make_model_dir


@pytest.fixture
def cli_lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return builders.cli_lab(tmp_path, monkeypatch, ("alice", "model"), ("pat", "production"))


def _import(tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    src = make_model_dir(tmp_path, name, content=name.encode())
    assert main(["import", str(src), "--kind", "model", "--capability", "digits",
                 "--license", "MIT", "--sign-with", "alice", "--json"]) == 0  # fmt: skip
    return str(json.loads(capsys.readouterr().out)["id"])


def test_a_stale_alias_read_names_the_target_and_the_expect_to_pass(
    cli_lab: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = _import(tmp_path, "a", capsys), _import(tmp_path, "b", capsys)
    assert main(["alias", "set", "digits", "staging", a]) == 0
    capsys.readouterr()
    assert main(["alias", "set", "digits", "staging", b]) == 7  # no --expect: must be unset
    err = capsys.readouterr().err
    assert "someone moved it" not in err  # nobody did
    assert f"points at {a[:19]}" in err and "not nothing" in err
    assert f"hint: to move it from {a[:19]}, pass --expect {a}" in " ".join(err.split())
    assert main(["alias", "set", "digits", "staging", b, "--expect", b]) == 7
    assert "--expect " + a in " ".join(capsys.readouterr().err.split())
    assert main(["alias", "set", "digits", "staging", b, "--expect", a]) == 0  # as hinted


def test_a_refused_promotion_names_the_approval_command(
    cli_lab: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pid = _import(tmp_path, "m", capsys)
    assert main(["promote", "digits", pid, "--key", "pat"]) == 6
    err = " ".join(capsys.readouterr().err.split())
    assert "no valid release approval" in err
    assert f"hint: a key other than the package's signer runs: breedlab approve {pid} " in err
    assert "--purpose release --key KEY" in err


def test_errors_are_json_objects_on_stderr_with_json(
    cli_lab: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pid = _import(tmp_path, "m", capsys)
    assert main(["promote", "digits", pid, "--key", "pat", "--json"]) == 6
    captured = capsys.readouterr()
    assert captured.out == ""
    body = json.loads(captured.err)
    assert body["error"] == "policy_refused"
    assert body["message"].startswith("cannot promote")
    assert "breedlab approve" in body["hint"]
    assert main(["show", "deadbeef", "--json"]) == 4
    body = json.loads(capsys.readouterr().err)
    assert body["error"] == "not_found" and "hint" not in body


def test_the_shadow_gate_says_no_pairs_yet_rather_than_no_data_below_a_number() -> None:
    empty = summarise_shadow([], seed=0)
    result = ShadowGate().check(empty)
    assert not result.passed
    text = "; ".join(result.reasons)
    assert "no data is below" not in text and "no data" not in text
    assert "no answered pairs yet: agreement is unknown" in text
    assert "no timed pairs yet: the p50 latency ratio is unknown" in text


HEAVY = ("scipy", "torch", "sqlalchemy", "numpy", "alembic")


def _imported_heavy(*argv: str) -> tuple[str, ...]:
    """What ``breedlab ARGV`` imports of :data:`HEAVY` (and of ``breedlab.lab``), run in a
    fresh interpreter."""
    code = (
        "import sys\n"
        "from breedlab.cli import main\n"
        f"assert main({list(argv)!r}) == 0\n"
        f"heavy = {(*HEAVY, 'breedlab.lab')!r}\n"
        "print('heavy:' + ','.join(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    found = out.stdout.strip().splitlines()[-1].removeprefix("heavy:")
    return tuple(found.split(",")) if found else ()


def test_help_and_startup_import_no_lab_torch_scipy_or_sqlalchemy() -> None:
    """Fast start without a timed assertion: what ``breedlab --help`` imports, counted."""
    assert _imported_heavy("--help") == ()


def test_listing_keys_loads_the_lab_but_no_sqlalchemy_numpy_scipy_or_torch(
    cli_lab: Path,
) -> None:
    """Issue 10: ``keys list`` starts fast -- a read-only command reads a SQLite ledger with
    ``sqlite3`` and imports nothing heavy (``benchmarks/startup.py`` times it)."""
    assert _imported_heavy("keys", "list") == ("breedlab.lab",)
    assert _imported_heavy("--lab", str(cli_lab), "keys", "list", "--json") == ("breedlab.lab",)


def test_json_output_gives_numbers_as_numbers_and_labels_as_text(
    cli_lab: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["capability", "show", "digits", "--json"]) == 0
    contract = json.loads(capsys.readouterr().out)["contract"]
    assert contract["budget"] == {"latency_p95_ms": 5, "memory_mib": 512, "size_mib": 5}
    assert contract["baseline"]["value"] == 0.95
    assert contract["labels"] == [str(d) for d in range(10)]  # class names stay text
    assert main(["ledger", "show", "--json"]) == 0  # events exactly as recorded (and signed)
    events = json.loads(capsys.readouterr().out)
    added = next(e for e in events if e["kind"] == "package.registered")
    assert isinstance(added["payload"]["size"], int)


def test_as_numbers_converts_decimal_text_only() -> None:
    from breedlab.cli.shell import as_numbers

    record = {
        "p": "0.25", "n": "12", "neg": "-3.5e-2", "inf": "inf", "nan": "nan", "zero": "0",
        "lead": "007", "hex": "1e9f", "id": "sha256:12", "label": "7", "labels": ["1", "2"],
        "nested": [{"x": "1.50"}, "text"], "huge": "1e999",
    }  # fmt: skip
    assert as_numbers(record) == {
        "p": 0.25, "n": 12, "neg": -0.035, "inf": "inf", "nan": "nan", "zero": 0,
        "lead": "007", "hex": "1e9f", "id": "sha256:12", "label": "7", "labels": ["1", "2"],
        "nested": [{"x": 1.5}, "text"], "huge": "1e999",
    }  # fmt: skip


def test_bootstrap_checks_each_key_has_the_role_it_signs_for(
    cli_lab: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    bootstrap = ["capability", "bootstrap", "digits", "--model-key", "alice"]
    assert main([*bootstrap, "--evaluation-key", "alice", "--production-key", "pat"]) == 6
    err = " ".join(capsys.readouterr().err.split())
    assert "--evaluation-key 'alice' has role 'model', not 'evaluation'" in err
    assert "hint: generate one: breedlab keys generate NAME --role evaluation" in err
    assert main([*bootstrap, "--evaluation-key", "nobody", "--production-key", "pat"]) == 4


def test_capability_add_takes_a_built_in_name_from_any_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # no src/ here
    monkeypatch.setenv("BREEDLAB_LAB", str(tmp_path / "lab"))
    assert main(["init"]) == 0
    capsys.readouterr()
    assert main(["capability", "add", "digits", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["capability"] == "digits"
    assert main(["capability", "add", "letters"]) == 4
    assert "one of: digits" in capsys.readouterr().err


def test_import_of_a_model_names_its_family_or_says_which_flag_to_pass(
    cli_lab: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = make_model_dir(tmp_path, "plain")
    config = folder / "config.json"
    declared = json.loads(config.read_text())
    config.write_bytes(canonical.encode({k: v for k, v in declared.items() if k != "family"}))
    args = ["import", str(folder), "--kind", "model", "--capability", "digits",
            "--license", "MIT"]  # fmt: skip
    capsys.readouterr()
    assert main(args) == 3  # nothing says how to load it
    assert "--family torch" in " ".join(capsys.readouterr().err.split())
    assert main([*args, "--family", "torch"]) == 5  # the torch format declares itself
    assert "is not a torch-family config" in capsys.readouterr().err
    config.write_bytes(canonical.encode(declared))
    assert main([*args, "--family", "torch", "-q"]) == 0  # loaded and probed as torch
    assert capsys.readouterr().out.strip().startswith("sha256:")


def test_an_error_is_one_line_whatever_text_it_quotes(
    cli_lab: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["canary", "status", "a\nb\x1ec\u2028d"]) == 4
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), lines
    assert "a\\nb\\x1ec\\u2028d" in lines[0]

"""A fuzz pass over the CLI (issue 10): every command, with arguments generated from its
own parameters -- strings with brackets, markup, control characters and undecodable
bytes, huge, negative and non-finite numbers, missing files, directories where files are
expected, real names mixed in -- ends with 0 or a documented exit code, never with a
traceback or an exception escaping ``main``."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from breedlab.capabilities import contract_path
from breedlab.cli import app, main
from breedlab.cli.shell import EXIT_CODES
from builders import make_model_dir

#: 0 ok, 1 an error of no family, 2 usage (the CLI library), one code per error family.
DOCUMENTED = {0, 1, 2, *(code for _, code in EXIT_CODES)}
#: Reproducible (a fixed derivation, no example database), no deadline: the host is shared.
FUZZ = settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
#: Commands that run for long or forever (a server, a demo, breeding rounds, evaluations
#: over a suite, a migration): fuzzed only with names that do not exist, so they refuse.
SLOW = {
    "serve",
    "demo",
    "round",
    "failures",
    "reproduce",
    "exit-criteria",
    "capability bootstrap",
    "migrate",
}
#: Never run at all: a valid invocation serves or runs the demo until stopped.
SKIPPED = {"serve", "demo"}
#: Parameters that name a file or folder: only paths under the fuzz's own folder are
#: generated for them (the test runs as whoever runs it: it must not write elsewhere).
PATHS = {"path", "file", "out", "log", "witness", "target", "store", "ledger"}

NASTY = [
    "",
    " ",
    "[bold]x[/bold]",
    "[",
    "]]",
    "[/]",
    "\x1b[31mred",
    "a\nb",
    "\r",
    "\t",
    "é",
    "日本語",
    "\u202eevil",
    "🧪",
    "caf\udce9",  # what an undecodable byte in argv becomes (surrogateescape)
    "99999999999999999999999999",
    "-1",
    "-0",
    "0",
    "1e309",
    "nan",
    "inf",
    "-inf",
    "0x10",
    "--",
    "-",
    "--json",
    "--nope",
    "-x",
    "a" * 3000,
    "sha256:",
    "sha256:" + "0" * 64,
    "sha256:zz",
    "abcd",
]


def _commands() -> dict[str, Any]:
    out: dict[str, Any] = {}

    def walk(prefix: str, cmd: Any) -> None:
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                walk(f"{prefix} {name}".strip(), sub)
        else:
            out[prefix] = cmd

    walk("", typer.main.get_command(app))
    return out


COMMANDS = _commands()
BUILT_IN = contract_path("digits").read_bytes()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A small lab (keys, the digits capability, one model) and a folder to run in."""
    root = tmp_path_factory.mktemp("fuzz-cli")
    where = root / "lab"
    contract = root / "digits.toml"
    contract.write_bytes(contract_path("digits").read_bytes())
    cwd = Path.cwd()
    os.chdir(root)  # relative paths a command writes land here
    try:
        assert _run(["--lab", str(where), "init"])[0] == 0
        for name, role in (
            ("alice", "model"),
            ("erin", "evaluation"),
            ("sam", "security"),
            ("pat", "production"),
        ):
            assert _run(["--lab", str(where), "keys", "generate", name, "--role", role])[0] == 0
        capability = ["--lab", str(where), "capability", "add", str(contract)]
        assert _run(capability)[0] == 0
        model = make_model_dir(root, "m1")
        imported = [
            *("--lab", str(where), "import", str(model), "--kind", "model"),
            *("--capability", "digits", "--license", "MIT", "--sign-with", "alice"),
        ]
        code, out, _ = _run([*imported, "--json"])
        assert code == 0, out
        (root / "a-file.txt").write_text("not a model\n")
        (root / "[dir]").mkdir()
        yield {
            "root": root,
            "lab": where,
            "package": out.split('"id": "')[1].split('"')[0],
            "model": model,
            "contract": contract,
        }
    finally:
        os.chdir(cwd)
    # Nothing outside the fuzz's folder was written (the built-in contract was, once).
    assert contract_path("digits").read_bytes() == BUILT_IN


def _run(argv: list[str]) -> tuple[int, str, str]:
    """``main(argv)`` with its output captured; any exception escaping it propagates."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def _values(name: str, lab: dict[str, Any], *, real: bool) -> st.SearchStrategy[str]:
    """Values for the parameter ``name``: nasty or random text, and real names."""
    root: Path = lab["root"]
    if name in PATHS:
        paths = [
            lab["model"],  # a real model folder
            root / "a-file.txt",  # a file where a folder is expected, or the reverse
            root / "[dir]",
            root / "missing",
            root / "missing" / "deeper" / "x.json",
            lab["contract"],  # a copy: a command that writes may overwrite it
        ]
        named = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="/\x00"))
        odd = named.filter(lambda s: s not in ("", ".", "..")).map(lambda s: str(root / s))
        return st.sampled_from([str(p) for p in paths]) | st.sampled_from(paths[1:4]).map(str) | odd
    known: dict[str, list[str]] = {
        "capability": ["digits"],
        "name": ["digits", "alice", "newkey"],
        "names": ["alice", "pat"],
        "package": [lab["package"], lab["package"][:11]],
        "packages": [lab["package"]],
        "key": ["alice", "pat", "sam"],
        "sign_with": ["alice"],
        "model_key": ["alice"],
        "evaluation_key": ["erin"],
        "production_key": ["pat"],
        "role": ["model", "evaluation", "security", "production"],
        "kind": ["model", "dataset", "suite"],
        "purpose": ["release", "evaluation"],
        "alias": ["champion", "previous", "candidate"],
        "license": ["MIT"],
        "sample": ["0.5", "1"],
        "percent": ["5", "100"],
        "baking": ["0", "3600"],
    }
    no_nul = st.characters(exclude_characters="\x00")  # argv cannot hold one
    options = [st.sampled_from(NASTY), st.text(no_nul, max_size=30)]
    if real and name in known:
        options.append(st.sampled_from(known[name]))
    return st.one_of(*options).filter(_stays_here)


def _stays_here(value: str) -> bool:
    """Text that, taken as a path by a command, names nothing outside the fuzz's folder."""
    return not value.startswith(("/", "~")) and ".." not in value


@st.composite
def _argv(draw: st.DrawFn, command: str, lab: dict[str, Any]) -> list[str]:
    cmd = COMMANDS[command]
    real = command not in SLOW
    args: list[str] = []
    for param in cmd.params:
        name = param.name or ""
        is_option = bool(param.opts) and param.opts[0].startswith("-")
        if not is_option:  # an argument: present when required, or sometimes
            if param.required or draw(st.booleans()):
                count = param.nargs if param.nargs > 0 else draw(st.integers(1, 2))
                args += [draw(_values(name, lab, real=real)) for _ in range(count)]
            continue
        if getattr(param, "is_flag", False):
            if draw(st.booleans()):
                args.append(param.opts[0])
        elif param.required or draw(st.booleans()):
            args += [param.opts[0], draw(_values(name, lab, real=real))]
    if draw(st.integers(0, 5)) == 0:  # something the command does not take
        args.insert(draw(st.integers(0, len(args))), draw(st.sampled_from(NASTY)))
    assert all(_stays_here(a) or a.startswith(str(lab["root"])) for a in args), args
    return [*("--lab", str(lab["lab"])), *command.split(), *args]


FUZZED = sorted(set(COMMANDS) - SKIPPED)


@pytest.mark.parametrize("command", FUZZED)
@FUZZ
@given(data=st.data())
def test_generated_arguments_end_in_a_documented_exit_code_never_a_traceback(
    lab: dict[str, Any], command: str, data: st.DataObject
) -> None:
    argv = data.draw(_argv(command, lab), label="argv")
    code, out, err = _run(argv)  # an exception escaping main fails the test here
    assert code in DOCUMENTED, (code, out[-500:], err[-500:])
    assert "Traceback" not in out + err, err[-2000:]


def test_the_fuzz_skips_only_the_commands_that_run_until_stopped() -> None:
    assert set(COMMANDS) - set(FUZZED) == {"serve", "demo"}
    assert set(COMMANDS) >= SLOW


@pytest.mark.parametrize(
    "args",
    [
        ["ledger", "verify", "--witness", "{root}/[dir]"],
        ["ledger", "witness", "export", "{root}/[dir]"],
        ["ledger", "witness", "export", "{root}/never/made/w.json"],
        ["migrate", "{root}/copy", "--store", "{root}/a-file.txt"],
        ["promote", "digits", "abcd", "--baking", "99999999999999999999"],
    ],
    ids=[
        "witness-is-a-folder",
        "export-onto-a-folder",
        "export-into-no-folder",
        "store-is-a-file",
        "baking-overflows",
    ],
)
def test_the_crashes_the_fuzz_found_are_one_line_errors(
    lab: dict[str, Any], args: list[str]
) -> None:
    argv = ["--lab", str(lab["lab"]), *(a.format(root=lab["root"]) for a in args)]
    code, _, err = _run(argv)  # these raised IsADirectory/FileNotFound/NotADirectory/Overflow
    if args[0] == "promote":  # refused by the option's range: a usage error
        assert code == 2 and "--baking" in err, err
    else:
        assert code == 3 and err.startswith("error: cannot "), err
    assert not (lab["root"] / "copy").exists()  # a refused migration leaves nothing


def test_a_failed_migration_into_an_empty_folder_keeps_the_folder(lab: dict[str, Any]) -> None:
    """The fuzz's first CI run under load: a refused ``migrate`` into the fixture's empty
    ``[dir]`` removed the folder itself (it was taken for one the migration made)."""
    chosen = lab["root"] / "chosen-empty"
    chosen.mkdir()
    argv = ["--lab", str(lab["lab"]), "migrate", str(chosen)]
    code, _, err = _run([*argv, "--store", str(lab["root"] / "a-file.txt")])
    assert code == 3 and err.startswith("error: cannot "), err
    assert chosen.is_dir() and not any(chosen.iterdir())  # emptied of what it wrote, kept

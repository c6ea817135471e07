"""The ``breedlab`` console script: one command group per component, each a thin call
into :class:`breedlab.lab.Lab` (DESIGN §12 keeps the names).

Modules: ``shell`` (lab option, error boundary, output), ``lab_commands`` (init, demo),
``registry_commands`` (capability, import, packages, show, sign, approve, revoke,
verify, lineage, reconstruct), ``dataset_commands`` (dataset import), ``keys_commands``,
``ledger_commands`` (ledger, alias), ``breeding_commands`` (failures, round, reproduce,
explain), ``recipe_commands`` (recipes show, init), ``suite_commands`` (suite create).
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from typer._click.core import Command
from typer._click.decorators import help_option
from typer.core import TyperArgument, TyperGroup, TyperOption

from breedlab import __version__
from breedlab.cli import (
    breeding_commands,
    dataset_commands,
    keys_commands,
    lab_commands,
    ledger_commands,
    recipe_commands,
    registry_commands,
    release_commands,
    scale_commands,
    suite_commands,
)
from breedlab.cli.shell import err_console, exit_code_for, styled
from breedlab.errors import LabError, one_line

__all__ = ["app", "main"]

HELP_NAMES = ["-h", "--help"]

app = typer.Typer(
    name="breedlab",
    help="A conservative, offline model breeding lab: signed registry, sandboxed operators, "
    "frozen suites, viability decisions, controlled release, tamper-evident ledger.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,  # help text is plain: docstring line breaks are not kept
    context_settings={"help_option_names": HELP_NAMES},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"breedlab {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    lab: Annotated[
        Path | None,
        typer.Option(
            "--lab",
            help="The lab folder (default: $BREEDLAB_LAB, else ./lab).",
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    ctx.obj = {"lab": lab}


lab_commands.register(app)
registry_commands.register(app)
dataset_commands.register(app)
keys_commands.register(app)
ledger_commands.register(app)
breeding_commands.register(app)
recipe_commands.register(app)
scale_commands.register(app)
release_commands.register(app)
suite_commands.register(app)


def _report(error: LabError, *, as_json: bool) -> None:
    """One error on stderr: a line (and a ``hint:`` line), or with ``--json`` one object."""
    message = one_line(error.message)  # one line, whatever it quotes
    if as_json:
        body = {"error": error.code, "message": message}
        if error.hint:
            body["hint"] = error.hint
        sys.stderr.write(json.dumps(body, sort_keys=True) + "\n")
        return
    err_console.print(styled(("bold red", "error:"), f" {message}"), soft_wrap=True)
    if error.hint:
        err_console.print(styled(("bold", "hint:"), f" {error.hint}"), soft_wrap=True)


class _Argument(TyperArgument):
    """An argument shown as ``NAME`` (``[NAME]`` when optional) in the usage line, where
    typer 0.29 writes ``{name}``."""

    def _usage_display_name(self) -> str:
        name = self.display_name_raw
        name = name if self.required else f"[{name}]"
        return name + ("..." if self.nargs != 1 else "")


def _plain_help(command: Command) -> Command:
    """Usage lines people read: arguments in capitals, and no ``<bool>`` beside a flag
    (``--json``, ``--help``) -- a flag takes no value."""
    for param in command.params:
        if isinstance(param, TyperArgument):
            param.__class__ = _Argument
            param.metavar = param.metavar or (param.name or "").upper()
        elif isinstance(param, TyperOption) and param.is_flag:
            param.metavar = ""
    if command.add_help_option and command._help_option is None:  # made here, not lazily
        help_option(HELP_NAMES)(command)
        made = command.params.pop()
        assert isinstance(made, TyperOption)
        made.metavar = ""
        command._help_option = made
    if isinstance(command, TyperGroup):
        for sub in command.commands.values():
            _plain_help(sub)
    return command


def main(argv: list[str] | None = None) -> int:
    """Run the CLI with the one error boundary; returns (and exits with) the exit code.

    The CLI library handles usage errors itself (exit 2, with the usage line); every
    LabError becomes one line on stderr and its family's exit code.
    """
    for stream in (sys.stdout, sys.stderr):  # a file name's undecodable bytes print escaped
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
    try:
        _plain_help(typer.main.get_command(app))(args=argv, prog_name="breedlab")
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except LabError as e:
        _report(e, as_json="--json" in (sys.argv[1:] if argv is None else argv))
        code = exit_code_for(e)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        code = 130
    if argv is None:
        sys.exit(code)
    return code

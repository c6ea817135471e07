"""What every command shares: the lab option, the one error boundary, output helpers.

The error boundary maps each error family to one exit code (DESIGN §12: 0 ok,
1 unexpected, 2 usage, then one per family) and prints one line -- never a traceback.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from breedlab.errors import (
    Conflict,
    IntegrityError,
    Interrupted,
    InvalidRequest,
    LabError,
    NotFound,
    PolicyError,
    Unavailable,
)

if TYPE_CHECKING:  # the lab (SQLAlchemy, numpy) loads with the first command that opens one
    from breedlab.lab import Lab

__all__ = [
    "EXIT_CODES",
    "TEXT_KEYS",
    "JsonFlag",
    "as_numbers",
    "brief",
    "comma_list",
    "console",
    "err_console",
    "exit_code_for",
    "fields",
    "lab_path",
    "open_lab",
    "print_json",
    "progress",
    "render",
    "short_id",
    "short_ids",
    "styled",
    "table",
    "when",
]

#: One table from error family to exit code. 2 is click's usage error.
EXIT_CODES: tuple[tuple[type[LabError], int], ...] = (
    (InvalidRequest, 3),
    (NotFound, 4),
    (IntegrityError, 5),
    (PolicyError, 6),
    (Conflict, 7),
    (Unavailable, 8),
    (Interrupted, 130),  # 128 + SIGINT, as a shell reports a command stopped by Ctrl-C
)

#: Every command's ``--json``: its result as one JSON document on stdout (see :func:`render`).
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
#: The arguments and options many commands take, with one help text each.
PackageArg = Annotated[str, typer.Argument(help="Id, unique prefix, or CAP@alias.")]
CapabilityArg = Annotated[str, typer.Argument(help="Capability name.")]
ReasonOpt = Annotated[str, typer.Option("--reason", help="Why (recorded in the ledger).")]

# No markup: names, reasons, file paths and messages are user text and print as they are
# ("[bold]" included); styles come only from :func:`styled`.
console = Console(highlight=False, markup=False)
err_console = Console(stderr=True, highlight=False, markup=False)


def styled(*parts: str | tuple[str, str]) -> Text:
    """One line from plain text and ``(style, text)`` pieces; nothing is markup."""
    out = Text()
    for part in parts:
        if isinstance(part, tuple):
            out.append(part[1], style=part[0])
        else:
            out.append(part)
    return out


def comma_list(text: str | None) -> tuple[str, ...]:
    """An option's ``a,b,c`` as names (an absent option: none)."""
    return tuple(v.strip() for v in text.split(",")) if text else ()


def exit_code_for(error: LabError) -> int:
    for family, code in EXIT_CODES:
        if isinstance(error, family):
            return code
    return 1


def lab_path(ctx: typer.Context) -> Path:
    """``--lab``, else ``$BREEDLAB_LAB``, else ``./lab``."""
    explicit = ctx.obj.get("lab") if ctx.obj else None
    if explicit is not None:
        return Path(explicit)
    env = os.environ.get("BREEDLAB_LAB")
    return Path(env) if env else Path("lab")


@contextmanager
def open_lab(ctx: typer.Context, *, read_only: bool = False) -> Iterator[Lab]:
    """The lab; ``read_only`` for a command that only reads (a SQLite lab's ledger is
    then read without loading SQLAlchemy: the command starts faster)."""
    from breedlab.lab import Lab

    lab = Lab.open(lab_path(ctx), read_only=read_only)
    try:
        yield lab
    finally:
        lab.close()


@contextmanager
def progress(quiet: bool, title: str) -> Iterator[Callable[[str], None]]:
    """A spinner with the elapsed time while a long command works, and a
    ``say(message)`` that prints each step (a finished job) as a line; silent with
    ``--json`` (``quiet``), so stdout stays one JSON document."""
    if quiet:
        yield lambda _message: None
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    text = TextColumn("{task.description}", markup=False)  # user text: never markup
    with Progress(
        SpinnerColumn(), text, TimeElapsedColumn(), console=console, transient=True
    ) as bar:
        task = bar.add_task(title, total=None)

        def say(message: str) -> None:
            bar.console.print(f"  {message}", soft_wrap=True)
            bar.update(task, description=f"{title}: {message}")

        yield say


_DIGEST = re.compile(r"(sha256:[0-9a-f]{12})[0-9a-f]{52}")
_HEX64 = re.compile(r"\b([0-9a-f]{16})[0-9a-f]{48}\b")  # key ids, public keys


def short_ids(text: str) -> str:
    """Every full ``sha256:`` id in ``text`` cut to its 12-digit short form (what
    ``show`` and every ``PKG`` argument accept as a prefix), and a key id or public key
    to 16 digits (as ``keys list`` shows them)."""
    return _HEX64.sub(r"\1", _DIGEST.sub(r"\1", text))


def brief(payload: Mapping[str, Any]) -> str:
    """A payload in one wrappable line: ``key=value`` pairs, ids short, a nested object
    as ``{a, b}`` (its keys) and a list as ``[n]`` unless it is short."""

    def value(v: Any) -> str:
        if isinstance(v, Mapping):
            return "{" + ", ".join(str(k) for k in v) + "}"
        if isinstance(v, list):
            inner = ", ".join(value(x) for x in v)
            return f"[{inner}]" if len(v) <= 4 and len(inner) <= 60 else f"[{len(v)} items]"
        return short_ids(v if isinstance(v, str) else json.dumps(v))

    return "  ".join(f"{k}={value(v)}" for k, v in sorted(payload.items()))


_DECIMAL = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")

#: Keys whose values are names, never numbers, even when they read like one: a class
#: label "7", a package name, the labels of a shadow pair or a flip matrix.
TEXT_KEYS = frozenset({"label", "labels", "flips", "name", "primary", "shadow", "truth"})


def as_numbers(value: Any, *, keep: frozenset[str] = TEXT_KEYS) -> Any:
    """``value`` with decimal strings turned into JSON numbers.

    Ledger records keep numbers as exact decimal strings (canonical JSON has no floats);
    ``--json`` output is for scripts, which want numbers. Values under ``keep`` stay
    text, and so do ``inf``/``nan`` (JSON has no such numbers)."""
    if isinstance(value, Mapping):
        return {k: v if k in keep else as_numbers(v, keep=keep) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [as_numbers(v, keep=keep) for v in value]
    if isinstance(value, str) and _DECIMAL.fullmatch(value):
        if value.lstrip("-").isdigit():
            return int(value)
        number = float(value)
        return number if math.isfinite(number) else value  # "1e999": no JSON number
    return value


def print_json(value: Any, *, numbers: bool = True) -> None:
    """One JSON document on stdout, numbers as numbers (``numbers=False``: as recorded)."""
    out = as_numbers(value) if numbers else value
    sys.stdout.write(json.dumps(out, indent=2, sort_keys=True) + "\n")


def render(json_out: bool, document: Any, *lines: RenderableType) -> None:
    """A command's result: ``document`` as JSON (:func:`print_json`) with ``--json``, else
    ``lines``, printed one after another."""
    if json_out:
        print_json(document)
        return
    for line in lines:
        console.print(line)


#: Columns that hold an id or a number: never wrapped (ids are shown short, see
#: :func:`short_id`, so they fit). Every other column wraps at spaces, so on a narrow
#: terminal the text around them gives way and no id is ever split.
_WHOLE = frozenset({"id", "seq", "from", "to", "key id", "cluster", "sha256", "n", "size"})


def table(*columns: str, title: str | None = None) -> Table:
    t = Table(
        title=title,
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
        header_style="bold",
    )
    for column in columns:
        if column in _WHOLE:
            t.add_column(column, no_wrap=True)
        else:
            t.add_column(column, overflow="fold")
    return t


def short_id(digest: object) -> str:
    """A package id as 12 hex digits (a prefix every ``PKG`` argument accepts)."""
    return str(digest).removeprefix("sha256:")[:12]


def fields(*rows: tuple[str, str]) -> None:
    """Label/value lines, the values wrapping under themselves, never under the labels."""
    grid = Table.grid(padding=(0, 2), pad_edge=True)
    grid.add_column(no_wrap=True, style="bold")
    grid.add_column(overflow="fold")
    for label, value in rows:
        grid.add_row(label, value)
    console.print(grid)


def when(at: str) -> str:
    """An event time as ``YYYY-MM-DD HH:MM:SS`` (UTC), for a table cell."""
    return at[:19].replace("T", " ")

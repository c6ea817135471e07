"""What every command shares: the lab option, the one error boundary, output helpers.

The error boundary maps each error family to one exit code (DESIGN §12: 0 ok,
1 unexpected, 2 usage, then one per family) and prints one line -- never a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
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
from breedlab.lab import Lab

__all__ = [
    "EXIT_CODES",
    "console",
    "err_console",
    "exit_code_for",
    "lab_path",
    "open_lab",
    "print_json",
    "styled",
    "table",
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
def open_lab(ctx: typer.Context) -> Iterator[Lab]:
    lab = Lab.open(lab_path(ctx))
    try:
        yield lab
    finally:
        lab.close()


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=True) + "\n")


def table(*columns: str, title: str | None = None) -> Table:
    t = Table(title=title, show_edge=False, header_style="bold")
    for column in columns:
        t.add_column(column, overflow="fold")
    return t

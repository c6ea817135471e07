"""Scale-out commands: ``migrate`` (copy a lab to other backends and back)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from breedlab.cli.shell import JsonFlag, open_lab, render, styled

__all__ = ["register"]


def migrate(
    ctx: typer.Context,
    target: Annotated[Path, typer.Argument(help="The new lab folder (absent or empty).")],
    store: Annotated[
        str, typer.Option("--store", help="Target object store: a folder or s3://bucket/prefix.")
    ] = "objects",
    ledger: Annotated[
        str,
        typer.Option("--ledger", help="Target ledger: a SQLite file or postgresql+psycopg://..."),
    ] = "ledger.db",
    endpoint: Annotated[
        str, typer.Option("--store-endpoint", help="S3-compatible endpoint URL (s3 only).")
    ] = "",
    region: Annotated[str, typer.Option("--store-region", help="S3 region (s3 only).")] = "",
    json_out: JsonFlag = False,
) -> None:
    """Copy the lab to another store and ledger (default: the embedded ones), verifying
    every object and the chain; refuses a non-empty target."""
    with open_lab(ctx) as lab:
        report = lab.migrate(
            target,
            store_url=store,
            ledger_url=ledger,
            store_endpoint=endpoint,
            store_region=region,
        )
    render(
        json_out,
        dataclasses.asdict(report),
        styled(
            ("green", "ok"),
            f" {report.objects} objects ({report.bytes} bytes) and {report.events} ",
            f"events copied to {report.target}, head {report.head[:16]}",
        ),
    )


def register(app: typer.Typer) -> None:
    app.command("migrate")(migrate)

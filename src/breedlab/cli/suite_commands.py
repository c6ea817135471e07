"""Suite commands: ``suite create`` (a frozen suite for any capability, issue 12)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from breedlab.cli.shell import CapabilityArg, JsonFlag, open_lab, render, short_id, styled
from breedlab.errors import InvalidRequest

__all__ = ["register"]

suite_app = typer.Typer(help="Frozen evaluation suites.", no_args_is_help=True)


def _names(text: str | None) -> list[str] | None:
    return None if text is None else [n.strip() for n in text.split(",") if n.strip()]


def _critical(path: Path | None) -> list[str]:
    """One dev item id per line; blank lines are skipped."""
    if path is None:
        return []
    try:
        return [line.strip() for line in path.read_text("utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidRequest(f"cannot read the critical set {path}: {e}") from e


@suite_app.command("create")
def create(
    ctx: typer.Context,
    capability: CapabilityArg,
    perturbations: Annotated[
        str | None,
        typer.Option(
            "--perturbations",
            help="Comma-separated perturbation kinds (default: all of the modality's).",
            show_default=False,
        ),
    ] = None,
    critical: Annotated[
        Path | None,
        typer.Option(
            "--critical",
            help="A file of dev item ids, one a line, that must never be wrong.",
            show_default=False,
        ),
    ] = None,
    metrics: Annotated[
        str | None,
        typer.Option(
            "--metrics",
            help="Comma-separated metric names (default: all; the primary is required).",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seeds every perturbation.")] = 0,
    name: Annotated[
        str | None,
        typer.Option("--name", help="Package name (default: CAP-suite).", show_default=False),
    ] = None,
    key: Annotated[
        str | None,
        typer.Option("--key", help="Sign with this key (an evaluation key).", show_default=False),
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """Build a frozen suite from a capability's contract and its CAP@data-train, -dev and
    -sealed datasets, and point CAP@suite at it (what 'breedlab round CAP' scores on)."""
    with open_lab(ctx) as lab:
        built = lab.create_suite(
            capability,
            perturbations=_names(perturbations),
            critical=_critical(critical),
            metrics=_names(metrics),
            seed=seed,
            name=name,
            key=key,
        )
    document = {
        "suite": str(built.suite),
        "capability": built.capability,
        "name": built.name,
        "modality": built.modality,
        "perturbations": list(built.perturbations),
        "metrics": list(built.metrics),
        "primary": built.primary,
        "critical_items": built.critical_items,
        "dev_items": built.dev_items,
        "sealed_items": built.sealed_items,
    }
    render(
        json_out,
        document,
        styled(
            ("green", "ok"),
            f" {built.capability}@suite -> {short_id(built.suite)} ({built.name}, "
            f"{built.modality}, {built.dev_items} dev / {built.sealed_items} sealed items)",
        ),
        f"perturbations: {', '.join(built.perturbations) or '(none)'}",
        f"metrics: {', '.join(built.metrics)} (primary {built.primary})",
        f"critical items: {built.critical_items}",
    )


def register(app: typer.Typer) -> None:
    app.add_typer(suite_app, name="suite")

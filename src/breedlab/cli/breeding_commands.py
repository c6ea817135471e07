"""Challenger-loop commands: ``failures``, ``round``, ``reproduce``, ``explain``, and
``capability bootstrap`` for the built-in capability (seed, stage 2)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import typer
from rich.table import Table

from breedlab.cli.recipe_commands import RecipesOpt
from breedlab.cli.registry_commands import capability_app
from breedlab.cli.shell import (
    CapabilityArg,
    JsonFlag,
    console,
    open_lab,
    print_json,
    progress,
    short_ids,
    styled,
    table,
)
from breedlab.errors import InvalidRequest
from breedlab.report.record import read_parents

__all__ = ["register"]

Workers = Annotated[
    int | None, typer.Option("--workers", help="Parallel sandbox jobs (default: config).")
]


@capability_app.command("bootstrap")
def bootstrap(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A built-in capability: digits or reviews.")],
    model_key: Annotated[str, typer.Option("--model-key", help="Signs models and data.")],
    evaluation_key: Annotated[str, typer.Option("--evaluation-key", help="Signs the suite.")],
    production_key: Annotated[
        str, typer.Option("--production-key", help="Approves the champion's release.")
    ],
    seed: Annotated[int, typer.Option("--seed", help="Splits and training seed.")] = 0,
    size: Annotated[
        str, typer.Option("--size", help="reviews only: ci (~2,000 sentences) or full.")
    ] = "ci",
    workers: Workers = None,
    json_out: JsonFlag = False,
) -> None:
    """Set up a built-in capability: contract, data splits, trained champion, suite."""
    if name not in ("digits", "reviews"):
        raise InvalidRequest(f"no built-in capability {name!r}; built in: digits, reviews")
    if name == "digits" and size != "ci":
        raise InvalidRequest("--size applies to reviews; digits has one size")
    keys = {"model_key": model_key, "evaluation_key": evaluation_key}
    with open_lab(ctx) as lab, progress(json_out, f"bootstrapping {name}") as say:
        if name == "reviews":
            result = lab.bootstrap_reviews(
                **keys,
                production_key=production_key,
                size=size,
                seed=seed,
                workers=workers,
                progress=say,
            )
        else:
            result = lab.bootstrap_digits(
                **keys,
                production_key=production_key,
                seed=seed,
                workers=workers,
                progress=say,
            )
    if json_out:
        print_json(
            {
                "contract": str(result.contract),
                "datasets": {k: str(v) for k, v in result.datasets.items()},
                "champion": str(result.champion),
                "sibling": None if result.sibling is None else str(result.sibling),
                "suite": str(result.suite),
                "critical_items": result.critical_items,
            }
        )
    else:
        console.print(
            styled(("bold green", f"{name} ready"), f": champion {result.champion.short}")
        )


def failures(
    ctx: typer.Context,
    capability: CapabilityArg,
    workers: Workers = None,
    json_out: JsonFlag = False,
) -> None:
    """Mine failure clusters from the champion's errors on the dev split."""
    with open_lab(ctx) as lab, progress(json_out, f"mining failures of {capability}"):
        clusters = lab.failures(capability, workers=workers)
        keys = [lab.cluster_key(c.id) for c in clusters]
    if json_out:
        print_json([{**c.to_json(), "key": k} for c, k in zip(clusters, keys, strict=True)])
        return
    t = table("cluster", "key", "kind", "severity", "items", "description")
    for c, k in zip(clusters, keys, strict=True):
        t.add_row(c.id.short, k, c.kind, f"{c.severity:.3f}", str(c.items), c.description)
    console.print(t)
    if not clusters:
        console.print("no failure cluster: the champion loses < 5 points on every perturbation")


def _scorecard_cells(card: Mapping[str, Any] | None) -> list[str]:
    if not card:
        return ["-"] * 5
    dev = card["dev"]
    r = card["resources"]
    return [
        f"{float(dev['accuracy']):.3f}",
        f"{float(dev['robust_accuracy']):.3f}",
        f"{float(dev['ece']):.3f}",
        f"{float(r['latency_p95_ms']):.3f}",
        str(card["critical"]["errors"]),
    ]


def scorecard_table(record: Mapping[str, Any]) -> Table:
    """The round's scorecards: the champion, then every candidate with its outcome."""
    t = table("candidate", "operator", "outcome", "acc", "robust", "ece", "p95 ms", "critical")
    t.add_row("champion", "-", "-", *_scorecard_cells(record.get("champion_scorecard")))
    for c in record["candidates"]:
        t.add_row(c["name"], c["label"], c["outcome"], *_scorecard_cells(c["scorecard"]))
    return t


def round_(
    ctx: typer.Context,
    capability: CapabilityArg,
    failure_cluster: Annotated[
        str | None,
        typer.Option("--failure-cluster", help="Cluster dataset id (default: the worst mined)."),
    ] = None,
    operators: Annotated[
        str | None, typer.Option("--operators", help="Comma-separated subset of operators.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="The round's seed.")] = 0,
    recipes: RecipesOpt = None,
    workers: Workers = None,
    json_out: JsonFlag = False,
) -> None:
    """Run one breeding round: generate in the sandbox, evaluate, decide, shadow or archive.

    The operator runs are the capability's recipe ('breedlab recipes show CAP'). A failed
    job's log is kept in LAB/work/jobs/failed/ (the newest 5 failed jobs).
    """
    ops = None if operators is None else [o.strip() for o in operators.split(",") if o.strip()]
    with open_lab(ctx) as lab, progress(json_out, f"breeding {capability}") as say:
        result = lab.run_round(
            capability,
            failure_cluster=failure_cluster,
            operators=ops,
            workers=workers,
            seed=seed,
            progress=say,
            recipes=recipes,
        )
    record = result.record
    if json_out:
        print_json(
            {
                **dict(record),
                "decision_seq": result.decision_seq,
                "report": result.report,
                "decision_record": str(result.decision),
            }
        )
        return
    console.print(scorecard_table(record))
    for f in record["failed"]:
        console.print(styled(("red", "failed"), f" {f['label']}: {f['failure']}: {f['reason']}"))
    if result.winner is not None:
        console.print(
            styled(
                ("bold green", "decision"),
                f" (seq {result.decision_seq}): ",
                f"{result.winner.short} → {capability}@shadow",
            )
        )
    else:
        console.print(
            styled(
                ("bold", "decision"),
                f" (seq {result.decision_seq}): no winner; ",
                "every candidate archived with its reasons",
            )
        )
    console.print(f"explain: breedlab explain {result.decision_seq}    report: {result.report}")


def reproduce(
    ctx: typer.Context,
    package: Annotated[
        str | None, typer.Argument(help="Id, unique prefix, or CAP@alias.", show_default=False)
    ] = None,
    decision: Annotated[
        str | None,
        typer.Option(
            "--decision",
            help="Instead of PACKAGE: every candidate of a round's decision (latest, seq, "
            "round-N).",
        ),
    ] = None,
    workers: Workers = None,
    json_out: JsonFlag = False,
) -> None:
    """Re-run a package's recorded operator in a fresh sandbox and compare ids (exit 5 if
    any differs)."""
    if (package is None) == (decision is None):
        raise InvalidRequest("name a PACKAGE or a --decision (one of them)")
    what = package if decision is None else f"the candidates of decision {decision}"
    with open_lab(ctx) as lab, progress(json_out, f"reproducing {what} in a fresh sandbox"):
        if package is not None:
            results = [lab.reproduce(package, workers=workers)]
        else:
            results = lab.reproduce_decision(str(decision), workers=workers)
    if json_out:
        print_json(results[0].to_json() if package else [r.to_json() for r in results])
    for r in [] if json_out else results:
        if r.match:
            console.print(
                styled(("green", "reproduced"), f" {r.package[:19]} ({r.operator}): ids match")
            )
        else:
            console.print(
                styled(
                    ("red", "NOT reproduced"),
                    f" {r.package[:19]} ({r.operator}): ",
                    f"got {r.recomputed or r.failure}",
                )
            )
    if not all(r.match for r in results):
        raise typer.Exit(5)


def explain(
    ctx: typer.Context,
    decision: Annotated[
        str,
        typer.Argument(
            help="Decision seq, round-N (CAP/round-N if two capabilities have one), or 'latest'."
        ),
    ],
    json_out: JsonFlag = False,
) -> None:
    """Explain a decision from the ledger alone: outcome, reasons, metric verdicts, utility."""
    with open_lab(ctx) as lab:
        event, record = lab.decision(decision)
    if json_out:
        print_json({"seq": event.seq, "at": event.at, **record})
        return
    console.print(
        styled(
            ("bold", f"{record['round']}"),
            f" on {record['capability']} (decision seq {event.seq}, ",
            f"{event.at}); champion {str(record['champion'])[:19]}",
        )
    )
    winner = record.get("winner")
    console.print(f"action: {record['action']}" + (f" → {str(winner)[:19]}" if winner else ""))
    policy = record["policy"]
    console.print(
        f"policy: ε_up {policy['epsilon_up']} (σ_AA {policy['sigma_aa']}), "
        f"α {policy['alpha']}, {policy['bootstrap_samples']} bootstrap samples"
    )
    recipe = record.get("recipe")  # absent from rounds recorded before recipes were data
    if recipe:
        console.print(f"recipe: {recipe['source']} ({str(recipe['digest'])[:19]})")
    parents = read_parents(record)  # None in rounds recorded before scoped approvals
    if parents is not None:
        console.print(f"parents: {parents.summary()}")
    names = {c["package"]: c["label"] for c in record["candidates"]}
    for d in record["decisions"]:
        label = names.get(d["candidate"], d["candidate"][:19])
        utility = d["assessment"]["decomposition"]["utility"]
        console.print(
            styled(
                "\n",
                ("bold", f"{label}"),
                f" {d['candidate'][:19]}: ",
                ("bold", f"{d['outcome']}"),
                " ",
                f"(U = {float(utility):+.4f})",
            )
        )
        for reason in d["reasons"]:
            console.print(f"  - {short_ids(reason)}")
        t = table("metric", "verdict", "Δ", "interval", "margin", "term")
        terms = {x["metric"]: x["value"] for x in d["assessment"]["decomposition"]["terms"]}
        for m in d["assessment"]["metrics"]:
            lower, upper = m.get("lower"), m.get("upper")
            interval = "-" if lower is None else f"[{float(lower):+.4f}, {float(upper):+.4f}]"
            delta = "-" if m.get("delta") is None else f"{float(m['delta']):+.4f}"
            term = terms.get(m["metric"])
            t.add_row(
                m["metric"],
                m["verdict"],
                delta,
                interval,
                str(m["margin"]),
                "-" if term is None else f"{float(term):+.4f}",
            )
        console.print(t)
    for f in record["failed"]:
        console.print(styled(("red", "failed"), f" {f['label']}: {f['failure']}: {f['reason']}"))


def register(app: typer.Typer) -> None:
    app.command("failures")(failures)
    app.command("round")(round_)
    app.command("reproduce")(reproduce)
    app.command("explain")(explain)

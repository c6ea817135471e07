"""Ledger and alias commands: ``ledger show|verify|checkpoint|sign-history``, ``ledger
witness export``, ``alias set|history``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.padding import Padding
from rich.text import Text

from breedlab.cli.shell import (
    CapabilityArg,
    JsonFlag,
    PackageArg,
    brief,
    console,
    open_lab,
    print_json,
    render,
    short_id,
    short_ids,
    styled,
    table,
    when,
)

__all__ = ["register"]

ledger_app = typer.Typer(help="The tamper-evident ledger.", no_args_is_help=True)
witness_app = typer.Typer(
    help="Signed tree heads kept outside the lab (RFC 9162 consistency).",
    no_args_is_help=True,
)
ledger_app.add_typer(witness_app, name="witness")
alias_app = typer.Typer(
    help="Per-capability aliases (champion, shadow, ...).", no_args_is_help=True
)


@ledger_app.command("show")
def show(
    ctx: typer.Context,
    after: Annotated[int, typer.Option("--after", help="Only events after this seq.")] = 0,
    kind: Annotated[list[str] | None, typer.Option("--kind", help="Only these kinds.")] = None,
    full: Annotated[
        bool, typer.Option("--full", help="Whole payloads (indented JSON), ids in full.")
    ] = False,
    json_out: JsonFlag = False,
) -> None:
    """Print ledger events in order: a line each, then its payload in brief (ids short,
    nested values summarised; --full for everything, --json for scripts)."""
    with open_lab(ctx, read_only=True) as lab:
        events = lab.events(after=after, kinds=tuple(kind or ()))
        names = {k.keyid: k.name for k in lab.keys()}
    if json_out:
        print_json([e.to_json() for e in events], numbers=False)  # exactly as recorded
        return
    for e in events:
        signer = "unsigned" if e.sig is None else names.get(e.sig.keyid, e.sig.keyid[:12])
        console.print(
            styled(
                ("bold", f"{e.seq:>5}"),
                f"  {e.at[:10]} {e.at[11:19]}  ",
                ("bold", e.kind),
                f"  {e.subject if full else short_ids(e.subject)}",
                f"  (signed by {signer}, actor {e.actor})",
            ),
            overflow="fold",
        )
        if full:
            body = json.dumps(dict(e.payload), indent=2, sort_keys=True)
            console.print(Padding(Text(body), (0, 0, 0, 7), expand=False), soft_wrap=True)
        elif e.payload:
            console.print(Padding(Text(brief(e.payload)), (0, 0, 0, 7), expand=False))


@ledger_app.command("verify")
def verify(
    ctx: typer.Context,
    witness: Annotated[
        Path | None,
        typer.Option(
            "--witness",
            help="A witness file kept outside the lab: prove the ledger only grew since.",
            show_default=False,
        ),
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """Recompute the hash chain, derived tables, every event's signature and authority,
    and the signed checkpoints; name the first bad seq."""
    with open_lab(ctx) as lab:
        report = lab.verify_ledger(witness=witness)
    if json_out:
        print_json({"ok": True, **report.to_json()})
        return
    console.print(
        styled(
            ("green", "ok"),
            f" {report.events} events, head {report.head[:16]}: {report.signed} signed ",
            "by keys trusted then and allowed to make them",
        )
        + (f", {report.attested} older ones vouched for by the lab key" if report.attested else "")
    )
    pin = "pinned in breedlab.toml" if report.pinned else "NOT pinned (set [signing] lab_key_id)"
    console.print(f"  lab key {report.lab_key[:16]}: {pin}")
    shown = report.checkpoints[-3:]
    if len(report.checkpoints) > len(shown):
        console.print(f"  {len(report.checkpoints) - len(shown)} earlier checkpoints verified")
    for c in shown:
        console.print(f"  checkpoint seq {c.seq}: {c.tree_size} events, key {c.key}: {c.status}")
    if report.witness is not None:
        console.print(f"  witness: {report.witness}")


@ledger_app.command("checkpoint")
def checkpoint(
    ctx: typer.Context,
    key: Annotated[str | None, typer.Option("--key", help="Signing key (default: lab's).")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Sign an RFC 6962 Merkle tree head over every event so far."""
    with open_lab(ctx) as lab:
        ev = lab.checkpoint(key=key)
    p = ev.payload
    render(
        json_out,
        ev.to_json(),
        f"checkpoint seq {ev.seq}: {p['tree_size']} events, root {p['root']}",
    )


@witness_app.command("export")
def witness_export(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Where to write it (keep it outside the lab).")],
    json_out: JsonFlag = False,
) -> None:
    """Write the latest signed tree head to FILE, for 'ledger verify --witness FILE'."""
    with open_lab(ctx) as lab:
        seen = lab.witness_export(file)
    render(
        json_out,
        json.loads(seen.to_bytes()),
        f"witness of {seen.tree_size} events (root {seen.root[:16]}, lab key "
        f"{seen.lab_key_id[:16]}) written to {file}",
    )


@ledger_app.command("sign-history")
def sign_history(ctx: typer.Context, json_out: JsonFlag = False) -> None:
    """Vouch once, with the lab key, for history written before events were signed (labs
    made by older breedlab); also adds the factory key and pins the lab key id."""
    with open_lab(ctx) as lab:
        ev = lab.sign_history()
    render(
        json_out,
        ev.to_json(),
        f"the lab key vouched for {ev.payload['unsigned']} unsigned event(s) among the first "
        f"{ev.payload['tree_size']} (seq {ev.seq}); every later change must be signed",
    )


@alias_app.command("set")
def alias_set(
    ctx: typer.Context,
    capability: CapabilityArg,
    alias: Annotated[str, typer.Argument(help="Alias (champion, previous, shadow, ...).")],
    package: PackageArg,
    expect: Annotated[
        str | None,
        typer.Option("--expect", help="The package it points at now (omit if unset)."),
    ] = None,
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded).")] = "",
    key: Annotated[
        str | None,
        typer.Option(
            "--key",
            help="The key that signs the move (default: the lab key; shadow and canary "
            "take a production key).",
            show_default=False,
        ),
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """Move an alias by compare-and-swap; a lost race is an error, never an overwrite.

    champion and previous move only by 'breedlab promote' and 'breedlab rollback'.
    """
    with open_lab(ctx) as lab:
        move = lab.set_alias(capability, alias, package, expect=expect, reason=reason, key=key)
    old = move.old[:19] if move.old else "(unset)"
    render(
        json_out, move.to_json(), f"{capability}@{alias}: {old} -> {move.new[:19]} (seq {move.seq})"
    )


@alias_app.command("history")
def alias_history(
    ctx: typer.Context,
    capability: CapabilityArg,
    json_out: JsonFlag = False,
) -> None:
    """Every alias move of a capability, from the ledger."""
    with open_lab(ctx, read_only=True) as lab:
        moves = lab.alias_history(capability)
    t = table("seq", "at", "actor", "alias", "from", "to", "reason")
    for m in moves:
        old = "-" if m.old is None else short_id(m.old)
        t.add_row(str(m.seq), when(m.at), m.actor, m.alias, old, short_id(m.new), m.reason)
    render(json_out, [m.to_json() for m in moves], t)


def register(app: typer.Typer) -> None:
    app.add_typer(ledger_app, name="ledger")
    app.add_typer(alias_app, name="alias")

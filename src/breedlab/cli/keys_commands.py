"""``breedlab keys``: generate, list and revoke signing keys."""

from __future__ import annotations

from typing import Annotated

import typer

from breedlab.cli.shell import console, open_lab, print_json, styled, table

__all__ = ["register"]

keys_app = typer.Typer(
    help="Ed25519 signing keys: generate, list, endorse, revoke.", no_args_is_help=True
)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


@keys_app.command("generate")
def generate(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Key name (lowercase, digits, '_.-').")],
    role: Annotated[
        str, typer.Option("--role", help="model | evaluation | security | production | lab")
    ],
    json_out: JsonFlag = False,
) -> None:
    """Generate an Ed25519 key (private key 0600 in LAB/keys) and trust it in the ledger."""
    with open_lab(ctx) as lab:
        info = lab.generate_key(name, role)
    if json_out:
        print_json(info.to_json())
    else:
        console.print(
            styled(
                "generated key ", ("bold", f"{info.name}"), f" ({info.role}) id {info.keyid[:16]}"
            )
        )


@keys_app.command("list")
def list_keys(ctx: typer.Context, json_out: JsonFlag = False) -> None:
    """List the lab's keys with their roles and status."""
    with open_lab(ctx, read_only=True) as lab:
        keys = lab.keys()
    if json_out:
        print_json([k.to_json() for k in keys])
        return
    t = table("name", "role", "key id", "status", "private key")
    for k in keys:
        status = k.status if k.revoked_reason is None else f"revoked: {k.revoked_reason}"
        t.add_row(k.name, k.role, k.keyid[:16], status, "yes" if k.has_private else "no")
    console.print(t)


@keys_app.command("endorse")
def endorse(
    ctx: typer.Context,
    names: Annotated[list[str], typer.Argument(help="Keys to endorse, checked by hand first.")],
    json_out: JsonFlag = False,
) -> None:
    """Endorse keys added before endorsements existed, with the lab key.

    Check each key's id by hand first: a key minted by a write to the ledger also shows
    as 'unendorsed' in 'keys list'.
    """
    with open_lab(ctx) as lab:
        infos = lab.endorse_keys(names)
    if json_out:
        print_json([i.to_json() for i in infos])
    else:
        for info in infos:
            console.print(
                styled(
                    "endorsed key ",
                    ("bold", f"{info.name}"),
                    f" ({info.role}) id {info.keyid[:16]}",
                )
            )


@keys_app.command("revoke")
def revoke(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The key to revoke.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded in the ledger).")],
    json_out: JsonFlag = False,
) -> None:
    """Revoke a key: everything it signed stops verifying."""
    with open_lab(ctx) as lab:
        info = lab.revoke_key(name, reason)
    if json_out:
        print_json(info.to_json())
    else:
        console.print(styled("revoked key ", ("bold", f"{info.name}"), f": {reason}"))


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")

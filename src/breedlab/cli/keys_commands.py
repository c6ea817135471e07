"""``breedlab keys``: generate, list and revoke signing keys."""

from __future__ import annotations

from typing import Annotated

import typer

from breedlab.cli.shell import (
    JsonFlag,
    ReasonOpt,
    open_lab,
    render,
    styled,
    table,
)

__all__ = ["register"]

keys_app = typer.Typer(
    help="Ed25519 signing keys: generate, list, endorse, revoke.", no_args_is_help=True
)


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
    render(
        json_out,
        info.to_json(),
        styled("generated key ", ("bold", f"{info.name}"), f" ({info.role}) id {info.keyid[:16]}"),
    )


@keys_app.command("list")
def list_keys(ctx: typer.Context, json_out: JsonFlag = False) -> None:
    """List the lab's keys with their roles and status."""
    with open_lab(ctx, read_only=True) as lab:
        keys = lab.keys()
    t = table("name", "role", "key id", "status", "private key")
    for k in keys:
        status = k.status if k.revoked_reason is None else f"revoked: {k.revoked_reason}"
        t.add_row(k.name, k.role, k.keyid[:16], status, "yes" if k.has_private else "no")
    render(json_out, [k.to_json() for k in keys], t)


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
    render(
        json_out,
        [i.to_json() for i in infos],
        *(
            styled("endorsed key ", ("bold", f"{i.name}"), f" ({i.role}) id {i.keyid[:16]}")
            for i in infos
        ),
    )


@keys_app.command("revoke")
def revoke(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The key to revoke.")],
    reason: ReasonOpt,
    json_out: JsonFlag = False,
) -> None:
    """Revoke a key: everything it signed stops verifying."""
    with open_lab(ctx) as lab:
        info = lab.revoke_key(name, reason)
    render(
        json_out, info.to_json(), styled("revoked key ", ("bold", f"{info.name}"), f": {reason}")
    )


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")

"""Aliases (DESIGN §5; STYLE rule 10: names move, versions do not): the one alias move.

Every move of ``capability@alias`` -- ``set_alias``, a promotion, a rollback, a round's
winner, the digits bootstrap -- is one ``alias.moved`` event built by :func:`append_move`
(its projection is the compare-and-swap). Owns the checks before a move by hand
(:func:`set_alias`) and reading aliases back. Leaves the release controls of
``champion`` and ``previous`` to ``breedlab.lab.release``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from breedlab.canonical import JsonValue
from breedlab.digest import Digest
from breedlab.errors import Conflict, InvalidRequest, PolicyError
from breedlab.ledger import Event
from breedlab.ledger.kinds import EventKind
from breedlab.registry.manifest import Kind
from breedlab.signing.keys import KeyPair
from breedlab.supply.keys import lab_signer, signer
from breedlab.supply.packages import check_registered_model, manifest, require_intact, resolve_in
from breedlab.supply.service import Supply
from breedlab.supply.values import AliasMove

if TYPE_CHECKING:
    from breedlab.ledger.engine import Txn

__all__ = [
    "CHAMPION_ALIASES",
    "RELEASE_ALIASES",
    "alias",
    "alias_history",
    "alias_move",
    "append_move",
    "point",
    "set_alias",
]

_ALIAS = re.compile(r"[a-z][a-z0-9_-]{0,63}")
#: Aliases with a release meaning: their targets must be models of the capability.
RELEASE_ALIASES = ("champion", "previous", "shadow", "canary")
#: Moved only by promotion and rollback (DESIGN §13).
CHAMPION_ALIASES = ("champion", "previous")
#: The roles that move an alias of a release stage by hand.
_STAGE_ROLES = {"shadow": ("production", "factory"), "canary": ("production",)}


def set_alias(
    supply: Supply,
    capability: str,
    alias: str,
    ref: str,
    *,
    expect: str | None = None,
    reason: str = "",
    key: str | None = None,
) -> AliasMove:
    """Move ``capability@alias`` to a package by compare-and-swap (DESIGN §5).

    ``expect`` is the package the alias must point at now (``None``: must be unset).
    The move is signed by ``key`` (default: the lab key); ``shadow`` and ``canary``
    take a production key (or the factory's, for the controller's recommendation).
    ``champion`` and ``previous`` never move here: only a promotion and a rollback move
    them, with every release control.

    Raises:
        Conflict: the alias does not point at ``expect`` (someone moved it).
        PolicyError: the package may not take this alias, or the key may not move it.
    """
    if not _ALIAS.fullmatch(alias):
        raise InvalidRequest(f"bad alias name {alias!r}: lowercase letters, digits, '_', '-'")
    if alias in CHAMPION_ALIASES:
        hint = "breedlab rollback" if alias == "previous" else f"breedlab promote {capability}"
        raise PolicyError(
            f"{capability}@{alias} moves only by promotion or rollback, with every release "
            f"control; use '{hint}'"
        )
    with supply.ledger.reader() as r:
        pid = resolve_in(r, ref)
        expected = None if expect is None else str(resolve_in(r, expect))
        by, role = signer(supply, key, r) if key else (lab_signer(supply, r), "lab")
        if alias in _STAGE_ROLES and role not in _STAGE_ROLES[alias]:
            raise PolicyError(
                f"{capability}@{alias} is moved by a production key (--key NAME); "
                f"{key or supply.config.checkpoint_key!r} has role '{role}'"
            )
        found = manifest(supply, pid)
        if found.capability != capability:
            raise PolicyError(
                f"package {pid.short} belongs to capability {found.capability!r}, "
                f"not {capability!r}"
            )
        if alias in RELEASE_ALIASES and found.kind is not Kind.MODEL:
            raise PolicyError(f"alias {alias!r} takes models, and {pid.short} is a {found.kind}")
        require_intact(supply, r, pid)
        current = r.alias(capability, alias)
    if current != expected:  # a stale read, told apart from a lost race (the CAS below)
        now = Digest.parse(current).short if current else "nothing"
        raise Conflict(
            f"{capability}@{alias} points at {now}, not "
            f"{Digest.parse(expected).short if expected else 'nothing'}",
            hint=f"to move it from {now}, pass --expect {current}"
            if current
            else "it is unset: omit --expect",
        )
    check_registered_model(supply, pid)
    with supply.ledger.transaction() as tx:
        return alias_move(
            append_move(supply, tx, capability, alias, pid, expected, reason, signer=by)
        )


def point(
    supply: Supply,
    capability: str,
    name: str,
    pid: Digest,
    *,
    reason: str,
    key: str | None = None,
) -> None:
    """:func:`set_alias` from wherever the alias points now, unless it points at ``pid``
    already (signed by ``key``, default the lab key)."""
    current = alias(supply, capability, name)
    if current != pid:
        set_alias(
            supply,
            capability,
            name,
            str(pid),
            expect=None if current is None else str(current),
            reason=reason,
            key=key,
        )


def append_move(
    supply: Supply,
    tx: Txn,
    capability: str,
    name: str,
    pid: Digest,
    expected: str | None,
    reason: str,
    *,
    signer: KeyPair,
    via: str | None = None,
) -> Event:
    """Append one ``alias.moved`` in ``tx`` (its projection is the compare-and-swap on
    ``expected``). ``via`` names the release verb that moved it.

    Raises:
        PolicyError: ``pid`` was revoked.
    """
    if tx.revocation(str(pid)) is not None:
        raise PolicyError(f"package {pid.short} was revoked")
    payload: dict[str, JsonValue] = {
        "capability": capability,
        "alias": name,
        "old": expected,
        "new": str(pid),
        "reason": reason,
    }
    if via is not None:
        payload["via"] = via
    return tx.append(EventKind.ALIAS_MOVED, capability, payload, signer=signer, actor=supply.actor)


def alias(supply: Supply, capability: str, name: str) -> Digest | None:
    with supply.ledger.reader() as r:
        target = r.alias(capability, name)
    return None if target is None else Digest.parse(target)


def alias_history(supply: Supply, capability: str) -> list[AliasMove]:
    with supply.ledger.reader() as r:
        return [alias_move(e) for e in r.events(kinds=(EventKind.ALIAS_MOVED,), subject=capability)]


def alias_move(ev: Event) -> AliasMove:
    """An ``alias.moved`` event as a value."""
    p = ev.payload
    return AliasMove(
        seq=ev.seq,
        at=ev.at,
        actor=ev.actor,
        capability=str(p["capability"]),
        alias=str(p["alias"]),
        old=None if p["old"] is None else str(p["old"]),
        new=str(p["new"]),
        reason=str(p.get("reason", "")),
    )

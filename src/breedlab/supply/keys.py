"""Keys: generate, add, endorse and revoke the lab's signing keys, and load the signer a
verb needs (a trusted, endorsed, unrevoked key of a role allowed to make that change).

Owns the ``key.*`` events and the lab key's endorsements. Leaves the rules of who may
sign what to ``breedlab.authority`` and the key files to ``breedlab.signing.keys``.
"""

from __future__ import annotations

from collections.abc import Sequence

from breedlab.authority import RULES, may
from breedlab.digest import Digest
from breedlab.errors import Conflict, LabError, NotFound, PolicyError
from breedlab.ledger import KeyRecord, Reader
from breedlab.ledger.kinds import EventKind
from breedlab.signing import dsse
from breedlab.signing.keys import KeyPair, Role, check_key_name, load_keypair
from breedlab.supply.service import Supply, require_reason
from breedlab.supply.values import KeyInfo
from breedlab.supply.verification import KEY_PAYLOAD_TYPE, key_endorsements, key_statement

__all__ = [
    "acting",
    "add_key",
    "endorse_keys",
    "endorser",
    "factory_signer",
    "generate_key",
    "key",
    "keys",
    "lab_signer",
    "release_signer",
    "revoke_key",
    "signer",
]


def generate_key(supply: Supply, name: str, role: Role | str) -> KeyInfo:
    """Generate an Ed25519 key, store it (private 0600) and trust it in the ledger.

    Raises:
        Conflict: a key with that name exists.
    """
    role = Role.parse(role) if isinstance(role, str) else role
    check_key_name(name)
    return add_key(supply, KeyPair.generate(name), role)


def add_key(supply: Supply, keypair: KeyPair, role: Role) -> KeyInfo:
    """Save ``keypair`` and trust it: a ``key.added`` event, endorsed and signed by the
    lab key (the lab's first key signs its own)."""
    name = keypair.name
    with supply.ledger.reader() as r:
        if r.key(name) is not None:
            raise Conflict(f"key {name!r} is registered already")
        first = not r.all_keys()
        by = keypair if first else endorser(supply, r)
    if first and role is not Role.LAB:
        raise PolicyError("a lab's first key has role 'lab': it endorses every later key")
    envelope = _endorsement(supply, keypair.keyid, keypair.public_raw.hex(), name, role.value, by)
    private, public = keypair.save(supply.config.keys_dir)
    try:
        supply.ledger.append(
            EventKind.KEY_ADDED,
            name,
            {
                "name": name,
                "role": role.value,
                "keyid": keypair.keyid,
                "public_key": keypair.public_raw.hex(),
                "endorsement": str(envelope),
                "endorser": by.keyid,
            },
            signer=by,
            actor=supply.actor,
        )
    except LabError:
        private.unlink(missing_ok=True)
        public.unlink(missing_ok=True)
        raise
    return key(supply, name)


def key(supply: Supply, name: str) -> KeyInfo:
    with supply.ledger.reader() as r:
        row = r.key(name)
        endorsed = _endorsed(supply, r)
    if row is None:
        raise NotFound(f"no key named {name!r}; see 'breedlab keys list'")
    return _key_info(supply, row, endorsed)


def keys(supply: Supply) -> list[KeyInfo]:
    with supply.ledger.reader() as r:
        endorsed = _endorsed(supply, r)
        return [_key_info(supply, row, endorsed) for row in r.all_keys()]


def _endorsed(supply: Supply, r: Reader) -> set[str]:
    found, _ = key_endorsements(supply.blobs, r)
    return {k.keyid for k in found.values() if k.endorsed_seq is not None}


def _key_info(supply: Supply, row: KeyRecord, endorsed: set[str]) -> KeyInfo:
    return KeyInfo(
        endorsed=row.keyid in endorsed,
        name=row.name,
        role=row.role,
        keyid=row.keyid,
        added_seq=row.added_seq,
        revoked_seq=row.revoked_seq,
        revoked_reason=row.revoked_reason,
        has_private=(supply.config.keys_dir / f"{row.name}.key").exists(),
    )


def revoke_key(supply: Supply, name: str, reason: str) -> KeyInfo:
    """Revoke a key: from now on nothing it signed verifies.

    Raises:
        NotFound, Conflict (revoked already), InvalidRequest (empty reason).
    """
    require_reason(reason)
    info = key(supply, name)
    if info.revoked_seq is not None:
        raise Conflict(f"key {name!r} was revoked already (seq {info.revoked_seq})")
    with supply.ledger.reader() as r:
        lab_key = endorser(supply, r)
    supply.ledger.append(
        EventKind.KEY_REVOKED,
        name,
        {"name": name, "keyid": info.keyid, "reason": reason},
        signer=lab_key,
        actor=supply.actor,
    )
    return key(supply, name)


def endorser(supply: Supply, r: Reader) -> KeyPair:
    """The lab key that endorses new keys (``[signing] checkpoint_key``)."""
    name = supply.config.checkpoint_key
    try:
        keypair, role = signer(supply, name, r)
    except NotFound:
        raise PolicyError(
            f"adding a trusted key needs the lab key {name!r} to endorse it, and its "
            "private key is not in this lab's keys folder"
        ) from None
    if role != Role.LAB.value:
        raise PolicyError(f"key {name!r} has role '{role}'; only a 'lab' key endorses keys")
    return keypair


def _endorsement(
    supply: Supply, keyid: str, public_hex: str, name: str, role: str, by: KeyPair
) -> Digest:
    statement = key_statement(name=name, role=role, keyid=keyid, public_key=public_hex)
    return supply.blobs.put_bytes(dsse.sign(KEY_PAYLOAD_TYPE, statement, by).to_bytes())


def endorse_keys(supply: Supply, names: Sequence[str]) -> list[KeyInfo]:
    """Endorse keys that have no endorsement (added before endorsements existed) with the
    lab key, after checking each by hand: a key minted by a write to the ledger looks
    the same. The lab's first key endorses itself.

    Raises:
        NotFound: no such key. Conflict: endorsed already. PolicyError: revoked, or the
            lab key is not at hand.
    """
    done = []
    for name in names:
        with supply.ledger.reader() as r:
            row = r.key(name)
            if row is None:
                raise NotFound(f"no key named {name!r}")
            if row.revoked_seq is not None:
                raise PolicyError(f"key {name!r} is revoked; endorse a new key instead")
            found, _ = key_endorsements(supply.blobs, r)
            state = found[str(row.keyid)]
            if state.endorsed_seq is not None:
                raise Conflict(f"key {name!r} is endorsed already (seq {state.endorsed_seq})")
            first = next(iter(found)) == state.keyid
            by = load_keypair(supply.config.keys_dir, name) if first else endorser(supply, r)
        envelope = _endorsement(supply, state.keyid, state.public_key, name, state.role, by)
        supply.ledger.append(
            EventKind.KEY_ENDORSED,
            name,
            {
                "name": name,
                "keyid": state.keyid,
                "endorsement": str(envelope),
                "endorser": by.keyid,
            },
            signer=by,
            actor=supply.actor,
        )
        done.append(key(supply, name))
    return done


def signer(supply: Supply, name: str, r: Reader) -> tuple[KeyPair, str]:
    """Load a private key and check the lab trusts it; returns ``(keypair, role)``.

    Raises:
        NotFound: no such private key. PolicyError: untrusted, unendorsed or revoked.
    """
    keypair = load_keypair(supply.config.keys_dir, name)
    row = r.key_by_id(keypair.keyid)
    if row is None:
        raise PolicyError(f"key {name!r} is not trusted by this lab (not in its ledger)")
    if row.revoked_seq is not None:
        raise PolicyError(f"key {name!r} was revoked: {row.revoked_reason}")
    if str(row.keyid) not in _endorsed(supply, r):
        raise PolicyError(
            f"key {name!r} is not endorsed by the lab key; check it, then "
            f"'breedlab keys endorse {name}'"
        )
    return keypair, str(row.role)


def acting(supply: Supply, name: str, r: Reader, kind: str) -> KeyPair:
    """A trusted key that the authority table lets sign ``kind`` events, loaded."""
    keypair, role = signer(supply, name, r)
    if not may(Role(role), kind):
        allowed = ", ".join(sorted(x.value for x in RULES[kind].roles)) if kind in RULES else "-"
        raise PolicyError(f"key {name!r} has role '{role}'; {kind} needs a key of role {allowed}")
    return keypair


def factory_signer(supply: Supply) -> KeyPair:
    """The lab's automation key (``[signing] factory_key``, role ``factory``): it signs
    what operators make and what rounds and the serving controller record.

    Raises:
        PolicyError: the key is missing, untrusted, or not of role ``factory``.
    """
    name = supply.config.factory_key
    with supply.ledger.reader() as r:
        try:
            return acting(supply, name, r, EventKind.CANDIDATE_GENERATED)
        except NotFound:
            raise PolicyError(
                f"the lab's factory key {name!r} is not in {supply.config.keys_dir} (a lab "
                "from before signed events: run 'breedlab ledger sign-history')"
            ) from None


def release_signer(supply: Supply, key: str | None, kind: str = EventKind.PROMOTED) -> KeyPair:
    """The ``production`` key that signs a release action: ``key``, else
    ``[signing] release_key``.

    Raises:
        PolicyError: none named, or the key may not make ``kind`` changes.
        NotFound: no such private key in this lab.
    """
    name = key or supply.config.release_key
    if not name:
        raise PolicyError(
            "a release action is signed by a 'production' key: pass --key NAME, or set "
            "[signing] release_key in breedlab.toml"
        )
    with supply.ledger.reader() as r:
        return acting(supply, name, r, kind)


def lab_signer(supply: Supply, r: Reader) -> KeyPair:
    """The lab key, for the registry's own records when no key is named."""
    return endorser(supply, r)

"""Witness files: a signed tree head kept outside the lab, and the proof that the ledger
only grew since (DESIGN §13; RFC 9162 §2.1.4 consistency proofs).

``breedlab ledger witness export FILE`` writes the latest checkpoint -- the lab key's
DSSE signature over ``(lab, tree_size, root)`` -- with the lab key's public key, as
canonical JSON. Whoever keeps that file (another team, another machine, a ticket) can
later run ``breedlab ledger verify --witness FILE``: the ledger must still start with
that lab key, hold at least ``tree_size`` events, and its current tree must be a
consistent extension of the witnessed one. That catches what a chain alone cannot:
a cut tail (with its checkpoints), and a ledger rebuilt from scratch under a new lab key.

What a witness cannot catch: changes after the witnessed size that are themselves
validly signed (whoever holds the lab's keys can append), and a rollback to a state
*before* the witness was taken if the witness file itself is swapped -- keep it where
the lab's operators cannot write.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from breedlab import canonical
from breedlab.canonical import JsonValue
from breedlab.errors import ChainBroken, IntegrityError, InvalidRequest, LabError
from breedlab.ledger.merkle import consistency_proof, root, verify_consistency
from breedlab.signing import dsse
from breedlab.signing.keys import key_id, public_key_from_raw

__all__ = ["WITNESS_SCHEMA", "Witness", "check_witness"]

WITNESS_SCHEMA = "breedlab.witness/v1"


@dataclass(frozen=True, slots=True, kw_only=True)
class Witness:
    """A signed tree head of one lab's ledger, as exported."""

    lab: str
    lab_key_id: str
    lab_public_key: str  # hex of the raw Ed25519 key
    tree_size: int
    root: str  # hex
    checkpoint_seq: int
    envelope: bytes  # the checkpoint's DSSE envelope, as stored

    def to_bytes(self) -> bytes:
        return canonical.encode(
            {
                "schema": WITNESS_SCHEMA,
                "lab": self.lab,
                "lab_key_id": self.lab_key_id,
                "lab_public_key": self.lab_public_key,
                "tree_size": self.tree_size,
                "root": self.root,
                "checkpoint_seq": self.checkpoint_seq,
                "envelope": base64.b64encode(self.envelope).decode("ascii"),
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> Witness:
        """Parse a witness file and check its own signature.

        Raises:
            InvalidRequest: not a witness file. IntegrityError: its signature does not
                verify, or its fields disagree with what the lab key signed.
        """
        try:
            obj = canonical.decode(data)
            if obj.get("schema") != WITNESS_SCHEMA:
                raise InvalidRequest(f"{where} is not a breedlab witness file")
            w = cls(
                lab=str(obj["lab"]),
                lab_key_id=str(obj["lab_key_id"]),
                lab_public_key=str(obj["lab_public_key"]),
                tree_size=int(str(obj["tree_size"])),
                root=str(obj["root"]),
                checkpoint_seq=int(str(obj["checkpoint_seq"])),
                envelope=base64.b64decode(str(obj["envelope"]), validate=True),
            )
        except (KeyError, ValueError, binascii.Error) as e:
            raise InvalidRequest(f"{where} is not a breedlab witness file: {e}") from e
        except IntegrityError as e:
            raise InvalidRequest(f"{where} is not a breedlab witness file: {e.message}") from e
        public = public_key_from_raw(bytes.fromhex(w.lab_public_key))
        if key_id(public) != w.lab_key_id:
            raise IntegrityError(f"{where}: its lab key id does not match its public key")
        try:
            envelope = dsse.Envelope.from_bytes(w.envelope)
            dsse.verify(envelope, {w.lab_key_id: public})
            signed = canonical.decode(envelope.payload)
        except LabError as e:
            raise IntegrityError(
                f"{where}: the signed tree head does not verify: {e.message}"
            ) from e
        if signed.get("tree_size") != w.tree_size or signed.get("root") != w.root:
            raise IntegrityError(f"{where}: its tree size or root differ from what was signed")
        return w


def check_witness(
    w: Witness,
    leaves: Sequence[bytes],
    first_key: str | None,
    checkpoint: Mapping[str, JsonValue] | None,
) -> dict[str, JsonValue]:
    """Prove the ledger (``leaves``: every event hash, in order) is a consistent extension
    of the witnessed tree and still records the witnessed checkpoint (``checkpoint``: the
    payload of its ``checkpoint.signed`` event at ``w.checkpoint_seq``, None if there is
    none there); returns what was proved (sizes, roots, the proof).

    Raises:
        ChainBroken: another lab key, a cut tail, a dropped checkpoint, or a history
            that differs.
    """
    if first_key != w.lab_key_id:
        raise ChainBroken(
            f"the ledger's first key is {(first_key or 'missing')[:16]}, but the witness saw "
            f"lab key {w.lab_key_id[:16]}: the ledger was rebuilt under another key"
        )
    size = len(leaves)
    if size < w.checkpoint_seq:
        raise ChainBroken(
            f"the ledger holds {size} events, but the witness saw {w.tree_size} and their "
            f"checkpoint at seq {w.checkpoint_seq}: events were cut from its tail"
        )
    if checkpoint is None or (checkpoint.get("tree_size"), checkpoint.get("root")) != (
        w.tree_size,
        w.root,
    ):
        raise ChainBroken(
            f"ledger seq {w.checkpoint_seq} is not the checkpoint the witness holds "
            f"({w.tree_size} events, root {w.root[:16]}): it was dropped or replaced"
        )
    now = root(leaves)
    proof = consistency_proof(leaves, w.tree_size)
    if not verify_consistency(w.tree_size, size, bytes.fromhex(w.root), now, proof):
        raise ChainBroken(
            f"the ledger's first {w.tree_size} events are not the ones the witness saw "
            "(edited, reordered or rebuilt): no consistency proof from its tree head"
        )
    return {
        "witness_size": w.tree_size,
        "witness_root": w.root,
        "size": size,
        "root": now.hex(),
        "proof": [h.hex() for h in proof],
    }

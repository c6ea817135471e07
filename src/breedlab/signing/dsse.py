"""DSSE (Dead Simple Signing Envelope) v1 with Ed25519.

Spec: https://github.com/secure-systems-lab/dsse/blob/master/protocol.md. A signature
covers ``PAE(payloadType, payload)`` -- the exact payload bytes, never a re-serialisation.
Envelopes are stored as canonical JSON (``payload`` and ``sig`` base64, standard alphabet).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from breedlab import canonical
from breedlab.errors import IntegrityError, SignatureInvalid
from breedlab.signing.keys import KeyPair, verify_raw

__all__ = ["Envelope", "Signature", "pae", "sign", "verify"]


def pae(payload_type: str, payload: bytes) -> bytes:
    """Pre-Authentication Encoding: ``DSSEv1 SP LEN(type) SP type SP LEN(body) SP body``."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


@dataclass(frozen=True, slots=True, kw_only=True)
class Signature:
    keyid: str
    sig: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Envelope:
    payload_type: str
    payload: bytes
    signatures: tuple[Signature, ...]

    def to_bytes(self) -> bytes:
        """Canonical JSON of the envelope (what is stored and hashed)."""
        return canonical.encode(
            {
                "payload": base64.b64encode(self.payload).decode("ascii"),
                "payloadType": self.payload_type,
                "signatures": [
                    {"keyid": s.keyid, "sig": base64.b64encode(s.sig).decode("ascii")}
                    for s in self.signatures
                ],
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Envelope:
        """Parse stored envelope bytes.

        Raises:
            IntegrityError: not a well-formed canonical DSSE envelope.
        """
        obj = canonical.decode(data)
        try:
            signatures = tuple(
                Signature(keyid=str(s["keyid"]), sig=base64.b64decode(s["sig"], validate=True))
                for s in obj["signatures"]
            )
            return cls(
                payload_type=str(obj["payloadType"]),
                payload=base64.b64decode(obj["payload"], validate=True),
                signatures=signatures,
            )
        except (KeyError, TypeError, binascii.Error) as e:
            raise IntegrityError(f"malformed DSSE envelope: {e}") from e


def sign(payload_type: str, payload: bytes, *signers: KeyPair) -> Envelope:
    """Sign ``payload`` with every signer (at least one)."""
    if not signers:
        raise ValueError("sign() needs at least one key")
    message = pae(payload_type, payload)
    return Envelope(
        payload_type=payload_type,
        payload=payload,
        signatures=tuple(Signature(keyid=k.keyid, sig=k.sign(message)) for k in signers),
    )


def verify(envelope: Envelope, trusted: Mapping[str, Ed25519PublicKey]) -> tuple[str, ...]:
    """Return the key ids of ``trusted`` keys whose signatures on ``envelope`` verify.

    Fails closed: a signature by a key not in ``trusted`` is not counted, and an envelope
    with no valid trusted signature raises.

    Raises:
        SignatureInvalid: no signature by a trusted key verifies.
    """
    message = pae(envelope.payload_type, envelope.payload)
    good = tuple(
        s.keyid
        for s in envelope.signatures
        if s.keyid in trusted and verify_raw(trusted[s.keyid], s.sig, message)
    )
    if not good:
        names = ", ".join(s.keyid[:12] for s in envelope.signatures) or "none"
        raise SignatureInvalid(
            f"no valid signature by a trusted, unrevoked key (signed by: {names})"
        )
    return good

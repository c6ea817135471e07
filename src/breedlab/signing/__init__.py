"""Signing: Ed25519 keys, DSSE envelopes and in-toto / SLSA statements.

- ``keys``: generate, store (private 0600), load keys; key ids; roles.
- ``dsse``: Dead Simple Signing Envelopes (PAE, sign, verify) over stored bytes.
- ``statements``: in-toto Statement v1 payloads (package signatures, approvals) and the
  SLSA Provenance v1 predicate recorded for every package.

Trust (which keys count, and which are revoked) is decided by the caller from the
ledger; this package only does the cryptography and the formats.
"""

from __future__ import annotations

from breedlab.signing.dsse import Envelope, Signature, pae, sign, verify
from breedlab.signing.keys import KeyPair, Role, load_keypair, public_key_from_raw
from breedlab.signing.statements import (
    APPROVAL_PREDICATE,
    INTOTO_PAYLOAD_TYPE,
    SIGNATURE_PREDICATE,
    SLSA_PREDICATE,
    Statement,
    Subject,
    provenance_predicate,
)

__all__ = [
    "APPROVAL_PREDICATE",
    "INTOTO_PAYLOAD_TYPE",
    "SIGNATURE_PREDICATE",
    "SLSA_PREDICATE",
    "Envelope",
    "KeyPair",
    "Role",
    "Signature",
    "Statement",
    "Subject",
    "load_keypair",
    "pae",
    "provenance_predicate",
    "public_key_from_raw",
    "sign",
    "verify",
]

"""Ed25519 keys: generation, storage with safe permissions, key ids and roles.

A key's id is the SHA-256 of its raw 32-byte public key (hex), so the id names the key
material itself, not a label. Private keys are PKCS#8 PEM files created with mode 0600
(``O_EXCL``: an existing key file is never overwritten). Whether a key is trusted or
revoked is the ledger's business, not this module's.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from breedlab.choices import Choice
from breedlab.errors import Conflict, IntegrityError, InvalidRequest, NotFound

__all__ = ["KeyPair", "Role", "key_id", "load_keypair", "public_key_from_raw", "verify_raw"]

_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")


class Role(Choice):
    """Who a key speaks for (seed, stage 0: named owners for model, evaluation, security,
    production); ``lab`` endorses keys and signs the ledger's checkpoints; ``factory`` is
    the lab's own automation: it signs what operators make and what the challenger loop
    and the serving controller record. What each role may do is
    :mod:`breedlab.authority`'s table."""

    MODEL = "model"
    EVALUATION = "evaluation"
    SECURITY = "security"
    PRODUCTION = "production"
    LAB = "lab"
    FACTORY = "factory"


def check_key_name(name: str) -> str:
    """Key names are file names: lowercase letters, digits, ``_ . -``; at most 64."""
    if not _NAME.fullmatch(name):
        raise InvalidRequest(
            f"bad key name {name!r}: use lowercase letters, digits, '_', '.', '-' (max 64)"
        )
    return name


def raw_public(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public: Ed25519PublicKey) -> str:
    """SHA-256 hex of the raw public key."""
    return hashlib.sha256(raw_public(public)).hexdigest()


def public_key_from_raw(raw: bytes) -> Ed25519PublicKey:
    """Load a raw 32-byte Ed25519 public key.

    Raises:
        IntegrityError: not a valid Ed25519 public key.
    """
    try:
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as e:
        raise IntegrityError(f"not an Ed25519 public key: {e}") from e


def verify_raw(public: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    """True if ``signature`` is a valid Ed25519 signature of ``message``."""
    try:
        public.verify(signature, message)
    except InvalidSignature:
        return False
    return True


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyPair:
    """A named signing key. Only the holder of the private key file can build one."""

    name: str
    private: Ed25519PrivateKey
    # Derived once: every ledger event names its signer's key id.
    public: Ed25519PublicKey = field(init=False, repr=False, compare=False)
    keyid: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        public = self.private.public_key()
        object.__setattr__(self, "public", public)
        object.__setattr__(self, "keyid", key_id(public))

    @property
    def public_raw(self) -> bytes:
        return raw_public(self.public)

    def sign(self, message: bytes) -> bytes:
        return self.private.sign(message)

    @classmethod
    def generate(cls, name: str) -> KeyPair:
        return cls(name=check_key_name(name), private=Ed25519PrivateKey.generate())

    def save(self, directory: Path) -> tuple[Path, Path]:
        """Write ``<name>.key`` (0600, never overwritten) and ``<name>.pub``.

        Raises:
            Conflict: a key file with that name exists already.
        """
        directory.mkdir(parents=True, exist_ok=True)
        private_path = directory / f"{self.name}.key"
        public_path = directory / f"{self.name}.pub"
        pem = self.private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        try:
            fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise Conflict(f"key {self.name!r} exists already at {private_path}") from None
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        public_pem = self.public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        public_path.write_bytes(public_pem)
        return private_path, public_path


def load_keypair(directory: Path, name: str) -> KeyPair:
    """Load the private key ``<directory>/<name>.key``.

    Raises:
        NotFound: no such key file.
        PolicyError-free: permissions looser than 0600 are refused as InvalidRequest.
    """
    check_key_name(name)
    path = directory / f"{name}.key"
    try:
        mode = path.stat().st_mode & 0o777
        data = path.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"no private key {name!r} in {directory}") from None
    if mode & 0o077:
        raise InvalidRequest(f"private key {path} is readable by others (mode {mode:o}); chmod 600")
    try:
        private = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        raise IntegrityError(f"private key {path} is unreadable: {e}") from e
    if not isinstance(private, Ed25519PrivateKey):
        raise IntegrityError(f"private key {path} is not Ed25519")
    return KeyPair(name=name, private=private)

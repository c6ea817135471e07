"""The one exception tree of breedlab.

Every error breedlab raises on purpose derives from :class:`LabError` and carries a
stable ``code`` (for ``--json`` output and HTTP bodies); the CLI maps each family to
one exit code (``breedlab.cli.shell.EXIT_CODES``). Causes are kept apart::

    LabError                      1  unexpected (a bug, or an environment failure)
    ├── InvalidRequest            3  the request is wrong: bad flag, field, file or value
    │   └── ConfigError              the lab's configuration is wrong
    ├── NotFound                  4  no such package, key, alias, capability or event
    ├── IntegrityError            5  data is not what it claims to be
    │   ├── DigestMismatch           bytes do not hash to their recorded digest
    │   ├── SignatureInvalid         a signature does not verify
    │   ├── ChainBroken              the ledger's hash chain, a checkpoint or a witness breaks
    │   └── UnauthorizedChange       a ledger event unsigned, or signed by a key not allowed
    ├── PolicyError               6  a rule said no (untrusted key, revoked, unapproved)
    ├── Conflict                  7  a concurrent change won (alias compare-and-swap lost)
    ├── Unavailable               8  not servable now (a capability's models failed to load)
    └── Interrupted             130  SIGINT or SIGTERM stopped a long command at a safe point

Exit code 2 is left to the CLI library for usage errors; 130 is the shell's 128 + SIGINT.
Foreign exceptions are wrapped at the seam where they enter (``raise InvalidRequest(...)
from e``).
"""

from __future__ import annotations

__all__ = [
    "ChainBroken",
    "ConfigError",
    "Conflict",
    "DigestMismatch",
    "IntegrityError",
    "Interrupted",
    "InvalidRequest",
    "LabError",
    "NotFound",
    "PolicyError",
    "SignatureInvalid",
    "UnauthorizedChange",
    "Unavailable",
    "one_line",
]


class LabError(Exception):
    """Root of every error breedlab raises on purpose.

    ``hint`` says what to do next when the message alone does not (a command to run, a
    flag to pass); the CLI prints it on its own line and ``--json`` carries it.
    """

    code = "lab_error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class InvalidRequest(LabError):
    """The request is wrong: a bad flag, field, file or value. Fix the input and retry."""

    code = "invalid_request"


class ConfigError(InvalidRequest):
    """The lab's configuration (``breedlab.toml``) is missing or wrong."""

    code = "config_error"


class NotFound(LabError):
    """No such package, key, alias, capability, decision or event."""

    code = "not_found"


class IntegrityError(LabError):
    """Stored data is not what it claims to be: never retry, investigate."""

    code = "integrity_error"


class DigestMismatch(IntegrityError):
    """Bytes do not hash to the digest they were recorded under."""

    code = "digest_mismatch"


class SignatureInvalid(IntegrityError):
    """A DSSE signature does not verify against the key it names."""

    code = "signature_invalid"


class ChainBroken(IntegrityError):
    """The ledger's hash chain or one of its signed Merkle checkpoints does not verify."""

    code = "chain_broken"


class UnauthorizedChange(IntegrityError):
    """A recorded state change was not signed, or not by a key allowed to make it then
    (the authority table, replayed by verification)."""

    code = "unauthorized_change"


class PolicyError(LabError):
    """A rule said no: untrusted or revoked key, revoked or unapproved package, allowlist."""

    code = "policy_refused"


class Conflict(LabError):
    """A concurrent change won: an alias moved since you read it. Re-read and retry."""

    code = "conflict"


class Unavailable(LabError):
    """Not servable right now: a capability's models failed to verify or load (the
    server goes on serving the others). Retry after fixing what the message names."""

    code = "unavailable"


class Interrupted(LabError):
    """SIGINT or SIGTERM stopped a long command at its next safe point: running sandbox
    jobs were killed and nothing was recorded after the last whole step (the message
    names it). Run the command again."""

    code = "interrupted"


#: Every character str.splitlines() breaks at, written as its escape instead.
_LINE_BREAKS = {ord(c): repr(c)[1:-1] for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"}


def one_line(text: str) -> str:
    """``text`` on one line: an error message stays one line (in the CLI and in HTTP
    bodies) even when it quotes a user's text or a library's multi-line message."""
    return text.translate(_LINE_BREAKS)

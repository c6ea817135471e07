"""What serving needs from the layers around it, as Protocols (serving sits below ``lab``).

The registry service satisfies :class:`PackageSource` and :class:`Supplier` (as
:class:`breedlab.supply.view.RegistryView`): verify a package, read its
manifest and its capability's contract, materialise it; the ledger, blobs, clock and
config. The release controller (``breedlab.lab.release``) hands the router a
:class:`ReleaseRecorder` for the ledger writes serving asks for (a canary's stages,
abort and stop, sealed evidence), so serving never imports the lab.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from breedlab.canonical import JsonValue
from breedlab.clock import Clock
from breedlab.config import LabConfig
from breedlab.digest import Digest
from breedlab.ledger import Event, EventKind, Ledger
from breedlab.registry.blobs import BlobStore
from breedlab.registry.capability import Contract
from breedlab.registry.manifest import Manifest
from breedlab.serving.release_logs import EvidenceSink
from breedlab.supply.values import ProblemKind

__all__ = [
    "Materialiser",
    "PackageSource",
    "ReleaseRecorder",
    "Supplier",
    "Verification",
    "VerificationProblem",
]


class VerificationProblem(Protocol):
    """One problem a verification found: where, what, and of which kind (a revocation
    or an integrity problem)."""

    @property
    def where(self) -> str: ...

    @property
    def message(self) -> str: ...

    @property
    def kind(self) -> ProblemKind: ...


class Verification(Protocol):
    """The result of verifying one package."""

    @property
    def ok(self) -> bool: ...

    @property
    def problems(self) -> Sequence[VerificationProblem]: ...


class Materialiser(Protocol):
    """Lays a package's files out in a folder a model library can load."""

    def materialise(self, package: Digest, manifest: Manifest) -> Path: ...


class PackageSource(Protocol):
    """What loading a served model needs of the registry."""

    @property
    def workspace(self) -> Materialiser: ...

    def verify(self, refs: Iterable[str] = ...) -> Sequence[Verification]: ...

    def manifest(self, package: Digest) -> Manifest: ...

    def capability(self, name: str) -> tuple[object, Contract]: ...


class Supplier(PackageSource, Protocol):
    """What the router needs of the registry: packages, and the ledger it follows."""

    @property
    def config(self) -> LabConfig: ...

    @property
    def ledger(self) -> Ledger: ...

    @property
    def blobs(self) -> BlobStore: ...

    @property
    def clock(self) -> Clock: ...


class ReleaseRecorder(Protocol):
    """The ledger writes of a serving process, made by the release controller."""

    def evidence_log(self, capability: str, stream: str, seq: int) -> EvidenceSink:
        """The evidence log of the ``stream`` (shadow, canary) run started at ``seq``."""
        ...

    def record(self, kind: EventKind, capability: str, payload: Mapping[str, JsonValue]) -> Event:
        """Append a ``release.*`` event about ``capability``, signed by the factory key."""
        ...

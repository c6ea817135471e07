"""The registry as the layers above see it: :class:`RegistryView` puts a
:class:`Supply`'s parts and the verbs serving needs on one object. It is a
:class:`~breedlab.serving.supplier.Supplier` (serving sits above supply and below the lab,
and names what it needs as Protocols), and the base of :class:`breedlab.lab.Lab`."""

from __future__ import annotations

from collections.abc import Iterable

from breedlab.clock import Clock
from breedlab.config import LabConfig
from breedlab.digest import Digest
from breedlab.ledger import Ledger
from breedlab.registry.blobs import BlobStore
from breedlab.registry.capability import Contract
from breedlab.registry.manifest import Manifest
from breedlab.supply import audit, packages
from breedlab.supply.service import Supply
from breedlab.supply.values import PackageInfo, VerifyResult
from breedlab.supply.workspace import Workspace

__all__ = ["RegistryView"]


class RegistryView:
    """A :class:`Supply`'s config, clock, store, ledger and workspace, and the verbs
    that verify a package, read its manifest and its capability's contract."""

    def __init__(self, supply: Supply) -> None:
        self.supply = supply

    @property
    def config(self) -> LabConfig:
        return self.supply.config

    @property
    def clock(self) -> Clock:
        return self.supply.clock

    @property
    def blobs(self) -> BlobStore:
        return self.supply.blobs

    @property
    def ledger(self) -> Ledger:
        return self.supply.ledger

    @property
    def workspace(self) -> Workspace:
        return self.supply.workspace

    @property
    def actor(self) -> str:
        return self.supply.actor

    def verify(self, refs: Iterable[str] = ()) -> list[VerifyResult]:
        """:func:`breedlab.supply.audit.verify`: each package named (all if none)."""
        return audit.verify(self.supply, refs)

    def manifest(self, package: Digest) -> Manifest:
        """:func:`breedlab.supply.packages.manifest`: a registered package's manifest."""
        return packages.manifest(self.supply, package)

    def capability(self, name: str) -> tuple[PackageInfo, Contract]:
        """:func:`breedlab.supply.packages.capability`: a capability and its contract."""
        return packages.capability(self.supply, name)

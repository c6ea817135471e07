"""The Lab: breedlab's one library API (``from breedlab.lab import Lab``).

- ``core``: :class:`Lab` -- keys, capabilities, packages, verification, aliases,
  lineage, reconstruction; wires the registry, the ledger and signing from the config.
- ``verification``: the checks ``verify`` and ``ledger verify`` run.
- ``values``: the frozen results the Lab returns.
"""

from __future__ import annotations

from breedlab.lab.core import PURPOSES, Lab
from breedlab.lab.values import (
    AliasMove,
    ApprovalInfo,
    KeyInfo,
    LedgerReport,
    LineageGraph,
    PackageDetails,
    PackageInfo,
    Problem,
    Reconstruction,
    StoreReport,
    VerifyResult,
)

__all__ = [
    "PURPOSES",
    "AliasMove",
    "ApprovalInfo",
    "KeyInfo",
    "Lab",
    "LedgerReport",
    "LineageGraph",
    "PackageDetails",
    "PackageInfo",
    "Problem",
    "Reconstruction",
    "StoreReport",
    "VerifyResult",
]

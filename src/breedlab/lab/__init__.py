"""The Lab: breedlab's one library API (``from breedlab.lab import Lab``).

- ``core``: :class:`Lab` -- the facade: builds a :class:`~breedlab.supply.Supply` (the
  registry service: keys, packages, aliases, lineage, audit) from the config and joins
  it with the challenger loop and the release controls.
- ``breeding``, ``evaluation``, ``recipes``, ``failures``, ``builtin``, ``replay``: the
  challenger loop (seed, stage 2) and its replay; ``recipe_format``: the recipe files'
  schema and checks (recipes as data).
- ``reviews_bootstrap``: the built-in reviews capability's data step (its contract and
  four signed split packages; ``dataset reviews``).
- ``operator_runs``: plans run in the sandbox and their outputs stored (on the supply
  service alone: below the rest of ``lab/``).
- ``parents``: SELECT_APPROVED_PARENTS by the round's failure cluster (parent approvals
  scoped to cluster keys).
- ``release``, ``promotion``, ``release_reports``: the release controller (seed, stage
  3): shadow and canary; promotion and rollback; release records and exit criteria.
- ``migration``: copying a lab onto other backends.

The values the Lab returns are ``breedlab.supply.values``' (re-exported here).
"""

from __future__ import annotations

from breedlab.lab.core import PURPOSES, Lab
from breedlab.supply.values import (
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

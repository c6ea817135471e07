"""Source registry: immutable, content-addressed packages (seed, stage 1).

- ``blobs``: write-once blob stores (files; in-memory twin for tests).
- ``s3``: the same store on S3 or an S3-compatible server (scale-out; obstore).
- ``stores``: which of the two a lab's ``[store] url`` names.
- ``manifest``: the canonical manifest whose digest is a package id; kinds, classes, tiers.
- ``source``: safe listing of what an import reads (refuses traversal, pickles, empties).
- ``capability``: stage-0 capability contracts parsed from TOML.
- ``licenses``: SPDX license validation.
- ``cluster_keys``: the readable keys of failure clusters that parent approvals are
  scoped to.

Which packages exist, their aliases, signatures and approvals are recorded in the ledger;
the ``Lab`` joins the two.
"""

from __future__ import annotations

from breedlab.registry.blobs import BlobStore, FileBlobStore, MemoryBlobStore
from breedlab.registry.capability import Contract, parse_contract
from breedlab.registry.licenses import check_license
from breedlab.registry.manifest import DataClass, FileEntry, Kind, Manifest, RiskTier

__all__ = [
    "BlobStore",
    "Contract",
    "DataClass",
    "FileBlobStore",
    "FileEntry",
    "Kind",
    "Manifest",
    "MemoryBlobStore",
    "RiskTier",
    "check_license",
    "parse_contract",
]

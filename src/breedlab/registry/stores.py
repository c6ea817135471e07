"""Which blob store a lab's ``[store] url`` names: a folder, or S3 (the ``breedlab[s3]``
extra, imported only when named). Kept apart from both stores so neither imports the
other."""

from __future__ import annotations

from pathlib import Path

from breedlab.errors import InvalidRequest
from breedlab.registry.blobs import BlobStore, FileBlobStore

__all__ = ["open_blob_store"]


def open_blob_store(url: str, root: Path, *, endpoint: str = "", region: str = "") -> BlobStore:
    """The store named by a lab's ``[store] url``: ``s3://bucket/prefix`` (the
    ``breedlab[s3]`` extra), else a folder (relative to ``root``)."""
    if url.startswith("s3://"):
        from breedlab.registry.s3 import S3BlobStore

        return S3BlobStore(url, endpoint=endpoint, region=region)
    if "://" in url:
        raise InvalidRequest(f"store url {url!r}: only a folder or s3://bucket/prefix")
    return FileBlobStore((root / url).resolve())

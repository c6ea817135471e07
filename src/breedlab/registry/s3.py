"""The content-addressed store on S3 (or any S3-compatible server), through obstore.

Same addressing as :class:`~breedlab.registry.blobs.FileBlobStore`: a blob lives at
``<prefix>/sha256/ab/<hex>``. A write spools the stream to a local temporary file while
hashing it (the key is the digest, so it is known only at the end), then publishes it
with one conditional PUT (``If-None-Match: *``, obstore ``mode="create"``): an existing
object is never replaced, and "already exists" means "identical content is stored". A
single PUT is atomic -- a crashed writer leaves no object. Single PUTs cap a blob at
5 GiB on AWS, far above any package file the lab stores today.

Every read hashes what it read. Credentials come from the environment
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``), never from the
lab's config. obstore is imported lazily (the ``breedlab[s3]`` extra).
"""

from __future__ import annotations

import hashlib
import io
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import urlsplit

from breedlab.digest import CHUNK_SIZE, Digest
from breedlab.errors import ConfigError, DigestMismatch, InvalidRequest, LabError, NotFound

if TYPE_CHECKING:
    from obstore.store import S3Store

    from breedlab.registry.blobs import Leftover

__all__ = ["S3BlobStore"]

#: Streams up to this size are spooled in memory; larger ones go to a temporary file.
SPOOL_BYTES = 64 << 20


def _parse(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ConfigError(f"store url {url!r} is not s3://bucket/prefix")
    return parts.netloc, parts.path.strip("/")


class S3BlobStore:
    """Blobs as objects ``<prefix>/sha256/ab/<hex>`` in an S3 bucket."""

    def __init__(self, url: str, *, endpoint: str = "", region: str = "") -> None:
        self.url = url
        self.bucket, self.prefix = _parse(url)
        try:
            import obstore.exceptions as oe
            from obstore.store import S3Store
        except ImportError as e:  # pragma: no cover - the extra is part of dev
            raise ConfigError("an s3:// store needs the breedlab[s3] extra (obstore)") from e
        config: dict[str, Any] = {}
        if endpoint:
            config["endpoint"] = endpoint
        if region:
            config["region"] = region
        try:
            self._store: S3Store = S3Store(
                self.bucket,
                prefix=self.prefix or None,
                config=config,  # type: ignore[arg-type]
                client_options={"allow_http": endpoint.startswith("http://")},
            )
        except (oe.BaseError, ValueError) as e:
            raise ConfigError(f"cannot open the object store {url}: {e}") from e

    def __repr__(self) -> str:
        return f"S3BlobStore({self.url!r})"

    @staticmethod
    def _key(digest: Digest) -> str:
        return f"sha256/{digest.hex[:2]}/{digest.hex}"

    def _fail(self, what: str, e: Exception) -> LabError:
        import obstore.exceptions as oe

        if isinstance(e, oe.NotFoundError | FileNotFoundError):
            return NotFound(f"{what} is missing from the store {self.url}")
        return LabError(f"object store {self.url}: {what}: {e}")

    def ensure(self) -> None:
        """Check that the bucket answers (a list call); objects need no folders."""
        import obstore
        import obstore.exceptions as oe

        try:
            next(iter(obstore.list(self._store, "sha256/", chunk_size=1)), None)
        except (oe.BaseError, OSError) as e:
            raise ConfigError(f"the object store {self.url} does not answer: {e}") from e

    def put_stream(self, stream: BinaryIO) -> tuple[Digest, int]:
        import obstore
        import obstore.exceptions as oe

        h = hashlib.sha256()
        size = 0
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
            while chunk := stream.read(CHUNK_SIZE):
                h.update(chunk)
                spool.write(chunk)
                size += len(chunk)
            digest = Digest(h.hexdigest())
            spool.seek(0)
            key = self._key(digest)
            try:
                obstore.put(self._store, key, spool, mode="create", use_multipart=False)
            except (oe.AlreadyExistsError, oe.PreconditionError, FileExistsError):
                pass  # identical content is stored already: write nothing new
            except (oe.BaseError, OSError) as e:
                raise self._fail(f"put {key}", e) from e
        return digest, size

    def put_bytes(self, data: bytes) -> Digest:
        digest, _ = self.put_stream(io.BytesIO(data))
        return digest

    def _read(self, digest: Digest) -> bytes:
        import obstore
        import obstore.exceptions as oe

        try:
            return bytes(obstore.get(self._store, self._key(digest)).bytes())
        except (oe.BaseError, OSError) as e:
            raise self._fail(f"blob {digest}", e) from e

    def get_bytes(self, digest: Digest) -> bytes:
        data = self._read(digest)
        if hashlib.sha256(data).hexdigest() != digest.hex:
            raise DigestMismatch(f"blob {digest} is corrupt: its bytes hash differently")
        return data

    def has(self, digest: Digest) -> bool:
        import obstore
        import obstore.exceptions as oe

        try:
            obstore.head(self._store, self._key(digest))
        except (oe.NotFoundError, FileNotFoundError):
            return False
        except (oe.BaseError, OSError) as e:
            raise self._fail(f"blob {digest}", e) from e
        return True

    def check(self, digest: Digest) -> int:
        return len(self.get_bytes(digest))

    def copy_to(self, digest: Digest, dest: Path) -> None:
        import obstore
        import obstore.exceptions as oe

        h = hashlib.sha256()
        with dest.open("xb") as out:  # never overwrites: a FileExistsError goes to the caller
            try:
                result = obstore.get(self._store, self._key(digest))
                for chunk in result.stream(min_chunk_size=CHUNK_SIZE):
                    h.update(chunk)
                    out.write(chunk)
                failure = None
            except (oe.BaseError, OSError) as e:
                failure = e
        if failure is not None:
            dest.unlink(missing_ok=True)
            raise self._fail(f"blob {digest}", failure) from failure
        if h.hexdigest() != digest.hex:
            dest.unlink(missing_ok=True)
            raise DigestMismatch(f"blob {digest} is corrupt: refused to materialise {dest}")

    def _keys(self) -> Iterator[str]:
        import obstore
        import obstore.exceptions as oe

        try:
            for batch in obstore.list(self._store, None):
                for meta in batch:
                    yield str(meta["path"])
        except (oe.BaseError, OSError) as e:
            raise self._fail("list", e) from e

    @staticmethod
    def _well_placed(key: str) -> Digest | None:
        parts = key.split("/")
        if len(parts) != 3 or parts[0] != "sha256" or parts[1] != parts[2][:2]:
            return None
        try:
            return Digest(parts[2])
        except InvalidRequest:
            return None

    def digests(self) -> Iterator[Digest]:
        for key in self._keys():
            digest = self._well_placed(key)
            if digest is not None:
                yield digest

    def strays(self) -> list[str]:
        """Every key under the prefix that is not a well-placed blob."""
        return sorted(k for k in self._keys() if self._well_placed(k) is None)

    def clean_temporary(self) -> list[Leftover]:
        """Nothing to clean: an interrupted write leaves no object (one atomic PUT)."""
        return []

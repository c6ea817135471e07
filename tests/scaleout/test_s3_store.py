"""The S3 store keeps the local store's promises on a real S3 server: content addressed
(``<prefix>/sha256/ab/<hex>``), write-once (conditional create), verified on read."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import boto3
import obstore
import pytest
from obstore.store import S3Store
from services import Bucket

from breedlab.digest import Digest
from breedlab.errors import DigestMismatch, NotFound
from breedlab.registry.s3 import S3BlobStore


def _store(bucket: Bucket) -> S3BlobStore:
    store = S3BlobStore(bucket.url, endpoint=bucket.endpoint, region="us-east-1")
    store.ensure()
    return store


def _raw(bucket: Bucket) -> tuple[object, str, str]:
    name, prefix = bucket.url.removeprefix("s3://").split("/", 1)
    client = boto3.client("s3", endpoint_url=bucket.endpoint, region_name="us-east-1")
    return client, name, prefix


def test_blobs_round_trip_under_their_digest(bucket: Bucket, tmp_path: Path) -> None:
    store = _store(bucket)
    big = os.urandom(3 << 20)
    small = store.put_bytes(b"hello")
    digest, size = store.put_stream(io.BytesIO(big))

    assert small == Digest.of(b"hello") and digest == Digest.of(big) and size == len(big)
    assert store.get_bytes(small) == b"hello" and store.has(digest)
    assert store.check(digest) == len(big)
    store.copy_to(digest, tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == big
    assert sorted(d.hex for d in store.digests()) == sorted([small.hex, digest.hex])
    assert store.strays() == []
    client, name, prefix = _raw(bucket)
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=name)["Contents"]]  # type: ignore[attr-defined]
    assert f"{prefix}/sha256/{small.hex[:2]}/{small.hex}" in keys


def test_a_stored_object_is_never_replaced(bucket: Bucket) -> None:
    store = _store(bucket)
    digest = store.put_bytes(b"original")
    assert store.put_bytes(b"original") == digest  # idempotent
    raw = S3Store(
        bucket.url.removeprefix("s3://").split("/")[0],
        prefix="lab",
        config={"endpoint": bucket.endpoint, "region": "us-east-1"},
        client_options={"allow_http": True},
    )
    with pytest.raises(obstore.exceptions.AlreadyExistsError):
        obstore.put(raw, f"sha256/{digest.hex[:2]}/{digest.hex}", b"forged", mode="create")
    assert store.get_bytes(digest) == b"original"


def test_a_swapped_object_is_caught_on_every_read(bucket: Bucket, tmp_path: Path) -> None:
    store = _store(bucket)
    digest = store.put_bytes(b"genuine bytes")
    client, name, prefix = _raw(bucket)
    key = f"{prefix}/sha256/{digest.hex[:2]}/{digest.hex}"
    client.put_object(Bucket=name, Key=key, Body=b"tampered")  # type: ignore[attr-defined]
    client.put_object(Bucket=name, Key=f"{prefix}/sha256/README", Body=b"stray")  # type: ignore[attr-defined]

    with pytest.raises(DigestMismatch):
        store.get_bytes(digest)
    with pytest.raises(DigestMismatch):
        store.check(digest)
    with pytest.raises(DigestMismatch):
        store.copy_to(digest, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert store.strays() == ["sha256/README"]
    with pytest.raises(NotFound):
        store.get_bytes(Digest.of(b"never stored"))
    assert not store.has(Digest.of(b"never stored"))


WRITER = """
import os, sys
from breedlab.registry.s3 import S3BlobStore
store = S3BlobStore(sys.argv[1], endpoint=sys.argv[2], region="us-east-1")
data = os.urandom(48 << 20)
print("writing", flush=True)
store.put_bytes(data)
print("written", flush=True)
"""


@pytest.mark.parametrize("delay", [0.0, 0.3, 0.8])
def test_a_killed_writer_leaves_no_object_or_a_whole_one(bucket: Bucket, delay: float) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, bucket.url, bucket.endpoint],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline() == "writing\n"
    time.sleep(delay)
    proc.kill()
    proc.communicate()
    store = _store(bucket)
    for digest in store.digests():
        assert store.check(digest) == 48 << 20  # whole and verified, or absent
    assert store.strays() == []

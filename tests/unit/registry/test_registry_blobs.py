from __future__ import annotations

import fcntl
import io
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from breedlab.digest import Digest
from breedlab.errors import DigestMismatch, NotFound
from breedlab.registry.blobs import BlobStore, FileBlobStore, MemoryBlobStore


@pytest.fixture(params=["file", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "file":
        return FileBlobStore(tmp_path / "objects", durable=False)
    return MemoryBlobStore()


@settings(max_examples=25, deadline=None)
@given(data=st.binary(max_size=5000))
def test_a_stored_blob_reads_back_verified_under_its_digest(data: bytes) -> None:
    for store in (MemoryBlobStore(),):
        digest = store.put_bytes(data)
        assert digest == Digest.of(data)
        assert store.get_bytes(digest) == data
        assert store.check(digest) == len(data)


def test_both_stores_agree_and_storing_twice_is_idempotent(store: BlobStore) -> None:
    d1, size = store.put_stream(io.BytesIO(b"hello"))
    d2 = store.put_bytes(b"hello")
    assert d1 == d2 == Digest.of(b"hello")
    assert size == 5
    assert list(store.digests()) == [d1]


def test_a_missing_blob_is_not_found(store: BlobStore) -> None:
    with pytest.raises(NotFound):
        store.get_bytes(Digest.of(b"nothing"))


def test_blobs_are_written_once_read_only_and_never_replaced(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "objects")
    digest = store.put_bytes(b"original")
    path = store.path(digest)
    assert path.stat().st_mode & 0o777 == 0o444
    inode = path.stat().st_ino
    store.put_bytes(b"original")
    assert path.stat().st_ino == inode
    assert not any((tmp_path / "objects" / "tmp").iterdir())


def test_a_flipped_byte_is_caught_on_every_read_path(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "objects")
    digest = store.put_bytes(b"model weights")
    path = store.path(digest)
    os.chmod(path, 0o644)
    path.write_bytes(b"model weighTs")
    with pytest.raises(DigestMismatch):
        store.get_bytes(digest)
    with pytest.raises(DigestMismatch):
        store.check(digest)
    dest = tmp_path / "out.bin"
    with pytest.raises(DigestMismatch):
        store.copy_to(digest, dest)
    assert not dest.exists()


def test_stray_files_and_leftover_temporaries_are_found(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "objects")
    store.put_bytes(b"x")
    (tmp_path / "objects" / "sha256" / "ab").mkdir()
    (tmp_path / "objects" / "sha256" / "ab" / "not-a-digest").write_bytes(b"?")
    (tmp_path / "objects" / "tmp" / "in-123").write_bytes(b"partial")
    assert [p.name for p in store.stray_files()] == ["not-a-digest"]
    assert [Path(left.path).name for left in store.clean_temporary()] == ["in-123"]


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_only_temporaries_of_dead_writers_are_cleaned(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "objects", durable=False)
    store.ensure()
    tmp = tmp_path / "objects" / "tmp"
    dead = _dead_pid()
    (tmp / f"in-{dead}-killed").write_bytes(b"half an import")
    (tmp / f"in-{os.getpid()}-starting").write_bytes(b"")  # a live writer, not locked yet
    held = tmp / f"in-{dead}-held"  # a writer in another pid namespace, say: its lock says
    held.write_bytes(b"in progress")
    with held.open("rb") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        removed = store.clean_temporary()
    assert [(Path(r.path).name, r.size, r.writer) for r in removed] == [
        (f"in-{dead}-killed", 14, dead)
    ]
    assert {p.name for p in tmp.iterdir()} == {f"in-{dead}-held", f"in-{os.getpid()}-starting"}


def test_a_write_in_progress_keeps_its_temporary_file(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "objects", durable=False)
    read_fd, write_fd = os.pipe()
    result: list[Digest] = []
    with os.fdopen(read_fd, "rb", buffering=0) as source:
        writer = threading.Thread(target=lambda: result.append(store.put_stream(source)[0]))
        writer.start()
        os.write(write_fd, b"first half ")
        tmp = tmp_path / "objects" / "tmp"
        deadline = time.monotonic() + 60
        while not (tmp.is_dir() and any(p.stat().st_size for p in tmp.iterdir())):
            assert time.monotonic() < deadline, "the write never started"
            time.sleep(0.01)
        assert store.clean_temporary() == []
        os.write(write_fd, b"second half")
        os.close(write_fd)
        writer.join(timeout=60)
    assert result == [Digest.of(b"first half second half")]
    assert list(tmp.iterdir()) == []

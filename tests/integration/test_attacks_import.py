"""Attacks through the import door: symlinks out of the source, pickle weights, special
files, and a source changed between the check and the copy.

DESIGN §4: refused at import with a clear error -- path traversal (symlinks leaving the
source dir), pickle-based weight files, empty packages; the whole source is checked
before one byte is stored. ``registry/source.py``: files are opened with ``O_NOFOLLOW``
so a file swapped for a symlink after the check is refused too.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from attack_lab import Fixture

from breedlab.digest import Digest
from breedlab.errors import InvalidRequest
from breedlab.registry import source as source_module

SECRET = b"root:$6$not-for-a-model-package\n"


def state(fx: Fixture) -> tuple[int, int, int]:
    """(ledger events, registered packages, stored objects)."""
    return len(fx.lab.events()), len(fx.lab.packages()), sum(1 for _ in fx.lab.blobs.digests())


def candidate(tmp_path: Path) -> Path:
    folder = tmp_path / "candidate"
    (folder / "shards").mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(os.urandom(2048))
    (folder / "shards" / "part-1.safetensors").write_bytes(os.urandom(1024))
    (folder / "config.json").write_bytes(b"{}")
    return folder


def secret_file(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "part-1.safetensors").write_bytes(SECRET)
    (outside / "shadow").write_bytes(SECRET)
    return outside


def do_import(fx: Fixture, path: Path) -> None:
    fx.lab.import_path(path, kind="model", capability="digits", license="MIT", name="cand")


def test_a_symlink_leaving_the_source_folder_is_refused_and_nothing_is_written(
    fx: Fixture, tmp_path: Path
) -> None:
    folder = candidate(tmp_path)
    (folder / "tokenizer.json").symlink_to(secret_file(tmp_path) / "shadow")
    before = state(fx)

    with pytest.raises(InvalidRequest, match="leaves the source"):
        do_import(fx, folder)

    assert state(fx) == before


def test_a_symlinked_folder_is_refused_and_nothing_is_written(fx: Fixture, tmp_path: Path) -> None:
    folder = candidate(tmp_path)
    (folder / "extra").symlink_to(secret_file(tmp_path), target_is_directory=True)
    before = state(fx)

    with pytest.raises(InvalidRequest, match="symlinked folders"):
        do_import(fx, folder)

    assert state(fx) == before


@pytest.mark.parametrize("name", ["pytorch_model.bin", "w.pt", "w.pth", "x.pkl", "c.CKPT"])
def test_a_pickle_weight_file_anywhere_in_a_folder_is_refused_and_nothing_is_written(
    fx: Fixture, tmp_path: Path, name: str
) -> None:
    folder = candidate(tmp_path)
    (folder / "shards" / name).write_bytes(b"\x80\x04K\x01.")
    before = state(fx)

    with pytest.raises(InvalidRequest, match="pickle"):
        do_import(fx, folder)

    assert state(fx) == before


def test_a_safetensors_name_pointing_at_a_pickle_file_is_refused(
    fx: Fixture, tmp_path: Path
) -> None:
    folder = candidate(tmp_path)
    hidden = folder / "shards" / "weights.pt"
    hidden.write_bytes(b"\x80\x04K\x01.")
    (folder / "model.safetensors").unlink()
    (folder / "model.safetensors").symlink_to(hidden)
    before = state(fx)

    with pytest.raises(InvalidRequest, match="pickle"):
        do_import(fx, folder)

    assert state(fx) == before


def test_a_fifo_in_the_source_is_refused_without_hanging(fx: Fixture, tmp_path: Path) -> None:
    folder = candidate(tmp_path)
    os.mkfifo(folder / "stream.safetensors")
    before = state(fx)

    with pytest.raises(InvalidRequest, match="not a regular file"):
        do_import(fx, folder)

    assert state(fx) == before


def test_an_empty_folder_is_refused(fx: Fixture, tmp_path: Path) -> None:
    (tmp_path / "empty" / "nested").mkdir(parents=True)
    before = state(fx)

    with pytest.raises(InvalidRequest, match="empty"):
        do_import(fx, tmp_path / "empty")

    assert state(fx) == before


def swap_after_scan(
    monkeypatch: pytest.MonkeyPatch, swap: Callable[[], None]
) -> list[source_module.SourceFile]:
    """Make the import's scan run ``swap`` right after it checked the source: the race of
    an attacker who changes the folder between the check and the copy, made certain."""
    real_scan = source_module.scan
    listed: list[source_module.SourceFile] = []

    def scan_then_swap(path: Path) -> list[source_module.SourceFile]:
        listed.extend(real_scan(path))
        swap()
        return listed

    monkeypatch.setattr(source_module, "scan", scan_then_swap)
    return listed


def test_a_file_swapped_for_a_symlink_after_the_check_is_refused(
    fx: Fixture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = candidate(tmp_path)
    outside = secret_file(tmp_path)

    def swap() -> None:
        (folder / "shards" / "part-1.safetensors").unlink()
        (folder / "shards" / "part-1.safetensors").symlink_to(outside / "part-1.safetensors")

    listed = swap_after_scan(monkeypatch, swap)
    events, packages, _ = state(fx)

    with pytest.raises(InvalidRequest, match="changed during import"):
        do_import(fx, folder)

    assert listed  # the swap did happen after a clean scan
    assert state(fx)[:2] == (events, packages)  # no package, no event
    assert not fx.lab.blobs.has(Digest.of(SECRET))


def test_a_folder_swapped_for_a_symlink_after_the_check_is_refused(
    fx: Fixture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = candidate(tmp_path)
    outside = secret_file(tmp_path)

    def swap() -> None:
        shards = folder / "shards"
        shards.rename(tmp_path / "moved-away")
        shards.symlink_to(outside, target_is_directory=True)

    swap_after_scan(monkeypatch, swap)
    events, packages, _ = state(fx)

    with pytest.raises(InvalidRequest, match="changed during import"):
        do_import(fx, folder)

    assert state(fx)[:2] == (events, packages)
    assert not fx.lab.blobs.has(Digest.of(SECRET))  # not one byte from outside was stored

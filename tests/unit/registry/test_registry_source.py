from __future__ import annotations

import os
from pathlib import Path

import pytest

from breedlab.errors import InvalidRequest, NotFound
from breedlab.registry.source import scan


def test_a_folder_is_listed_sorted_with_posix_paths(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "z.txt").write_text("z")
    (tmp_path / "a.txt").write_text("a")
    assert [f.path for f in scan(tmp_path)] == ["a.txt", "b/z.txt"]


def test_symlinks_that_leave_the_source_are_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s")
    src = tmp_path / "src"
    src.mkdir()
    (src / "ok.txt").write_text("x")
    os.symlink(secret, src / "link")
    with pytest.raises(InvalidRequest, match="leaves the source"):
        scan(src)


def test_symlinks_inside_the_source_are_read_as_their_target(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "real.txt").write_text("x")
    os.symlink(src / "real.txt", src / "alias.txt")
    assert [f.path for f in scan(src)] == ["alias.txt", "real.txt"]


def test_symlinked_folders_are_refused(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "f").write_text("x")
    os.symlink(src / "d", src / "e")
    with pytest.raises(InvalidRequest, match="symlinked folders"):
        scan(src)


@pytest.mark.parametrize("suffix", [".bin", ".pt", ".pth", ".pkl", ".ckpt", ".PT"])
def test_pickle_weights_are_refused(tmp_path: Path, suffix: str) -> None:
    (tmp_path / f"weights{suffix}").write_bytes(b"\x80\x04")
    with pytest.raises(InvalidRequest, match="pickle"):
        scan(tmp_path)
    with pytest.raises(InvalidRequest, match="pickle"):
        scan(tmp_path / f"weights{suffix}")


def test_empty_folders_missing_paths_and_fifos_are_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidRequest, match="empty"):
        scan(tmp_path / "empty")
    with pytest.raises(NotFound):
        scan(tmp_path / "absent")
    fifo_dir = tmp_path / "fifo"
    fifo_dir.mkdir()
    os.mkfifo(fifo_dir / "pipe")
    with pytest.raises(InvalidRequest, match="regular file"):
        scan(fifo_dir)

"""Staging folders a killed process left under ``work/inputs`` are removed when a lab
opens and reported by ``verify --all``; a live process's staging folder is kept."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from breedlab.lab import Lab


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=60)
    return child.pid


def test_a_dead_writers_staging_folder_is_removed_and_reported(tmp_path: Path) -> None:
    with Lab.init(tmp_path / "lab") as lab:
        inputs = lab.config.work_dir / "inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    dead = inputs / f"{'a' * 32}.{_dead_pid()}-0badcafe.tmp"
    live = inputs / f"{'b' * 32}.{os.getpid()}-0badcafe.tmp"
    for folder in (dead, live):
        (folder / "sub").mkdir(parents=True)
        (folder / "sub" / "model.safetensors").write_bytes(b"x" * 100)
    with Lab.open(tmp_path / "lab") as lab:
        assert not dead.exists() and live.exists()  # cleaned at start-up, the live one kept
        report = lab.verify_store()
    [cleaned] = report.cleaned
    assert cleaned.where == str(dead) and "100 bytes" in cleaned.message
    assert not report.problems  # a finding, not a failure

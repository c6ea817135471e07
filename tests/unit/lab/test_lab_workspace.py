"""Staging folders a killed process left under ``work/inputs`` are removed when a lab
opens and reported by ``verify --all``; a live process's staging folder is kept."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from breedlab.lab import Lab
from breedlab.supply.workspace import KEPT_FAILED_JOBS, KEPT_LOG_BYTES


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


def _job(folder: Path, log: bytes = b"log\n") -> Path:
    """A job folder as the sandbox lays it out, with an output and a log."""
    (folder / "out" / "model").mkdir(parents=True)
    (folder / "out" / "model" / "model.safetensors").write_bytes(b"w" * 1000)
    (folder / "tmp").mkdir()
    (folder / "job.json").write_bytes(b"{}")
    (folder / "log.txt").write_bytes(log)
    return folder


def test_a_finished_jobs_folder_is_removed_and_a_failed_ones_log_kept_for_the_last_few(
    tmp_path: Path,
) -> None:
    with Lab.init(tmp_path / "lab") as lab:
        jobs = lab.config.work_dir / "jobs"
        done = _job(lab.workspace.job_folder("train/champion"))
        lab.workspace.finish_job(done, failed=False)
        assert not done.exists()

        big = b"early\n" + b"x" * KEPT_LOG_BYTES + b"Traceback: the end\n"
        failed = _job(lab.workspace.job_folder("quantize/int3"), log=big)
        lab.workspace.finish_job(failed, failed=True)
        [kept] = (jobs / "failed").iterdir()
        assert kept.name == f"00000001-{failed.name}"
        assert not failed.exists() and sorted(p.name for p in kept.iterdir()) == [
            "job.json",
            "log.txt",
        ]
        log = (kept / "log.txt").read_bytes()
        assert len(log) == KEPT_LOG_BYTES and log.endswith(b"Traceback: the end\n")

        later = []
        for i in range(KEPT_FAILED_JOBS + 2):
            folder = _job(lab.workspace.job_folder(f"eval-{i}"))
            lab.workspace.finish_job(folder, failed=True)
            later.append(folder.name)
        # bounded: the newest KEPT_FAILED_JOBS failed jobs stay, nothing else
        kept_names = sorted(p.name.partition("-")[2] for p in (jobs / "failed").iterdir())
        assert kept_names == sorted(later[-KEPT_FAILED_JOBS:])
        assert [p.name for p in jobs.iterdir()] == ["failed"]


def test_job_folders_a_dead_process_left_are_removed_at_start_up_and_reported(
    tmp_path: Path,
) -> None:
    with Lab.init(tmp_path / "lab") as lab:
        jobs = lab.config.work_dir / "jobs"
        live = _job(lab.workspace.job_folder("adapter/lora-r8"))  # this process's
        kept = _job(jobs / "failed" / f"train.{_dead_pid()}-0badcafe0bad")
    dead = _job(jobs / f"adapter-lora-r8.{_dead_pid()}-0badcafe0bad")
    legacy = _job(jobs / "eval-digits-mlp-0badcafe0bad")  # named before pids were
    with Lab.open(tmp_path / "lab") as lab:
        assert live.exists() and kept.exists()  # a live process's, and a failed job's log
        assert not dead.exists() and not legacy.exists()
        report = lab.verify_store()
    cleaned = {Path(c.where): c.message for c in report.cleaned}
    assert set(cleaned) == {dead, legacy}
    assert "(1006 bytes, by pid" in cleaned[dead] and "(1006 bytes)" in cleaned[legacy]
    assert not report.problems

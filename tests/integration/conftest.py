"""Fixtures for the attack tests: a template lab built once, a fresh copy per test."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from attack_lab import Fixture, Ids, build_template

from breedlab.lab import Lab


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Ids]:
    base = tmp_path_factory.mktemp("template")
    scratch = base / "scratch"
    scratch.mkdir()
    ids = build_template(base / "lab", scratch)
    return base / "lab", ids


@pytest.fixture
def fx(template: tuple[Path, Ids], tmp_path: Path) -> Iterator[Fixture]:
    """A fresh copy of the template lab, opened."""
    source, ids = template
    root = tmp_path / "lab"
    shutil.copytree(source, root)
    lab = Lab.open(root)
    try:
        yield Fixture(root=root, lab=lab, ids=ids)
    finally:
        lab.close()

"""Shared fixtures: a Lab in tmp_path with the built-in capability and owner keys."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from breedlab.capabilities import contract_path
from breedlab.clock import FixedClock
from breedlab.lab import Lab


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    """A fresh lab with the digits capability and one key per owner role."""
    with Lab.init(tmp_path / "lab", clock=FixedClock()) as lab:
        for name, role in (
            ("alice", "model"),
            ("erin", "evaluation"),
            ("sam", "security"),
            ("pat", "production"),
        ):
            lab.generate_key(name, role)
        lab.add_capability(contract_path("digits"))
        yield lab

"""Builders of small package folders for tests (not real weights: bytes only)."""

from __future__ import annotations

from pathlib import Path

import pytest


def make_model_dir(root: Path, name: str, content: bytes = b"weights") -> Path:
    """A small package folder (not real weights: registry tests only need bytes)."""
    folder = root / name
    (folder / "sub").mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(content)
    (folder / "config.json").write_text('{"architecture": "mlp"}')
    (folder / "sub" / "notes.txt").write_text(name)
    return folder


def cli_lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *keys: tuple[str, str]) -> Path:
    """A lab made through the CLI (``BREEDLAB_LAB`` points at it): ``init``, the given
    ``(name, role)`` keys, and the built-in digits capability."""
    from breedlab.capabilities import contract_path
    from breedlab.cli import main

    lab = tmp_path / "lab"
    monkeypatch.setenv("BREEDLAB_LAB", str(lab))
    assert main(["init"]) == 0
    for name, role in keys:
        assert main(["keys", "generate", name, "--role", role]) == 0
    assert main(["capability", "add", str(contract_path("digits"))]) == 0
    return lab

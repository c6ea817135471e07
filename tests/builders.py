"""Builders of small package folders for tests (not real weights: bytes only)."""

from __future__ import annotations

from pathlib import Path


def make_model_dir(root: Path, name: str, content: bytes = b"weights") -> Path:
    """A small package folder (not real weights: registry tests only need bytes)."""
    folder = root / name
    (folder / "sub").mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(content)
    (folder / "config.json").write_text('{"architecture": "mlp"}')
    (folder / "sub" / "notes.txt").write_text(name)
    return folder

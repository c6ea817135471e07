"""Builders of small package folders for tests."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest


def make_model_dir(root: Path, name: str, content: bytes = b"weights") -> Path:
    """A tiny torch-family digits model (64 inputs, 10 classes) in ``root / name``.

    A model answers its capability contract at import, so this is a real one; its
    weights are seeded from ``content``, so different contents give different packages.
    """
    import torch

    from breedlab.families.torch_family import build_module, save_torch_model

    folder = root / name
    (folder / "sub").mkdir(parents=True)
    config = {"architecture": "mlp", "classes": 10, "hidden": [4], "inputs": 64}
    with torch.random.fork_rng():  # the caller's random state is left alone
        torch.manual_seed(int.from_bytes(hashlib.sha256(content).digest()[:4], "little"))
        module = build_module(config)
    save_torch_model(folder, config, module)
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

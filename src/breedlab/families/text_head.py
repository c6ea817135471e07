"""A sentence encoder with a linear head: the ``transformers`` family's second kind of
classifier (issue 12), next to a Hugging Face ``*ForSequenceClassification`` folder.

A bare encoder such as all-MiniLM-L6-v2 has no classification head; the
sentence-transformers recipe puts one on its mean-pooled token states. Such a package is
the encoder's own folder (``config.json`` naming a bare model such as ``BertModel``, the
tokenizer files) plus:

    head.json           {"schema": "breedlab.head/v1", "pooling": "mean",
                         "classes": 2, "max_length": 128}     (canonical JSON)
    model.safetensors   the encoder's tensors under ``encoder.`` and the head's
                        ``head.weight`` (classes, hidden) and ``head.bias`` (classes,)

The file's tensor names are exactly :class:`EncoderClassifier`'s state-dict names, so the
tensor-level operators (quantize, merge) and PEFT see one plain module, and the family's
strict load refuses any tensor that is missing, extra or misshapen.

Owns the head format, the module and :func:`save_encoder_classifier`; leaves reading
config, tokenizer and weights to ``families.transformers_family`` (which imports this
module, and so torch, only when it loads such a folder).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from breedlab import canonical
from breedlab.canonical import JsonValue
from breedlab.errors import IntegrityError, InvalidRequest

__all__ = [
    "HEAD_FILE",
    "HEAD_SCHEMA",
    "MODEL_FILES",
    "EncoderClassifier",
    "HeadSpec",
    "copy_model_files",
    "load_head",
    "mean_pool",
    "save_encoder_classifier",
    "split_state",
]

HEAD_FILE = "head.json"
HEAD_SCHEMA = "breedlab.head/v1"
ENCODER_PREFIX = "encoder."
HEAD_TENSORS = ("head.weight", "head.bias")
#: The files of a transformers package besides ``model.safetensors``: what a descendant
#: copies from its parent (config, head, tokenizer), and nothing else (no code, no pickle).
MODEL_FILES = (
    "config.json",
    HEAD_FILE,
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "spiece.model",
    "sentencepiece.bpe.model",
)
_POOLINGS = ("mean",)
_MAX_TOKENS = 512


@dataclass(frozen=True, slots=True, kw_only=True)
class HeadSpec:
    """How the head reads the encoder: pooling, classes, and the token budget per text."""

    classes: int
    pooling: str = "mean"
    max_length: int = 128

    def __post_init__(self) -> None:
        if self.pooling not in _POOLINGS:
            raise InvalidRequest(f"head pooling must be one of {_POOLINGS}, not {self.pooling!r}")
        if not 2 <= self.classes <= 10_000:
            raise InvalidRequest(f"a head has 2 to 10000 classes, not {self.classes}")
        if not 1 <= self.max_length <= _MAX_TOKENS:
            raise InvalidRequest(f"head max_length must be in [1, {_MAX_TOKENS}]")

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "schema": HEAD_SCHEMA,
            "pooling": self.pooling,
            "classes": self.classes,
            "max_length": self.max_length,
        }

    @classmethod
    def read(cls, folder: Path) -> HeadSpec:
        """The folder's ``head.json``.

        Raises:
            IntegrityError: unreadable, another schema, or values out of bounds.
        """
        try:  # plain JSON: a user may write the file by hand; breedlab writes it canonical
            record = json.loads((folder / HEAD_FILE).read_bytes())
        except (OSError, ValueError) as e:
            raise IntegrityError(f"{folder}/{HEAD_FILE} is not readable: {e}") from e
        if not isinstance(record, dict) or record.get("schema") != HEAD_SCHEMA:
            raise IntegrityError(f"{folder}/{HEAD_FILE} is not a {HEAD_SCHEMA} document")
        try:
            return cls(
                classes=_int(record["classes"]),
                pooling=str(record["pooling"]),
                max_length=_int(record["max_length"]),
            )
        except (KeyError, TypeError, InvalidRequest) as e:
            raise IntegrityError(f"{folder}/{HEAD_FILE}: {e}") from e


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"expected an integer, got {value!r}")
    return value


def split_state(folder: Path, state: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(encoder tensors without the prefix, head tensors)``; anything else is refused."""
    encoder = {
        k[len(ENCODER_PREFIX) :]: v for k, v in state.items() if k.startswith(ENCODER_PREFIX)
    }
    head = {k: v for k, v in state.items() if k in HEAD_TENSORS}
    stray = sorted(set(state) - {ENCODER_PREFIX + k for k in encoder} - set(head))
    if stray:
        raise IntegrityError(f"{folder}: tensors outside encoder./head.: {stray[:3]}")
    missing = [k for k in HEAD_TENSORS if k not in head]
    if missing:
        raise IntegrityError(f"{folder}: the head lacks {missing}")
    return encoder, head


class EncoderClassifier(nn.Module):
    """``head(mean_pool(encoder(tokens)))``: logits from a bare encoder's token states."""

    def __init__(self, encoder: Any, spec: HeadSpec) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(int(encoder.config.hidden_size), spec.classes)
        self.spec = spec
        self.config = encoder.config

    def pooled(self, input_ids: Any, attention_mask: Any, **extra: Any) -> Any:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **extra)
        return mean_pool(hidden.last_hidden_state, attention_mask)

    def forward(self, input_ids: Any, attention_mask: Any, **extra: Any) -> Any:
        return self.head(self.pooled(input_ids, attention_mask, **extra))


def mean_pool(states: Any, attention_mask: Any) -> Any:
    """The mean of the token states the mask keeps (padding excluded)."""
    mask = attention_mask.unsqueeze(-1).to(states.dtype)
    return (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


def load_head(module: EncoderClassifier, folder: Path, head: dict[str, Any]) -> None:
    """Fill the head from its tensors, refusing a shape the spec does not describe."""
    try:
        module.head.load_state_dict(
            {k.removeprefix("head."): v.clone() for k, v in head.items()}, strict=True
        )
    except RuntimeError as e:
        raise IntegrityError(f"{folder}: the head's tensors do not fit {HEAD_FILE}: {e}") from e


def copy_model_files(source: Path, folder: Path) -> None:
    """Copy a transformers package's files except the weights (see :data:`MODEL_FILES`)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in MODEL_FILES:
        if (source / name).is_file():
            shutil.copyfile(source / name, folder / name)


def save_encoder_classifier(module: EncoderClassifier, folder: Path, *, source: Path) -> None:
    """Write ``module`` as a package folder: ``source``'s config and tokenizer files, its
    ``head.json``, and ``model.safetensors`` with contiguous fp32 tensors (deterministic
    bytes for the same weights)."""
    from safetensors.torch import save_file

    copy_model_files(source, folder)
    (folder / HEAD_FILE).write_bytes(canonical.encode(module.spec.to_json()))
    state = {
        name: tensor.detach().to(torch.float32).contiguous().clone()
        for name, tensor in module.state_dict().items()
        if tensor.is_floating_point()
    }
    save_file(state, str(folder / "model.safetensors"))

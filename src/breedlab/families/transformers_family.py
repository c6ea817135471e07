"""The ``transformers`` family: a local Hugging Face folder (``config.json``,
``model.safetensors``, tokenizer files), loaded with ``Auto*`` classes and
``local_files_only=True`` so nothing is ever fetched from a hub.

Sequence classifiers answer ``predict_proba(texts)``; a folder without a classification
head (a bare encoder such as MiniLM) loads as an encoder whose ``embed(texts)`` gives
mean-pooled sentence embeddings. Pickle checkpoints are refused (``use_safetensors``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from breedlab.errors import IntegrityError

__all__ = ["TransformersFamily", "TransformersModel"]


class TransformersModel:
    family = "transformers"

    def __init__(self, folder: Path, model: Any, tokenizer: Any, *, classifier: bool) -> None:
        self.folder = folder
        self._model = model.eval()
        self.tokenizer = tokenizer
        self.classifier = classifier
        self.config = model.config.to_dict()

    @property
    def module(self) -> Any:
        return self._model

    def _encode(self, texts: Sequence[str], max_length: int) -> Any:
        return self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        )

    def predict_proba(self, x: Any, *, max_length: int = 128) -> npt.NDArray[np.float64]:
        import torch

        if not self.classifier:
            raise IntegrityError(f"{self.folder} has no classification head")
        with torch.no_grad():
            logits = self._model(**self._encode(x, max_length)).logits
        return np.asarray(torch.softmax(logits.double(), dim=1).numpy(), dtype=np.float64)

    def embed(self, texts: Sequence[str], *, max_length: int = 128) -> npt.NDArray[np.float64]:
        """Mean-pooled last hidden states (the sentence-transformers recipe)."""
        import torch

        batch = self._encode(texts, max_length)
        with torch.no_grad():
            base = getattr(self._model, "base_model", self._model)
            hidden = base(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return np.asarray(pooled.double().numpy(), dtype=np.float64)

    def parameter_count(self) -> int:
        return int(sum(p.numel() for p in self._model.parameters()))


class TransformersFamily:
    name = "transformers"

    def load(self, folder: Path) -> TransformersModel:
        from transformers import (
            AutoConfig,
            AutoModel,
            AutoModelForSequenceClassification,
            AutoTokenizer,
        )

        if not (folder / "model.safetensors").exists():
            raise IntegrityError(f"{folder} has no model.safetensors (pickle checkpoints refused)")
        try:
            config = AutoConfig.from_pretrained(folder, local_files_only=True)
            tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
            architectures = config.architectures or []
            classifier = any(a.endswith("ForSequenceClassification") for a in architectures)
            loader = AutoModelForSequenceClassification if classifier else AutoModel
            model = loader.from_pretrained(folder, local_files_only=True, use_safetensors=True)
        except (OSError, ValueError) as e:
            raise IntegrityError(f"{folder} is not a loadable transformers folder: {e}") from e
        return TransformersModel(folder, model, tokenizer, classifier=classifier)

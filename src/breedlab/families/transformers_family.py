"""The ``transformers`` family: a local Hugging Face folder (``config.json``,
``model.safetensors``, tokenizer files), built with the ``Auto*`` mappings and loaded with
``local_files_only=True`` so nothing is ever fetched from a hub.

Sequence classifiers answer ``predict_proba(texts)``; so does a bare encoder with
breedlab's linear head (``head.json``, ``families.text_head``). A folder without any
classification head (a bare encoder such as MiniLM) loads as an encoder whose
``embed(texts)`` gives mean-pooled sentence embeddings.

The weights are read by breedlab, never by transformers: ``model.safetensors`` goes
through :func:`breedlab.tensors.quantized.load_state_dict`, so a weight-only quantized
file is dequantized to fp32 on load, and the tensors are handed to ``from_pretrained``
with no path (the model is built on the meta device, then filled). Left to itself,
transformers 5.23's ``from_pretrained(folder, use_safetensors=True)`` follows the
folder's own directions: a ``"transformers_weights"`` entry in ``config.json`` makes it
``torch.load`` the file it names even beside a valid ``model.safetensors`` (measured),
and an ``adapter_config.json`` makes it load a PEFT adapter on top. Here only
``config.json``, the tokenizer files and ``model.safetensors`` are read; nothing is
unpickled, and ``trust_remote_code`` is off.

The load is strict: a tensor that is missing, unexpected or of the wrong shape is an
:class:`~breedlab.errors.IntegrityError`, where transformers would re-initialise missing
ones at random, drop unexpected ones and only log a report. The one exception is what
transformers itself declares obsolete (the ``position_ids`` buffer that old BERT
checkpoints such as MiniLM still store). Compute is fp32 whatever dtype ``config.json``
names (bf16 ran 9x slower on this CPU, notes/operators.md §7).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from breedlab.errors import IntegrityError, InvalidRequest
from breedlab.families.base import DEFAULT_MAX_BYTES

__all__ = [
    "BATCH_TEXTS",
    "DEFAULT_MAX_TOKENS",
    "TOKENIZER_FILES",
    "WEIGHTS_FILE",
    "TransformersFamily",
    "TransformersModel",
]

WEIGHTS_FILE = "model.safetensors"
#: Texts per forward pass: bounds activation memory whatever the caller passes.
BATCH_TEXTS = 64
#: Tokens per text when the package does not say (a head's ``max_length`` does).
DEFAULT_MAX_TOKENS = 128
#: A folder must hold one of these: without any, ``AutoTokenizer`` silently builds a
#: tokenizer of five special tokens that maps every word to ``[UNK]`` (measured).
TOKENIZER_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "vocab.json",
    "tokenizer.model",
    "spiece.model",
    "sentencepiece.bpe.model",
)
#: ``config.json`` entries that would make transformers load or transform weights
#: behind the family's back; a breedlab package never needs them.
_REFUSED_CONFIG_KEYS = {
    "transformers_weights": "points transformers at another weights file",
    "quantization_config": "asks transformers to quantize (breedlab quantization lives in "
    "model.safetensors metadata)",
}


def _texts(x: Any) -> list[str]:
    """``x`` as a list of strings; anything else is a clear error, not a tokenizer's."""
    if isinstance(x, str):
        raise InvalidRequest("a text model takes a list of texts, not one string")
    texts = list(x)
    if not all(isinstance(t, str) for t in texts):
        raise InvalidRequest("a text model takes strings")
    return texts


class TransformersModel:
    family = "transformers"

    def __init__(
        self,
        folder: Path,
        model: Any,
        tokenizer: Any,
        *,
        classifier: bool,
        max_length: int = DEFAULT_MAX_TOKENS,
    ) -> None:
        self.folder = folder
        self._model = model.eval()
        self.tokenizer = tokenizer
        self.classifier = classifier
        self.max_length = max_length
        self.config = model.config.to_dict()

    @property
    def module(self) -> Any:
        return self._model

    def _encode(self, texts: Sequence[str]) -> Any:
        return self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )

    def predict_proba(self, x: Any) -> npt.NDArray[np.float64]:
        """Class probabilities for a list of texts (:meth:`_in_batches`)."""
        import torch

        if not self.classifier:
            raise IntegrityError(f"{self.folder} has no classification head")

        def probabilities(batch: Any) -> Any:
            out = self._model(**batch)
            return torch.softmax(getattr(out, "logits", out).double(), dim=1)

        return self._in_batches(_texts(x), probabilities, self.classes)

    @property
    def classes(self) -> int:
        head = getattr(self._model, "head", None)
        if head is not None:
            return int(head.out_features)
        return int(self._model.config.num_labels)

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float64]:
        """Mean-pooled last hidden states (the sentence-transformers recipe), unnormalised
        (:meth:`_in_batches`)."""
        from breedlab.families.text_head import EncoderClassifier, mean_pool

        if isinstance(self._model, EncoderClassifier):
            encoder = self._model.encoder
        else:
            encoder = getattr(self._model, "base_model", self._model)

        def pooled(batch: Any) -> Any:
            return mean_pool(encoder(**batch).last_hidden_state, batch["attention_mask"])

        return self._in_batches(_texts(texts), pooled, int(self._model.config.hidden_size))

    def _in_batches(
        self, texts: list[str], run: Callable[[Any], Any], width: int
    ) -> npt.NDArray[np.float64]:
        """``run`` over batches of at most :data:`BATCH_TEXTS` texts of similar length,
        rows back in the caller's order. Sorting by length first keeps padding (which is
        computed, then masked) small: on the reviews dev split it halved the work."""
        import torch

        order = np.argsort(np.array([len(t) for t in texts], dtype=np.int64), kind="stable")
        out = np.zeros((len(texts), width), dtype=np.float64)
        with torch.inference_mode():
            for start in range(0, len(texts), BATCH_TEXTS):
                rows = order[start : start + BATCH_TEXTS]
                batch = self._encode([texts[i] for i in rows])
                out[rows] = run(batch).double().numpy()
        return out

    def parameter_count(self) -> int:
        return int(sum(p.numel() for p in self._model.parameters()))


def _config(folder: Path) -> Any:
    from huggingface_hub.errors import StrictDataclassError
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError, TypeError, StrictDataclassError) as e:
        raise IntegrityError(
            f"{folder}/config.json is not a usable transformers config: {e}"
        ) from e
    for key, why in _REFUSED_CONFIG_KEYS.items():
        if getattr(config, key, None) is not None:
            raise IntegrityError(f"{folder}/config.json sets {key!r}, which {why}; refused")
    architectures = config.architectures
    if architectures is not None and (
        not isinstance(architectures, list) or not all(isinstance(a, str) for a in architectures)
    ):
        raise IntegrityError(f"{folder}/config.json: 'architectures' must be a list of names")
    return config


def _is_classifier(config: Any) -> bool:
    return any(a.endswith("ForSequenceClassification") for a in config.architectures or [])


def _tokenizer(folder: Path, config: Any) -> Any:
    from transformers import AutoTokenizer

    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise IntegrityError(
            f"{folder} has no tokenizer files (one of {', '.join(TOKENIZER_FILES)})"
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            folder, local_files_only=True, trust_remote_code=False
        )
    # The Rust `tokenizers` library reports a malformed tokenizer.json as a bare
    # Exception, and the Python side adds KeyError/ValueError/OSError: all mean the files
    # are not what they claim to be.
    except Exception as e:
        raise IntegrityError(f"{folder} has no loadable tokenizer: {e}") from e
    vocab_size = getattr(config, "vocab_size", None)
    top = max(tokenizer.get_vocab().values(), default=-1)
    if isinstance(vocab_size, int) and top >= vocab_size:
        raise IntegrityError(
            f"{folder}: the tokenizer emits token id {top} "
            f"but the model has only {vocab_size} embeddings"
        )
    return tokenizer


def _weights(folder: Path) -> dict[str, Any]:
    from breedlab.tensors.quantized import load_state_dict

    weights = folder / WEIGHTS_FILE
    try:
        return load_state_dict(weights)
    except InvalidRequest as e:  # an unreadable file in a package is corrupt data
        raise IntegrityError(f"{weights} is not a readable safetensors file: {e}") from e


def _check_size(folder: Path, model_class: Any, config: Any, max_bytes: int) -> None:
    """Refuse a config describing more than ``max_bytes`` of float32 weights.

    Counted on a skeleton built on the meta device (shapes, no storage): transformers
    would otherwise allocate and randomly fill any tensor the file lacks or misshapes, at
    whatever size ``config.json`` asks for, before the strict check below refuses it.
    """
    import torch
    from huggingface_hub.errors import StrictDataclassError

    try:
        with torch.device("meta"):
            skeleton = model_class(config)
    except (ValueError, TypeError, RuntimeError, AttributeError, StrictDataclassError) as e:
        raise IntegrityError(f"{folder}/config.json does not describe a model: {e}") from e
    count = sum(p.numel() for p in skeleton.parameters())
    if count * 4 > max_bytes:
        raise IntegrityError(
            f"{folder}/config.json describes {count} float32 parameters "
            f"({count * 4 / 2**20:.1f} MiB), over the budget of {max_bytes / 2**20:g} MiB"
        )


def _build(
    folder: Path, config: Any, state: dict[str, Any], *, classifier: bool, max_bytes: int
) -> Any:
    import torch
    from huggingface_hub.errors import StrictDataclassError
    from transformers import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING, MODEL_MAPPING
    from transformers.utils import logging as hf_logging

    # Else a "Loading weights" progress bar goes to stderr on every load.
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]

    mapping = MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING if classifier else MODEL_MAPPING
    try:
        candidates: Any = mapping[type(config)]
    except KeyError:
        kind = "sequence classifier" if classifier else "encoder"
        raise IntegrityError(
            f"{folder}: transformers has no {kind} for model type {config.model_type!r}"
        ) from None
    # Some model types map to several classes; pick the one config.json names, as the
    # Auto classes do, else the first.
    if isinstance(candidates, list | tuple):
        named = [c for c in candidates if c.__name__ in (config.architectures or [])]
        candidates = (named or list(candidates))[0]
    model_class: Any = candidates
    _check_size(folder, model_class, config, max_bytes)
    try:
        # No path: transformers sees only these tensors, never the folder's files. The
        # model is created on the meta device, so nothing is randomly initialised.
        # ignore_mismatched_sizes: report misshapen tensors (refused below) rather than
        # raise a RuntimeError that only points at a logged table.
        model, info = model_class.from_pretrained(
            None,
            config=config,
            state_dict=state,
            dtype=torch.float32,
            ignore_mismatched_sizes=True,
            output_loading_info=True,
        )
    except (OSError, ValueError, TypeError, RuntimeError, StrictDataclassError) as e:
        raise IntegrityError(f"{folder}: weights do not fit the config: {e}") from e
    problems = [_describe(kind, found) for kind, found in info.items() if found]
    if problems:
        raise IntegrityError(f"{folder}: weights do not fit the config: {'; '.join(problems)}")
    return model


def _describe(kind: str, found: Any) -> str:
    """``"2 mismatched keys (e.g. classifier.bias: [3] in the file, [4] by the config)"``."""
    first = sorted(found, key=str)[0]
    if kind == "mismatched_keys" and isinstance(first, tuple) and len(first) == 3:
        name, stored, expected = first
        first = f"{name}: {list(stored)} in the file, {list(expected)} by the config"
    return f"{len(found)} {kind.replace('_', ' ')} (e.g. {first})"


class TransformersFamily:
    name = "transformers"

    def load(self, folder: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> TransformersModel:
        """Load a local Hugging Face folder, plain or breedlab-quantized.

        Raises:
            IntegrityError: no ``model.safetensors`` (a pickle checkpoint is never read),
                an unusable or refused ``config.json``, missing or broken tokenizer files,
                weights that do not fit the config exactly, or a config that describes
                more than ``max_bytes`` of float32 weights (checked before any allocation).
        """
        # Absolute, so that no relative name can ever be taken for a hub repo id.
        folder = Path(folder).absolute()
        if not (folder / WEIGHTS_FILE).is_file():
            raise IntegrityError(f"{folder} has no {WEIGHTS_FILE} (pickle checkpoints refused)")
        config = _config(folder)
        tokenizer = _tokenizer(folder, config)
        if (folder / "head.json").exists():
            return _encoder_classifier(folder, config, tokenizer, max_bytes=max_bytes)
        classifier = _is_classifier(config)
        model = _build(folder, config, _weights(folder), classifier=classifier, max_bytes=max_bytes)
        return TransformersModel(folder, model, tokenizer, classifier=classifier)


def _encoder_classifier(
    folder: Path, config: Any, tokenizer: Any, *, max_bytes: int
) -> TransformersModel:
    """A bare encoder with breedlab's linear head (``families.text_head``)."""
    from breedlab.families.text_head import EncoderClassifier, HeadSpec, load_head, split_state

    spec = HeadSpec.read(folder)
    if _is_classifier(config):
        raise IntegrityError(f"{folder}: a sequence classifier cannot also carry head.json")
    encoder_state, head_state = split_state(folder, _weights(folder))
    head_bytes = (int(config.hidden_size) + 1) * spec.classes * 4
    encoder = _build(
        folder, config, encoder_state, classifier=False, max_bytes=max_bytes - head_bytes
    )
    module = EncoderClassifier(encoder, spec)
    load_head(module, folder, head_state)
    return TransformersModel(folder, module, tokenizer, classifier=True, max_length=spec.max_length)

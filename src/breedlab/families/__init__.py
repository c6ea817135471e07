"""Model families: how to load, save and run one kind of model from a package folder.

DESIGN §7. A family is one module; operators and evaluators reach it through
:func:`load_model` and the small :class:`Model` protocol, so a new family is one entry
in :data:`FAMILIES`.

- ``base``: the :class:`Model` and :class:`Family` protocols and the default budget.
- ``torch_family``: registered architectures (``mlp``, ``cnn``) from ``config.json`` +
  ``model.safetensors`` (plain or weight-only quantized, dequantized on load).
- ``transformers_family``: a local Hugging Face folder loaded with
  ``local_files_only=True`` (never a hub).

Every job runs torch with one thread (``torch.set_num_threads(1)``; parallelism comes
from processes). Weights are only ever read with safetensors -- never unpickled.
"""

from __future__ import annotations

from pathlib import Path

from breedlab.errors import IntegrityError, InvalidRequest
from breedlab.families.base import DEFAULT_MAX_BYTES, Family, Model

__all__ = ["DEFAULT_MAX_BYTES", "FAMILIES", "Family", "Model", "load_model"]


def _families() -> dict[str, Family]:
    from breedlab.families.torch_family import TorchFamily
    from breedlab.families.transformers_family import TransformersFamily

    families: dict[str, Family] = {"torch": TorchFamily(), "transformers": TransformersFamily()}
    return families


FAMILIES: tuple[str, ...] = ("torch", "transformers")


def load_model(folder: Path, family: str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Model:
    """Load the model in ``folder`` with the named family.

    ``max_bytes`` bounds the float32 weights the folder's config may describe (pass the
    capability's memory budget when there is one); it is checked before any allocation.

    Raises:
        InvalidRequest: unknown family.
        IntegrityError: the folder is not a valid model of that family (missing, unreadable
            or refused config, weights or tokenizer; weights that do not fit; a config
            over ``max_bytes``).
    """
    families = _families()
    if family not in families:
        raise InvalidRequest(f"unknown model family {family!r}; known: {', '.join(FAMILIES)}")
    try:
        return families[family].load(folder, max_bytes=max_bytes)
    except InvalidRequest as e:
        # The folder is the only input: a package whose config or weights a family cannot
        # read is stored data that is not what it claims (the torch family's config and
        # safetensors readers report these as InvalidRequest).
        raise IntegrityError(f"{folder} is not a valid {family} model: {e.message}") from e

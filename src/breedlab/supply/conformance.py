"""A model answers its capability contract (issue 10: checked at import, release approval
and every alias move, not first discovered by ``serve``).

Owns the contract probe: the model's family is known, its folder loads strictly within
the capability's memory budget, and a probe built from the contract (in-range inputs of
``input.shape``) yields finite class probabilities, one per label. Leaves loading to
``breedlab.families``, the contract's own validity to ``registry.capability`` (a
contract that cannot be probed was refused at ``capability add``) and finding a registered
model's contract to ``supply.packages.check_registered_model``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from breedlab.errors import IntegrityError, InvalidRequest
from breedlab.registry.capability import Contract, TaskType

__all__ = ["PROBE_ROWS", "check_answers_contract", "declared_family"]

#: Probe inputs per model: the range's low end, its high end and its middle.
PROBE_ROWS = 3
_TEXTS = ("", "a", "the quick brown fox jumps over the lazy dog")


def _probe_inputs(contract: Contract, family: str) -> Any:
    """In-range probe inputs from the contract: rows of ``input.shape`` (float32), or texts."""
    import numpy as np

    if family == "transformers":
        return list(_TEXTS)
    low, high = contract.input_range or (0.0, 1.0)
    width = math.prod(contract.input_shape)
    levels = np.array([low, high, (low + high) / 2], dtype=np.float32)[:PROBE_ROWS]
    return np.repeat(levels[:, None], width, axis=1)


def check_answers_contract(
    folder: Path, family: str | None, contract: Contract, *, what: str, base: bool = False
) -> None:
    """Refuse a model that does not answer ``contract`` (``what`` names it in messages).

    Checked: a family is named and known; the folder loads strictly with its config
    bounded by ``budget.memory_mib``; for a classification contract with an
    ``input.shape``, the probe's outputs have one column per label, rows that are
    finite distributions. Not checked: accuracy, latency, or inputs out of range.

    ``base``: a bare text encoder (no classification head) is accepted -- a model to
    build on (the ``train`` operator puts a head on it), imported but never served, so
    release approval and alias moves check without it.

    Raises:
        InvalidRequest: no family, or an unknown one (the message says what to pass).
        IntegrityError: the model does not load, or its outputs do not answer the contract.
    """
    if family is None:
        raise InvalidRequest(
            f"{what} names no model family, so it cannot be loaded or served; "
            "import it with --family torch or --family transformers"
        )
    from breedlab.families import FAMILIES, load_model

    if family not in FAMILIES:
        raise InvalidRequest(f"{what}: unknown model family {family!r}; known: {FAMILIES}")
    model = load_model(folder, family, max_bytes=contract.budget.memory_bytes)
    if contract.task is not TaskType.CLASSIFICATION:
        return
    if not getattr(model, "classifier", True):
        if base:
            return
        raise IntegrityError(
            f"{what} is a bare encoder with no classification head, so it cannot answer "
            f"capability {contract.name!r}",
            hint="give it a head: a 'train' run with this encoder as its parent",
        )
    if family == "torch" and not contract.input_shape:
        return  # nothing to build a probe from; serving takes whatever width the model does
    import numpy as np

    try:
        probs = np.asarray(model.predict_proba(_probe_inputs(contract, family)))
    except (RuntimeError, ValueError, IntegrityError) as e:
        shape = list(contract.input_shape)
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise IntegrityError(
            f"{what} does not take the contract's input (shape {shape}): {first}"
        ) from e
    labels = len(contract.labels)
    if probs.ndim != 2 or probs.shape[1] != labels:
        width = probs.shape[1] if probs.ndim == 2 else list(probs.shape)
        raise IntegrityError(
            f"{what} outputs {width} classes but capability {contract.name!r} lists "
            f"{labels} labels; retrain or re-head it for {labels} outputs"
        )
    if not bool(np.isfinite(probs).all()) or not np.allclose(probs.sum(axis=1), 1.0, atol=1e-6):
        raise IntegrityError(f"{what} gives non-finite or non-normalised outputs on the probe")


def declared_family(path: Path) -> str | None:
    """The family a model folder's ``config.json`` declares (the torch format names its
    own, ``"family": "torch"``), or None: a family is never guessed from anything else."""
    from breedlab import canonical
    from breedlab.families import FAMILIES

    try:
        config = canonical.decode((path / "config.json").read_bytes())
    except (OSError, InvalidRequest):
        return None
    family = config.get("family") if isinstance(config, dict) else None
    return family if isinstance(family, str) and family in FAMILIES else None

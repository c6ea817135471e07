"""An adapter job's outputs: the adapter package's files (PEFT's names, rewritten so the same
adapter gives the same bytes) and the two packages it returns. Shared by ``adapter`` on
torch and transformers parents.

PEFT's ``save_pretrained`` writes ``adapter_model.safetensors`` (deterministic),
``adapter_config.json`` and a ``README.md`` model card. The card is PEFT's empty template
("[More Information Needed]"), so it is removed -- the package manifest and provenance say
what the adapter is. The config is rewritten in PEFT's own layout (``indent=2,
sort_keys=True``) with ``target_modules`` sorted (PEFT stores them as a set, whose order
varies between processes) and ``base_model_name_or_path`` and ``revision`` null (the
parent is named by package id in the lineage, never by a path on this machine).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from breedlab.canonical import JsonValue
from breedlab.errors import IntegrityError
from breedlab.jobs import OutputPackage, ParentInput

__all__ = ["ADAPTER_FILES", "adapter_packages", "normalise_adapter_folder"]

#: The files an adapter package holds (PEFT's names); anything else PEFT writes is refused.
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
_MODEL_CARD = "README.md"


def normalise_adapter_folder(folder: Path) -> None:
    """Keep only :data:`ADAPTER_FILES`, with a config free of set order and local paths.

    Raises:
        IntegrityError: PEFT wrote other files than expected.
    """
    (folder / _MODEL_CARD).unlink(missing_ok=True)
    present = sorted(p.name for p in folder.iterdir())
    if present != sorted(ADAPTER_FILES):
        raise IntegrityError(f"PEFT wrote {present}, expected exactly {list(ADAPTER_FILES)}")
    path = folder / "adapter_config.json"
    config: dict[str, Any] = json.loads(path.read_bytes())
    config["target_modules"] = sorted(config["target_modules"])
    config["base_model_name_or_path"] = None
    config["revision"] = None
    path.write_text(json.dumps(config, indent=2, sort_keys=True), encoding="utf-8")


def adapter_packages(
    parent: ParentInput,
    family: str,
    *,
    adapter_meta: Mapping[str, JsonValue],
    model_meta: Mapping[str, JsonValue],
) -> tuple[OutputPackage, OutputPackage]:
    """``adapter/`` (family ``peft-lora``, role ``artifact``) and ``model/``, the merged
    model of ``family`` (role ``candidate``, parents: the parent and the adapter)."""
    return (
        OutputPackage(
            folder="adapter",
            kind="adapter",
            name=f"{parent.name}-lora",
            family="peft-lora",
            role="artifact",
            parents=(parent.id,),
            meta=adapter_meta,
        ),
        OutputPackage(
            folder="model",
            kind="model",
            name=f"{parent.name}-lora-merged",
            family=family,
            role="candidate",
            parents=(parent.id, "output:adapter"),
            meta=model_meta,
        ),
    )

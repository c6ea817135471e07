"""Operators that work on weights alone, no training: ``quantize`` and ``merge``.

Both take torch- or transformers-family parents: a package is one ``model.safetensors``
plus small files (config, and for text models ``head.json`` and the tokenizer), copied
from the (first) parent unchanged.

``quantize``: one parent → the same architecture with weight-only int8
(per output channel) or int4 (groups of 32) weights in plain safetensors, dequantized by
the family on load. Parameter ``scheme``: ``int8_pc`` (default) or ``int4_g32``.

``merge``: parents of one architecture → one model, streamed tensor by tensor
(``breedlab.factory.merge``). Parameters are a merge spec's record (``method`` and its
parameters; the job's seed seeds DARE). For methods that need a base (task arithmetic,
SLERP, TIES, DARE) the *first* parent is the base and the rest are merged onto it.
Parents whose ``config.json`` differ (another architecture or size) are refused with a
clear error before any tensor is read.
"""

from __future__ import annotations

import json
from typing import Any

from breedlab.errors import InvalidRequest
from breedlab.families.text_head import HEAD_FILE, copy_model_files
from breedlab.families.torch_family import CONFIG_FILE, WEIGHTS_FILE, read_config
from breedlab.jobs import Job, Log, OutputPackage, ParentInput, param_str

__all__ = ["merge", "quantize"]


#: The families whose packages are one ``model.safetensors`` plus small config files, so
#: the tensor-level operators apply (the text families' files: ``families.text_head``).
WEIGHT_FAMILIES = ("torch", "transformers")


def _parent_check(job: Job, count: int | None = None) -> str:
    """The parents' one family (torch or transformers), after checking their count."""
    if count is not None and len(job.parents) != count:
        raise InvalidRequest(f"{job.operator} takes {count} parent(s), got {len(job.parents)}")
    families = {p.family for p in job.parents}
    for parent in job.parents:
        if parent.family not in WEIGHT_FAMILIES:
            raise InvalidRequest(
                f"{job.operator} needs {' or '.join(WEIGHT_FAMILIES)} parents "
                f"({parent.name} is {parent.family})"
            )
    if len(families) > 1:
        raise InvalidRequest(f"{job.operator} takes parents of one family, got {sorted(families)}")
    return families.pop()


def _architecture(parent: ParentInput) -> dict[str, Any]:
    """What two parents must share to be merged: the torch config, or a transformers
    package's ``config.json`` and ``head.json`` (so a merge never mixes two heads' widths
    or two encoders' shapes)."""
    if parent.family == "torch":
        return read_config(parent.folder)
    found: dict[str, Any] = {}
    for name in (CONFIG_FILE, HEAD_FILE):
        path = parent.folder / name
        try:
            found[name] = json.loads(path.read_bytes()) if path.is_file() else None
        except (OSError, ValueError) as e:
            raise InvalidRequest(f"{parent.name}: {name} is not readable JSON: {e}") from e
    return found


def _describe(config: dict[str, Any]) -> str:
    if "architecture" in config:
        return f"{config.get('architecture')} {config.get('hidden')}"
    model = config.get(CONFIG_FILE) or {}
    head = config.get(HEAD_FILE) or {}
    return (
        f"{model.get('model_type')} with {model.get('num_hidden_layers')} layers of "
        f"{model.get('hidden_size')}, {head.get('classes', 'no')} head classes"
    )


def quantize(job: Job, log: Log) -> tuple[OutputPackage, ...]:
    from breedlab.tensors.quantized import QuantScheme, quantize_file

    family = _parent_check(job, 1)
    [parent] = job.parents
    scheme = param_str(job.params, "scheme", "int8_pc")
    unknown = set(job.params) - {"scheme"}
    if unknown:
        raise InvalidRequest(f"quantize takes no parameter(s) {sorted(unknown)}")
    if scheme not in {s.value for s in QuantScheme}:
        known = ", ".join(s.value for s in QuantScheme)
        raise InvalidRequest(f"unknown quantization scheme {scheme!r} (known: {known})")
    folder = job.out_dir / "model"
    copy_model_files(parent.folder, folder)
    report = quantize_file(parent.folder / WEIGHTS_FILE, folder / WEIGHTS_FILE, scheme)
    log(f"quantized {report.quantized} tensors ({scheme}): {report.source_size} -> {report.size} B")
    return (
        OutputPackage(
            folder="model",
            kind="model",
            name=f"{parent.name}-{scheme.replace('_', '-')}",
            family=family,
            parents=(parent.id,),
            meta={
                "quantization": scheme,
                "bytes_before": report.source_size,
                "bytes_after": report.size,
            },
        ),
    )


def merge(job: Job, log: Log) -> tuple[OutputPackage, ...]:
    from breedlab.factory.merge import MERGE_METHODS, MergeSpec, merge_files

    family = _parent_check(job)
    if len(job.parents) < 2:
        raise InvalidRequest(f"merge needs at least 2 parents, got {len(job.parents)}")
    configs = [_architecture(p) for p in job.parents]
    for parent, config in zip(job.parents[1:], configs[1:], strict=True):
        if config != configs[0]:
            raise InvalidRequest(
                f"mismatched architectures in a merge: {job.parents[0].name} is "
                f"{_describe(configs[0])}, {parent.name} is {_describe(config)}"
            )
    spec = MergeSpec.from_record({**dict(job.params), "seed": job.seed})
    method = MERGE_METHODS[spec.method]
    files = [p.folder / WEIGHTS_FILE for p in job.parents]
    base = files[0] if method.needs_base else None
    others = files[1:] if method.needs_base else files
    folder = job.out_dir / "model"
    copy_model_files(job.parents[0].folder, folder)
    report = merge_files(others, folder / WEIGHTS_FILE, spec, base=base)
    log(f"merged {report.merged} tensors with {spec.method}")
    return (
        OutputPackage(
            folder="model",
            kind="model",
            name=f"{job.parents[0].name}-{spec.method.replace('_', '-')}",
            family=family,
            parents=tuple(p.id for p in job.parents),
            meta={"merge": spec.to_record()},
        ),
    )

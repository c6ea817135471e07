"""Operators that work on weights alone, no training: ``quantize`` and ``merge``.

``quantize``: one torch-family parent → the same architecture with weight-only int8
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

import shutil

from breedlab.errors import InvalidRequest
from breedlab.families.torch_family import CONFIG_FILE, WEIGHTS_FILE, read_config
from breedlab.jobs import Job, Log, OutputPackage, param_str

__all__ = ["merge", "quantize"]


def _torch_parent_check(job: Job, count: int | None = None) -> None:
    if count is not None and len(job.parents) != count:
        raise InvalidRequest(f"{job.operator} takes {count} parent(s), got {len(job.parents)}")
    for parent in job.parents:
        if parent.family != "torch":
            raise InvalidRequest(f"{job.operator} needs torch-family parents ({parent.name})")


def quantize(job: Job, log: Log) -> tuple[OutputPackage, ...]:
    from breedlab.tensors.quantized import QuantScheme, quantize_file

    _torch_parent_check(job, 1)
    [parent] = job.parents
    scheme = param_str(job.params, "scheme", "int8_pc")
    unknown = set(job.params) - {"scheme"}
    if unknown:
        raise InvalidRequest(f"quantize takes no parameter(s) {sorted(unknown)}")
    if scheme not in {s.value for s in QuantScheme}:
        known = ", ".join(s.value for s in QuantScheme)
        raise InvalidRequest(f"unknown quantization scheme {scheme!r} (known: {known})")
    folder = job.out_dir / "model"
    folder.mkdir()
    shutil.copyfile(parent.folder / CONFIG_FILE, folder / CONFIG_FILE)
    report = quantize_file(parent.folder / WEIGHTS_FILE, folder / WEIGHTS_FILE, scheme)
    log(f"quantized {report.quantized} tensors ({scheme}): {report.source_size} -> {report.size} B")
    return (
        OutputPackage(
            folder="model",
            kind="model",
            name=f"{parent.name}-{scheme.replace('_', '-')}",
            family="torch",
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

    _torch_parent_check(job)
    if len(job.parents) < 2:
        raise InvalidRequest(f"merge needs at least 2 parents, got {len(job.parents)}")
    configs = [read_config(p.folder) for p in job.parents]
    for parent, config in zip(job.parents[1:], configs[1:], strict=True):
        if config != configs[0]:
            raise InvalidRequest(
                f"mismatched architectures in a merge: {job.parents[0].name} is "
                f"{configs[0].get('architecture')} {configs[0].get('hidden')}, {parent.name} is "
                f"{config.get('architecture')} {config.get('hidden')}"
            )
    spec = MergeSpec.from_record({**dict(job.params), "seed": job.seed})
    method = MERGE_METHODS[spec.method]
    files = [p.folder / WEIGHTS_FILE for p in job.parents]
    base = files[0] if method.needs_base else None
    others = files[1:] if method.needs_base else files
    folder = job.out_dir / "model"
    folder.mkdir()
    shutil.copyfile(job.parents[0].folder / CONFIG_FILE, folder / CONFIG_FILE)
    report = merge_files(others, folder / WEIGHTS_FILE, spec, base=base)
    log(f"merged {report.merged} tensors with {spec.method}")
    return (
        OutputPackage(
            folder="model",
            kind="model",
            name=f"{job.parents[0].name}-{spec.method.replace('_', '-')}",
            family="torch",
            parents=tuple(p.id for p in job.parents),
            meta={"merge": spec.to_record()},
        ),
    )

"""Recipes: which operator runs a round makes from its parents and failure cluster.

The catalogue of operators is fixed (DESIGN §8); a recipe is only parameters. For each
allowed operator the round plans these runs (variants are parameters, not operators):

    train      fine-tune the champion with the cluster's perturbation as augmentation
               (noise or shift clusters)
    distill    a 4x smaller student of the champion (Hinton soft targets)
    adapter    LoRA on the failure cluster with replay, merged into the champion
    quantize   int8 per channel; int4 in groups of 32
    merge      champion + each approved parent of the same architecture: linear,
               task arithmetic (λ = 0.75), TIES (density 0.5) and SLERP (t = 0.5),
               the champion as base where a method needs one

All runs of a round share the round's seed. Everything here is recorded in each
candidate's provenance, so a recipe change shows up as a different package id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from breedlab.canonical import JsonValue
from breedlab.digest import Digest
from breedlab.lab.operator_runs import Plan

if TYPE_CHECKING:
    from breedlab.lab.core import Lab

__all__ = ["default_plans"]

MERGES: tuple[tuple[str, dict[str, JsonValue]], ...] = (
    ("linear", {"method": "linear", "weights": ["0.5", "0.5"]}),
    ("task-arithmetic", {"method": "task_arithmetic", "lambda": "0.75"}),
    ("ties", {"method": "ties", "density": "0.5"}),
    ("slerp", {"method": "slerp", "t": "0.5"}),
)


def _same_architecture(lab: Lab, a: Digest, b: Digest) -> bool:
    from breedlab import canonical

    def config(pid: Digest) -> object:
        manifest = lab.manifest(pid)
        entry = next((f for f in manifest.files if f.path == "config.json"), None)
        if entry is None or manifest.family != "torch":
            return None
        return canonical.decode(lab.blobs.get_bytes(entry.digest))

    first = config(a)
    return first is not None and first == config(b)


def default_plans(
    lab: Lab,
    parents: Sequence[Digest],
    cluster: Digest | None,
    data: Mapping[str, Digest],
    seed: int,
) -> list[Plan]:
    champion = parents[0]
    train = ("train", data["train"])
    fitness = ("fitness", data["fitness"])
    plans: list[Plan] = []
    cluster_meta = {} if cluster is None else lab.manifest(cluster).meta.get("cluster", {})
    kind = (
        cluster_meta.get("perturbation", {}).get("kind") if isinstance(cluster_meta, dict) else None
    )
    if kind in ("noise", "shift"):
        plans.append(
            Plan(
                operator="train",
                label=f"train/finetune-{kind}",
                parents=(champion,),
                params={
                    "architecture": "mlp",
                    "hidden": [128, 64],
                    "epochs": 10,
                    "augment": kind,
                    "name": f"digits-mlp-ft-{kind}",
                },
                data=(train, fitness),
                seed=seed,
                failure_cluster=cluster,
            )
        )
    plans.append(
        Plan(
            operator="distill",
            label="distill/mlp-32",
            parents=(champion,),
            params={"architecture": "mlp", "hidden": [32], "epochs": 40},
            data=(train, fitness),
            seed=seed,
            failure_cluster=cluster,
        )
    )
    if cluster is not None:
        plans.append(
            Plan(
                operator="adapter",
                label="adapter/lora-r8",
                parents=(champion,),
                params={"r": 8, "lora_alpha": 16},
                data=(train, ("cluster", cluster)),
                seed=seed,
                failure_cluster=cluster,
            )
        )
    for scheme in ("int8_pc", "int4_g32"):
        plans.append(
            Plan(
                operator="quantize",
                label=f"quantize/{scheme}",
                parents=(champion,),
                params={"scheme": scheme},
                seed=seed,
                failure_cluster=cluster,
            )
        )
    for other in parents[1:]:
        if not _same_architecture(lab, champion, other):
            continue
        for label, params in MERGES:
            plans.append(
                Plan(
                    operator="merge",
                    label=f"merge/{label}",
                    parents=(champion, other),
                    params=params,
                    seed=seed,
                    failure_cluster=cluster,
                )
            )
    return plans

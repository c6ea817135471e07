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
from breedlab.supply import packages as supply_packages

if TYPE_CHECKING:
    from breedlab.supply.service import Supply

__all__ = ["default_plans"]

MERGES: tuple[tuple[str, dict[str, JsonValue]], ...] = (
    ("linear", {"method": "linear", "weights": ["0.5", "0.5"]}),
    ("task-arithmetic", {"method": "task_arithmetic", "lambda": "0.75"}),
    ("ties", {"method": "ties", "density": "0.5"}),
    ("slerp", {"method": "slerp", "t": "0.5"}),
)


def _same_architecture(supply: Supply, a: Digest, b: Digest) -> bool:
    from breedlab import canonical

    def config(pid: Digest) -> object:
        manifest = supply_packages.manifest(supply, pid)
        entry = next((f for f in manifest.files if f.path == "config.json"), None)
        if entry is None or manifest.family != "torch":
            return None
        return canonical.decode(supply.blobs.get_bytes(entry.digest))

    first = config(a)
    return first is not None and first == config(b)


def default_plans(
    supply: Supply,
    parents: Sequence[Digest],
    cluster: Digest | None,
    data: Mapping[str, Digest],
    seed: int,
) -> list[Plan]:
    champion = parents[0]
    train = ("train", data["train"])
    fitness = ("fitness", data["fitness"])

    def plan(
        operator: str,
        label: str,
        params: Mapping[str, JsonValue],
        datasets: tuple[tuple[str, Digest], ...] = (),
        models: tuple[Digest, ...] = (champion,),
    ) -> Plan:
        """A run of the round: its seed and cluster, on the champion unless told."""
        return Plan(
            operator=operator,
            label=label,
            parents=models,
            params=params,
            data=datasets,
            seed=seed,
            failure_cluster=cluster,
        )

    plans: list[Plan] = []
    cluster_meta = (
        {} if cluster is None else supply_packages.manifest(supply, cluster).meta.get("cluster", {})
    )
    kind = (
        cluster_meta.get("perturbation", {}).get("kind") if isinstance(cluster_meta, dict) else None
    )
    if kind in ("noise", "shift"):
        finetune: dict[str, JsonValue] = {
            "architecture": "mlp",
            "hidden": [128, 64],
            "epochs": 10,
            "augment": kind,
            "name": f"digits-mlp-ft-{kind}",
        }
        plans.append(plan("train", f"train/finetune-{kind}", finetune, (train, fitness)))
    distill: dict[str, JsonValue] = {"architecture": "mlp", "hidden": [32], "epochs": 40}
    plans.append(plan("distill", "distill/mlp-32", distill, (train, fitness)))
    if cluster is not None:
        lora: dict[str, JsonValue] = {"r": 8, "lora_alpha": 16}
        plans.append(plan("adapter", "adapter/lora-r8", lora, (train, ("cluster", cluster))))
    for scheme in ("int8_pc", "int4_g32"):
        plans.append(plan("quantize", f"quantize/{scheme}", {"scheme": scheme}))
    for other in parents[1:]:
        if not _same_architecture(supply, champion, other):
            continue
        for label, params in MERGES:
            plans.append(plan("merge", f"merge/{label}", params, models=(champion, other)))
    return plans

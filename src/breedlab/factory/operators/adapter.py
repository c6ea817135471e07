"""The ``adapter`` operator: LoRA via PEFT on a round's failure cluster, plus the merged model.

DESIGN §8: "LoRA via PEFT on the failure cluster; emits the adapter package and the
merged model". The parent is the champion (torch family, ``mlp`` or ``cnn``). Data: the
``cluster`` dataset (the items of the confused classes or perturbation kind the round
targets) plus replay from ``train`` so the model does not forget: replay items make up a
``replay`` share of the fine-tuning set, i.e. ``round(replay · n_cluster / (1 − replay))``
train items (capped at those available) that are not cluster items, drawn by the seed.

Target modules. By default LoRA wraps every ``nn.Linear`` and ``nn.Conv2d`` of the
parent, by their stable submodule names (``hidden.0``, ``hidden.1``, ``head``; a cnn adds
``conv.0``, ``conv.1``): the models are tiny, so a rank-``r`` update everywhere costs
little, and a confusion between two classes lives as much in the head as in the features.
``targets`` narrows this to a subset of those names; anything else is refused (PEFT would
otherwise match suffixes silently). The head gets a LoRA update rather than PEFT's
``modules_to_save`` copy, so the merged model is exactly ``W + (α/r)·B·A`` everywhere.

Determinism. ``torch.manual_seed(job.seed)`` right before ``get_peft_model`` fixes the
LoRA init (A: Kaiming-uniform, B: zeros, ``init_lora_weights=True``); data order comes
from ``seeded(job.seed, "order")``. PEFT's ``save_pretrained`` writes
``adapter_model.safetensors`` (deterministic), ``adapter_config.json`` and a ``README.md``
model card. The card is PEFT's empty template ("[More Information Needed]"), so it is
removed -- the package manifest and provenance say what the adapter is. The config is
rewritten in PEFT's own layout (``indent=2, sort_keys=True``) with ``target_modules``
sorted (PEFT stores them as a set, whose order varies between processes) and
``base_model_name_or_path`` and ``revision`` null (the parent is named by package id in
the lineage, never by a path on this machine).

Parameters: ``r`` (4), ``lora_alpha`` (8), ``targets`` (all Linear/Conv2d), ``replay``
("0.3", in [0, 1)), ``epochs`` (10), ``lr`` ("0.002"), ``batch_size`` (32),
``weight_decay`` ("0").

Outputs: ``adapter/`` (kind ``adapter``, family ``peft-lora``, role ``artifact``, parents
``(champion id,)``) and ``model/`` (the merged plain model: kind ``model``, family
``torch``, role ``candidate``, parents ``(champion id, "output:adapter")``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from breedlab.errors import IntegrityError, InvalidRequest
from breedlab.factory.operators.fitting import (
    Examples,
    accuracy,
    examples,
    fit,
    schedule_from_params,
    seeded,
)
from breedlab.factory.operators.parameters import (
    check_known,
    param_fraction,
    param_names,
    param_positive_int,
)
from breedlab.factory.operators.torch_models import check_fits, load_parent, one_torch_parent
from breedlab.families.torch_family import save_torch_model
from breedlab.jobs import Job, Log, OutputPackage

__all__ = ["ADAPTER_FILES", "adapter", "lora_targets"]

_PARAMS = ("r", "lora_alpha", "targets", "replay", "epochs", "lr", "batch_size", "weight_decay")

#: The files an adapter package holds (PEFT's names); anything else PEFT writes is refused.
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
_MODEL_CARD = "README.md"


def lora_targets(module: nn.Module) -> list[str]:
    """Names of the submodules LoRA can wrap here: every ``nn.Linear`` and ``nn.Conv2d``."""
    return [name for name, sub in module.named_modules() if isinstance(sub, nn.Linear | nn.Conv2d)]


def _mix(
    cluster: Examples, pool: Examples | None, replay: float, seed: int
) -> tuple[Examples, int]:
    """The cluster plus the replay share drawn from ``pool`` (module docstring)."""
    if pool is None or replay == 0:
        return cluster, 0
    in_cluster = set(cluster.ids)
    candidates = torch.tensor(
        [i for i, item in enumerate(pool.ids) if item not in in_cluster], dtype=torch.long
    )
    wanted = min(round(replay * len(cluster) / (1 - replay)), len(candidates))
    order = torch.randperm(len(candidates), generator=seeded(seed, "replay"))
    replayed = pool.take(candidates[order[:wanted]])
    return Examples.concat((cluster, replayed)), wanted


def _normalise_adapter_folder(folder: Path) -> None:
    """Keep only :data:`ADAPTER_FILES`, with a config free of set order and local paths."""
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


def adapter(job: Job, log: Log) -> tuple[OutputPackage, ...]:
    """Fit a LoRA adapter on the cluster (+ replay); save it and the merged model.

    Raises:
        InvalidRequest: not exactly one torch parent, a dataset missing (``cluster``;
            ``train`` unless ``replay`` is "0"), unknown target modules, or a bad parameter.
    """
    torch.set_num_threads(1)  # DESIGN §7
    params = job.params
    check_known(params, _PARAMS, job.operator)
    parent = one_torch_parent(job)
    rank = param_positive_int(params, "r", 4)
    lora_alpha = param_positive_int(params, "lora_alpha", 8)
    replay = param_fraction(params, "replay", "0.3", below_one=True)
    schedule = schedule_from_params(params, epochs=10, lr="0.002", batch_size=32)

    config, module = load_parent(parent)
    available = lora_targets(module)
    targets = param_names(params, "targets") or available
    unknown = sorted(set(targets) - set(available))
    if unknown:
        raise InvalidRequest(
            f"targets {unknown} are not Linear/Conv2d layers of {parent.id}; "
            f"choose from {available}"
        )
    cluster = examples(job, "cluster")
    check_fits(config, cluster, "cluster")
    pool = examples(job, "train") if replay > 0 else None
    if pool is not None:
        check_fits(config, pool, "train")
    mix, replayed = _mix(cluster, pool, replay, job.seed)
    before = {"cluster_accuracy_parent": f"{accuracy(module, cluster):.4f}"}
    if pool is not None:
        before["train_accuracy_parent"] = f"{accuracy(module, pool):.4f}"

    from peft import LoraConfig, get_peft_model  # heavy (~6 s): only when an adapter runs

    lora = LoraConfig(
        r=rank,
        lora_alpha=lora_alpha,
        target_modules=sorted(targets),
        lora_dropout=0.0,
        init_lora_weights=True,
        bias="none",
    )
    torch.manual_seed(job.seed)  # the LoRA A init draws from the global generator
    peft_model = get_peft_model(module, lora)
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    loss_fn = nn.CrossEntropyLoss()

    def batch_loss(rows: torch.Tensor) -> torch.Tensor:
        loss: torch.Tensor = loss_fn(peft_model(mix.x[rows]), mix.y[rows])
        return loss

    report = fit(job, log, peft_model, batch_loss, n=len(mix), schedule=schedule)
    adapter_dir = job.out_dir / "adapter"
    peft_model.save_pretrained(str(adapter_dir), safe_serialization=True)
    _normalise_adapter_folder(adapter_dir)

    merged: nn.Module = peft_model.merge_and_unload()
    save_torch_model(job.out_dir / "model", config, merged)
    adapter_meta = {
        "r": rank,
        "lora_alpha": lora_alpha,
        "target_modules": sorted(targets),
        "trainable_parameters": trainable,
        "cluster_items": len(cluster),
        "replay_items": replayed,
        "epochs_run": report.epochs_run,
        "failure_cluster": job.failure_cluster,
    }
    model_meta = {**before, "cluster_accuracy": f"{accuracy(merged, cluster):.4f}"}
    if pool is not None:  # forgetting shows here: the parent's own training data
        model_meta["train_accuracy"] = f"{accuracy(merged, pool):.4f}"
    log(f"adapter: {adapter_meta} {model_meta}")
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
            family="torch",
            role="candidate",
            parents=(parent.id, "output:adapter"),
            meta=model_meta,
        ),
    )

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
from ``seeded(job.seed, "order")``. The adapter folder is rewritten deterministically by
``operators.adapter_files``.

Parameters: ``r`` (4), ``lora_alpha`` (8), ``targets`` (all Linear/Conv2d), ``replay``
("0.3", in [0, 1)), ``epochs`` (10), ``lr`` ("0.002"), ``batch_size`` (32),
``weight_decay`` ("0").

Outputs: ``adapter/`` (kind ``adapter``, family ``peft-lora``, role ``artifact``, parents
``(champion id,)``) and ``model/`` (the merged plain model: kind ``model``, family
``torch``, role ``candidate``, parents ``(champion id, "output:adapter")``).

With a ``transformers`` parent, ``operators.text_adapter`` runs instead (LoRA on the
attention projections, the head trained whole).
"""

from __future__ import annotations

import torch
from torch import nn

from breedlab.errors import InvalidRequest
from breedlab.factory.operators.adapter_files import (
    ADAPTER_FILES,
    adapter_packages,
    normalise_adapter_folder,
)
from breedlab.factory.operators.fitting import (
    Examples,
    accuracy,
    examples,
    fit,
    replay_rows,
    schedule_from_params,
)
from breedlab.factory.operators.parameters import (
    check_known,
    param_fraction,
    param_names,
    param_positive_int,
)
from breedlab.factory.operators.text_adapter import text_adapter
from breedlab.factory.operators.text_parents import is_text_job
from breedlab.factory.operators.torch_models import check_fits, load_parent, one_torch_parent
from breedlab.families.torch_family import save_torch_model
from breedlab.jobs import Job, Log, OutputPackage

__all__ = ["ADAPTER_FILES", "adapter", "lora_targets"]

_PARAMS = ("r", "lora_alpha", "targets", "replay", "epochs", "lr", "batch_size", "weight_decay")


def lora_targets(module: nn.Module) -> list[str]:
    """Names of the submodules LoRA can wrap here: every ``nn.Linear`` and ``nn.Conv2d``."""
    return [name for name, sub in module.named_modules() if isinstance(sub, nn.Linear | nn.Conv2d)]


def _mix(
    cluster: Examples, pool: Examples | None, replay: float, seed: int
) -> tuple[Examples, int]:
    """The cluster plus the replay share drawn from ``pool`` (module docstring)."""
    if pool is None or replay == 0:
        return cluster, 0
    rows = replay_rows(cluster.ids, pool.ids, replay, seed)
    return Examples.concat((cluster, pool.take(rows))), len(rows)


def adapter(job: Job, log: Log) -> tuple[OutputPackage, ...]:
    """Fit a LoRA adapter on the cluster (+ replay); save it and the merged model.

    Raises:
        InvalidRequest: not exactly one torch parent, a dataset missing (``cluster``;
            ``train`` unless ``replay`` is "0"), unknown target modules, or a bad parameter.
    """
    if is_text_job(job):  # a transformers parent: operators.text_adapter
        return text_adapter(job, log)
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
    normalise_adapter_folder(adapter_dir)

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
    return adapter_packages(parent, "torch", adapter_meta=adapter_meta, model_meta=model_meta)

"""``adapter`` on a transformers parent: LoRA via PEFT on the attention projections.

The parent is an encoder with breedlab's linear head (``head.json``); ``operators.adapter``
dispatches here. LoRA (rank ``r``, scale ``lora_alpha / r``, no dropout, PEFT's default
init: A Kaiming-uniform, B zeros) wraps the encoder's ``nn.Linear`` layers named by
``targets`` -- last name components, as PEFT matches them: by default ``query``, ``key``
and ``value`` (notes/operators.md: the measured MiniLM setup). A name that is not the last
component of one of the encoder's Linear layers is refused (PEFT would raise late or match
nothing), and so is ``head``.

The head is trained whole, as PEFT's ``modules_to_save=["head"]`` copy, starting from the
parent's head: children of one champion keep its head init, so merges of them stay
calibrated (notes/models-and-data.md §2: merging LoRA children with independently
initialised heads measured ECE 0.199 against 0.05). The merged model is therefore the
parent with ``W + (α/r)·B·A`` on each target and the trained head.

Data and determinism as the torch ``adapter``: the ``cluster`` dataset plus a ``replay``
share of ``train`` (``text_fitting.focus_with_replay``), ``torch.manual_seed(job.seed)``
right before ``get_peft_model`` (the LoRA A init), the data order and dropout from the job
seed; the adapter folder rewritten by ``operators.adapter_files``.

Parameters: ``r`` (8), ``lora_alpha`` (16), ``targets`` (["query", "key", "value"]),
``replay`` ("0.3", in [0, 1)), ``steps`` (30), ``batch_size`` (16), ``lr`` ("0.001",
AdamW), ``max_length`` (64 tokens in training).

Outputs: ``adapter/`` (kind ``adapter``, family ``peft-lora``, role ``artifact``, parents
``(parent id,)``) and ``model/`` (the merged encoder-with-head package: family
``transformers``, role ``candidate``, parents ``(parent id, "output:adapter")``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from breedlab.canonical import JsonValue
from breedlab.errors import IntegrityError, InvalidRequest
from breedlab.factory.operators.adapter_files import adapter_packages, normalise_adapter_folder
from breedlab.factory.operators.parameters import (
    check_known,
    param_fraction,
    param_names,
    param_positive_int,
)
from breedlab.factory.operators.text_fitting import (
    STEP_PARAMS,
    focus_with_replay,
    step_schedule,
    text_accuracy,
    text_examples,
    tokenise,
    train_steps,
)
from breedlab.factory.operators.text_parents import (
    check_labels,
    head_classifier,
    load_text_parent,
    one_text_parent,
)
from breedlab.families.text_head import EncoderClassifier, save_encoder_classifier
from breedlab.jobs import Job, Log, OutputPackage

__all__ = ["DEFAULT_TARGETS", "text_adapter", "text_lora_targets"]

_PARAMS = ("r", "lora_alpha", "targets", "replay", *STEP_PARAMS)
DEFAULT_TARGETS = ("query", "key", "value")


def text_lora_targets(module: EncoderClassifier) -> list[str]:
    """The names ``targets`` may use: last components of the encoder's Linear layers."""
    return sorted(
        {
            name.rsplit(".", 1)[-1]
            for name, sub in module.encoder.named_modules()
            if isinstance(sub, nn.Linear)
        }
    )


def text_adapter(job: Job, log: Log) -> tuple[OutputPackage, ...]:
    """Fit a LoRA adapter (and the head) on the cluster plus replay; save both outputs.

    Raises:
        InvalidRequest: not exactly one transformers parent with a head, a dataset missing
            (``cluster``; ``train`` unless ``replay`` is "0"), unknown targets, labels the
            head cannot take, or a bad parameter.
    """
    torch.set_num_threads(1)  # DESIGN §7
    params = job.params
    check_known(params, _PARAMS, job.operator)
    parent = one_text_parent(job)
    rank = param_positive_int(params, "r", 8)
    lora_alpha = param_positive_int(params, "lora_alpha", 16)
    replay = param_fraction(params, "replay", "0.3", below_one=True)
    schedule = step_schedule(params, steps=30, lr="0.001", batch_size=16, max_length=64)
    targets = sorted(param_names(params, "targets") or DEFAULT_TARGETS)

    model = load_text_parent(parent)
    module = head_classifier(model, parent, job.operator)
    available = text_lora_targets(module)
    unknown = [t for t in targets if t not in available]
    if unknown:
        raise InvalidRequest(
            f"targets {unknown} are not Linear layers of {parent.id}'s encoder; "
            f"choose from {available}"
        )
    cluster = text_examples(job, "cluster")
    pool = text_examples(job, "train") if replay > 0 else None
    mix, replayed = focus_with_replay(cluster, pool, replay, job.seed)
    check_labels(module.spec.classes, mix.y, "cluster")
    tokenizer = model.tokenizer
    before = text_accuracy(module, tokenizer, cluster, schedule.max_length)

    from peft import LoraConfig, get_peft_model  # heavy (~6 s): only when an adapter runs

    lora = LoraConfig(
        r=rank,
        lora_alpha=lora_alpha,
        target_modules=targets,
        modules_to_save=["head"],
        lora_dropout=0.0,
        init_lora_weights=True,
        bias="none",
    )
    torch.manual_seed(job.seed)  # the LoRA A init draws from the global generator
    peft_model = get_peft_model(module, lora)
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)

    def batch_loss(rows: torch.Tensor) -> torch.Tensor:
        part = mix.take(rows)
        batch = tokenise(tokenizer, part.texts, schedule.max_length)
        return F.cross_entropy(peft_model(**batch), part.y)

    last = train_steps(job, log, peft_model, batch_loss, n=len(mix), schedule=schedule)
    adapter_dir = job.out_dir / "adapter"
    peft_model.save_pretrained(str(adapter_dir), safe_serialization=True)
    normalise_adapter_folder(adapter_dir)
    merged = peft_model.merge_and_unload()
    if not isinstance(merged, EncoderClassifier):  # PEFT hands back the module it wrapped
        raise IntegrityError(f"PEFT's merge_and_unload returned a {type(merged).__name__}")
    save_encoder_classifier(merged, job.out_dir / "model", source=parent.folder)

    adapter_meta: dict[str, JsonValue] = {
        "r": rank,
        "lora_alpha": lora_alpha,
        "target_modules": list(targets),
        "modules_to_save": ["head"],
        "trainable_parameters": trainable,
        "steps": schedule.steps,
        "cluster_items": len(cluster),
        "replay_items": replayed,
        "last_loss": None if last is None else f"{last:.4f}",
        "failure_cluster": job.failure_cluster,
    }
    model_meta: dict[str, JsonValue] = {
        "cluster_accuracy_parent": before,
        "cluster_accuracy": text_accuracy(merged, tokenizer, cluster, schedule.max_length),
    }
    log(f"adapter: {adapter_meta} {model_meta}")
    return adapter_packages(
        parent, "transformers", adapter_meta=adapter_meta, model_meta=model_meta
    )

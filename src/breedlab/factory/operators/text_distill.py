"""``distill`` on a transformers teacher: a layer-drop student trained by logit KD.

The teacher is an encoder with breedlab's linear head; ``operators.distill`` dispatches
here. The student is initialised DistilBERT-style by dropping layers (notes/operators.md
§5): it keeps the teacher's encoder layers ``layers`` (default every other one, ``[0, 2,
4]`` of 6), renumbered ``0..k-1`` in that order, and copies the embeddings, those layers,
the pooler and the head; its config is the teacher's with ``num_hidden_layers = k``. With
``steps`` 0 the student is exactly that copy.

Training: Hinton KD on the ``train`` texts (``kd.distillation_loss``: ``α·KL·T² + (1−α)·CE``),
every parameter trainable, AdamW; the teacher's logits are computed for each batch (no
gradient), so a job costs its steps, not a pass over the whole split. The accuracies in
the package meta are on the first ``REPORT_ITEMS`` train rows (``text_fitting``).

Parameters: ``layers`` (a strictly increasing list of teacher layer indices), ``temperature``
("2"), ``alpha`` ("0.7"), ``steps`` (30), ``batch_size`` (16), ``lr`` ("0.0001"),
``max_length`` (64 tokens in training), ``name`` ("<teacher name>-distilled").

Output: ``model/``, an encoder-with-head package whose ``config.json`` is the teacher's
with the new layer count (written ``indent=2, sort_keys=True``: the same bytes for the
same teacher), family ``transformers``, role ``candidate``, parents ``(teacher id,)``.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from breedlab.canonical import JsonValue
from breedlab.errors import InvalidRequest
from breedlab.factory.operators.kd import distillation_loss
from breedlab.factory.operators.parameters import (
    check_known,
    param_fraction,
    param_positive_float,
)
from breedlab.factory.operators.text_fitting import (
    STEP_PARAMS,
    logits,
    report_sample,
    step_schedule,
    text_examples,
    tokenise,
    train_steps,
)
from breedlab.factory.operators.text_parents import (
    check_labels,
    encoder_layers,
    head_classifier,
    load_text_parent,
    one_text_parent,
    text_package,
)
from breedlab.families.text_head import EncoderClassifier, save_encoder_classifier
from breedlab.jobs import Job, Log, OutputPackage, param_str

__all__ = ["layer_drop_student", "text_distill"]

_PARAMS = ("layers", "temperature", "alpha", *STEP_PARAMS, "name")
_LAYER_PREFIX = "encoder.layer."


def _layers(params: Mapping[str, JsonValue], count: int) -> list[int]:
    """The ``layers`` parameter, checked against a teacher of ``count`` layers."""
    value = params.get("layers", list(range(0, count, 2)))
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        raise InvalidRequest("parameter 'layers' must be a non-empty list of layer indices")
    if any(v < 0 or v >= count for v in value):
        raise InvalidRequest(
            f"parameter 'layers' is {value}: the teacher has layers 0..{count - 1}"
        )
    if any(b <= a for a, b in itertools.pairwise(value)):
        raise InvalidRequest(f"parameter 'layers' must be strictly increasing, got {value}")
    return list(value)


def layer_drop_student(teacher: EncoderClassifier, layers: list[int]) -> EncoderClassifier:
    """A copy of ``teacher`` keeping only the encoder ``layers`` (renumbered in order).

    Built with the teacher encoder's own class from its config with ``num_hidden_layers``
    changed, then filled strictly: every tensor is the teacher's.
    """
    config = copy.deepcopy(teacher.encoder.config)
    config.num_hidden_layers = len(layers)
    encoder = type(teacher.encoder)(config)
    renumber = {
        f"{_LAYER_PREFIX}{old}.": f"{_LAYER_PREFIX}{new}." for new, old in enumerate(layers)
    }
    state: dict[str, Any] = {}
    for name, tensor in teacher.encoder.state_dict().items():
        if not name.startswith(_LAYER_PREFIX):
            state[name] = tensor.clone()
            continue
        index = name[len(_LAYER_PREFIX) :].split(".", 1)[0]
        prefix = f"{_LAYER_PREFIX}{index}."
        if prefix in renumber:
            state[renumber[prefix] + name[len(prefix) :]] = tensor.clone()
    encoder.load_state_dict(state, strict=True)
    student = EncoderClassifier(encoder, teacher.spec)
    student.head.load_state_dict(teacher.head.state_dict())
    return student.eval()


def _write_config(source: Path, folder: Path, layers: int) -> None:
    """The teacher's ``config.json`` with ``num_hidden_layers`` changed (sorted keys)."""
    config = json.loads((source / "config.json").read_bytes())
    config["num_hidden_layers"] = layers
    text = json.dumps(config, indent=2, sort_keys=True) + "\n"
    (folder / "config.json").write_text(text, encoding="utf-8")


def text_distill(job: Job, log: Log) -> tuple[OutputPackage, ...]:
    """Train a layer-drop student on the teacher's soft targets and the hard labels.

    Raises:
        InvalidRequest: not exactly one transformers teacher with a head, no ``train``
            dataset, labels the head cannot take, or a bad parameter (``layers`` out of
            range, ``steps`` < 0, ...).
    """
    torch.set_num_threads(1)  # DESIGN §7
    params = job.params
    check_known(params, _PARAMS, job.operator)
    parent = one_text_parent(job)
    temperature = param_positive_float(params, "temperature", "2")
    alpha = param_fraction(params, "alpha", "0.7")
    schedule = step_schedule(params, steps=30, lr="0.0001", batch_size=16, max_length=64)
    name = param_str(params, "name", f"{parent.name}-distilled")

    model = load_text_parent(parent)
    teacher = head_classifier(model, parent, job.operator)
    teacher_layers = len(encoder_layers(teacher.encoder, parent))
    layers = _layers(params, teacher_layers)
    data = text_examples(job, "train")
    check_labels(teacher.spec.classes, data.y, "train")
    tokenizer = model.tokenizer
    teacher.eval()
    torch.manual_seed(job.seed)  # nothing random survives the copy; kept for certainty
    student = layer_drop_student(teacher, layers)

    def batch_loss(rows: torch.Tensor) -> torch.Tensor:
        # The teacher's logits per batch, not once over all of train: a round takes
        # steps x batch_size rows (320 at CI size), a fraction of the split's 1,966.
        part = data.take(rows)
        batch = tokenise(tokenizer, part.texts, schedule.max_length)
        with torch.no_grad():
            soft_targets = teacher(**batch)
        return distillation_loss(
            student(**batch), soft_targets, part.y, temperature=temperature, alpha=alpha
        )

    last = train_steps(job, log, student, batch_loss, n=len(data), schedule=schedule)
    folder = job.out_dir / "model"
    save_encoder_classifier(student, folder, source=parent.folder)
    _write_config(parent.folder, folder, len(layers))
    sample = report_sample(data)
    predicted = logits(student, tokenizer, sample, schedule.max_length).argmax(1)
    taught = logits(teacher, tokenizer, sample, schedule.max_length).argmax(1)
    meta: dict[str, JsonValue] = {
        "layers": list(layers),
        "teacher_layers": teacher_layers,
        "steps": schedule.steps,
        "parameters": sum(p.numel() for p in student.parameters()),
        "teacher_parameters": sum(p.numel() for p in teacher.parameters()),
        "train_accuracy": f"{float((predicted == sample.y).float().mean()):.4f}",
        "teacher_agreement": f"{float((predicted == taught).float().mean()):.4f}",
        "report_items": len(sample),
        "last_loss": None if last is None else f"{last:.4f}",
    }
    log(f"distill: {meta}")
    return (text_package(name, parent, meta),)

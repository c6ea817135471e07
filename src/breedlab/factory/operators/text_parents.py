"""Transformers-family parents as the text operators see them.

Owns picking a job's one ``transformers`` parent, loading it (bounded by its budget), telling
a bare encoder from an encoder with breedlab's linear head, finding the encoder's stack of
layers, and checking that a text dataset's labels fit a head. Leaves the package format
(``head.json``, tensor names, :func:`~breedlab.families.text_head.save_encoder_classifier`)
to ``families.text_head`` and reading folders to ``families.transformers_family``.

A Hugging Face ``*ForSequenceClassification`` folder is refused here: its outputs could not
be written as an encoder-with-head package, and its own head is not breedlab's.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from breedlab.canonical import JsonValue
from breedlab.errors import InvalidRequest
from breedlab.families.text_head import EncoderClassifier
from breedlab.families.transformers_family import TransformersFamily, TransformersModel
from breedlab.jobs import Job, OutputPackage, ParentInput

__all__ = [
    "check_labels",
    "encoder_layers",
    "head_classifier",
    "is_text_job",
    "load_text_parent",
    "one_text_parent",
    "text_package",
]

FAMILY = "transformers"


def is_text_job(job: Job) -> bool:
    """Whether the job's (first) parent is a transformers model: the text operators run."""
    return bool(job.parents) and job.parents[0].family == FAMILY


def one_text_parent(job: Job) -> ParentInput:
    """The job's single parent, of the ``transformers`` family.

    Raises:
        InvalidRequest: no parent, several, or another family.
    """
    if len(job.parents) != 1:
        raise InvalidRequest(
            f"operator {job.operator} takes exactly one parent, got {len(job.parents)}"
        )
    parent = job.parents[0]
    if parent.family != FAMILY:
        raise InvalidRequest(
            f"operator {job.operator} needs a transformers parent; {parent.id} is {parent.family!r}"
        )
    return parent


def load_text_parent(parent: ParentInput) -> TransformersModel:
    """The parent model (eval mode, fp32, quantized weights dequantized).

    Raises:
        InvalidRequest: a Hugging Face sequence classifier (see module docstring).
        IntegrityError: the folder is not a loadable transformers package.
    """
    model = TransformersFamily().load(parent.folder, max_bytes=parent.max_bytes)
    if model.classifier and not isinstance(model.module, EncoderClassifier):
        raise InvalidRequest(
            f"{parent.id} is a Hugging Face sequence classifier; the text operators take a "
            "bare encoder or an encoder with breedlab's head (head.json)"
        )
    return model


def head_classifier(model: TransformersModel, parent: ParentInput, operator: str) -> Any:
    """The parent's :class:`EncoderClassifier`.

    Raises:
        InvalidRequest: a bare encoder (no ``head.json``) -- ``train`` fits a head first.
    """
    module = model.module
    if not isinstance(module, EncoderClassifier):
        raise InvalidRequest(
            f"operator {operator} needs an encoder with a head; {parent.id} is a bare encoder",
            hint="fit a head first: operator train with this parent",
        )
    return module


def encoder_layers(encoder: nn.Module, parent: ParentInput) -> nn.ModuleList:
    """The encoder's stack of transformer layers (BERT-style ``encoder.layer``).

    Raises:
        InvalidRequest: the encoder has no such stack.
    """
    stack = getattr(getattr(encoder, "encoder", None), "layer", None)
    if not isinstance(stack, nn.ModuleList) or len(stack) == 0:
        raise InvalidRequest(
            f"{parent.id}: the encoder has no BERT-style layer stack (encoder.layer)"
        )
    return stack


def check_labels(classes: int, y: torch.Tensor, role: str) -> None:
    """Refuse labels the head cannot take."""
    if int(y.min()) < 0 or int(y.max()) >= classes:
        raise InvalidRequest(f"the {role!r} dataset has labels outside 0..{classes - 1}")


def text_package(name: str, parent: ParentInput, meta: dict[str, JsonValue]) -> OutputPackage:
    """A text operator's one output: ``model/``, an encoder-with-head candidate."""
    return OutputPackage(
        folder="model",
        kind="model",
        name=name,
        family=FAMILY,
        parents=(parent.id,),
        meta=meta,
    )

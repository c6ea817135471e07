"""Torch-family models as the training operators see them: configs, fresh modules, parents.

Owns turning operator parameters into a torch-family ``config.json`` value, building a
seeded fresh module, loading a job's one torch parent, and checking that a dataset fits a
model. Leaves the architectures, weight files and dequantisation to
``breedlab.families.torch_family`` (a package cannot bring code: only its registered
architectures exist), and fitting to ``operators.fitting``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from breedlab.canonical import JsonValue
from breedlab.errors import InvalidRequest
from breedlab.factory.operators.augmentation import image_shape
from breedlab.factory.operators.fitting import Examples
from breedlab.factory.operators.parameters import param_positive_int, param_sizes
from breedlab.families.torch_family import (
    ARCHITECTURES,
    TorchFamily,
    build_module,
    check_size,
    set_input_statistics,
)
from breedlab.jobs import Job, ParentInput, param_str

__all__ = [
    "ARCHITECTURE_PARAMS",
    "check_fits",
    "check_params_size",
    "config_from_params",
    "fresh_module",
    "load_parent",
    "one_torch_parent",
]

#: Parameters :func:`config_from_params` reads.
ARCHITECTURE_PARAMS = ("architecture", "hidden", "channels", "image", "classes", "standardize")

_DEFAULT_CHANNELS = (16, 32)


def config_from_params(
    params: Mapping[str, JsonValue],
    *,
    inputs: int,
    classes: int,
    architecture: str = "mlp",
    hidden: Sequence[int] = (128, 64),
    standardize: bool = False,
) -> dict[str, Any]:
    """A torch-family config: ``architecture`` (``mlp`` | ``cnn``), ``hidden`` widths and,
    for ``cnn``, ``channels`` (default [16, 32]) and ``image`` (default: square); for an
    ``mlp``, ``standardize`` (default as given: a student follows its teacher).

    ``inputs`` and ``classes`` come from the data (or the teacher); a ``classes``
    parameter may widen the head beyond the labels seen.

    Raises:
        InvalidRequest: unknown architecture, bad sizes, or an image that does not fit.
    """
    arch = param_str(params, "architecture", architecture)
    if arch not in ARCHITECTURES:
        raise InvalidRequest(f"unknown architecture {arch!r}; known: {', '.join(ARCHITECTURES)}")
    standardize = params.get("standardize", standardize)
    if not isinstance(standardize, bool) or (standardize and arch != "mlp"):
        raise InvalidRequest("parameter 'standardize' is true or false, for architecture 'mlp'")
    heads = param_positive_int(params, "classes", classes)
    if heads < classes:
        raise InvalidRequest(f"parameter 'classes' is {heads} but the labels need {classes}")
    config: dict[str, Any] = {
        "architecture": arch,
        "classes": heads,
        "hidden": param_sizes(params, "hidden", hidden),
        "inputs": inputs,
    }
    if arch == "cnn":
        image = param_sizes(params, "image", []) if "image" in params else None
        height, width = image_shape(inputs, image)
        config["image"] = [height, width]
        config["channels"] = param_sizes(params, "channels", _DEFAULT_CHANNELS)
    else:
        for key in ("channels", "image"):
            if key in params:
                raise InvalidRequest(f"parameter {key!r} is for architecture 'cnn', not {arch!r}")
    if standardize:  # absent when false: digits' configs (and package ids) stay as they were
        config["standardize"] = True
    return config


def check_params_size(
    params: Mapping[str, JsonValue], *, inputs: int, classes: int, max_bytes: int
) -> None:
    """Refuse operator parameters whose fresh model would exceed ``max_bytes`` of float32
    weights, by arithmetic on the config they make (nothing is built).

    Raises:
        InvalidRequest: as :func:`config_from_params`, or the size (naming the field).
    """
    check_size(config_from_params(params, inputs=inputs, classes=classes), max_bytes)


def fresh_module(config: Mapping[str, Any], seed: int, x: torch.Tensor) -> nn.Module:
    """A newly initialised module: torch's global generator seeded with ``seed`` first; a
    standardizing MLP takes its input statistics from the training rows ``x``."""
    torch.manual_seed(seed)
    module = build_module(config)
    set_input_statistics(module, x)
    return module


def one_torch_parent(job: Job) -> ParentInput:
    """The job's single parent, which must be of the ``torch`` family.

    Raises:
        InvalidRequest: no parent, several, or another family.
    """
    if len(job.parents) != 1:
        raise InvalidRequest(
            f"operator {job.operator} takes exactly one parent, got {len(job.parents)}"
        )
    parent = job.parents[0]
    if parent.family != "torch":
        raise InvalidRequest(
            f"operator {job.operator} needs a torch-family parent; {parent.id} is {parent.family!r}"
        )
    return parent


def load_parent(parent: ParentInput) -> tuple[dict[str, Any], nn.Module]:
    """The parent's config and module (eval mode; quantized weights are dequantized),
    its config bounded by ``parent.max_bytes``."""
    model = TorchFamily().load(parent.folder, max_bytes=parent.max_bytes)
    return dict(model.config), model.module


def check_fits(config: Mapping[str, Any], data: Examples, role: str) -> None:
    """Refuse data whose width or labels the model cannot take."""
    if data.x.ndim != 2 or data.x.shape[1] != config["inputs"]:
        raise InvalidRequest(
            f"the {role!r} dataset has inputs of shape {tuple(data.x.shape)[1:]}, "
            f"the model takes {config['inputs']}"
        )
    if int(data.y.min()) < 0 or int(data.y.max()) >= config["classes"]:
        raise InvalidRequest(f"the {role!r} dataset has labels outside 0..{config['classes'] - 1}")

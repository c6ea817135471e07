"""A new capability's contract, written as commented TOML for its owner to edit
(``breedlab capability init``; seed, stage 0: "choose one narrow capability").

The template is what :func:`~breedlab.registry.capability.parse_contract` reads. Blanks
the owner must fill (labels, tabular features) are written empty, so ``capability add``
names them until they are filled; everything else has a working default with a comment
saying what to change. Leaves validation to ``capability``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from breedlab.errors import Conflict, InvalidRequest
from breedlab.registry.capability import CAPABILITY_NAME, OPERATOR_NAMES, InputType, TaskType

__all__ = ["contract_template", "write_contract_template"]

#: Budget defaults by modality: (latency p95 ms, memory MiB, size MiB). A small MLP
#: answers a tabular or 8x8 request in well under a millisecond; a MiniLM-sized text
#: encoder needs tens of milliseconds and ~100 MiB on one CPU thread.
_BUDGETS = {
    InputType.TABULAR: (5, 512, 5),
    InputType.TENSOR: (5, 512, 5),
    InputType.TEXT: (50, 1024, 200),
}


def _names(values: Sequence[str], what: str) -> str:
    if any(not v.strip() for v in values) or len(set(values)) != len(values):
        raise InvalidRequest(f"{what} must be distinct and non-empty ({', '.join(values)})")
    return json.dumps(list(values))  # a TOML array of basic strings


def _input_table(modality: InputType, features: Sequence[str]) -> str:
    if modality is InputType.TABULAR:
        given = _names(features, "--features") if features else "[]"
        fill = "" if features else "  # FILL IN: the feature column names, in order"
        return (
            '[input]\ntype = "tabular"\ndtype = "float32"\n'
            f"features = {given}{fill}\n"
            '# range = "0..1"              # optional: one range for every feature\n'
            "# [input.ranges]              # optional: a range per feature\n"
            f'# {features[0] if features else "alcohol"} = "0..20"\n'
        )
    if features:
        raise InvalidRequest(f"--features applies to tabular capabilities, not {modality}")
    if modality is InputType.TEXT:
        return '[input]\ntype = "text"\nmax_length = 2000            # characters per request\n'
    return (
        '[input]\ntype = "tensor"\ndtype = "float32"\n'
        "# shape = [8, 8]              # optional: the input's dimensions\n"
        '# range = "0..1"              # optional: the values\' range\n'
    )


def contract_template(
    name: str,
    *,
    task: TaskType | str,
    modality: InputType | str,
    labels: Sequence[str] = (),
    features: Sequence[str] = (),
) -> str:
    """A commented contract for ``name``; valid as written once labels (and, tabular,
    features) are given.

    Raises:
        InvalidRequest: a bad name, task, modality, or repeated labels or features.
    """
    if not CAPABILITY_NAME.fullmatch(name):
        raise InvalidRequest(
            f"capability name {name!r} must be lowercase letters, digits, '_' or '-'"
        )
    try:
        task = TaskType(task)
        modality = InputType("tensor" if modality == "image" else modality)
    except ValueError as e:
        raise InvalidRequest(f"{e}; --modality is tabular, text or image") from None
    if task is not TaskType.CLASSIFICATION:
        raise InvalidRequest(f"capability init writes classification contracts, not {task}")
    label_line = (
        f"labels = {_names(labels, '--labels')}"
        if labels
        else "labels = []                   # FILL IN: the class labels, as strings"
    )
    classes = f"classes = {len(labels)}\n" if labels else ""
    latency, memory, size = _BUDGETS[modality]
    operators = json.dumps(list(OPERATOR_NAMES))
    return f"""\
# The contract of capability {name!r} (seed, stage 0: "Define the boundary").
# Edit it, then: breedlab capability add {name}.toml
name = "{name}"
description = "FILL IN: what the capability decides, in one sentence."
task = "{task}"
data_class = "internal"             # public | internal | confidential | restricted
risk_tier = "medium"                # low | medium | high: how many approvals a release needs
{label_line}
allowed_operators = {operators}  # the breeding operators allowed

{_input_table(modality, features)}
[output]
type = "class_probabilities"
{classes}
[baseline]                          # what today's system scores, to beat
description = "FILL IN: the current system"
metric = "accuracy"
value = 0.5

[budget]                            # one request on one CPU thread
latency_p95_ms = {latency}
memory_mib = {memory}
size_mib = {size}

[owners]                            # who answers for each part
model = "model-owners@example.org"
evaluation = "eval-owners@example.org"
security = "security@example.org"
production = "ml-platform-oncall@example.org"
"""


def write_contract_template(
    out: Path,
    name: str,
    *,
    task: TaskType | str,
    modality: InputType | str,
    labels: Sequence[str] = (),
    features: Sequence[str] = (),
) -> Path:
    """Write :func:`contract_template` to ``out`` (never over an existing file).

    Raises:
        Conflict: ``out`` exists.
        InvalidRequest: as :func:`contract_template`.
    """
    text = contract_template(name, task=task, modality=modality, labels=labels, features=features)
    try:
        with out.open("x", encoding="utf-8") as f:
            f.write(text)
    except FileExistsError:
        raise Conflict(
            f"{out} exists; capability init never overwrites",
            hint="pass --out NEW_FILE, or edit the existing contract",
        ) from None
    return out

"""Fitting text models inside operators: text examples, tokenised batches, the AdamW loop.

The text twin of ``operators.fitting``: owns the texts a fit sees (a job's text datasets),
the failure-cluster focus with replay, tokenising a batch, the one step-counted training
loop and logits/accuracy over a text set. Leaves loading and saving models to
``operators.text_parents`` and ``families.text_head``, and the losses to each operator.

Determinism: the same as ``operators.fitting`` -- one torch thread, ``torch.manual_seed
(job.seed)`` before the loop (dropout draws from the global generator), the data order
from ``seeded(job.seed, "order")`` and the replay draw from ``seeded(job.seed, "replay")``
(the torch ``adapter``'s streams), so the same job writes the same bytes in any process.
Tokenising is a pure function of the texts and ``max_length``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from breedlab.canonical import JsonValue
from breedlab.datasets import read_text_dataset
from breedlab.errors import InvalidRequest
from breedlab.factory.operators.fitting import batches, replay_rows, seeded
from breedlab.factory.operators.parameters import (
    param_nonnegative_int,
    param_positive_float,
    param_positive_int,
)
from breedlab.jobs import DataInput, Job, Log

__all__ = [
    "REPORT_ITEMS",
    "STEP_PARAMS",
    "StepSchedule",
    "TextExamples",
    "focus_with_replay",
    "logits",
    "optional_text_examples",
    "report_sample",
    "step_schedule",
    "text_accuracy",
    "text_examples",
    "tokenise",
    "train_steps",
]

#: Schedule parameters every text training operator reads.
STEP_PARAMS = ("steps", "batch_size", "lr", "max_length")
#: Rows the accuracies in a package's meta are measured on (:func:`report_sample`).
REPORT_ITEMS = 256
#: AdamW's decoupled weight decay (torch's default), fixed: not a breeding knob.
_WEIGHT_DECAY = 0.01
#: Texts per forward pass when no gradient is needed (as ``transformers_family``).
_EVAL_BATCH = 64
_MAX_TOKENS = 512


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class TextExamples:
    """Texts with int64 labels ``y`` ``(n,)`` and item ids."""

    texts: tuple[str, ...]
    y: torch.Tensor
    ids: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, rows: torch.Tensor) -> TextExamples:
        index = rows.tolist()
        return TextExamples(
            texts=tuple(self.texts[i] for i in index),
            y=self.y[rows],
            ids=tuple(self.ids[i] for i in index),
        )

    @staticmethod
    def concat(parts: tuple[TextExamples, ...]) -> TextExamples:
        return TextExamples(
            texts=tuple(t for p in parts for t in p.texts),
            y=torch.cat([p.y for p in parts]),
            ids=tuple(i for p in parts for i in p.ids),
        )


def _read(data: DataInput) -> TextExamples:
    dataset = read_text_dataset(data.folder)  # verifies every item hash
    if len(dataset) == 0:
        raise InvalidRequest(f"the {data.role!r} dataset {data.id} is empty")
    return TextExamples(texts=dataset.texts, y=torch.from_numpy(dataset.y.copy()), ids=dataset.ids)


def text_examples(job: Job, role: str) -> TextExamples:
    """The job's one text dataset with this role.

    Raises:
        InvalidRequest: absent or empty.
        IntegrityError: not a text dataset, or an item does not match its hash.
    """
    return _read(job.dataset(role))


def optional_text_examples(job: Job, role: str) -> TextExamples | None:
    """The text dataset with this role if the job has one."""
    if not any(d.role == role for d in job.data):
        return None
    return text_examples(job, role)


def focus_with_replay(
    cluster: TextExamples, pool: TextExamples | None, replay: float, seed: int
) -> tuple[TextExamples, int]:
    """The failure cluster plus its replay share of ``pool`` (``fitting.replay_rows``: the
    torch ``adapter``'s rule and stream); the mix and the number of replayed items."""
    if pool is None or replay == 0:
        return cluster, 0
    rows = replay_rows(cluster.ids, pool.ids, replay, seed)
    return TextExamples.concat((cluster, pool.take(rows))), len(rows)


@dataclass(frozen=True, slots=True, kw_only=True)
class StepSchedule:
    """``steps`` optimiser steps (0 leaves the weights as they were) of ``batch_size``
    texts truncated to ``max_length`` tokens, AdamW at ``lr``."""

    steps: int
    batch_size: int
    lr: float
    max_length: int


def step_schedule(
    params: Mapping[str, JsonValue], *, steps: int, lr: str, batch_size: int, max_length: int
) -> StepSchedule:
    """Read :data:`STEP_PARAMS` with the operator's defaults.

    Raises:
        InvalidRequest: a value of the wrong type or out of range (``steps`` < 0,
            ``max_length`` outside [1, 512]).
    """
    tokens = param_positive_int(params, "max_length", max_length)
    if tokens > _MAX_TOKENS:
        raise InvalidRequest(f"parameter 'max_length' must be at most {_MAX_TOKENS}, got {tokens}")
    return StepSchedule(
        steps=param_nonnegative_int(params, "steps", steps),
        batch_size=param_positive_int(params, "batch_size", batch_size),
        lr=param_positive_float(params, "lr", lr),
        max_length=tokens,
    )


def tokenise(tokenizer: Any, texts: tuple[str, ...] | list[str], max_length: int) -> Any:
    """A padded, truncated batch: ``input_ids``, ``attention_mask`` (and what the
    tokenizer adds, such as ``token_type_ids``), as torch tensors."""
    return tokenizer(
        list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt"
    )


def logits(module: nn.Module, tokenizer: Any, data: TextExamples, max_length: int) -> torch.Tensor:
    """The module's logits ``(n, classes)`` over ``data`` in eval mode, without gradients."""
    module.eval()
    parts = []
    with torch.no_grad():
        for start in range(0, len(data), _EVAL_BATCH):
            batch = tokenise(tokenizer, data.texts[start : start + _EVAL_BATCH], max_length)
            parts.append(module(**batch))
    return torch.cat(parts)


def report_sample(data: TextExamples) -> TextExamples:
    """The first :data:`REPORT_ITEMS` rows of ``data``: what the accuracies recorded in a
    package's meta are measured on. They only describe the job (the frozen suite judges
    the candidate), and over a whole cluster or train split they cost a MiniLM job more
    than its training steps (1,966 texts twice, ~50 s, against ~13 s for 20 LoRA steps)."""
    return data.take(torch.arange(min(len(data), REPORT_ITEMS)))


def text_accuracy(module: nn.Module, tokenizer: Any, data: TextExamples, max_length: int) -> str:
    """Top-1 accuracy on :func:`report_sample` of ``data``, a 4-decimal string (package meta)."""
    sample = report_sample(data)
    predicted = logits(module, tokenizer, sample, max_length).argmax(dim=1)
    return f"{float((predicted == sample.y).sum().item()) / len(sample):.4f}"


def train_steps(
    job: Job,
    log: Log,
    module: nn.Module,
    batch_loss: Callable[[torch.Tensor], torch.Tensor],
    *,
    n: int,
    schedule: StepSchedule,
) -> float | None:
    """Run ``schedule.steps`` AdamW steps on mini-batches of ``n`` training rows.

    Rows come in seeded permutations (``seeded(job.seed, "order")``), one after another
    until the steps are done; ``batch_loss(rows)`` returns the mean loss of those rows and
    AdamW updates every parameter that requires grad. Logs about ten lines; returns the
    last step's loss (``None`` for 0 steps). The module is left in eval mode.
    """
    torch.manual_seed(job.seed)  # dropout masks
    generator = seeded(job.seed, "order")
    trainable = [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=schedule.lr, weight_decay=_WEIGHT_DECAY)
    every = max(1, schedule.steps // 10)
    step = 0
    last: float | None = None
    module.train()
    while step < schedule.steps:
        for rows in batches(n, schedule.batch_size, generator):
            optimizer.zero_grad(set_to_none=True)
            loss = batch_loss(rows)
            loss.backward()  # type: ignore[no-untyped-call]  # torch leaves it untyped
            optimizer.step()
            step += 1
            last = float(loss.item())
            if step % every == 0 or step == schedule.steps:
                log(f"step {step}/{schedule.steps}: loss {last:.4f}")
            if step == schedule.steps:
                break
    module.eval()
    return last

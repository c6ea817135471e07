"""Fitting torch modules inside operators: examples, seeded streams, the Adam loop, accuracy.

Owns the data a fit sees (a job's dataset inputs as tensors), the random streams an
operator derives from ``job.seed``, the one training loop (seeded mini-batches, Adam,
optional early stopping on a selection set) and accuracy. Leaves the loss to each operator
(cross-entropy, distillation, ...), building and loading modules to
``operators.torch_models`` and input augmentation to ``operators.augmentation``.

Determinism (``breedlab.jobs``): with one torch thread, a fixed seed and a fixed data
order, every step is a pure function of its inputs, so the same job writes the same bytes
in any process. Streams are independent by purpose: ``seeded(seed, "order")`` shuffles,
``seeded(seed, "augment")`` perturbs, and so on; adding a stream never shifts another.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from breedlab.canonical import JsonValue
from breedlab.datasets import read_dataset
from breedlab.errors import InvalidRequest
from breedlab.factory.operators.parameters import (
    param_nonnegative_float,
    param_positive_float,
    param_positive_int,
)
from breedlab.jobs import DataInput, Job, Log

__all__ = [
    "SCHEDULE_PARAMS",
    "Examples",
    "FitReport",
    "Schedule",
    "accuracy",
    "batches",
    "derived_seed",
    "examples",
    "fit",
    "optional_examples",
    "replay_rows",
    "schedule_from_params",
    "seeded",
]

#: Schedule parameters every training operator reads.
SCHEDULE_PARAMS = ("epochs", "lr", "batch_size", "weight_decay", "patience")


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Examples:
    """Inputs ``x`` float32 ``(n, d)`` and labels ``y`` int64 ``(n,)``, with item ids."""

    x: torch.Tensor
    y: torch.Tensor
    ids: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, rows: torch.Tensor) -> Examples:
        index = rows.tolist()
        return Examples(x=self.x[rows], y=self.y[rows], ids=tuple(self.ids[i] for i in index))

    @staticmethod
    def concat(parts: tuple[Examples, ...]) -> Examples:
        return Examples(
            x=torch.cat([p.x for p in parts]),
            y=torch.cat([p.y for p in parts]),
            ids=tuple(i for p in parts for i in p.ids),
        )


def _read(data: DataInput) -> Examples:
    dataset = read_dataset(data.folder)  # verifies every item hash
    if len(dataset) == 0:
        raise InvalidRequest(f"the {data.role!r} dataset {data.id} is empty")
    return Examples(
        x=torch.from_numpy(dataset.x.copy()),
        y=torch.from_numpy(dataset.y.copy()),
        ids=dataset.ids,
    )


def examples(job: Job, role: str) -> Examples:
    """The job's one dataset with this role. Raises InvalidRequest if absent or empty."""
    return _read(job.dataset(role))


def optional_examples(job: Job, role: str) -> Examples | None:
    """The dataset with this role if the job has one (at most one is allowed)."""
    if not any(d.role == role for d in job.data):
        return None
    return examples(job, role)


def derived_seed(seed: int, purpose: str) -> int:
    """A 63-bit seed for one purpose, from sha256 of ``"<seed>:<purpose>"``."""
    digest = hashlib.sha256(f"{seed}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def seeded(seed: int, purpose: str) -> torch.Generator:
    """A CPU generator for one purpose of one job (see module docstring)."""
    return torch.Generator().manual_seed(derived_seed(seed, purpose))


def replay_rows(
    cluster_ids: Sequence[str], pool_ids: Sequence[str], replay: float, seed: int
) -> torch.Tensor:
    """Rows of the pool to replay beside a failure cluster, drawn by ``seeded(seed, "replay")``.

    Replay items make up a ``replay`` share (in ``[0, 1)``) of the fine-tuning set:
    ``round(replay · n_cluster / (1 − replay))`` pool items that are not cluster items,
    capped at those available.
    """
    in_cluster = set(cluster_ids)
    candidates = torch.tensor(
        [i for i, item in enumerate(pool_ids) if item not in in_cluster], dtype=torch.long
    )
    wanted = min(round(replay * len(cluster_ids) / (1 - replay)), len(candidates))
    order = torch.randperm(len(candidates), generator=seeded(seed, "replay"))
    return candidates[order[:wanted]]


def batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """One epoch of row indices: a seeded permutation cut into batches (last may be short)."""
    order = torch.randperm(n, generator=generator)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


@dataclass(frozen=True, slots=True, kw_only=True)
class Schedule:
    """How long and how fast to fit. ``lr`` and ``weight_decay`` are Adam's (L2 in the
    gradient); ``patience`` counts epochs without a better selection accuracy."""

    epochs: int
    lr: float
    batch_size: int
    weight_decay: float
    patience: int


def schedule_from_params(
    params: Mapping[str, JsonValue],
    *,
    epochs: int,
    lr: str,
    batch_size: int,
    weight_decay: str = "0",
    patience: int = 5,
) -> Schedule:
    """Read :data:`SCHEDULE_PARAMS` with the operator's defaults.

    Raises:
        InvalidRequest: a value of the wrong type or out of range.
    """
    return Schedule(
        epochs=param_positive_int(params, "epochs", epochs),
        lr=param_positive_float(params, "lr", lr),
        batch_size=param_positive_int(params, "batch_size", batch_size),
        weight_decay=param_nonnegative_float(params, "weight_decay", weight_decay),
        patience=param_positive_int(params, "patience", patience),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class FitReport:
    """``epochs_run`` (fewer than scheduled after an early stop) and the epoch whose weights
    were kept (the last one without a selection set)."""

    epochs_run: int
    best_epoch: int
    selection_accuracy: float | None


def accuracy(module: nn.Module, data: Examples) -> float:
    """Top-1 accuracy of ``module`` (put in eval mode) on ``data``."""
    module.eval()
    with torch.no_grad():
        predicted = module(data.x).argmax(dim=1)
    return float((predicted == data.y).sum().item()) / len(data)


def fit(
    job: Job,
    log: Log,
    module: nn.Module,
    batch_loss: Callable[[torch.Tensor], torch.Tensor],
    *,
    n: int,
    schedule: Schedule,
    select: Examples | None = None,
) -> FitReport:
    """Fit ``module`` with Adam on mini-batches of ``n`` training rows, for ``job``.

    The rows are shuffled by the job's ``seeded(job.seed, "order")`` stream, the one every
    training operator uses, and each epoch's line goes to ``log``. ``batch_loss(rows)``
    returns the mean loss of those rows; Adam updates every parameter that requires grad
    (under PEFT, only the LoRA factors). With a ``select`` set, accuracy on it is measured
    after each epoch, the best epoch's weights are kept (the earliest on ties) and training
    stops after ``schedule.patience`` epochs without improvement.
    """
    generator = seeded(job.seed, "order")
    trainable = [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=schedule.lr, weight_decay=schedule.weight_decay)
    best: tuple[float, int, dict[str, Any]] | None = None
    epoch = 0
    for epoch in range(1, schedule.epochs + 1):
        module.train()
        total = 0.0
        for rows in batches(n, schedule.batch_size, generator):
            optimizer.zero_grad(set_to_none=True)
            loss = batch_loss(rows)
            loss.backward()  # type: ignore[no-untyped-call]  # torch leaves it untyped
            optimizer.step()
            total += float(loss.item()) * len(rows)
        line = f"epoch {epoch}: loss {total / n:.4f}"
        if select is not None:
            score = accuracy(module, select)
            line += f", selection accuracy {score:.4f}"
            if best is None or score > best[0]:
                best = (score, epoch, copy.deepcopy(module.state_dict()))
        log(line)
        if best is not None and epoch - best[1] >= schedule.patience:
            log(f"early stop after epoch {epoch}: best was epoch {best[1]}")
            break
    module.eval()
    if best is None:
        return FitReport(epochs_run=epoch, best_epoch=epoch, selection_accuracy=None)
    module.load_state_dict(best[2])
    return FitReport(epochs_run=epoch, best_epoch=best[1], selection_accuracy=best[0])

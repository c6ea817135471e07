"""The knowledge-distillation loss (Hinton et al. 2015), shared by ``distill`` on torch and
transformers teachers. Owns the loss only; transfer sets and students belong to the
operators (``distill``, ``text_distill``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["distillation_loss"]


def distillation_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    labels: torch.Tensor,
    *,
    temperature: float,
    alpha: float,
) -> torch.Tensor:
    """Hinton KD: ``α·KL(teacher ‖ student at T)·T² + (1−α)·CE(student, labels)``.

    ``F.kl_div(log_softmax(s/T), log_softmax(t/T), log_target=True, reduction="batchmean")``;
    the ``T²`` keeps the soft-target gradients on the scale of the hard ones
    (notes/operators.md §5).
    """
    soft = F.kl_div(
        F.log_softmax(student / temperature, dim=1),
        F.log_softmax(teacher / temperature, dim=1),
        log_target=True,
        reduction="batchmean",
    )
    hard = F.cross_entropy(student, labels)
    return alpha * soft * temperature**2 + (1 - alpha) * hard

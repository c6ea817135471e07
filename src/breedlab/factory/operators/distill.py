"""The ``distill`` operator: a teacher's knowledge into a smaller student (Hinton et al. 2015).

The teacher is the job's one parent (torch family); the student is a fresh model of the
architecture in the parameters (default ``mlp`` with hidden [32]) with the teacher's
inputs and classes. Loss per batch, with ``s`` and ``t`` the student's and teacher's
logits (notes/operators.md §5)::

    α · KL(softmax(t/T) ‖ softmax(s/T)) · T²  +  (1 − α) · CE(s, y)

(``F.kl_div(log_softmax(s/T), log_softmax(t/T), log_target=True, reduction="batchmean")``;
the ``T²`` keeps the soft-target gradients on the scale of the hard ones.) The transfer
set is the ``train`` dataset plus ``copies`` noise-augmented copies of it (seeded; the
copies keep their labels); the teacher's logits are computed once over it. An optional
``fitness`` dataset early-stops as in ``train``.

Parameters: ``temperature`` ("4"), ``alpha`` ("0.7"), ``copies`` (1), ``noise_sigma``
("0.2"), ``architecture`` / ``hidden`` / ``channels`` / ``image`` of the student,
``epochs`` (30), ``lr`` ("0.003"), ``batch_size`` (64), ``weight_decay`` ("0"),
``patience`` (5), ``name`` ("<teacher name>-distilled").

Output: ``model/``, role ``candidate``, parents ``(teacher id,)``.

With a ``transformers`` teacher, ``operators.text_distill`` runs instead (a layer-drop
student trained by logit KD).
"""

from __future__ import annotations

import torch

from breedlab.factory.operators.augmentation import noisy
from breedlab.factory.operators.fitting import (
    SCHEDULE_PARAMS,
    Examples,
    accuracy,
    examples,
    fit,
    optional_examples,
    schedule_from_params,
    seeded,
)
from breedlab.factory.operators.kd import distillation_loss
from breedlab.factory.operators.parameters import (
    check_known,
    param_fraction,
    param_nonnegative_int,
    param_positive_float,
)
from breedlab.factory.operators.text_distill import text_distill
from breedlab.factory.operators.text_parents import is_text_job
from breedlab.factory.operators.torch_models import (
    check_fits,
    config_from_params,
    fresh_module,
    load_parent,
    one_torch_parent,
)
from breedlab.families.torch_family import save_torch_model
from breedlab.jobs import Job, Log, OutputPackage, param_str

__all__ = ["distill", "distillation_loss"]

# The student's head must match the teacher's, so ``classes`` is not a parameter here.
_PARAMS = (
    "architecture", "hidden", "channels", "image", *SCHEDULE_PARAMS,
    "temperature", "alpha", "copies", "noise_sigma", "name",
)  # fmt: skip


def distill(job: Job, log: Log) -> tuple[OutputPackage, ...]:
    """Train a student on the teacher's soft targets and the hard labels.

    Raises:
        InvalidRequest: not exactly one torch parent, no ``train`` dataset, data the
            teacher cannot take, or a bad parameter.
    """
    if is_text_job(job):  # a transformers teacher: operators.text_distill
        return text_distill(job, log)
    torch.set_num_threads(1)  # DESIGN §7
    params = job.params
    check_known(params, _PARAMS, job.operator)
    parent = one_torch_parent(job)
    temperature = param_positive_float(params, "temperature", "4")
    alpha = param_fraction(params, "alpha", "0.7")
    copies = param_nonnegative_int(params, "copies", 1)
    sigma = param_positive_float(params, "noise_sigma", "0.2")
    schedule = schedule_from_params(params, epochs=30, lr="0.003", batch_size=64)
    name = param_str(params, "name", f"{parent.name}-distilled")

    teacher_config, teacher = load_parent(parent)
    data = examples(job, "train")
    fitness = optional_examples(job, "fitness")
    check_fits(teacher_config, data, "train")
    if fitness is not None:
        check_fits(teacher_config, fitness, "fitness")
    config = config_from_params(
        params,
        inputs=teacher_config["inputs"],
        classes=teacher_config["classes"],
        architecture="mlp",
        hidden=(32,),
        standardize=bool(teacher_config.get("standardize", False)),
    )

    # The transfer set: the labelled data and seeded noisy copies with the same labels.
    low, high = float(data.x.min()), float(data.x.max())
    transfer_noise = seeded(job.seed, "transfer")
    copied = tuple(
        Examples(x=noisy(data.x, sigma, transfer_noise, low, high), y=data.y, ids=data.ids)
        for _ in range(copies)
    )
    transfer = Examples.concat((data, *copied))
    teacher.eval()
    with torch.no_grad():
        soft_targets = teacher(transfer.x)  # once, not per epoch (notes/operators.md §5)

    student = fresh_module(config, job.seed, data.x)

    def batch_loss(rows: torch.Tensor) -> torch.Tensor:
        return distillation_loss(
            student(transfer.x[rows]),
            soft_targets[rows],
            transfer.y[rows],
            temperature=temperature,
            alpha=alpha,
        )

    report = fit(job, log, student, batch_loss, n=len(transfer), schedule=schedule, select=fitness)
    save_torch_model(job.out_dir / "model", config, student)
    with torch.no_grad():
        agree = (student(data.x).argmax(1) == teacher(data.x).argmax(1)).float().mean()
    meta = {
        "architecture": config["architecture"],
        "epochs_run": report.epochs_run,
        "best_epoch": report.best_epoch,
        "parameters": sum(p.numel() for p in student.parameters()),
        "teacher_parameters": sum(p.numel() for p in teacher.parameters()),
        "transfer_items": len(transfer),
        "train_accuracy": f"{accuracy(student, data):.4f}",
        "teacher_agreement": f"{float(agree):.4f}",
    }
    if fitness is not None:
        meta["fitness_accuracy"] = f"{accuracy(student, fitness):.4f}"
    log(f"distill: {meta}")
    return (
        OutputPackage(
            folder="model", kind="model", name=name, family="torch", parents=(parent.id,), meta=meta
        ),
    )

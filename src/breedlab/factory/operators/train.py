"""The ``train`` operator: a torch-family model from a dataset, an architecture and a seed.

DESIGN §8: "a parent from a dataset and an architecture (so a champion is reproducible
from source)". With no parent it trains from a seeded initialisation; with one parent it
fine-tunes that model (same architecture; the architecture parameters are then ignored),
which keeps the result in the parent's basin so weight merges with it are meaningful.
Inputs: a ``train`` dataset (fit on it) and optionally a ``fitness`` dataset (early
stopping: the best epoch's weights are kept).

Parameters (decimal strings where the value is not an integer):

=================  =========  ===========================================================
``architecture``   "mlp"      or "cnn" (``families.torch_family.ARCHITECTURES``)
``hidden``         [128, 64]  hidden widths; ``channels`` [16, 32], ``image`` for cnn
``standardize``    false      mlp: scale inputs by the train split's mean and std (tabular)
``classes``        labels     head width (default: largest label + 1)
``epochs``         30         upper bound; fewer after an early stop
``lr``             "0.003"    Adam
``batch_size``     32
``weight_decay``   "0"        Adam's L2 term
``patience``       10         epochs without a better fitness accuracy before stopping
``augment``        "none"     half of each batch perturbed (seeded): images "noise" |
                              "shift"; tabular "feature_noise" | "missing" (the train
                              split's per-feature std and mean; ``augmentation``)
``noise_sigma``    "0.3"      σ of "noise" (input units) and "feature_noise" (std units)
``name``           "train-<architecture>"
=================  =========  ===========================================================

``missing_fraction`` ("0.2"): the share of features "missing" replaces by their mean.

Output: ``model/`` (``config.json`` + ``model.safetensors``), role ``candidate``.

With a ``transformers`` parent, ``operators.text_train`` runs instead: a head fitted on a
bare encoder's frozen embeddings, or a fine-tune of an encoder with a head.
"""

from __future__ import annotations

import torch

from breedlab.errors import InvalidRequest
from breedlab.factory.operators.augmentation import Augment, augment_rows, image_shape
from breedlab.factory.operators.fitting import (
    SCHEDULE_PARAMS,
    accuracy,
    examples,
    fit,
    optional_examples,
    schedule_from_params,
    seeded,
)
from breedlab.factory.operators.parameters import (
    check_known,
    param_fraction,
    param_positive_float,
)
from breedlab.factory.operators.text_parents import is_text_job
from breedlab.factory.operators.text_train import text_train
from breedlab.factory.operators.torch_models import (
    ARCHITECTURE_PARAMS,
    check_fits,
    config_from_params,
    fresh_module,
    load_parent,
    one_torch_parent,
)
from breedlab.families.torch_family import save_torch_model
from breedlab.jobs import Job, Log, OutputPackage, param_str

__all__ = ["train"]

_PARAMS = (
    *ARCHITECTURE_PARAMS,
    *SCHEDULE_PARAMS,
    "augment",
    "noise_sigma",
    "missing_fraction",
    "name",
)


def train(job: Job, log: Log) -> tuple[OutputPackage, ...]:
    """Fit a fresh model on the ``train`` dataset with cross-entropy (module docstring).

    Raises:
        InvalidRequest: more than one parent, a dataset missing, or a bad parameter.
    """
    if is_text_job(job):  # a transformers parent: operators.text_train
        return text_train(job, log)
    torch.set_num_threads(1)  # DESIGN §7
    params = job.params
    check_known(params, _PARAMS, job.operator)
    if len(job.parents) > 1:
        raise InvalidRequest("operator train takes at most one parent (to fine-tune from)")
    try:
        augment = Augment(param_str(params, "augment", "none"))
    except ValueError:
        raise InvalidRequest(
            f"parameter 'augment' must be one of {', '.join(a.value for a in Augment)}"
        ) from None
    sigma = param_positive_float(params, "noise_sigma", "0.3")
    fraction = param_fraction(params, "missing_fraction", "0.2")
    schedule = schedule_from_params(params, epochs=30, lr="0.003", batch_size=32, patience=10)
    data = examples(job, "train")
    fitness = optional_examples(job, "fitness")
    if job.parents:  # fine-tune: start from the parent's weights, keep its architecture
        config, module = load_parent(one_torch_parent(job))
    else:
        config = config_from_params(
            params, inputs=int(data.x.shape[1]), classes=int(data.y.max()) + 1
        )
        module = fresh_module(config, job.seed, data.x)
    check_fits(config, data, "train")
    if fitness is not None:
        check_fits(config, fitness, "fitness")
    shape = (
        image_shape(config["inputs"], config.get("image")) if augment is Augment.SHIFT else (0, 0)
    )
    low, high = float(data.x.min()), float(data.x.max())
    tabular = augment in (Augment.FEATURE_NOISE, Augment.MISSING)
    std = data.x.std(dim=0, correction=0) if tabular else None  # the suite's population std
    mean = data.x.mean(dim=0) if tabular else None
    augmenter = seeded(job.seed, "augment")
    loss_fn = torch.nn.CrossEntropyLoss()

    def batch_loss(rows: torch.Tensor) -> torch.Tensor:
        x = augment_rows(
            data.x[rows],
            augment,
            augmenter,
            sigma=sigma,
            shape=shape,
            low=low,
            high=high,
            std=std,
            mean=mean,
            fraction=fraction,
        )
        loss: torch.Tensor = loss_fn(module(x), data.y[rows])
        return loss

    report = fit(job, log, module, batch_loss, n=len(data), schedule=schedule, select=fitness)
    save_torch_model(job.out_dir / "model", config, module)
    meta = {
        "architecture": config["architecture"],
        "augment": augment.value,
        "epochs_run": report.epochs_run,
        "best_epoch": report.best_epoch,
        "parameters": sum(p.numel() for p in module.parameters()),
        "train_accuracy": f"{accuracy(module, data):.4f}",
    }
    if fitness is not None:
        meta["fitness_accuracy"] = f"{accuracy(module, fitness):.4f}"
    log(f"train: {meta}")
    name = param_str(params, "name", f"train-{config['architecture']}")
    parents = tuple(p.id for p in job.parents)
    return (
        OutputPackage(
            folder="model", kind="model", name=name, family="torch", parents=parents, meta=meta
        ),
    )

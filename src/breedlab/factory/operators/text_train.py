"""``train`` on a transformers parent: a head for a bare encoder, or a fine-tune.

Two cases, by the parent (``operators.train`` dispatches here):

**A bare encoder** (no ``head.json``, e.g. all-MiniLM-L6-v2): the encoder stays frozen and
a linear head is fitted on its mean-pooled embeddings -- the sentence-transformers recipe,
and how the ``reviews`` champion is made (notes/models-and-data.md §2: frozen MiniLM +
logistic regression). The ``train`` texts are embedded once; the head is multinomial
logistic regression, ``mean CE + (l2/2)·‖W‖²`` (bias not penalised), fitted full-batch
by L-BFGS (strong Wolfe line search) from zeros: no randomness at all. Parameters:

=================  =========  ===========================================================
``l2``             "0.001"    the L2 strength on the weights
``max_iter``       100        L-BFGS iterations
``classes``        labels     head width (default: largest label + 1, at least 2)
``max_length``     128        tokens per text, embedded and recorded in ``head.json``
``name``           "<parent>-head"
=================  =========  ===========================================================

**An encoder with breedlab's head**: fine-tune the top ``train_layers`` encoder layers
and the head, the rest (embeddings, lower layers, pooler) frozen. The data is the
``train`` dataset; with a ``cluster`` dataset, the cluster plus replay from ``train``,
as the torch ``adapter`` draws it (``text_fitting.focus_with_replay``). Loss: CE. The head
spec (classes, inference ``max_length``) is the parent's. Parameters: ``train_layers`` (2),
``steps`` (30), ``batch_size`` (16), ``lr`` ("0.0001", AdamW), ``max_length`` (64 tokens
in training), ``replay`` ("0.3", with a cluster), ``name`` ("<parent>-tuned").

Output: ``model/``, an encoder-with-head package (``save_encoder_classifier``: the parent's
config and tokenizer files, ``head.json``, ``model.safetensors``), family
``transformers``, role ``candidate``, parents ``(parent id,)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from breedlab.canonical import JsonValue
from breedlab.errors import InvalidRequest
from breedlab.factory.operators.parameters import (
    check_known,
    param_fraction,
    param_nonnegative_float,
    param_positive_int,
)
from breedlab.factory.operators.text_fitting import (
    STEP_PARAMS,
    focus_with_replay,
    optional_text_examples,
    step_schedule,
    text_accuracy,
    text_examples,
    tokenise,
    train_steps,
)
from breedlab.factory.operators.text_parents import (
    check_labels,
    encoder_layers,
    load_text_parent,
    one_text_parent,
    text_package,
)
from breedlab.families.text_head import EncoderClassifier, HeadSpec, save_encoder_classifier
from breedlab.families.transformers_family import DEFAULT_MAX_TOKENS, TransformersModel
from breedlab.jobs import Job, Log, OutputPackage, ParentInput, param_str

__all__ = ["fit_logistic_head", "text_train"]

_HEAD_PARAMS = ("l2", "max_iter", "classes", "max_length", "name")
_TUNE_PARAMS = ("train_layers", *STEP_PARAMS, "replay", "name")


def text_train(job: Job, log: Log) -> tuple[OutputPackage, ...]:
    """Fit a head on a bare encoder, or fine-tune an encoder with a head (module docstring).

    Raises:
        InvalidRequest: not exactly one parent, a dataset missing, labels the head cannot
            take, or a bad parameter.
    """
    torch.set_num_threads(1)  # DESIGN §7
    parent = one_text_parent(job)
    model = load_text_parent(parent)
    if isinstance(model.module, EncoderClassifier):
        return _fine_tune(job, log, parent, model, model.module)
    return _fit_head(job, log, parent, model)


def fit_logistic_head(
    x: torch.Tensor, y: torch.Tensor, classes: int, *, l2: float, max_iter: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Multinomial logistic regression by full-batch L-BFGS from zeros: ``(weight
    (classes, d), bias (classes,))`` minimising ``mean CE + (l2/2)·‖W‖²``."""
    weight = torch.zeros(classes, x.shape[1], dtype=x.dtype, requires_grad=True)
    bias = torch.zeros(classes, dtype=x.dtype, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [weight, bias], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(x @ weight.T + bias, y) + 0.5 * l2 * weight.pow(2).sum()
        loss.backward()  # type: ignore[no-untyped-call]  # torch leaves it untyped
        return loss

    optimizer.step(closure)  # type: ignore[no-untyped-call]  # torch leaves it untyped
    return weight.detach(), bias.detach()


def _fit_head(
    job: Job, log: Log, parent: ParentInput, model: TransformersModel
) -> tuple[OutputPackage, ...]:
    params = job.params
    check_known(params, _HEAD_PARAMS, job.operator)
    l2 = param_nonnegative_float(params, "l2", "0.001")
    max_iter = param_positive_int(params, "max_iter", 100)
    data = text_examples(job, "train")
    if int(data.y.min()) < 0:
        raise InvalidRequest("the 'train' dataset has negative labels")
    seen = max(int(data.y.max()) + 1, 2)
    classes = param_positive_int(params, "classes", seen)
    if classes < seen:
        raise InvalidRequest(f"parameter 'classes' is {classes} but the labels need {seen}")
    spec = HeadSpec(
        classes=classes, max_length=param_positive_int(params, "max_length", DEFAULT_MAX_TOKENS)
    )  # HeadSpec bounds classes and max_length
    model.max_length = spec.max_length
    # float64 for L-BFGS (its curvature pairs lose precision in fp32); stored as fp32
    x = torch.from_numpy(model.embed(list(data.texts)))
    weight, bias = fit_logistic_head(x, data.y, classes, l2=l2, max_iter=max_iter)
    module = EncoderClassifier(model.module, spec)
    with torch.no_grad():
        module.head.weight.copy_(weight.to(torch.float32))
        module.head.bias.copy_(bias.to(torch.float32))
        predicted = (x.to(torch.float32) @ module.head.weight.T + module.head.bias).argmax(1)
    save_encoder_classifier(module, job.out_dir / "model", source=parent.folder)
    meta: dict[str, JsonValue] = {
        "mode": "head",
        "classes": classes,
        "train_items": len(data),
        "train_accuracy": f"{float((predicted == data.y).float().mean()):.4f}",
    }
    log(f"train (head on frozen {parent.name}): {meta}")
    name = param_str(params, "name", f"{parent.name}-head")
    return (text_package(name, parent, meta),)


def _fine_tune(
    job: Job, log: Log, parent: ParentInput, model: TransformersModel, module: EncoderClassifier
) -> tuple[OutputPackage, ...]:
    params = job.params
    check_known(params, _TUNE_PARAMS, job.operator)
    layers = encoder_layers(module.encoder, parent)
    top = param_positive_int(params, "train_layers", 2)
    if top > len(layers):
        raise InvalidRequest(
            f"parameter 'train_layers' is {top} but {parent.id} has {len(layers)} layers"
        )
    schedule = step_schedule(params, steps=30, lr="0.0001", batch_size=16, max_length=64)
    replay = param_fraction(params, "replay", "0.3", below_one=True)
    cluster = optional_text_examples(job, "cluster")
    if cluster is None:
        mix, replayed = text_examples(job, "train"), 0
    else:
        pool = text_examples(job, "train") if replay > 0 else None
        mix, replayed = focus_with_replay(cluster, pool, replay, job.seed)
    check_labels(module.spec.classes, mix.y, "train" if cluster is None else "cluster")

    for parameter in module.parameters():
        parameter.requires_grad_(False)
    for trained in (*layers[len(layers) - top :], module.head):
        for parameter in trained.parameters():
            parameter.requires_grad_(True)
    tokenizer = model.tokenizer
    before = text_accuracy(module, tokenizer, mix, schedule.max_length)

    def batch_loss(rows: torch.Tensor) -> torch.Tensor:
        part = mix.take(rows)
        return F.cross_entropy(
            module(**tokenise(tokenizer, part.texts, schedule.max_length)), part.y
        )

    last = train_steps(job, log, module, batch_loss, n=len(mix), schedule=schedule)
    save_encoder_classifier(module, job.out_dir / "model", source=parent.folder)
    meta: dict[str, JsonValue] = {
        "mode": "fine-tune",
        "train_layers": top,
        "steps": schedule.steps,
        "items": len(mix),
        "replay_items": replayed,
        "trainable_parameters": sum(p.numel() for p in module.parameters() if p.requires_grad),
        "accuracy_parent": before,
        "accuracy": text_accuracy(module, tokenizer, mix, schedule.max_length),
        "last_loss": None if last is None else f"{last:.4f}",
        "failure_cluster": job.failure_cluster if cluster is not None else None,
    }
    log(f"train (fine-tune of {parent.name}): {meta}")
    name = param_str(params, "name", f"{parent.name}-tuned")
    return (text_package(name, parent, meta),)

"""The candidate factory's operators (DESIGN.md §8): one explicit catalogue.

The map::

    train         a torch-family model from a dataset, an architecture and a seed; with one
                  parent, a fine-tune of it
    distill       teacher -> smaller student: Hinton soft targets with temperature + hard labels
    adapter       LoRA via PEFT on the failure cluster (with replay): the adapter and the
                  merged model
    weights       quantize (int8 / int4 weight-only) and merge (linear, task arithmetic,
                  SLERP, TIES, DARE): no training
    fitting       what the training operators share: a job's datasets as tensors, seeded
                  streams, the Adam loop with optional early stopping, accuracy
    torch_models  operator parameters -> torch-family config; seeded fresh modules; the
                  job's one torch parent
    augmentation  seeded Gaussian noise and one-pixel shifts of training inputs
    parameters    closed parameter sets, bounds and lists on top of ``breedlab.jobs``
    kd            the Hinton distillation loss (torch and text students)
    adapter_files an adapter package's files, rewritten deterministically

On a ``transformers`` parent, ``train``, ``adapter`` and ``distill`` dispatch to their text
twins:

    text_train    a head on a bare encoder's frozen embeddings (L-BFGS logistic
                  regression), or a fine-tune of the top layers and the head
    text_adapter  LoRA on the attention projections, the head trained whole
    text_distill  a layer-drop student trained by logit KD
    text_fitting  text examples, cluster focus + replay, tokenised batches, the AdamW loop
    text_parents  the job's one transformers parent: loading, head or not, layer stack

Each operator is ``(job, log) -> tuple[OutputPackage, ...]`` (``breedlab.jobs``): it
reads read-only inputs, writes only under ``job.out_dir``, runs torch with one thread and
gives byte-identical files for the same job. :data:`OPERATORS` is the whole catalogue;
a capability's contract allows a subset. Variants ("TIES with density 0.5") are
parameters recorded in provenance, never new operators. Importing this package imports
torch; transformers is imported when a text job loads its parent, PEFT only when
``adapter`` runs.
"""

from __future__ import annotations

from collections.abc import Mapping

from breedlab.factory.operators.adapter import adapter
from breedlab.factory.operators.distill import distill
from breedlab.factory.operators.train import train
from breedlab.factory.operators.weights import merge, quantize
from breedlab.jobs import Operator

__all__ = [
    "OPERATORS",
    "PRELOAD",
    "TEXT_PRELOAD",
    "adapter",
    "distill",
    "merge",
    "quantize",
    "train",
]

OPERATORS: Mapping[str, Operator] = {
    "train": train,
    "distill": distill,
    "adapter": adapter,
    "quantize": quantize,
    "merge": merge,
}

#: Libraries an operator needs, imported by the sandbox *before* its tripwire is armed:
#: importing them is not the job's behaviour (urllib3, pulled in by PEFT's hub client,
#: opens a probe socket at import time to detect IPv6).
PRELOAD: Mapping[str, tuple[str, ...]] = {
    "adapter": ("peft",),
}

#: What every job on a ``transformers`` parent needs on top of :data:`PRELOAD`, imported
#: before the tripwire for the same reason: transformers resolves a model class lazily on
#: first use, and ``modeling_bert`` pulls in ``modeling_utils`` -> accelerate -> botocore
#: -> urllib3, whose IPv6 probe the tripwire reports as network access (measured).
TEXT_PRELOAD: tuple[str, ...] = (
    "transformers",
    "breedlab.families.transformers_family",
    "transformers.models.auto.modeling_auto",
    "transformers.modeling_utils",
    "safetensors.torch",
)

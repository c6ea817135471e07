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

Each operator is ``(job, log) -> tuple[OutputPackage, ...]`` (``breedlab.jobs``): it
reads read-only inputs, writes only under ``job.out_dir``, runs torch with one thread and
gives byte-identical files for the same job. :data:`OPERATORS` is the whole catalogue;
a capability's contract allows a subset. Variants ("TIES with density 0.5") are
parameters recorded in provenance, never new operators. Importing this package imports
torch; PEFT is imported only when ``adapter`` runs.
"""

from __future__ import annotations

from collections.abc import Mapping

from breedlab.factory.operators.adapter import adapter
from breedlab.factory.operators.distill import distill
from breedlab.factory.operators.train import train
from breedlab.factory.operators.weights import merge, quantize
from breedlab.jobs import Operator

__all__ = ["OPERATORS", "PRELOAD", "adapter", "distill", "merge", "quantize", "train"]

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

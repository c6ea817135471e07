"""Candidate factory (seed: GENERATE_IN_SANDBOX; DESIGN.md §8): allowlisted operators.

The map::

    breedlab.factory.operators   the catalogue OPERATORS: train, distill, adapter,
                                 quantize, merge -- (job, log) -> output packages
    breedlab.factory.merge       merge methods (linear, task_arithmetic, slerp, ties,
                                 dare) per tensor, and a streaming file merge

Operators are pure functions of their job: they read read-only inputs and write one
folder. Running them confined (``breedlab.sandbox``), ingesting what they make with
provenance (``breedlab.lab``) and the tensor file formats (``breedlab.tensors``) live
elsewhere. Importing this package imports nothing heavy.
"""

from __future__ import annotations

__all__: list[str] = []

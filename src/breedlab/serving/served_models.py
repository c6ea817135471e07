"""A served model: a verified, loaded package and its capability's contract.

Owns :class:`ServedModel` (the contract's input checks and the model's answer, with
which fault is whose) and :func:`load_served` (verify, materialise, load). Leaves to
others: verification itself and where packages live (the registry, through a
:class:`~breedlab.serving.supplier.PackageSource`), loading a family's files
(:mod:`breedlab.families`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from breedlab.digest import Digest
from breedlab.errors import IntegrityError, InvalidRequest, PolicyError, Unavailable
from breedlab.supply.values import ProblemKind

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from breedlab.families import Model
    from breedlab.serving.supplier import PackageSource

__all__ = ["ServedModel", "load_served"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ServedModel:
    """A verified, loaded model and the labels of its capability."""

    package: Digest
    model: Model
    labels: tuple[str, ...]
    inputs: int
    folder: Path | None = None  # the materialised package: a shadow process loads it again
    family: str | None = None
    max_bytes: int | None = None  # the contract's memory budget it was loaded under
    bounds: tuple[float, float] | None = None  # the contract's input range, inclusive

    def predict(self, inputs: Sequence[float]) -> tuple[str, list[float]]:
        """The label and class probabilities for one input vector.

        Raises:
            InvalidRequest: wrong length, values outside the contract's range, or values
                that are not finite float32 numbers (the field and index named).
            Unavailable: the model produced a malformed or non-finite output for a
                valid input (the model's fault, not the client's).
        """
        import numpy as np

        x = self.check(inputs)
        probs = self.model.predict_proba(x)[0]
        if probs.shape != (len(self.labels),) or not np.isfinite(probs).all():
            raise Unavailable(f"model {self.package.short} returned a malformed output")
        return self.labels[int(probs.argmax())], [float(v) for v in probs]

    def check(self, inputs: Sequence[float]) -> npt.NDArray[np.float32]:
        """The inputs as a batch of one, once they answer the contract.

        Raises:
            InvalidRequest: wrong length, non-finite float32 values, values out of range.
        """
        import numpy as np

        if len(inputs) != self.inputs:
            raise InvalidRequest(f"inputs must hold {self.inputs} numbers (got {len(inputs)})")
        with np.errstate(over="ignore"):  # a value beyond float32 becomes inf: refused next
            x = np.asarray([inputs], dtype=np.float32)
        finite = np.isfinite(x[0])
        if not finite.all():
            at = int(np.argmin(finite))
            raise InvalidRequest(f"inputs[{at}]: {inputs[at]!r} is not a finite float32 number")
        if self.bounds is not None:
            low, high = self.bounds
            outside = (x[0] < low) | (x[0] > high)
            if outside.any():
                at = int(np.argmax(outside))
                raise InvalidRequest(
                    f"inputs[{at}]: {inputs[at]!r} is outside the contract's range "
                    f"{low:g}..{high:g}"
                )
        return x


def load_served(supply: PackageSource, package: Digest) -> ServedModel:
    """Verify a package (DESIGN §11: verified when loaded), materialise and load it.

    Raises:
        IntegrityError: the package does not verify. PolicyError: it is revoked.
    """
    [result] = supply.verify([str(package)])
    if not result.ok:
        first = result.problems[0]
        if first.kind is ProblemKind.REVOKED:
            raise PolicyError(f"package {package.short} is revoked: {first.message}")
        raise IntegrityError(f"package {package.short} does not verify: {first.message}")
    from breedlab.families import load_model

    manifest = supply.manifest(package)
    _, contract = supply.capability(manifest.capability)
    folder = supply.workspace.materialise(package, manifest)
    if manifest.family is None:
        raise InvalidRequest(f"package {package.short} names no model family")
    budget = contract.budget.memory_bytes
    return ServedModel(
        package=package,
        model=load_model(folder, manifest.family, max_bytes=budget),
        labels=contract.labels,
        inputs=math.prod(contract.input_shape) if contract.input_shape else 0,
        folder=folder,
        family=manifest.family,
        max_bytes=budget,
        bounds=contract.input_range,
    )

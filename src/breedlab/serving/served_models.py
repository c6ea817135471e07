"""A served model: a verified, loaded package and its capability's contract.

Owns :class:`ServedModel` (a request's inputs made the model's row by the contract,
and the model's answer, with which fault is whose) and :func:`load_served` (verify,
materialise, load). Leaves to others: verification itself and where packages live (the
registry, through a :class:`~breedlab.serving.supplier.PackageSource`), loading a
family's files (:mod:`breedlab.families`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from breedlab.digest import Digest
from breedlab.errors import IntegrityError, InvalidRequest, PolicyError, Unavailable
from breedlab.serving.request_inputs import InputSchema, RequestInputs
from breedlab.supply.values import ProblemKind

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from breedlab.families import Model
    from breedlab.serving.supplier import PackageSource

__all__ = ["ServedModel", "load_served"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ServedModel:
    """A verified, loaded model, the labels of its capability and what a request of it
    carries (its contract's :class:`~breedlab.serving.request_inputs.InputSchema`)."""

    package: Digest
    model: Model
    labels: tuple[str, ...]
    schema: InputSchema
    folder: Path | None = None  # the materialised package: a shadow process loads it again
    family: str | None = None
    max_bytes: int | None = None  # the contract's memory budget it was loaded under

    @property
    def inputs(self) -> int:
        """The count of numbers in one request's row (0 for a text capability)."""
        return self.schema.size

    def row(self, inputs: RequestInputs) -> list[float]:
        """A request's ``inputs`` (by position, by feature name, or a text) as the checked
        float row this model takes, in contract order.

        Raises:
            InvalidRequest: the inputs do not answer the contract (the index or feature
                named), or they are a text and no served family takes text yet.
        """
        row = self.schema.row(inputs)
        if isinstance(row, str):
            # Issue 12: the one place a text row would reach a model. No family serves
            # text yet: the router, the canary's paired answers and the shadow process's
            # binary frames carry float rows only. A text family plugs in here (and in
            # those frames), answering ``self.model.predict_proba([row])``.
            raise InvalidRequest(
                f"this capability takes text, and no text model family serves yet "
                f"(this champion is {self.family or 'of no family'})",
                hint="text serving comes with the text model families (issue 12)",
            )
        self.schema.check(row)
        return row

    def predict(self, inputs: Sequence[float]) -> tuple[str, list[float]]:
        """The label and class probabilities for one input row.

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
        return self.schema.check(inputs)


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
        schema=InputSchema.of(contract),
        folder=folder,
        family=manifest.family,
        max_bytes=budget,
    )

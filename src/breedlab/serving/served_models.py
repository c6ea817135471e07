"""A served model: a verified, loaded package and its capability's contract.

Owns :class:`ServedModel` (a request's inputs made the model's row by the contract --
a float row, or a text for a text capability -- and the model's answer, one row or
several in one call, with which fault is whose) and :func:`load_served` (verify,
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
from breedlab.registry.capability import InputType
from breedlab.serving.request_inputs import InputSchema, RequestInputs, Row
from breedlab.supply.values import ProblemKind

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from breedlab.families import Model
    from breedlab.serving.supplier import PackageSource

__all__ = ["WARM_UP_TEXT", "ServedModel", "load_served"]


#: What a text model answers when a served model is warmed up or checked after a
#: rollback (a number row of zeros is the numeric capabilities' probe).
WARM_UP_TEXT = "a short text to warm up"


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

    @property
    def takes_text(self) -> bool:
        """Whether a row of this model is one text (its contract's ``type = "text"``)."""
        return self.schema.type is InputType.TEXT

    @property
    def warm_up_row(self) -> Row:
        """A fixed row every model of this contract answers: a short text, or zeros."""
        return WARM_UP_TEXT if self.takes_text else [0.0] * self.inputs

    def row(self, inputs: RequestInputs) -> list[float] | str:
        """A request's ``inputs`` (by position, by feature name, or a text) as the checked
        row this model takes: floats in contract order, or the text.

        Raises:
            InvalidRequest: the inputs do not answer the contract (the index or feature
                named; a text that is empty or over ``max_length``).
        """
        row = self.schema.row(inputs)
        if not isinstance(row, str):
            self.schema.check(row)
        return row

    def predict(self, row: Row) -> tuple[str, list[float]]:
        """The label and class probabilities for one row (a float row or a text).

        Raises:
            InvalidRequest: the row does not answer the contract (the field and index
                named).
            Unavailable: the model produced a malformed or non-finite output for a
                valid input (the model's fault, not the client's).
        """
        [answer] = self.predict_many([row])
        return answer

    def predict_many(self, rows: Sequence[Row]) -> list[tuple[str, list[float]]]:
        """:meth:`predict` for several rows in one call of the model (one forward pass;
        a text family splits it into its own batches).

        Raises:
            InvalidRequest, Unavailable: as :meth:`predict`, for any of the rows.
        """
        import numpy as np

        if not rows:
            return []
        checked = [self.check(row) for row in rows]  # every row, before the model sees any
        batch: npt.NDArray[np.float32] | list[str]
        if self.takes_text:
            batch = [text for one in checked if isinstance(one, list) for text in one]
        else:
            batch = np.concatenate([one for one in checked if not isinstance(one, list)])
        probs = self.model.predict_proba(batch)
        if probs.shape != (len(rows), len(self.labels)) or not np.isfinite(probs).all():
            raise Unavailable(f"model {self.package.short} returned a malformed output")
        return [(self.labels[int(p.argmax())], [float(v) for v in p]) for p in probs]

    def check(self, row: Row) -> npt.NDArray[np.float32] | list[str]:
        """The row as a batch of one of what the model takes (a float32 array, or a list
        of one text), once it answers the contract.

        Raises:
            InvalidRequest: a text where numbers are due or numbers where a text is; a
                text that is empty or too long; wrong length, non-finite float32
                values, values out of range.
        """
        if isinstance(row, str):
            text = self.schema.row(row)  # refused unless this capability takes text
            assert isinstance(text, str)
            return [text]
        return self.schema.check(row)


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

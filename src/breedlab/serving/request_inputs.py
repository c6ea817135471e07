"""A predict request's ``inputs``, read by the capability's contract (issue 12).

Owns :class:`InputSchema` (what one request carries, from a
:class:`~breedlab.registry.capability.Contract`) and its two pure steps: :meth:`row`
turns the JSON ``inputs`` -- a positional list of numbers, an object naming every
tabular feature, or a text -- into the row the model takes (floats in contract order, or
the string), and :meth:`check` checks a float row's length, float32 finiteness and
ranges. Every refusal is an :class:`~breedlab.errors.InvalidRequest` naming the index or
the feature. Leaves to others: which model answers (the router), what the HTTP body
looks like (``breedlab.http``), and whether a family can take a text (``served_models``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from breedlab.errors import InvalidRequest
from breedlab.registry.capability import InputType

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from breedlab.registry.capability import Contract

__all__ = ["InputSchema", "RequestInputs", "Row"]

#: ``inputs`` as JSON gives it: numbers by position, numbers by feature name, or a text.
RequestInputs = Sequence[float] | Mapping[str, object] | str
#: One request's row as a model takes it: floats in contract order, or one text.
Row = Sequence[float] | str

#: How many names an error lists before "...".
_NAMED = 5


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(repr(n[:40]) for n in names[:_NAMED])
    return shown + (f" and {len(names) - _NAMED} more" if len(names) > _NAMED else "")


@dataclass(frozen=True, slots=True, kw_only=True)
class InputSchema:
    """What one request of a capability carries.

    ``size`` is the count of numbers in a row (0 for text); ``features`` the tabular
    names in contract order; ``bounds`` one inclusive range (or None) per position, or
    ``()`` when the contract gives no range at all; ``max_length`` a text's limit in
    characters.
    """

    type: InputType = InputType.TENSOR
    size: int
    features: tuple[str, ...] = ()
    bounds: tuple[tuple[float, float] | None, ...] = ()
    max_length: int | None = None

    @classmethod
    def of(cls, contract: Contract) -> InputSchema:
        if contract.input_type is InputType.TEXT:
            return cls(type=InputType.TEXT, size=0, max_length=contract.max_length)
        size = math.prod(contract.input_shape) if contract.input_shape else 0
        if contract.input_type is InputType.TABULAR:
            bounds = tuple(contract.range_of(f) for f in contract.features)
        else:
            bounds = (contract.input_range,) * size
        return cls(
            type=contract.input_type,
            size=size,
            features=contract.features,
            bounds=bounds if any(b is not None for b in bounds) else (),
        )

    def where(self, at: int) -> str:
        """Position ``at`` as an error names it: ``inputs[3]``, or ``inputs[3] (ash)``."""
        feature = self.features[at] if at < len(self.features) else None
        return f"inputs[{at}]" + (f" ({feature})" if feature else "")

    def row(self, inputs: RequestInputs) -> list[float] | str:
        """The request's ``inputs`` as the model's row: floats in contract order (a
        tabular object's values put in ``features`` order), or the text as given.

        Not checked here: a float row's length, finiteness and ranges (:meth:`check`).

        Raises:
            InvalidRequest: a form the contract does not take; an object that misses or
                adds feature names (all named), or whose value is not a number (the
                feature named); a text that is empty or longer than ``max_length``.
        """
        if self.type is InputType.TEXT:
            return self._text(inputs)
        if isinstance(inputs, str):
            raise InvalidRequest(
                f"inputs: this capability takes {self.size} numbers, not a text"
                + (" (a list, or an object naming its features)" if self.features else "")
            )
        if isinstance(inputs, Mapping):
            return self._named(inputs)
        return list(inputs)

    def _text(self, inputs: RequestInputs) -> str:
        if not isinstance(inputs, str):
            raise InvalidRequest("inputs: this capability takes one text (a JSON string)")
        if not inputs.strip():
            raise InvalidRequest("inputs: the text is empty")
        try:
            inputs.encode("utf-8")  # JSON may carry a lone surrogate ("\\ud800"): no text
        except UnicodeEncodeError as e:
            raise InvalidRequest(
                f"inputs: the text is not valid Unicode (a lone surrogate at {e.start})"
            ) from None
        if self.max_length is not None and len(inputs) > self.max_length:
            raise InvalidRequest(
                f"inputs: the text holds {len(inputs)} characters, more than the "
                f"contract's max_length of {self.max_length}"
            )
        return inputs

    def _named(self, inputs: Mapping[str, object]) -> list[float]:
        if not self.features:
            raise InvalidRequest(
                f"inputs: this capability's inputs have no names; send a list of "
                f"{self.size} numbers"
            )
        unknown = [name for name in inputs if name not in self.features]
        missing = [name for name in self.features if name not in inputs]
        if unknown or missing:
            problems = ([f"unknown {_names(unknown)}"] if unknown else []) + (
                [f"missing {_names(missing)}"] if missing else []
            )
            raise InvalidRequest(
                f"inputs: {'; '.join(problems)} (the features are {_names(self.features)})"
            )
        row: list[float] = []
        for name in self.features:
            value = inputs[name]
            # JSON true/false are not numbers, though Python counts bool as an int.
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidRequest(f"inputs.{name}: {str(value)[:40]!r} is not a number")
            row.append(float(value))
        return row

    def check(self, row: Sequence[float]) -> npt.NDArray[np.float32]:
        """``row`` as a float32 batch of one, once it answers the contract.

        Raises:
            InvalidRequest: a wrong length, a value that is not a finite float32 number
                or lies outside its range (the index, and the feature if named).
        """
        import numpy as np

        if self.type is InputType.TEXT:
            raise InvalidRequest("inputs: this capability takes one text (a JSON string)")
        if len(row) != self.size:
            raise InvalidRequest(f"inputs must hold {self.size} numbers (got {len(row)})")
        with np.errstate(over="ignore"):  # a value beyond float32 becomes inf: refused next
            x = np.asarray([row], dtype=np.float32)
        finite = np.isfinite(x[0])
        if not finite.all():
            at = int(np.argmin(finite))
            raise InvalidRequest(f"{self.where(at)}: {row[at]!r} is not a finite float32 number")
        if self.bounds:
            low = np.asarray([-np.inf if b is None else b[0] for b in self.bounds])
            high = np.asarray([np.inf if b is None else b[1] for b in self.bounds])
            outside = (x[0] < low) | (x[0] > high)
            if outside.any():
                at = int(np.argmax(outside))
                lo, hi = self.bounds[at] or (-np.inf, np.inf)
                raise InvalidRequest(
                    f"{self.where(at)}: {row[at]!r} is outside the contract's range {lo:g}..{hi:g}"
                )
        return x

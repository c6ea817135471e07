"""A model's non-finite or misshapen output is the model's fault, typed (issue 10):
``Unavailable`` (HTTP 503), never a client error and never an untyped 500; a float32
overflow in the inputs is the client's (``InvalidRequest``, 422)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from breedlab.digest import Digest
from breedlab.errors import InvalidRequest, Unavailable
from breedlab.serving.request_inputs import InputSchema
from breedlab.serving.served_models import ServedModel


class _Stub:
    def __init__(self, out: list[float]) -> None:
        self.out = np.asarray([out], dtype=np.float32)

    def predict_proba(self, x: Any) -> Any:
        return self.out


def _served(out: list[float]) -> ServedModel:
    return ServedModel(
        package=Digest.parse("sha256:" + "ab" * 32),
        model=_Stub(out),  # type: ignore[arg-type]
        labels=("a", "b"),
        schema=InputSchema(size=2, bounds=((0.0, 16.0),) * 2),
    )


@pytest.mark.parametrize("out", [[np.nan, 1.0], [np.inf, 0.0], [0.5, 0.25, 0.25]])
def test_a_non_finite_or_misshapen_output_is_unavailable(out: list[float]) -> None:
    with pytest.raises(Unavailable, match="malformed output"):
        _served(out).predict([1.0, 2.0])


def test_a_finite_output_answers_and_bad_inputs_are_the_clients() -> None:
    assert _served([0.25, 0.75]).predict([1.0, 2.0]) == ("b", [0.25, 0.75])
    with pytest.raises(InvalidRequest):
        _served([0.25, 0.75]).predict([3e39, 1.0])  # overflows float32: not a model fault
    with pytest.raises(InvalidRequest):
        _served([0.25, 0.75]).predict([-100.0, 1.0])  # outside the contract's 0..16

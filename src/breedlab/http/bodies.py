"""The bodies the HTTP routes take and give, validated at the edge (STYLE rule 4).

Owns the pydantic models of every request and answer (predict, predict:batch and the
admin routes), the bounds a body must keep (:data:`MAX_BODY_BYTES`, :data:`MAX_JSON_DEPTH`,
:data:`MAX_BATCH`), the error statuses the OpenAPI schema documents, and the one line a
refused body is answered with. Leaves to others: the routes and the error table
(``breedlab.http.app``), reading ``inputs`` by a capability's contract
(:mod:`breedlab.serving.request_inputs`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field

from breedlab.errors import one_line
from breedlab.release.canary import DEFAULT_STAGE_MAX_REQUESTS
from breedlab.release.state import MAX_BAKING

__all__ = [
    "ADMIN_ERROR_ANSWERS",
    "ERROR_ANSWERS",
    "MAX_BATCH",
    "MAX_BODY_BYTES",
    "MAX_JSON_DEPTH",
    "BatchRequest",
    "BatchResponse",
    "CanaryStart",
    "ErrorBody",
    "PredictRequest",
    "PredictResponse",
    "Promote",
    "ShadowStart",
    "one_line_reason",
]


#: Request bodies above this many bytes are refused before they are read (413).
MAX_BODY_BYTES = 1 << 20
#: The most requests one ``predict:batch`` body may hold (``serve --max-batch``).
MAX_BATCH = 64
#: Request bodies whose arrays and objects nest deeper than this are refused before they
#: are parsed (400). Every body the API takes nests two deep.
MAX_JSON_DEPTH = 32


class ErrorBody(BaseModel):
    """Every error answer: a stable code and one line saying what was wrong."""

    error: str
    message: str


#: The statuses a route may answer besides 200, documented in the OpenAPI schema.
ERROR_ANSWERS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": what}
    for status, what in (
        (400, f"a body that is not UTF-8 JSON, or nests deeper than {MAX_JSON_DEPTH} levels"),
        (404, "no such capability, package or run"),
        (413, f"the body is larger than the limit ({MAX_BODY_BYTES} bytes by default)"),
        (422, "a bad body: a field named, one line"),
        (503, "the capability's models cannot be loaded now (the others serve)"),
    )
}
ADMIN_ERROR_ANSWERS: dict[int | str, dict[str, Any]] = {
    **ERROR_ANSWERS,
    401: {"model": ErrorBody, "description": "no or a wrong admin bearer token"},
    403: {"model": ErrorBody, "description": "refused by policy"},
    409: {"model": ErrorBody, "description": "a concurrent change won; re-read and retry"},
}


class PredictRequest(BaseModel):
    """One request: the cohort unit, the inputs, optionally its label and risk."""

    model_config = ConfigDict(extra="forbid")
    unit: str = Field(min_length=1, max_length=256)
    inputs: (
        Annotated[list[float], Field(min_length=1, max_length=65536)]
        | Annotated[dict[str, Any], Field(max_length=65536)]
        | Annotated[str, Field(max_length=1 << 20)]
    ) = Field(
        description="By the capability's contract: as many numbers as its input shape (64 "
        "for digits), each within the contract's range; for a tabular capability, "
        'also an object naming every feature once ({"alcohol": 13.2, ...}); for a text '
        "capability, one string of at most its max_length characters.",
    )
    label: str | None = Field(
        default=None, max_length=256, description="The true label, one of the capability's."
    )
    risk: Literal["low", "high"] | None = None


class PredictResponse(BaseModel):
    label: str
    probabilities: list[float]
    role: str
    package: str


class BatchRequest(BaseModel):
    """Predict requests answered in one round trip (at most ``serve --max-batch``)."""

    model_config = ConfigDict(extra="forbid")
    requests: list[PredictRequest] = Field(min_length=1)


class BatchResponse(BaseModel):
    """One answer per request, in the order they were sent."""

    results: list[PredictResponse]


_KEY = Field(
    default=None,
    min_length=1,
    max_length=64,
    description="The production key that signs the action (default: the server's).",
)


class ShadowStart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    package: str = Field(min_length=4)
    sample: float = Field(default=1.0, gt=0.0, le=1.0)
    key: str | None = _KEY


class CanaryStart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    percent: float | None = Field(default=None, gt=0.0, le=100.0)
    max_requests: int | None = Field(
        default=DEFAULT_STAGE_MAX_REQUESTS, ge=1, description="Canary requests per stage."
    )
    max_units: int | None = Field(default=None, ge=1, description="Distinct units per stage.")
    key: str | None = _KEY


class Promote(BaseModel):
    model_config = ConfigDict(extra="forbid")
    package: str = Field(min_length=4)
    baking_s: int | None = Field(
        default=None,
        ge=0,
        le=int(MAX_BAKING.total_seconds()),
        description="Seconds the old champion stays loaded (default 3600).",
    )
    key: str | None = _KEY


#: The names pydantic gives the members of ``inputs``' union in an error's location.
_UNION_TAGS = frozenset({"list[float]", "dict[str,any]", "str"})


def one_line_reason(exc: RequestValidationError) -> str:
    """A refused body's first problem as one line: ``field.path: what is wrong``."""
    errors = exc.errors()
    if not errors:
        return "invalid request body"
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    # ``inputs.list[float].3`` reads as ``inputs.3``: the union member is no field.
    loc = [p for i, p in enumerate(loc) if not (i and loc[i - 1] == "inputs" and p in _UNION_TAGS)]
    where = ".".join(loc) or "body"
    return one_line(f"{where}: {first.get('msg', 'invalid')}")

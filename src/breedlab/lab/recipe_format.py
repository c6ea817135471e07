"""The recipe file format (recipes as data): the operator runs a round makes, in TOML.

The catalogue of operators is fixed (DESIGN §8, ``factory.operators.OPERATORS``); a
recipe only says which of them run, on what, with which parameters -- mergekit's idea of
a merge as a small config file, applied to a whole round. One ``[[run]]`` table per
operator run, in the order the round plans them::

    capability = "digits"            # optional; when given it must be the round's

    [[run]]
    operator = "train"               # train | distill | adapter | quantize | merge
    label = "train/finetune-{kind}"  # recorded with the candidate; unique enough to read
    when = { cluster_kind = ["noise", "shift"] }
    data = ["train", "fitness"]      # roles, in order: train | fitness | cluster
    parents = "champion"             # the default; see below
    params = { epochs = 10, augment = "{kind}", name = "digits-mlp-ft-{kind}" }

Keys of a run (nothing else is accepted):

``operator``  required; one of the catalogue, and allowed by the capability's contract.
``label``     required; a string. ``{kind}`` is the failure cluster's perturbation kind.
``params``    the operator's parameters (default none). Types are checked here, values by
              the operator: integers as TOML integers, fractional numbers as decimal
              strings (``lr = "0.003"``, never ``0.003``: the lab records numbers as
              strings, so a float's binary rounding never reaches a package id), lists of
              sizes as integer arrays. ``{kind}`` may appear in string values.
``data``      dataset roles handed to the operator: ``train`` and ``fitness`` (the
              capability's ``data-train`` / ``data-fitness`` aliases) and ``cluster`` (the
              round's failure cluster; needs a ``when`` that requires one).
``parents``   ``"champion"`` (default): one run on the champion.
              ``"champion+each-same-architecture"``: one run per other approved parent of the
              champion's family whose ``config.json`` (and a text model's ``head.json``)
              equal the champion's, with parents (champion, that parent) -- what
              ``merge`` needs.
              ``"none"``: no parent (``train`` from a seeded initialisation).
``when``      a condition; the run is skipped when it does not hold.
              ``{ cluster = true }``: the round has a failure cluster.
              ``{ cluster_kind = [...] }``: the cluster's perturbation kind is one of these
              (a confusion or feature-slice cluster has none, so it never
              matches; ``{ cluster = true }`` runs on every kind).

Every run uses the round's seed and records the round's failure cluster. Expanded runs
come out run by run in file order, then parent by parent. Everything a run is made of is
in each candidate's provenance, so a changed recipe shows up as new package ids; the
recipe file's digest is recorded in ``round.started``, ``decision.made`` and the round
record (its bytes are kept in the blob store).

This module owns the schema, the values it parses into and the checks: parsing and
checking (:func:`parse_recipe`, :func:`check_allowed`) are pure, and every problem names
the file and line (tomllib keeps no lines, so the ``[[run]]`` headers and ``key =``
assignments are found in the text). Where a round's recipe comes from and the plans it
makes are :mod:`breedlab.lab.recipes`'s.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import Enum
from pathlib import Path

from breedlab.canonical import JsonValue
from breedlab.digest import Digest
from breedlab.errors import InvalidRequest, PolicyError

__all__ = [
    "DATA_ROLES",
    "KIND",
    "PARAMETERS",
    "Condition",
    "Parents",
    "Recipe",
    "Run",
    "check_allowed",
    "parse_recipe",
]

DATA_ROLES = ("train", "fitness", "cluster")
KIND = "{kind}"

# -- parameter types (checked at the edge; the operators check values) -------------------


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_decimal(v: object) -> bool:
    if not isinstance(v, str):
        return False
    try:
        return Decimal(v).is_finite()
    except InvalidOperation:
        return False


_TYPES: Mapping[str, tuple[Callable[[object], bool], str]] = {
    "int": (_is_int, "an integer"),
    "decimal": (_is_decimal, 'a decimal string such as "0.5"'),
    "str": (lambda v: isinstance(v, str), "a string"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "sizes": (
        lambda v: isinstance(v, list) and bool(v) and all(_is_int(x) for x in v),
        "a non-empty list of integers",
    ),
    "names": (
        lambda v: isinstance(v, list) and bool(v) and all(isinstance(x, str) for x in v),
        "a non-empty list of strings",
    ),
    "decimals": (
        lambda v: isinstance(v, list) and bool(v) and all(_is_decimal(x) for x in v),
        'a non-empty list of decimal strings such as ["0.5", "0.5"]',
    ),
    "decimal|decimals": (
        lambda v: _is_decimal(v) or (isinstance(v, list) and bool(v) and all(map(_is_decimal, v))),
        "a decimal string or a list of them",
    ),
}

_ARCHITECTURE = {"architecture": "str", "hidden": "sizes", "channels": "sizes", "image": "sizes"}
_FIT = {"epochs": "int", "lr": "decimal", "batch_size": "int", "weight_decay": "decimal"}
#: What the operators read on a transformers parent besides ``_FIT``'s names.
_STEPS = {"steps": "int", "max_length": "int"}

#: Each operator of the catalogue and the type of each parameter it reads (pinned to the
#: operators' own parameter lists by a test; importing the operators would import torch).
PARAMETERS: Mapping[str, Mapping[str, str]] = {
    "train": {
        **_ARCHITECTURE, "classes": "int", "standardize": "bool", **_FIT, "patience": "int",
        "augment": "str",
        "noise_sigma": "decimal", "missing_fraction": "decimal", "name": "str",
        # a transformers parent: a head on a bare encoder, or a fine-tune of the top layers
        "l2": "decimal", "max_iter": "int", "train_layers": "int", "replay": "decimal",
        **_STEPS,
    },
    "distill": {
        **_ARCHITECTURE, **_FIT, "patience": "int", "temperature": "decimal",
        "alpha": "decimal", "copies": "int", "noise_sigma": "decimal", "name": "str",
        "layers": "sizes", **_STEPS,  # a transformers teacher: the layers the student keeps
    },
    "adapter": {
        "r": "int", "lora_alpha": "int", "targets": "names", "replay": "decimal", **_FIT,
        **_STEPS,
    },
    "quantize": {"scheme": "str"},
    "merge": {
        "method": "str", "weights": "decimals", "density": "decimal|decimals",
        "lambda": "decimal", "t": "decimal", "normalize": "bool", "consensus": "str",
        "rescale": "str",
    },
}  # fmt: skip


# -- the values ----------------------------------------------------------------------------


class Parents(Enum):
    """Which parents a run takes."""

    CHAMPION = "champion"
    EACH_SAME_ARCHITECTURE = "champion+each-same-architecture"
    NONE = "none"


@dataclass(frozen=True, slots=True, kw_only=True)
class Condition:
    """When a run is planned: always, with a cluster, or with a cluster of these kinds."""

    cluster: bool = False
    cluster_kinds: tuple[str, ...] = ()

    def holds(self, cluster: Digest | None, kind: str | None) -> bool:
        if self.cluster_kinds:
            return cluster is not None and kind in self.cluster_kinds
        return cluster is not None or not self.cluster

    def to_json(self) -> dict[str, JsonValue]:
        out: dict[str, JsonValue] = {}
        if self.cluster:
            out["cluster"] = True
        if self.cluster_kinds:
            out["cluster_kind"] = list(self.cluster_kinds)
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Run:
    """One ``[[run]]`` table: ``line`` is its header's line in the file."""

    operator: str
    label: str
    params: Mapping[str, JsonValue]
    data: tuple[str, ...] = ()
    parents: Parents = Parents.CHAMPION
    when: Condition = Condition()
    line: int = 0

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "operator": self.operator,
            "label": self.label,
            "params": dict(self.params),
            "data": list(self.data),
            "parents": self.parents.value,
            "when": self.when.to_json(),
            "line": self.line,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Recipe:
    """A parsed recipe file: where it came from, its bytes' digest and its runs."""

    source: str  # a path, or "built-in" for a recipe shipped with breedlab
    path: Path
    digest: Digest  # of the file's bytes, as stored in the blob store
    raw: bytes
    capability: str | None
    runs: tuple[Run, ...]

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "source": self.source,
            "path": str(self.path),
            "digest": str(self.digest),
            "capability": self.capability,
            "runs": [r.to_json() for r in self.runs],
        }


# -- parsing (pure) --------------------------------------------------------------------------

_TOP_KEYS = ("capability", "run")
_RUN_KEYS = ("operator", "label", "params", "data", "parents", "when")
_WHEN_KEYS = ("cluster", "cluster_kind")
_HEADER = re.compile(r"^\s*\[\[\s*run\s*\]\]")
_SCHEMA_HINT = "the recipe schema is in the docstring of breedlab.lab.recipe_format"


class _Lines:
    """Line numbers for a parsed TOML text (tomllib keeps none): the ``[[run]]`` headers,
    and the first line that assigns a key within a run's block."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.headers = [i + 1 for i, line in enumerate(self.lines) if _HEADER.match(line)]

    def run(self, index: int) -> int:
        return self.headers[index] if index < len(self.headers) else 1

    def key(self, key: str, index: int | None = None) -> int:
        """The line of ``key = `` in run ``index``'s block (top level when None), else
        the block's first line."""
        if index is None:
            start, end = 0, (self.headers[0] - 1 if self.headers else len(self.lines))
        else:
            start = self.run(index) - 1
            end = self.headers[index + 1] - 1 if index + 1 < len(self.headers) else len(self.lines)
        pattern = re.compile(rf"(^|[{{,\s]){re.escape(key)}\s*=")
        for i in range(start, end):
            if pattern.search(self.lines[i].split("#", 1)[0]):
                return i + 1
        return start + 1


def _fail(source: str, line: int, problem: str, hint: str = _SCHEMA_HINT) -> InvalidRequest:
    return InvalidRequest(f"{source}:{line}: {problem}", hint=hint)


def _parse_run(table: object, index: int, source: str, lines: _Lines) -> Run:
    header = lines.run(index)
    if not isinstance(table, dict):
        raise _fail(source, header, "each run is a [[run]] table")

    def fail(key: str, problem: str, hint: str = _SCHEMA_HINT) -> InvalidRequest:
        return _fail(source, lines.key(key, index), problem, hint)

    unknown = sorted(set(table) - set(_RUN_KEYS))
    if unknown:
        raise fail(
            unknown[0],
            f"unknown key(s) {', '.join(map(repr, unknown))} in a [[run]]",
            f"a run takes: {', '.join(_RUN_KEYS)}",
        )
    operator = table.get("operator")
    if not isinstance(operator, str):
        raise _fail(source, header, 'a [[run]] needs operator = "NAME"', _catalogue_hint())
    if operator not in PARAMETERS:
        raise fail("operator", f"unknown operator {operator!r}", _catalogue_hint())
    label = table.get("label")
    if not isinstance(label, str) or not label:
        raise _fail(
            source, header, 'a [[run]] needs label = "TEXT"', 'e.g. label = "quantize/int8"'
        )
    when = _parse_when(table.get("when", {}), fail)
    choices = ", ".join(repr(p.value) for p in Parents)
    try:
        parents = Parents(table.get("parents", Parents.CHAMPION.value))
    except ValueError:
        raise fail("parents", f"parents must be one of {choices}") from None
    if operator == "merge" and parents is not Parents.EACH_SAME_ARCHITECTURE:
        raise fail(
            "operator" if "parents" not in table else "parents",
            "merge needs two parents",
            f'write parents = "{Parents.EACH_SAME_ARCHITECTURE.value}"',
        )
    if operator != "merge" and parents is Parents.EACH_SAME_ARCHITECTURE:
        raise fail("parents", f"{operator} takes one parent", 'write parents = "champion"')
    if parents is Parents.NONE and operator != "train":
        raise fail("parents", f"{operator} needs a parent", 'write parents = "champion"')
    params = table.get("params", {})
    if not isinstance(params, dict):
        raise fail(
            "params", "params must be a table", 'e.g. params = { epochs = 10, lr = "0.003" }'
        )
    known = PARAMETERS[operator]
    for key, value in params.items():
        if key not in known:
            raise fail(
                key,
                f"operator {operator} does not take parameter {key!r}",
                f"{operator} takes: {', '.join(sorted(known))}",
            )
        check, wanted = _TYPES[known[key]]
        if not check(value):
            hint = "write fractional numbers as decimal strings" if isinstance(value, float) else ""
            raise fail(
                key,
                f"parameter {key!r} of {operator} must be {wanted}, got {value!r}",
                hint or _SCHEMA_HINT,
            )
    data = table.get("data", [])
    roles = ", ".join(DATA_ROLES)
    if not isinstance(data, list) or not all(isinstance(d, str) for d in data):
        raise fail("data", "data must be a list of dataset roles", f"roles: {roles}")
    for role in data:
        if role not in DATA_ROLES:
            raise fail("data", f"unknown dataset role {role!r}", f"roles: {roles}")
    if len(set(data)) != len(data):
        raise fail("data", "a dataset role is listed twice")
    if "cluster" in data and not (when.cluster or when.cluster_kinds):
        raise fail(
            "data",
            "data 'cluster' needs a round with a failure cluster",
            "add when = { cluster = true } to the run",
        )
    uses_kind = KIND in label or any(KIND in s for s in _strings(params))
    if uses_kind and not when.cluster_kinds:
        raise fail(
            "label" if KIND in label else "params",
            "{kind} is the cluster's perturbation kind: it needs a when = { cluster_kind = [...] }",
            'e.g. when = { cluster_kind = ["noise"] }',
        )
    return Run(
        operator=operator,
        label=label,
        params=params,
        data=tuple(data),
        parents=parents,
        when=when,
        line=header,
    )


def _parse_when(value: object, fail: Callable[..., InvalidRequest]) -> Condition:
    example = 'e.g. when = { cluster = true } or when = { cluster_kind = ["noise"] }'
    if not isinstance(value, dict):
        raise fail("when", "when must be a table", example)
    unknown = sorted(set(value) - set(_WHEN_KEYS))
    if unknown:
        raise fail("when", f"unknown condition(s) {', '.join(map(repr, unknown))}", example)
    cluster = value.get("cluster", False)
    kinds = value.get("cluster_kind", [])
    if not isinstance(cluster, bool):
        raise fail("when", "when.cluster must be true or false", example)
    if not isinstance(kinds, list) or not all(isinstance(k, str) and k for k in kinds):
        raise fail("when", "when.cluster_kind must be a list of perturbation kinds", example)
    return Condition(cluster=cluster, cluster_kinds=tuple(kinds))


def _strings(value: JsonValue) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    return []


def _catalogue_hint() -> str:
    return f"the operators are: {', '.join(PARAMETERS)}"


def parse_recipe(raw: bytes, path: Path, *, source: str | None = None) -> Recipe:
    """Parse and check a recipe file's bytes.

    Raises:
        InvalidRequest: not TOML, or not a recipe; the message starts ``FILE:LINE:``.
    """
    name = source or str(path)
    try:
        text = raw.decode("utf-8")
        document = tomllib.loads(text)
    except UnicodeDecodeError as e:
        raise _fail(name, 1, "not UTF-8 text", "save the recipe as UTF-8") from e
    except tomllib.TOMLDecodeError as e:
        raise InvalidRequest(f"{name}: not valid TOML: {e}", hint=_SCHEMA_HINT) from e
    lines = _Lines(text)
    unknown = sorted(set(document) - set(_TOP_KEYS))
    if unknown:
        raise _fail(
            name,
            lines.key(unknown[0]),
            f"unknown key(s) {', '.join(map(repr, unknown))}",
            'a recipe holds capability = "NAME" and [[run]] tables',
        )
    capability = document.get("capability")
    if capability is not None and not isinstance(capability, str):
        raise _fail(name, lines.key("capability"), "capability must be a string")
    runs = document.get("run", [])
    if not isinstance(runs, list) or not runs:
        raise _fail(name, 1, "a recipe needs at least one [[run]] table")
    return Recipe(
        source=name,
        path=path,
        digest=Digest.of(raw),
        raw=raw,
        capability=capability,
        runs=tuple(_parse_run(table, i, name, lines) for i, table in enumerate(runs)),
    )


def check_allowed(recipe: Recipe, capability: str, allowed: Sequence[str]) -> None:
    """Refuse a recipe for another capability, or with operators its contract does not
    allow (a contract's ``allowed_operators`` is the law; DESIGN §8).

    Raises:
        PolicyError: the first such run, by file and line.
    """
    if recipe.capability is not None and recipe.capability != capability:
        raise PolicyError(
            f"{recipe.source}: the recipe is for {recipe.capability!r}, not {capability!r}",
            hint=f'use a recipe with capability = "{capability}"',
        )
    for run in recipe.runs:
        if run.operator not in allowed:
            raise PolicyError(
                f"{recipe.source}:{run.line}: operator {run.operator} is not allowed for "
                f"{capability} (allowed: {', '.join(allowed)})",
                hint="remove the run, or allow the operator in the capability's contract",
            )

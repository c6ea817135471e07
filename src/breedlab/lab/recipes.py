"""Recipes: where a round's recipe comes from, and the plans it makes.

A recipe (the file format and its checks: :mod:`breedlab.lab.recipe_format`) lists the
operator runs of a round. Where a round's recipe comes from (:func:`locate`):
``--recipes FILE``, else ``LAB/recipes/CAP.toml``, else the capability's built-in recipe
(``breedlab/capabilities/recipes/CAP.toml``), else an error saying how to write one
(``breedlab recipes init CAP`` writes a starter: :func:`init_recipe`).

:func:`expand` turns a recipe into :class:`~breedlab.lab.operator_runs.Plan` values from
facts the caller read (pure); :func:`recipe_plans` reads them from the registry: which
approved parents share the champion's architecture, and the failure cluster's
perturbation kind. Running the plans is ``operator_runs``'s; recording the recipe's
digest with the round is ``breeding``'s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from breedlab.canonical import JsonValue
from breedlab.capabilities import recipe_path
from breedlab.digest import Digest
from breedlab.errors import InvalidRequest, NotFound
from breedlab.lab.operator_runs import Plan
from breedlab.lab.recipe_format import KIND, Parents, Recipe, check_allowed, parse_recipe
from breedlab.supply import packages as supply_packages

if TYPE_CHECKING:
    from breedlab.supply.service import Supply

__all__ = [
    "expand",
    "init_recipe",
    "lab_recipe_path",
    "locate",
    "recipe_for",
    "recipe_plans",
    "starter_recipe",
]


# -- expansion (pure) ------------------------------------------------------------------------


def _substitute(value: JsonValue, kind: str) -> JsonValue:
    if isinstance(value, str):
        return value.replace(KIND, kind)
    if isinstance(value, list):
        return [_substitute(v, kind) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, kind) for k, v in value.items()}
    return value


def expand(
    recipe: Recipe,
    *,
    parents: Sequence[Digest],
    same_architecture: Sequence[Digest],
    cluster: Digest | None,
    cluster_kind: str | None,
    data: Mapping[str, Digest],
    seed: int,
) -> list[Plan]:
    """The round's plans: each run whose condition holds, on its parents.

    ``parents`` are the approved parents, the champion first; ``same_architecture`` the
    others of them a merge may take; ``data`` holds ``train`` and ``fitness``.
    """
    champion = parents[0]
    datasets = {**data, **({} if cluster is None else {"cluster": cluster})}
    plans: list[Plan] = []
    for run in recipe.runs:
        if not run.when.holds(cluster, cluster_kind):
            continue
        kind = cluster_kind or ""
        models: list[tuple[Digest, ...]]
        if run.parents is Parents.EACH_SAME_ARCHITECTURE:
            models = [(champion, other) for other in same_architecture]
        else:
            models = [() if run.parents is Parents.NONE else (champion,)]
        label, params = _substitute(run.label, kind), _substitute(dict(run.params), kind)
        assert isinstance(label, str) and isinstance(params, dict)
        for chosen in models:
            plans.append(
                Plan(
                    operator=run.operator,
                    label=label,
                    parents=chosen,
                    params=params,
                    data=tuple((role, datasets[role]) for role in run.data),
                    seed=seed,
                    failure_cluster=cluster,
                )
            )
    return plans


# -- reading (the shell around the pure parts) -----------------------------------------------


def lab_recipe_path(supply: Supply, capability: str) -> Path:
    """``LAB/recipes/CAP.toml``."""
    return supply.config.root / "recipes" / f"{capability}.toml"


def locate(supply: Supply, capability: str, recipes: Path | None) -> tuple[Path, str]:
    """The recipe file a round of ``capability`` uses and how to name it.

    Raises:
        NotFound: ``recipes`` does not exist, or there is no recipe for the capability.
    """
    if recipes is not None:
        if not recipes.is_file():
            raise NotFound(f"no recipe file {str(recipes)!r}")
        return recipes, str(recipes)
    in_lab = lab_recipe_path(supply, capability)
    if in_lab.is_file():
        return in_lab, str(in_lab)
    builtin = recipe_path(capability)
    if builtin.is_file():
        return builtin, f"built-in ({capability}.toml)"
    raise NotFound(
        f"no recipe for {capability!r}: no --recipes FILE, no {in_lab}, no built-in recipe",
        hint=f"'breedlab recipes init {capability}' writes a starter recipe to {in_lab}",
    )


def recipe_for(supply: Supply, capability: str, recipes: Path | None = None) -> Recipe:
    """The recipe a round of ``capability`` runs (:func:`locate`), parsed and checked
    against the capability's contract.

    Raises:
        NotFound: no recipe, or no such capability.
        InvalidRequest: the file is not a valid recipe (``FILE:LINE:`` in the message).
        PolicyError: it runs an operator the contract does not allow.
    """
    _, contract = supply_packages.capability(supply, capability)
    path, source = locate(supply, capability, recipes)
    recipe = parse_recipe(path.read_bytes(), path, source=source)
    check_allowed(recipe, capability, contract.allowed_operators)
    return recipe


#: The files that fix a model's shape: two parents whose copies are equal can be merged
#: (the torch config; a text model's encoder config and its head).
_SHAPE_FILES = ("config.json", "head.json")


def _same_architecture(supply: Supply, a: Digest, b: Digest) -> bool:
    import json

    def shape(pid: Digest) -> object:
        manifest = supply_packages.manifest(supply, pid)
        if manifest.family not in ("torch", "transformers"):
            return None
        found: dict[str, object] = {"family": manifest.family}
        for entry in manifest.files:
            if entry.path in _SHAPE_FILES:
                found[entry.path] = json.loads(supply.blobs.get_bytes(entry.digest))
        return found if "config.json" in found else None

    first = shape(a)
    return first is not None and first == shape(b)


def _cluster_kind(supply: Supply, cluster: Digest | None) -> str | None:
    """The perturbation kind of a failure cluster (None for a confusion or slice cluster)."""
    if cluster is None:
        return None
    meta = supply_packages.manifest(supply, cluster).meta.get("cluster", {})
    perturbation = meta.get("perturbation", {}) if isinstance(meta, dict) else {}
    kind = perturbation.get("kind") if isinstance(perturbation, dict) else None
    return kind if isinstance(kind, str) else None


def recipe_plans(
    supply: Supply,
    recipe: Recipe,
    parents: Sequence[Digest],
    cluster: Digest | None,
    data: Mapping[str, Digest],
    seed: int,
) -> list[Plan]:
    """:func:`expand` with the facts read from the registry: which approved parents share
    the champion's architecture, and the cluster's perturbation kind."""
    needs_others = any(r.parents is Parents.EACH_SAME_ARCHITECTURE for r in recipe.runs)
    others = [p for p in parents[1:] if needs_others and _same_architecture(supply, parents[0], p)]
    return expand(
        recipe,
        parents=parents,
        same_architecture=others,
        cluster=cluster,
        cluster_kind=_cluster_kind(supply, cluster),
        data=data,
        seed=seed,
    )


# -- a starter recipe ------------------------------------------------------------------------

#: The perturbation kinds the ``train`` operator can augment with, by modality (the
#: values of ``evaluator.design.Modality``; ``factory.operators.augmentation.Augment``):
#: a starter's fine-tune runs on a failure cluster of one of these. Text has none yet, so
#: its starter has no fine-tune. (Strings, not the enum: importing the evaluator here
#: would load numpy for every CLI command.)
_AUGMENTS: Mapping[str, tuple[str, ...]] = {
    "image": ("noise", "shift"),
    "tabular": ("feature_noise", "missing"),
    "text": (),
}

_STARTER_RUNS = {
    "train": """\
# Fine-tune the champion with the failure cluster's perturbation as augmentation.
[[run]]
operator = "train"
label = "train/finetune-{{kind}}"
when = {{ cluster_kind = [{kinds}] }}
data = ["train", "fitness"]
params = {{ epochs = 10, augment = "{{kind}}", name = "{capability}-ft-{{kind}}" }}
""",
    "distill": """\
# A small student of the champion (Hinton soft targets).
[[run]]
operator = "distill"
label = "distill/mlp-32"
data = ["train", "fitness"]
params = {{ architecture = "mlp", hidden = [32], epochs = 40, name = "{capability}-mlp-32" }}
""",
    "adapter": """\
# LoRA on the failure cluster (any kind: a perturbation, a confusion, a feature slice),
# with replay from train, merged into the champion.
[[run]]
operator = "adapter"
label = "adapter/lora-r8"
when = {{ cluster = true }}
data = ["train", "cluster"]
params = {{ r = 8, lora_alpha = 16 }}
""",
    "quantize": """\
# Weight-only int8, per output channel.
[[run]]
operator = "quantize"
label = "quantize/int8_pc"
params = {{ scheme = "int8_pc" }}
""",
    "merge": """\
# The champion merged with each approved parent of its architecture.
[[run]]
operator = "merge"
label = "merge/linear"
parents = "champion+each-same-architecture"
params = {{ method = "linear", weights = ["0.5", "0.5"] }}

[[run]]
operator = "merge"
label = "merge/ties"
parents = "champion+each-same-architecture"
params = {{ method = "ties", density = "0.5" }}
""",
}


def starter_recipe(capability: str, allowed: Sequence[str], modality: str = "image") -> str:
    """A commented starter recipe for a torch MLP capability: one or two runs per allowed
    operator, names derived from the capability. The fine-tune runs on the failure
    clusters of ``modality`` that ``train`` can augment with (``_AUGMENTS``)."""
    kinds = ", ".join(f'"{k}"' for k in _AUGMENTS[modality])
    runs = [
        _STARTER_RUNS[op].format(capability=capability, kinds=kinds)
        for op in _STARTER_RUNS
        if op in allowed and (op != "train" or kinds)
    ]
    head = (
        f"# Operator runs for {capability}: what 'breedlab round {capability}' makes.\n"
        "# Schema: the docstring of breedlab.lab.recipes ('breedlab recipes show "
        f"{capability}' checks it).\n"
        f'capability = "{capability}"\n'
    )
    return "\n".join([head, *runs])


def init_recipe(supply: Supply, capability: str, *, force: bool = False) -> Path:
    """Write a starter recipe to ``LAB/recipes/CAP.toml`` (checked like any recipe).

    Raises:
        NotFound: no such capability.
        InvalidRequest: the file exists (and ``force`` is not set).
    """
    _, contract = supply_packages.capability(supply, capability)
    path = lab_recipe_path(supply, capability)
    if path.exists() and not force:
        raise InvalidRequest(f"{path} exists", hint="edit it, or pass --force to overwrite it")
    from breedlab.evaluator.design import modality  # numpy: only when a starter is written

    kind = modality(contract.input_schema, contract.input_shape)
    text = starter_recipe(capability, contract.allowed_operators, kind.value)
    recipe = parse_recipe(text.encode(), path)
    check_allowed(recipe, capability, contract.allowed_operators)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, "utf-8")
    return path

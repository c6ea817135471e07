"""Recipes as data (issue 12): a recipe file is parsed and checked at the edge with errors
naming the file and line, the built-in digits recipe plans exactly what the hard-coded
recipe planned, and a capability of one's own resolves its recipe to plans."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from breedlab.canonical import JsonValue
from breedlab.capabilities import contract_path
from breedlab.digest import Digest
from breedlab.errors import InvalidRequest, NotFound, PolicyError
from breedlab.lab import Lab
from breedlab.lab.operator_runs import Plan
from breedlab.lab.recipe_format import PARAMETERS, Recipe, parse_recipe
from breedlab.lab.recipes import expand, lab_recipe_path, recipe_plans, starter_recipe

BUILTIN = Path(str(contract_path("digits"))).parent / "recipes" / "digits.toml"


def _digest(name: str) -> Digest:
    return Digest.of(name.encode())


CHAMPION, SIBLING, OTHER, CNN = (_digest(n) for n in ("champion", "sibling", "other", "cnn"))
DATA = {"train": _digest("train"), "fitness": _digest("fitness")}
CLUSTER = _digest("cluster")


def _parse(text: str) -> Recipe:
    return parse_recipe(text.encode(), Path("my.toml"))


# -- the hard-coded recipe this file replaced, frozen here as the reference ----------------

_MERGES: tuple[tuple[str, dict[str, JsonValue]], ...] = (
    ("linear", {"method": "linear", "weights": ["0.5", "0.5"]}),
    ("task-arithmetic", {"method": "task_arithmetic", "lambda": "0.75"}),
    ("ties", {"method": "ties", "density": "0.5"}),
    ("slerp", {"method": "slerp", "t": "0.5"}),
)


def _old_default_plans(
    parents: Sequence[Digest],
    cluster: Digest | None,
    kind: object,
    same_architecture: Sequence[Digest],
    data: Mapping[str, Digest],
    seed: int,
) -> list[Plan]:
    """``lab.recipes.default_plans`` before recipes were data, with its two registry reads
    (the cluster's perturbation kind, same-architecture parents) passed in."""
    champion = parents[0]
    train = ("train", data["train"])
    fitness = ("fitness", data["fitness"])

    def plan(
        operator: str,
        label: str,
        params: Mapping[str, JsonValue],
        datasets: tuple[tuple[str, Digest], ...] = (),
        models: tuple[Digest, ...] = (champion,),
    ) -> Plan:
        return Plan(
            operator=operator,
            label=label,
            parents=models,
            params=params,
            data=datasets,
            seed=seed,
            failure_cluster=cluster,
        )

    plans: list[Plan] = []
    if kind in ("noise", "shift"):
        finetune: dict[str, JsonValue] = {
            "architecture": "mlp",
            "hidden": [128, 64],
            "epochs": 10,
            "augment": kind,
            "name": f"digits-mlp-ft-{kind}",
        }
        plans.append(plan("train", f"train/finetune-{kind}", finetune, (train, fitness)))
    distill: dict[str, JsonValue] = {"architecture": "mlp", "hidden": [32], "epochs": 40}
    plans.append(plan("distill", "distill/mlp-32", distill, (train, fitness)))
    if cluster is not None:
        lora: dict[str, JsonValue] = {"r": 8, "lora_alpha": 16}
        plans.append(plan("adapter", "adapter/lora-r8", lora, (train, ("cluster", cluster))))
    for scheme in ("int8_pc", "int4_g32"):
        plans.append(plan("quantize", f"quantize/{scheme}", {"scheme": scheme}))
    for other in parents[1:]:
        if other not in same_architecture:
            continue
        for label, params in _MERGES:
            plans.append(plan("merge", f"merge/{label}", params, models=(champion, other)))
    return plans


@pytest.mark.parametrize("kind", ["noise", "shift", "blur", None])
@pytest.mark.parametrize("with_cluster", [True, False])
@pytest.mark.parametrize(
    "parents,same",
    [
        ((CHAMPION,), ()),
        ((CHAMPION, SIBLING), (SIBLING,)),
        ((CHAMPION, SIBLING, CNN), (SIBLING,)),
    ],
)
def test_the_built_in_digits_recipe_plans_exactly_what_the_hard_coded_recipe_planned(
    kind: str | None, with_cluster: bool, parents: tuple[Digest, ...], same: tuple[Digest, ...]
) -> None:
    recipe = parse_recipe(BUILTIN.read_bytes(), BUILTIN)
    cluster = CLUSTER if with_cluster else None
    kind = kind if with_cluster else None
    new = expand(
        recipe,
        parents=parents,
        same_architecture=same,
        cluster=cluster,
        cluster_kind=kind,
        data=DATA,
        seed=7,
    )
    old = _old_default_plans(parents, cluster, kind, same, DATA, 7)
    assert new == old  # labels, params, data, parents, seeds: the same package ids
    assert [p.to_json() for p in new] == [p.to_json() for p in old]


def test_with_several_mergeable_parents_the_recipe_orders_merges_by_method() -> None:
    """The one difference: merges come method by method, not parent by parent."""
    recipe = parse_recipe(BUILTIN.read_bytes(), BUILTIN)
    parents = (CHAMPION, SIBLING, OTHER)
    args = {"parents": parents, "same_architecture": (SIBLING, OTHER), "data": DATA, "seed": 0}
    new = expand(recipe, cluster=None, cluster_kind=None, **args)  # type: ignore[arg-type]
    old = _old_default_plans(parents, None, None, (SIBLING, OTHER), DATA, 0)
    key = [(p.label, p.parents) for p in new]
    assert sorted(key) == sorted((p.label, p.parents) for p in old)
    assert sorted(p.to_json().__repr__() for p in new) == sorted(repr(p.to_json()) for p in old)
    assert key[3:5] == [("merge/linear", (CHAMPION, SIBLING)), ("merge/linear", (CHAMPION, OTHER))]


def test_the_parameter_table_is_the_operators_own() -> None:
    import importlib

    from breedlab.factory.operators import OPERATORS

    assert set(PARAMETERS) == set(OPERATORS)
    for operator in ("train", "distill", "adapter"):
        module = importlib.import_module(f"breedlab.factory.operators.{operator}")
        text = importlib.import_module(f"breedlab.factory.operators.text_{operator}")
        # train on a text parent: a head on a bare encoder, or a fine-tune
        heads = (*text._HEAD_PARAMS, *text._TUNE_PARAMS) if operator == "train" else ()
        read = heads or text._PARAMS
        assert set(PARAMETERS[operator]) == set(module._PARAMS) | set(read), operator
    # quantize reads only "scheme"; merge the method and its methods' parameters
    from breedlab.factory.merge import MERGE_METHODS

    merge = {"method"} | {p for m in MERGE_METHODS.values() for p in m.parameters}
    assert set(PARAMETERS["merge"]) == merge
    assert set(PARAMETERS["quantize"]) == {"scheme"}


# -- errors name the file and the line ---------------------------------------------------------

GOOD = """\
capability = "digits"

[[run]]
operator = "quantize"
label = "quantize/int8"
params = { scheme = "int8_pc" }

[[run]]
operator = "distill"
label = "distill/mlp-16"
data = ["train", "fitness"]
params = { hidden = [16], lr = "0.003" }
"""


def test_a_good_recipe_parses_with_its_digest_and_the_lines_of_its_runs() -> None:
    recipe = _parse(GOOD)
    assert [(r.operator, r.line) for r in recipe.runs] == [("quantize", 3), ("distill", 8)]
    assert recipe.digest == Digest.of(GOOD.encode())
    assert recipe.capability == "digits"


@pytest.mark.parametrize(
    "edit,line,message,hint",
    [
        (('label = "distill/mlp-16"', 'label = "d"\nseed = 3'), 11, "unknown key(s) 'seed'",
         "a run takes"),
        (('operator = "distill"', 'operator = "evolve"'), 9, "unknown operator 'evolve'",
         "the operators are: train"),
        (("lr = \"0.003\"", "lr = 0.003"), 12, "'lr' of distill must be a decimal string",
         "decimal strings"),
        (("hidden = [16]", 'hidden = ["16"]'), 12, "'hidden' of distill must be a non-empty list",
         ""),
        (("hidden = [16]", "widths = [16]"), 12, "distill does not take parameter 'widths'",
         "distill takes: alpha"),
        (('data = ["train", "fitness"]', 'data = ["train", "test"]'), 11,
         "unknown dataset role 'test'", "roles: train, fitness, cluster"),
        (('data = ["train", "fitness"]', 'data = ["train", "cluster"]'), 11,
         "data 'cluster' needs a round with a failure cluster", "when = { cluster = true }"),
        (('label = "distill/mlp-16"', 'label = "distill-{kind}"'), 10, "{kind}",
         "cluster_kind"),
        (('operator = "distill"', 'operator = "merge"'), 9, "merge needs two parents",
         "champion+each-same-architecture"),
        (('label = "distill/mlp-16"', 'label = "d"\nparents = "all"'), 11,
         "parents must be one of", ""),
        (('label = "distill/mlp-16"', 'label = "d"\nwhen = { cluster = "yes" }'), 11,
         "when.cluster must be true or false", "when = { cluster = true }"),
        (('capability = "digits"', 'capability = "digits"\nversion = 2'), 2,
         "unknown key(s) 'version'", "[[run]] tables"),
    ],
)  # fmt: skip
def test_a_bad_recipe_is_refused_naming_the_file_the_line_and_what_to_do(
    edit: tuple[str, str], line: int, message: str, hint: str
) -> None:
    assert edit[0] in GOOD
    with pytest.raises(InvalidRequest) as caught:
        _parse(GOOD.replace(edit[0], edit[1]))
    assert caught.value.message.startswith(f"my.toml:{line}: "), caught.value.message
    assert message in caught.value.message
    assert hint in (caught.value.hint or "")


def test_a_recipe_that_is_not_toml_or_has_no_run_is_refused() -> None:
    with pytest.raises(InvalidRequest, match=r"my\.toml: not valid TOML: .*line 1"):
        _parse("[[run]\n")
    with pytest.raises(InvalidRequest, match=re.escape("my.toml:1: a recipe needs at least one")):
        _parse('capability = "x"\n')


# -- expansion: conditions, placeholders, parents ---------------------------------------------

CLUSTERED = """\
[[run]]
operator = "train"
label = "train/scratch"
parents = "none"
data = ["train"]
params = { architecture = "mlp", hidden = [8] }

[[run]]
operator = "adapter"
label = "adapter/{kind}"
when = { cluster_kind = ["noise"] }
data = ["cluster", "train"]
params = { targets = ["head"], replay = "0.5" }
"""


def test_conditions_placeholders_and_parents_expand_as_written() -> None:
    recipe = _parse(CLUSTERED)
    args = {"parents": (CHAMPION,), "same_architecture": (), "data": DATA, "seed": 3}
    plain = expand(recipe, cluster=CLUSTER, cluster_kind="shift", **args)  # type: ignore[arg-type]
    assert [(p.label, p.parents, p.data) for p in plain] == [
        ("train/scratch", (), (("train", DATA["train"]),))
    ]
    noisy = expand(recipe, cluster=CLUSTER, cluster_kind="noise", **args)  # type: ignore[arg-type]
    assert noisy[1].label == "adapter/noise"
    assert noisy[1].data == (("cluster", CLUSTER), ("train", DATA["train"]))
    assert noisy[1].failure_cluster == CLUSTER and noisy[1].seed == 3


# -- a capability of one's own ------------------------------------------------------------------

_WINE = (
    contract_path("digits")
    .read_text()
    .replace('name = "digits"', 'name = "wine"')
    .replace("shape = [64]", "shape = [13]")
    .replace(
        'labels = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]', 'labels = ["0", "1", "2"]'
    )
    .replace("classes = 10", "classes = 3")
    .replace('range = "0..16 pixel intensities"', 'range = "-5..5 standardised features"')
)


@pytest.fixture
def wine(lab: Lab, tmp_path: Path) -> Lab:
    path = tmp_path / "wine.toml"
    path.write_text(_WINE.replace('"adapter", ', ""))  # this contract allows no adapter
    lab.add_capability(path)
    return lab


def test_a_capability_without_a_recipe_is_told_how_to_write_one(wine: Lab) -> None:
    with pytest.raises(NotFound) as caught:
        wine.recipe("wine")
    assert "no recipe for 'wine'" in caught.value.message
    assert "breedlab recipes init wine" in (caught.value.hint or "")


def test_a_starter_recipe_for_a_capability_resolves_to_plans(wine: Lab) -> None:
    path = wine.init_recipe("wine")
    assert path == lab_recipe_path(wine.supply, "wine")
    text = path.read_text()
    assert "digits" not in text and 'name = "wine-ft-{kind}"' in text
    assert "adapter" not in text  # only what the contract allows
    recipe = wine.recipe("wine")
    assert recipe.source == str(path)
    plans = recipe_plans(wine.supply, recipe, [CHAMPION], None, DATA, 0)
    assert [p.label for p in plans] == ["distill/mlp-32", "quantize/int8_pc"]
    assert all(p.parents == (CHAMPION,) for p in plans)
    with pytest.raises(InvalidRequest, match="exists"):
        wine.init_recipe("wine")


def test_a_recipe_file_beats_the_lab_recipe_which_beats_the_built_in(
    lab: Lab, tmp_path: Path
) -> None:
    assert lab.recipe("digits").source == "built-in (digits.toml)"
    in_lab = lab_recipe_path(lab.supply, "digits")
    in_lab.parent.mkdir()
    in_lab.write_text(GOOD)
    assert lab.recipe("digits").source == str(in_lab)
    given = tmp_path / "given.toml"
    given.write_text(GOOD.replace("int8_pc", "int4_g32"))
    chosen = lab.recipe("digits", given)
    assert chosen.source == str(given) and chosen.digest == Digest.of(given.read_bytes())
    with pytest.raises(NotFound, match="no recipe file"):
        lab.recipe("digits", tmp_path / "missing.toml")


def test_a_recipe_is_refused_for_an_operator_the_contract_does_not_allow(
    wine: Lab, tmp_path: Path
) -> None:
    text = 'capability = "wine"\n\n' + CLUSTERED.replace("adapter/{kind}", "a/{kind}")
    given = tmp_path / "r.toml"
    given.write_text(text)
    with pytest.raises(PolicyError) as caught:
        wine.recipe("wine", given)
    assert caught.value.message.startswith(f"{given}:10: operator adapter is not allowed")
    with pytest.raises(PolicyError, match="the recipe is for 'wine', not 'digits'"):
        wine.recipe("digits", given)


def test_the_starter_recipe_names_nothing_of_digits() -> None:
    text = starter_recipe("letters", ["train", "distill", "adapter", "quantize", "merge"])
    recipe = _parse(text)
    assert {r.operator for r in recipe.runs} == set(PARAMETERS)
    assert "digits" not in text


def _starter_plans(text: str, kind: str | None, cluster: Digest | None = CLUSTER) -> list[Plan]:
    args = {"parents": (CHAMPION,), "same_architecture": (), "data": DATA, "seed": 0}
    return expand(_parse(text), cluster=cluster, cluster_kind=kind, **args)  # type: ignore[arg-type]


def test_a_tabular_starter_fine_tunes_on_the_tabular_perturbations_a_cluster_names() -> None:
    ops = ["train", "distill", "adapter", "quantize"]
    text = starter_recipe("wine", ops, "tabular")
    assert 'cluster_kind = ["feature_noise", "missing"]' in text and '"noise"' not in text
    for kind in ("feature_noise", "missing"):
        [finetune] = [p for p in _starter_plans(text, kind) if p.operator == "train"]
        assert finetune.label == f"train/finetune-{kind}"
        assert finetune.params["augment"] == kind and finetune.params["name"] == f"wine-ft-{kind}"
    # A slice or confusion cluster has no perturbation kind: LoRA on it, no fine-tune.
    sliced = _starter_plans(text, None)
    assert [p.operator for p in sliced] == ["distill", "adapter", "quantize"]
    assert sliced[1].data == (("train", DATA["train"]), ("cluster", CLUSTER))
    # digits' kinds never fire for a tabular capability
    assert [p.operator for p in _starter_plans(text, "noise")] == ["distill", "adapter", "quantize"]


def test_an_image_starter_fine_tunes_on_noise_and_shift_and_a_text_one_not_at_all() -> None:
    ops = ["train", "distill", "adapter", "quantize"]
    image = starter_recipe("letters", ops)
    assert 'cluster_kind = ["noise", "shift"]' in image
    assert _starter_plans(image, "shift")[0].label == "train/finetune-shift"
    text = starter_recipe("reviews", ops, "text")
    assert {r.operator for r in _parse(text).runs} == {"distill", "adapter", "quantize"}


def test_recipes_init_writes_the_starter_of_the_contracts_modality(wine: Lab) -> None:
    text = wine.init_recipe("wine").read_text()  # 13 features: tabular
    assert 'when = { cluster_kind = ["feature_noise", "missing"] }' in text

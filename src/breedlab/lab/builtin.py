"""The built-in ``digits`` capability, set up from scratch in a lab (what the demo does).

From scikit-learn's bundled digits (nothing is downloaded): the stage-0 contract; the
train / fitness / dev / sealed splits as signed dataset packages; a champion trained by
the ``train`` operator in the sandbox (so it is reproducible from source), signed and
approved; a second parent fine-tuned from it on shifted and noisy inputs (a robust
sibling that shares the champion's initialisation, so weight merges are meaningful); and
the frozen suite, whose critical set is the dev items the champion gets right with
confidence ≥ 0.99 -- known-good answers no descendant may break (zero tolerance).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from breedlab.canonical import JsonValue
from breedlab.capabilities import contract_path
from breedlab.datasets import write_dataset
from breedlab.digest import Digest
from breedlab.errors import LabError, NotFound, PolicyError
from breedlab.evaluator.design import POLICY
from breedlab.evaluator.digits import DIGITS_PERTURBATIONS, digits_splits
from breedlab.evaluator.suite import Budget, SuiteSpec
from breedlab.lab.dataset_splits import store_split
from breedlab.lab.evaluation import Evaluation, evaluate_models
from breedlab.lab.operator_runs import Generated, Plan, run_plans
from breedlab.lab.promotion import promote
from breedlab.lab.suites import register_suite
from breedlab.sandbox.executors import Executor
from breedlab.supply import aliases, approvals
from breedlab.supply import keys as supply_keys
from breedlab.supply import packages as supply_packages
from breedlab.supply.aliases import point

if TYPE_CHECKING:
    from breedlab.registry.capability import Contract
    from breedlab.supply.service import Supply

__all__ = [
    "DIGITS_METRICS",
    "DIGITS_POLICY",
    "Bootstrap",
    "approve_champion",
    "approve_parent",
    "bootstrap_digits",
    "bootstrap_run",
    "check_owner_keys",
    "known_good_items",
    "lab_sign",
]

Progress = Callable[[str], None]

#: The digits suite's metrics and margins (viability MetricSpec records). Robustness is
#: the primary metric: clean accuracy is near its ceiling, the perturbed inputs are where
#: the champion really fails (tests/unit/evaluator, realism check). Margins match what
#: 270 dev items can resolve: a one-sided 95% bound on a paired accuracy difference is
#: about ±2 points here, so a 1-point non-inferiority margin could never be shown.
DIGITS_METRICS: tuple[dict[str, JsonValue], ...] = (
    {
        "name": "robust_accuracy",
        "group": "robustness",
        "direction": "higher",
        "role": "primary",
        "kind": "binary",
        "margin": "0.02",
        "scale": "0.25",
    },
    {
        "name": "accuracy",
        "group": "task",
        "direction": "higher",
        "role": "guardrail",
        "kind": "binary",
        "margin": "0.03",
        "scale": "0.03",
    },
    {
        "name": "nll",
        "group": "calibration",
        "direction": "lower",
        "role": "guardrail",
        "kind": "continuous",
        "margin": "0.1",
        "scale": "0.1",
    },
    {
        "name": "brier",
        "group": "calibration",
        "direction": "lower",
        "role": "guardrail",
        "kind": "continuous",
        "margin": "0.03",
        "scale": "0.03",
    },
    *(
        {
            "name": f"accuracy_{p.kind}",
            "group": "robustness",
            "direction": "higher",
            "role": "slice",
            "kind": "binary",
            "margin": "0.02",
            "scale": "0.02",
        }
        for p in DIGITS_PERTURBATIONS
    ),
    {
        "name": "critical",
        "group": "safety",
        "direction": "higher",
        "role": "zero_tolerance",
        "kind": "binary",
        "margin": "0",
        "scale": "1",
    },
    {
        "name": "latency_p95_ms",
        "group": "resource",
        "direction": "lower",
        "role": "guardrail",
        "kind": "aggregate",
        "margin": "1.0",
        "scale": "0.5",
    },
    {
        "name": "size_bytes",
        "group": "resource",
        "direction": "lower",
        "role": "guardrail",
        "kind": "aggregate",
        "margin": "0.1",
        "scale": "0.5",
    },
)

#: The digits suite's decision policy: the one every created suite has (``evaluator.design``).
DIGITS_POLICY: dict[str, JsonValue] = dict(POLICY)

CHAMPION_PARAMS: dict[str, JsonValue] = {
    "architecture": "mlp",
    "hidden": [128, 64],
    "epochs": 30,
    "name": "digits-mlp",
}
SIBLING_PARAMS: dict[str, JsonValue] = {
    "architecture": "mlp",
    "hidden": [128, 64],
    "epochs": 15,
    "augment": "shift",
    "name": "digits-mlp-robust",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Bootstrap:
    contract: Digest
    datasets: dict[str, Digest]
    champion: Digest
    sibling: Digest | None
    suite: Digest
    critical_items: int


def _suite(
    supply: Supply,
    *,
    seed: int,
    datasets: dict[str, Digest],
    critical: tuple[str, ...],
    parents: list[Digest],
    name: str,
    sign_with: str | None,
) -> Digest:
    spec = SuiteSpec(
        capability="digits",
        name=name,
        seed=seed,
        splits={"dev": str(datasets["dev"]), "sealed": str(datasets["sealed"])},
        perturbations=DIGITS_PERTURBATIONS,
        critical_items=critical,
        metrics=DIGITS_METRICS,
        policy=DIGITS_POLICY,
        budget=Budget(),
    )
    return register_suite(supply, spec, license="CC-BY-4.0", parents=parents, sign_with=sign_with)


def check_owner_keys(supply: Supply, *, model: str, evaluation: str, production: str) -> None:
    """Each key exists and has the role it is passed for.

    Raises:
        NotFound: no such key. PolicyError: a key of another role (the hint says how to
            make one of the right role).
    """
    for key, role in ((model, "model"), (evaluation, "evaluation"), (production, "production")):
        found = supply_keys.key(supply, key)  # NotFound names a missing key
        if found.role != role:
            raise PolicyError(
                f"--{role}-key {key!r} has role {found.role!r}, not {role!r}",
                hint=f"generate one: breedlab keys generate NAME --role {role}",
            )


def approve_champion(
    supply: Supply, capability: str, champion: Digest, *, model_key: str, production_key: str
) -> None:
    """Sign and approve a bootstrap's champion (parent, release) and, for a capability
    with none yet, promote it: a promotion like any other, by the production owner."""
    lab_sign(supply, champion, model_key)
    for purpose, key in (("parent", model_key), ("release", production_key)):
        if not any(
            a.purpose == purpose for a in supply_packages.show(supply, str(champion)).approvals
        ):
            approvals.approve(supply, str(champion), purpose=purpose, key=key)
    if aliases.alias(supply, capability, "champion") is None:
        promote(supply, capability, str(champion), key=production_key)


def approve_parent(supply: Supply, model: Digest, *, key: str) -> None:
    """Sign and approve ``model`` as a parent (once per key)."""
    lab_sign(supply, model, key)
    if not any(a.purpose == "parent" for a in supply_packages.show(supply, str(model)).approvals):
        approvals.approve(supply, str(model), purpose="parent", key=key)


def known_good_items(evaluation: Evaluation, *, confidence: float, limit: int) -> tuple[str, ...]:
    """The first ``limit`` dev item ids (sorted) the champion gets right with at least
    ``confidence``: a suite's critical set, answers no descendant may break.

    Raises:
        LabError: the evaluation failed.
    """
    if evaluation.scorecard is None:
        raise LabError(f"evaluating the champion failed: {evaluation.failure}")
    dev = evaluation.scorecard.splits["dev"]
    sure = np.asarray(dev.clean.items.confidence) >= confidence
    good = np.asarray(dev.correct["clean"]) & sure
    return tuple(sorted(i for i, ok in zip(dev.ids, good, strict=True) if ok)[:limit])


def bootstrap_run(
    supply: Supply, plan: Plan, contract: Contract, *, executor: Executor, progress: Progress
) -> Generated:
    """One operator run in the sandbox, recorded as part of a bootstrap."""
    [run] = run_plans(
        supply, [plan], contract, executor=executor, round_id="bootstrap", progress=progress
    )
    return run


def bootstrap_digits(
    supply: Supply,
    *,
    model_key: str,
    evaluation_key: str,
    production_key: str,
    executor: Executor,
    seed: int = 0,
    progress: Progress | None = None,
) -> Bootstrap:
    """Set up the built-in digits capability (idempotent where it can be).

    Raises:
        PolicyError: a key of the wrong role (each signs what its role owns).
    """
    check_owner_keys(supply, model=model_key, evaluation=evaluation_key, production=production_key)
    say = progress or (lambda _m: None)
    try:
        contract_info, contract = supply_packages.capability(supply, "digits")
    except NotFound:
        contract_info = supply_packages.add_capability(
            supply, contract_path("digits"), sign_with=model_key
        )
        contract = supply_packages.capability(supply, "digits")[1]
    say(f"capability digits: contract {contract_info.id.short}")
    splits = digits_splits(seed)
    datasets: dict[str, Digest] = {}
    with tempfile.TemporaryDirectory(prefix="breedlab-digits-") as scratch:
        for split in splits.all():
            folder = Path(scratch) / split.name.value
            write_dataset(
                folder,
                x=split.x.astype(np.float32),
                y=split.y,
                ids=split.item_ids,
                meta={
                    "split": split.name.value,
                    "seed": seed,
                    "source": "sklearn.datasets.load_digits (UCI optdigits), pixels / 16",
                },
            )
            info = store_split(
                supply,
                folder,
                capability="digits",
                split=split.name.value,
                license="CC-BY-4.0",
                sign_with=evaluation_key,
                reason="built-in digits splits",
            )
            datasets[split.name.value] = info.id
    say(f"datasets: {', '.join(f'{k} {v.short}' for k, v in datasets.items())}")
    train_data = (("train", datasets["train"]), ("fitness", datasets["fitness"]))

    def train(
        label: str, params: Mapping[str, JsonValue], parents: tuple[Digest, ...], run_seed: int
    ) -> Generated:
        """One ``train`` run on the digits splits, recorded as part of the bootstrap."""
        plan = Plan(
            operator="train",
            label=label,
            params=params,
            parents=parents,
            data=train_data,
            seed=run_seed,
        )
        return bootstrap_run(supply, plan, contract, executor=executor, progress=say)

    champion_run = train("train/champion", CHAMPION_PARAMS, (), seed)
    if champion_run.failure is not None:
        raise LabError(f"training the champion failed: {champion_run.failure}")
    champion = champion_run.candidates[0]
    approve_champion(supply, "digits", champion, model_key=model_key, production_key=production_key)
    say(f"champion {champion.short} trained, signed, approved and aliased")

    draft = _suite(
        supply,
        seed=seed,
        datasets=datasets,
        critical=(),
        parents=[],
        name="digits-suite-draft",
        sign_with=supply.config.factory_key,
    )
    [evaluation] = evaluate_models(
        supply, [champion], draft, executor=executor, round_id="bootstrap"
    )
    critical = known_good_items(evaluation, confidence=0.99, limit=60)
    suite = _suite(
        supply,
        seed=seed,
        datasets=datasets,
        critical=critical,
        parents=[champion],
        name="digits-suite",
        sign_with=evaluation_key,
    )
    point(supply, "digits", "suite", suite, reason="frozen digits suite")
    say(f"suite {suite.short} frozen with {len(critical)} critical items")

    sibling = None
    if "train" in contract.allowed_operators:
        sibling_run = train("train/robust-sibling", SIBLING_PARAMS, (champion,), seed + 1)
        if sibling_run.failure is None:
            sibling = sibling_run.candidates[0]
            approve_parent(supply, sibling, key=model_key)
            say(f"robust sibling {sibling.short} fine-tuned from the champion, approved as parent")
        else:
            say(f"robust sibling failed: {sibling_run.failure}")
    return Bootstrap(
        contract=contract_info.id,
        datasets=datasets,
        champion=champion,
        sibling=sibling,
        suite=suite,
        critical_items=len(critical),
    )


def lab_sign(supply: Supply, package: Digest, key: str) -> None:
    """Sign unless this key signed already."""
    if key not in supply_packages.show(supply, str(package)).signed_by:
        approvals.sign(supply, str(package), key=key)

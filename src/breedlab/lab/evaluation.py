"""Evaluation on frozen suites: run the suite runner in the sandbox for each model,
store its per-item outputs as blobs, derive scorecards, and record ``candidate.scored``.

Scorecards are derived in this (parent) process from the stored outputs and the suite's
own dataset packages, so they can be re-derived later from the store alone. Results are
only comparable under the same suite id and budget (DESIGN §9): :func:`check_comparable`
refuses anything else.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from breedlab import canonical, interrupts
from breedlab.canonical import JsonValue
from breedlab.datasets import read_any_dataset
from breedlab.digest import Digest
from breedlab.errors import LabError, NotFound, PolicyError
from breedlab.evaluator.runner import OUTPUTS_FILE
from breedlab.evaluator.scoring import Resources, Scorecard, score
from breedlab.evaluator.suite import SUITE_FILE, SuiteSpec
from breedlab.jobs import DataInput, Job
from breedlab.lab.operator_runs import model_input
from breedlab.ledger import EventKind
from breedlab.sandbox import JobSpec, Limits, Outcome
from breedlab.sandbox.executors import Executor
from breedlab.supply import keys as supply_keys
from breedlab.supply import packages as supply_packages

if TYPE_CHECKING:
    from breedlab.supply.service import Supply

__all__ = [
    "EVAL_LIMITS",
    "Evaluation",
    "check_comparable",
    "evaluate_models",
    "hardware_class",
    "load_suite",
]

EVAL_LIMITS = Limits(memory_mib=4096, cpu_seconds=300, file_mib=512, wall_seconds=300.0)
SCORECARD_SCHEMA = "breedlab.scorecard/v1"


def hardware_class() -> str:
    """The budget's hardware class: architecture, core count and the torch build."""
    return f"{platform.machine()}-{os.cpu_count()}cpu-1thread"


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Evaluation:
    """One model scored on one suite; a failed one has no scorecard, and ``failure`` says
    why (its ``outputs`` if the job got as far)."""

    model: Digest
    budget: dict[str, JsonValue]
    scorecard: Scorecard | None = None
    record: Digest | None = None  # the stored scorecard record
    outputs: Digest | None = None  # the stored per-item outputs
    failure: str | None = None

    @property
    def ok(self) -> bool:
        return self.scorecard is not None


def load_suite(supply: Supply, suite: Digest) -> SuiteSpec:
    manifest = supply_packages.manifest(supply, suite)
    entry = next((f for f in manifest.files if f.path == SUITE_FILE), None)
    if manifest.kind.value != "suite" or entry is None:
        raise NotFound(f"package {suite.short} is not a suite")
    return SuiteSpec.from_bytes(supply.blobs.get_bytes(entry.digest))


def evaluate_models(
    supply: Supply,
    models: Sequence[Digest],
    suite_id: Digest,
    *,
    executor: Executor,
    round_id: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[Evaluation]:
    """Score each model (a model may appear twice: the A/A re-runs) on the suite;
    ``progress`` hears of each job as it ends."""
    spec = load_suite(supply, suite_id)
    data_inputs = []
    labels: dict[str, tuple[tuple[str, ...], np.ndarray]] = {}
    for split, ref in sorted(spec.splits.items()):
        pid = Digest.parse(ref)
        folder = supply.workspace.materialise(pid, supply_packages.manifest(supply, pid))
        data_inputs.append(DataInput(id=ref, role=split, folder=folder))
        data = read_any_dataset(folder)
        labels[split] = (data.ids, data.y)
    limits = replace(EVAL_LIMITS, wall_seconds=float(supply.config.evaluation_wall_seconds))
    jobs = []
    for model in models:
        parent = model_input(supply, model)
        job = Job(
            operator="suite",
            params={},
            seed=spec.seed,
            parents=(parent,),
            data=tuple(data_inputs),
            out_dir=parent.folder,  # replaced by the sandbox
        )
        jobs.append(
            (
                JobSpec(job=job, kind="evaluate", limits=limits, extra={"suite": spec.to_json()}),
                supply.workspace.job_folder(f"eval-{parent.name}"),
            )
        )
    budget: dict[str, JsonValue] = {**spec.budget.to_json(), "hardware": hardware_class()}

    def done(index: int, outcome: Outcome) -> None:
        if progress is not None:
            name = jobs[index][0].job.parents[0].name
            state = "scored" if outcome.ok else f"FAILED ({outcome.failure}: {outcome.reason})"
            finished = f"{index + 1}/{len(models)}"
            progress(f"evaluate {name} ({finished}): {state} in {outcome.wall_seconds:.1f} s")

    outcomes = executor.run(jobs, on_done=done)
    evaluations = []
    for model, outcome, (_, folder) in zip(models, outcomes, jobs, strict=True):
        interrupts.check(f"recording the scorecard of {model.short}")
        evaluation = _evaluation(supply, model, outcome, spec, suite_id, labels, budget, round_id)
        evaluations.append(evaluation)
        # Its outputs are in the store: the job's folder goes (a failed job's log stays).
        supply.workspace.finish_job(folder, failed=not evaluation.ok)
    return evaluations


def _evaluation(
    supply: Supply,
    model: Digest,
    outcome: Outcome,
    spec: SuiteSpec,
    suite_id: Digest,
    labels: dict[str, tuple[tuple[str, ...], np.ndarray]],
    budget: dict[str, JsonValue],
    round_id: str | None,
) -> Evaluation:
    if not outcome.ok:
        failure = f"evaluation {outcome.failure}: {outcome.reason}"
        return Evaluation(model=model, budget=budget, failure=failure)
    from safetensors.numpy import load_file

    path = outcome.out_dir / OUTPUTS_FILE
    with path.open("rb") as f:
        outputs_digest, _ = supply.blobs.put_stream(f)
    arrays = load_file(str(path))
    payload = outcome.result.get("evaluation", {})
    manifest = supply_packages.manifest(supply, model)
    resources = Resources(
        latency_p50_ms=float(payload["latency_p50_ms"]),
        latency_p95_ms=float(payload["latency_p95_ms"]),
        parameters=int(payload["parameters"]),
        size_bytes=manifest.total_size,
        peak_rss_kib=int(payload["peak_rss_kib"]),
    )
    try:
        card = score(
            suite=spec,
            suite_id=str(suite_id),
            candidate=str(model),
            labels=labels,
            outputs=arrays,
            resources=resources,
        )
    except LabError as e:
        failure = f"scoring failed: {e.message}"
        return Evaluation(model=model, budget=budget, outputs=outputs_digest, failure=failure)
    record = {
        "schema": SCORECARD_SCHEMA,
        "suite": str(suite_id),
        "model": str(model),
        "budget": budget,
        "outputs": str(outputs_digest),
        "summary": card.summary(),
    }
    record_digest = supply.blobs.put_bytes(canonical.encode(record))
    supply.ledger.append(
        EventKind.CANDIDATE_SCORED,
        str(model),
        {
            "round": round_id,
            "package": str(model),
            "suite": str(suite_id),
            "scorecard": str(record_digest),
            "outputs": str(outputs_digest),
            "budget": budget,
        },
        signer=supply_keys.factory_signer(supply),
        actor=supply.actor,
    )
    return Evaluation(
        model=model, scorecard=card, record=record_digest, outputs=outputs_digest, budget=budget
    )


def check_comparable(evaluations: Sequence[Evaluation]) -> None:
    """Refuse to compare results with different suite ids or budgets (DESIGN §9).

    Raises:
        PolicyError: two scorecards were made under different suites or budgets.
    """
    cards = [e for e in evaluations if e.scorecard is not None]
    if not cards:
        return
    first = cards[0]
    for other in cards[1:]:
        assert first.scorecard is not None and other.scorecard is not None
        if other.scorecard.suite != first.scorecard.suite:
            raise PolicyError(
                f"results of {other.model.short} and {first.model.short} come from different "
                "suites and cannot be compared"
            )
        if other.budget != first.budget:
            raise PolicyError(
                f"results of {other.model.short} were made under a different budget "
                f"({other.budget} vs {first.budget}) and cannot be compared"
            )

"""Operator runs: plans run in the sandbox, their outputs stored as packages with
provenance and, when recorded, signed by the factory key with a ``candidate.generated``
or ``candidate.failed`` event each.

Used by the breeding round, replay (``reproduce``), recipes and the built-in
capabilities. Works on the registry service (:class:`~breedlab.supply.Supply`), not on
the ``Lab``: it stays below the rest of ``lab/``. What a round does with the candidates
(evaluate, decide) is ``breeding``'s.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from breedlab import interrupts
from breedlab.canonical import JsonValue
from breedlab.digest import Digest
from breedlab.errors import InvalidRequest, LabError
from breedlab.jobs import DataInput, Job, OutputPackage, ParentInput
from breedlab.ledger import EventKind
from breedlab.registry import source
from breedlab.registry.capability import Contract
from breedlab.registry.manifest import DataClass, Kind, Manifest, RiskTier
from breedlab.sandbox import JobSpec, Limits, Outcome
from breedlab.sandbox.executors import Executor
from breedlab.supply import Supply
from breedlab.supply.keys import factory_signer
from breedlab.supply.packages import capability, manifest, record_package, store_package

__all__ = [
    "OPERATOR_LIMITS",
    "Generated",
    "Plan",
    "Progress",
    "check_fresh_model_sizes",
    "model_input",
    "run_plans",
    "store_outputs",
]

OPERATOR_LIMITS = Limits(memory_mib=6144, cpu_seconds=900, file_mib=4096, wall_seconds=900.0)
_CLASS_ORDER = [DataClass.PUBLIC, DataClass.INTERNAL, DataClass.CONFIDENTIAL, DataClass.RESTRICTED]

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """One operator run: what to run on which parents and data, with which parameters."""

    operator: str
    label: str
    params: Mapping[str, JsonValue]
    parents: tuple[Digest, ...]
    data: tuple[tuple[str, Digest], ...] = ()
    seed: int = 0
    failure_cluster: Digest | None = None

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "operator": self.operator,
            "label": self.label,
            "params": dict(self.params),
            "parents": [str(p) for p in self.parents],
            "data": {role: str(d) for role, d in self.data},
            "seed": self.seed,
            "failure_cluster": None if self.failure_cluster is None else str(self.failure_cluster),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Generated:
    plan: Plan
    packages: tuple[tuple[OutputPackage, Digest], ...] = ()
    failure: str | None = None
    failure_kind: str | None = None

    @property
    def candidates(self) -> list[Digest]:
        return [pid for out, pid in self.packages if out.role == "candidate"]


def _derived_license(manifests: Sequence[Manifest]) -> str:
    from breedlab.registry.licenses import check_license

    licenses = sorted({m.license for m in manifests})
    if len(licenses) == 1:
        return licenses[0]
    return check_license(" AND ".join(f"({x})" if " " in x else x for x in licenses))


def _derived_class(manifests: Sequence[Manifest]) -> DataClass:
    return max((m.data_class for m in manifests), key=_CLASS_ORDER.index)


def store_outputs(
    supply: Supply, plan: Plan, outcome: Outcome, contract: Contract
) -> list[tuple[OutputPackage, Manifest]]:
    """Store an operator's outputs as packages (blobs only) with SLSA provenance.

    Provenance holds no time and no round: same parents, params and seed give the same
    package id, which is what ``reproduce`` checks.
    """
    parent_manifests = [manifest(supply, p) for p in plan.parents]
    data_manifests = [manifest(supply, d) for _, d in plan.data]
    inputs = parent_manifests + data_manifests
    data_class = _derived_class(inputs) if inputs else contract.data_class
    parent_classes = {m.data_class for m in inputs}
    # seed, stage 7: a change of data class is a high-risk change.
    risk = contract.risk_tier if parent_classes <= {data_class} else RiskTier.HIGH
    license = _derived_license(inputs) if inputs else "Apache-2.0"
    produced: dict[str, Digest] = {}
    stored: list[tuple[OutputPackage, Manifest]] = []
    for out in outcome.outputs:
        model_parents: list[Digest] = []
        for ref in out.parents:
            if ref.startswith("output:"):
                name = ref.removeprefix("output:")
                if name not in produced:
                    raise LabError(f"operator output {out.folder} names unknown output {name}")
                model_parents.append(produced[name])
            else:
                model_parents.append(Digest.parse(ref))
        # data parents in role order: a recipe's dict of roles has no order of its own
        parents = [*model_parents, *(d for _, d in sorted(plan.data))]
        stored_manifest = store_package(
            supply,
            files=source.scan(outcome.out_dir / out.folder),
            kind=Kind.parse(out.kind),
            name=out.name,
            capability=contract.name,
            license=license,
            data_class=data_class,
            risk_tier=risk,
            build_type=plan.operator,
            external={
                "operator": plan.operator,
                "params": dict(plan.params),
                "seed": plan.seed,
                "job_parents": [str(p) for p in plan.parents],
                "data": {role: str(d) for role, d in plan.data},
                "failure_cluster": (
                    None if plan.failure_cluster is None else str(plan.failure_cluster)
                ),
                "output": out.folder,
            },
            parents=list(dict.fromkeys(parents)),
            family=out.family,
            meta=dict(out.meta),
        )
        produced[out.folder] = stored_manifest.id
        stored.append((out, stored_manifest))
    return stored


def model_input(supply: Supply, model: Digest) -> ParentInput:
    """A registered model as a job's input: materialised, and bounded by its capability's
    memory budget (issue 10: jobs loaded every model within the families' 2 GiB default)."""
    model_manifest = manifest(supply, model)
    _, contract = capability(supply, model_manifest.capability)
    return ParentInput(
        id=str(model),
        name=model_manifest.name,
        family=model_manifest.family or "torch",
        folder=supply.workspace.materialise(model, model_manifest),
        max_bytes=contract.budget.memory_bytes,
    )


def _job(supply: Supply, plan: Plan) -> Job:
    parents = [model_input(supply, pid) for pid in plan.parents]
    data = tuple(
        DataInput(id=str(d), role=role, folder=supply.workspace.materialise(d, manifest(supply, d)))
        for role, d in plan.data
    )
    return Job(
        operator=plan.operator,
        params=plan.params,
        seed=plan.seed,
        parents=tuple(parents),
        data=data,
        out_dir=supply.config.work_dir,  # replaced by the sandbox
        failure_cluster=None if plan.failure_cluster is None else str(plan.failure_cluster),
    )


def run_plans(
    supply: Supply,
    plans: Sequence[Plan],
    contract: Contract,
    *,
    executor: Executor,
    round_id: str | None,
    progress: Progress | None = None,
    record: bool = True,
) -> list[Generated]:
    """Run operator plans in the sandbox; register (``record``) or only store outputs.

    Each job runs under :data:`OPERATOR_LIMITS` with the lab's wall-clock limit
    (``[sandbox] operator_wall_seconds``).
    """
    limits = replace(OPERATOR_LIMITS, wall_seconds=float(supply.config.operator_wall_seconds))
    jobs = [
        (JobSpec(job=_job(supply, plan), limits=limits), supply.workspace.job_folder(plan.label))
        for plan in plans
    ]

    def done(index: int, outcome: Outcome) -> None:
        if progress is not None:
            state = "ok" if outcome.ok else f"FAILED ({outcome.failure}: {outcome.reason})"
            progress(f"{plans[index].label}: {state} in {outcome.wall_seconds:.1f} s")

    outcomes = executor.run(jobs, on_done=done)
    factory = factory_signer(supply) if record else None
    results = []
    for plan, outcome in zip(plans, outcomes, strict=True):
        # One step per plan: its packages and their candidate events, or its failure.
        interrupts.check(f"recording {plan.label}" + (f" of {round_id}" if round_id else ""))
        if not outcome.ok:
            if record:
                supply.ledger.append(
                    EventKind.CANDIDATE_FAILED,
                    plan.label,
                    {
                        "round": round_id,
                        **plan.to_json(),
                        "failure": str(outcome.failure),
                        "reason": outcome.reason,
                        "log_tail": outcome.log[-2000:],
                    },
                    signer=factory,
                    actor=supply.actor,
                )
            results.append(
                Generated(plan=plan, failure=outcome.reason, failure_kind=str(outcome.failure))
            )
            continue
        try:
            stored = store_outputs(supply, plan, outcome, contract)
        except LabError as e:
            results.append(
                Generated(plan=plan, failure=f"ingest refused: {e.message}", failure_kind="error")
            )
            continue
        packages = []
        for out, stored_manifest in stored:
            if factory is not None:
                # The factory key signs what the lab made, naming the round and operator.
                info = record_package(
                    supply,
                    stored_manifest,
                    factory,
                    registrar=factory,
                    about={"round": round_id, "operator": plan.operator, "label": plan.label},
                )
                supply.ledger.append(
                    EventKind.CANDIDATE_GENERATED,
                    str(info.id),
                    {
                        "round": round_id,
                        **plan.to_json(),
                        "package": str(info.id),
                        "role": out.role,
                        "kind": out.kind,
                        "name": out.name,
                        "wall_seconds": f"{outcome.wall_seconds:.3f}",
                        "network_isolated": outcome.network_isolated,
                    },
                    signer=factory,
                    actor=supply.actor,
                )
            packages.append((out, stored_manifest.id))
        results.append(Generated(plan=plan, packages=tuple(packages)))
    # Their outputs are in the store: the jobs' folders go (a failed job's log stays).
    for (_, folder), generated in zip(jobs, results, strict=True):
        supply.workspace.finish_job(folder, failed=generated.failure is not None)
    return results


#: Operators that build a fresh model from their parameters (a fine-tune keeps its parent's).
_FRESH_MODEL_OPERATORS = ("train", "distill")


def check_fresh_model_sizes(plans: Sequence[Plan], contract: Contract) -> None:
    """Issue 10: sizes in model configs are bounded by the capability's budget before
    anything is allocated, so a plan over ``budget.memory_mib`` stops the round here."""
    if not contract.input_shape:
        return
    from breedlab.factory.operators.torch_models import check_params_size

    for plan in plans:
        fine_tune = plan.operator == "train" and plan.parents
        if plan.operator in _FRESH_MODEL_OPERATORS and not fine_tune:
            try:
                check_params_size(
                    plan.params,
                    inputs=math.prod(contract.input_shape),
                    classes=len(contract.labels),
                    max_bytes=contract.budget.memory_bytes,
                )
            except InvalidRequest as e:
                raise InvalidRequest(f"plan {plan.label}: {e.message}") from e

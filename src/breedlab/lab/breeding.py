"""The breeding round (seed: ``run_breeding_lab_round(failure_cluster)``), end to end.

    parents    <- approved, unrevoked, verified models of the capability    (read)
    candidates <- each allowed operator in the sandbox, in parallel         (generate)
    scorecards <- every candidate and the champion (3x: the A/A no-op)      (evaluate)
    decision   <- viability: vs champion and no-op, Holm, sealed confirm    (decide)
    winner     -> the ``shadow`` alias; otherwise every candidate archived  (write)

Every step is a ledger event: ``round.started``, ``candidate.generated`` or
``candidate.failed``, ``candidate.scored``, ``decision.made``, ``candidate.archived``,
``alias.moved``, ``round.finished``. The decision record (a canonical JSON blob) holds
everything needed to explain it later from the ledger alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import numpy as np

from breedlab import canonical, interrupts
from breedlab.canonical import JsonValue
from breedlab.clock import format_time
from breedlab.digest import Digest
from breedlab.errors import InvalidRequest, LabError, NotFound, PolicyError
from breedlab.jobs import DataInput, Job, OutputPackage
from breedlab.lab.evaluation import (
    Evaluation,
    check_comparable,
    evaluate_models,
    load_suite,
    parent_input,
)
from breedlab.registry import source
from breedlab.registry.capability import Contract
from breedlab.registry.manifest import DataClass, Kind, Manifest, RiskTier
from breedlab.report.record import ROUND_SCHEMA
from breedlab.sandbox import JobSpec, Limits, Outcome
from breedlab.sandbox.executors import Executor
from breedlab.supply.packages import check, record_package, store_package
from breedlab.viability import (
    AggregateValue,
    Decision,
    Direction,
    Evidence,
    Group,
    GroupWeights,
    MetricEvidence,
    MetricKind,
    MetricSpec,
    PairedBinary,
    PairedContinuous,
    Policy,
    Role,
    Veto,
    VetoKind,
    assess,
    confirm,
    contender,
    decide,
    noise_floor,
)

if TYPE_CHECKING:
    from breedlab.lab.core import Lab

__all__ = [
    "OPERATOR_LIMITS",
    "Plan",
    "RoundResult",
    "approved_parents",
    "policy_from_suite",
    "run_plans",
    "run_round",
]

OPERATOR_LIMITS = Limits(memory_mib=6144, cpu_seconds=900, file_mib=4096, wall_seconds=900.0)
_DATA_ORDER = {"train": 0, "fitness": 1, "cluster": 2}
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


@dataclass(frozen=True, slots=True, kw_only=True)
class RoundResult:
    round_id: str
    capability: str
    champion: Digest
    winner: Digest | None
    decision_seq: int
    decision: Digest  # the stored round record
    record: Mapping[str, JsonValue]
    report: str | None = None
    generated: tuple[Generated, ...] = field(default_factory=tuple)


# -- provenance and ingest -------------------------------------------------------------------


def _derived_license(manifests: Sequence[Manifest]) -> str:
    from breedlab.registry.licenses import check_license

    licenses = sorted({m.license for m in manifests})
    if len(licenses) == 1:
        return licenses[0]
    return check_license(" AND ".join(f"({x})" if " " in x else x for x in licenses))


def _derived_class(manifests: Sequence[Manifest]) -> DataClass:
    return max((m.data_class for m in manifests), key=_CLASS_ORDER.index)


def store_outputs(
    lab: Lab, plan: Plan, outcome: Outcome, contract: Contract
) -> list[tuple[OutputPackage, Manifest]]:
    """Store an operator's outputs as packages (blobs only) with SLSA provenance.

    Provenance holds no time and no round: same parents, params and seed give the same
    package id, which is what ``reproduce`` checks.
    """
    parent_manifests = [lab.manifest(p) for p in plan.parents]
    data_manifests = [lab.manifest(d) for _, d in plan.data]
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
        manifest = store_package(
            lab.supply,
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
        produced[out.folder] = manifest.id
        stored.append((out, manifest))
    return stored


def _job(lab: Lab, plan: Plan) -> Job:
    parents = [parent_input(lab, pid) for pid in plan.parents]
    data = tuple(
        DataInput(id=str(d), role=role, folder=lab.workspace.materialise(d, lab.manifest(d)))
        for role, d in plan.data
    )
    return Job(
        operator=plan.operator,
        params=plan.params,
        seed=plan.seed,
        parents=tuple(parents),
        data=data,
        out_dir=lab.config.work_dir,  # replaced by the sandbox
        failure_cluster=None if plan.failure_cluster is None else str(plan.failure_cluster),
    )


def run_plans(
    lab: Lab,
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
    limits = replace(OPERATOR_LIMITS, wall_seconds=float(lab.config.operator_wall_seconds))
    jobs = [
        (JobSpec(job=_job(lab, plan), limits=limits), lab.workspace.job_folder(plan.label))
        for plan in plans
    ]

    def done(index: int, outcome: Outcome) -> None:
        if progress is not None:
            state = "ok" if outcome.ok else f"FAILED ({outcome.failure}: {outcome.reason})"
            progress(f"{plans[index].label}: {state} in {outcome.wall_seconds:.1f} s")

    outcomes = executor.run(jobs, on_done=done)
    factory = lab.factory_signer() if record else None
    results = []
    for plan, outcome in zip(plans, outcomes, strict=True):
        # One step per plan: its packages and their candidate events, or its failure.
        interrupts.check(f"recording {plan.label}" + (f" of {round_id}" if round_id else ""))
        if not outcome.ok:
            if record:
                lab.ledger.append(
                    "candidate.failed",
                    plan.label,
                    {
                        "round": round_id,
                        **plan.to_json(),
                        "failure": str(outcome.failure),
                        "reason": outcome.reason,
                        "log_tail": outcome.log[-2000:],
                    },
                    signer=factory,
                    actor=lab.actor,
                )
            results.append(
                Generated(plan=plan, failure=outcome.reason, failure_kind=str(outcome.failure))
            )
            continue
        try:
            stored = store_outputs(lab, plan, outcome, contract)
        except LabError as e:
            results.append(
                Generated(plan=plan, failure=f"ingest refused: {e.message}", failure_kind="error")
            )
            continue
        packages = []
        for out, manifest in stored:
            if factory is not None:
                # The factory key signs what the lab made, naming the round and operator.
                info = record_package(
                    lab.supply,
                    manifest,
                    factory,
                    registrar=factory,
                    about={"round": round_id, "operator": plan.operator, "label": plan.label},
                )
                lab.ledger.append(
                    "candidate.generated",
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
                    actor=lab.actor,
                )
            packages.append((out, manifest.id))
        results.append(Generated(plan=plan, packages=tuple(packages)))
    # Their outputs are in the store: the jobs' folders go (a failed job's log stays).
    for (_, folder), generated in zip(jobs, results, strict=True):
        lab.workspace.finish_job(folder, failed=generated.failure is not None)
    return results


# -- parents, policy, evidence ------------------------------------------------------------------


def approved_parents(lab: Lab, capability: str) -> list[Digest]:
    """SELECT_APPROVED_PARENTS: models of the capability approved as parents, unrevoked
    and verified, the champion first.

    Raises:
        PolicyError: the champion itself is not an approved, intact parent.
    """
    champion = lab.alias(capability, "champion")
    if champion is None:
        raise NotFound(f"capability {capability!r} has no champion; set digits@champion first")
    chosen: list[Digest] = []
    with lab.ledger.reader() as r:
        rows = r.packages(capability=capability, kind=Kind.MODEL.value)
        ids = [champion] + [Digest.parse(row.id) for row in rows if row.id != str(champion)]
        for pid in ids:
            approvals = [a for a in r.approvals(str(pid)) if a.purpose == "parent"]
            if not approvals:
                if pid == champion:
                    raise PolicyError(
                        f"the champion {pid.short} is not approved as a parent; run "
                        f"'breedlab approve {pid.short} --purpose parent --key KEY'"
                    )
                continue
            problems = check(lab.supply, r, pid).problems
            if problems:
                if pid == champion:
                    first = problems[0]
                    raise PolicyError(
                        f"the champion {pid.short} cannot be a parent: {first.where}: "
                        f"{first.message}"
                    )
                continue
            chosen.append(pid)
    return chosen


def _number(record: Mapping[str, JsonValue], key: str, default: str) -> float:
    return float(Decimal(str(record.get(key, default))))


def policy_from_suite(
    suite_policy: Mapping[str, JsonValue],
    metrics: Sequence[Mapping[str, JsonValue]],
    *,
    seed: int,
    sigma_aa: float,
) -> Policy:
    specs = tuple(
        MetricSpec(
            name=str(m["name"]),
            group=Group(str(m["group"])),
            direction=Direction(str(m["direction"])),
            role=Role(str(m["role"])),
            kind=MetricKind(str(m["kind"])),
            margin=_number(m, "margin", "0"),
            scale=_number(m, "scale", "0") or None,
        )
        for m in metrics
    )
    weights = suite_policy.get("weights")
    return Policy(
        metrics=specs,
        epsilon_min=_number(suite_policy, "epsilon_min", "0.01"),
        sigma_aa=sigma_aa,
        seed=seed,
        alpha=_number(suite_policy, "alpha", "0.05"),
        bootstrap_samples=int(str(suite_policy.get("bootstrap_samples", 2000))),
        min_pairs=int(str(suite_policy.get("min_pairs", 30))),
        utility_min=_number(suite_policy, "utility_min", "0"),
        weights=(
            GroupWeights(**{k: float(Decimal(str(v))) for k, v in weights.items()})
            if isinstance(weights, dict)
            else GroupWeights()
        ),
    )


def _evidence(
    policy: Policy, champion: Evaluation, candidate: Evaluation, split: str, vetoes: Sequence[Veto]
) -> Evidence:
    assert champion.scorecard is not None and candidate.scorecard is not None
    metrics = []
    for spec in policy.metrics:
        mine = champion.scorecard.per_item(spec.name, split)
        theirs = candidate.scorecard.per_item(spec.name, split)
        if spec.kind is MetricKind.AGGREGATE:
            data: Any = AggregateValue(champion=float(mine), candidate=float(theirs))
        elif spec.kind is MetricKind.BINARY:
            data = PairedBinary(champion=np.asarray(mine, bool), candidate=np.asarray(theirs, bool))
        else:
            data = PairedContinuous(
                champion=np.asarray(mine, np.float64), candidate=np.asarray(theirs, np.float64)
            )
        metrics.append(MetricEvidence(metric=spec.name, data=data))
    return Evidence(candidate_id=str(candidate.model), metrics=tuple(metrics), vetoes=tuple(vetoes))


def _budget_vetoes(contract: Contract, evaluation: Evaluation) -> list[Veto]:
    assert evaluation.scorecard is not None
    r = evaluation.scorecard.resources
    vetoes = []
    if r.latency_p95_ms > float(contract.budget.latency_p95_ms):
        vetoes.append(
            Veto(
                kind=VetoKind.BUDGET,
                reason=(
                    f"latency p95 {r.latency_p95_ms:.3f} ms exceeds the budget of "
                    f"{contract.budget.latency_p95_ms} ms"
                ),
            )
        )
    if r.size_bytes > float(contract.budget.size_mib) * 1024 * 1024:
        vetoes.append(
            Veto(
                kind=VetoKind.BUDGET,
                reason=(
                    f"size {r.size_bytes} B exceeds the budget of {contract.budget.size_mib} MiB"
                ),
            )
        )
    if r.peak_rss_kib / 1024 > float(contract.budget.memory_mib):
        vetoes.append(
            Veto(
                kind=VetoKind.BUDGET,
                reason=(
                    f"peak memory {r.peak_rss_kib / 1024:.0f} MiB exceeds the budget of "
                    f"{contract.budget.memory_mib} MiB"
                ),
            )
        )
    return vetoes


# -- the round --------------------------------------------------------------------------------


#: Operators that build a fresh model from their parameters (a fine-tune keeps its parent's).
_FRESH_MODEL_OPERATORS = ("train", "distill")


def _check_fresh_model_sizes(plans: Sequence[Plan], contract: Contract) -> None:
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


def run_round(
    lab: Lab,
    capability: str,
    *,
    plans_for: Callable[[Sequence[Digest], Digest | None, Mapping[str, Digest], int], list[Plan]],
    failure_cluster: Digest | None,
    operators: Sequence[str] | None,
    executor: Executor,
    seed: int = 0,
    progress: Progress | None = None,
) -> RoundResult:
    """Run one breeding round. See the module docstring."""
    say = progress or (lambda _message: None)
    _, contract = lab.capability(capability)
    allowed = list(contract.allowed_operators)
    if operators is not None:
        refused = [op for op in operators if op not in allowed]
        if refused:
            raise PolicyError(
                f"operator(s) {', '.join(refused)} are not allowed for {capability} "
                f"(allowed: {', '.join(allowed)})"
            )
        allowed = [op for op in allowed if op in operators]
    # SELECT_APPROVED_PARENTS first: a bad parent stops the round before anything runs.
    parents = approved_parents(lab, capability)
    champion = parents[0]
    suite_id = lab.alias(capability, "suite")
    if suite_id is None:
        raise NotFound(f"capability {capability!r} has no frozen suite (alias {capability}@suite)")
    data = {}
    for role in ("train", "fitness"):
        ref = lab.alias(capability, f"data-{role}")
        if ref is None:
            raise NotFound(f"capability {capability!r} has no {role} dataset (alias data-{role})")
        data[role] = ref
    if failure_cluster is not None:
        cluster_manifest = lab.manifest(failure_cluster)
        if cluster_manifest.kind is not Kind.DATASET or "cluster" not in cluster_manifest.meta:
            raise InvalidRequest(f"{failure_cluster.short} is not a failure-cluster dataset")
    plans = [p for p in plans_for(parents, failure_cluster, data, seed) if p.operator in allowed]
    if not plans:
        raise InvalidRequest(f"no operator plans for {capability} with operators {allowed}")
    _check_fresh_model_sizes(plans, contract)
    factory = lab.factory_signer()
    interrupts.check(f"starting a round of {capability}")
    with lab.ledger.transaction() as tx:  # numbered under the head lock: no two alike
        tx.locked_head()
        number = 1 + sum(1 for _ in tx.events(kinds=("round.started",), subject=capability))
        round_id = f"round-{number}"
        started = tx.append(
            "round.started",
            capability,
            {
                "round": round_id,
                "capability": capability,
                "champion": str(champion),
                "parents": [str(p) for p in parents],
                "failure_cluster": None if failure_cluster is None else str(failure_cluster),
                "operators": allowed,
                "suite": str(suite_id),
                "seed": seed,
                "plans": [p.to_json() for p in plans],
            },
            signer=factory,
            actor=lab.actor,
        )
    runs = f"{len(plans)} operator runs from {len(parents)} approved parent(s)"
    say(f"{capability} {round_id} (seq {started.seq}): {runs}")
    generated = run_plans(lab, plans, contract, executor=executor, round_id=round_id, progress=say)
    candidates: list[tuple[Generated, Digest]] = [
        (g, pid) for g in generated for pid in g.candidates
    ]
    interrupts.check(f"evaluating the candidates of {round_id}")
    say(f"{round_id}: evaluating the champion (x3, the A/A no-op) and {len(candidates)} candidates")
    models = [champion, champion, champion, *(pid for _, pid in candidates)]
    evaluations = evaluate_models(
        lab, models, suite_id, executor=executor, round_id=round_id, progress=say
    )
    check_comparable(evaluations)
    aa = evaluations[:3]
    if not all(e.ok for e in aa):
        failure = next(e.failure for e in aa if not e.ok)
        raise LabError(f"the champion could not be evaluated: {failure}")
    spec = load_suite(lab, suite_id)
    primary = next(str(m["name"]) for m in spec.metrics if m.get("role") == "primary")
    aa_values = []
    for e in aa[1:]:
        assert e.scorecard is not None and aa[0].scorecard is not None
        a = np.asarray(aa[0].scorecard.per_item(primary, "dev"), dtype=np.float64)
        b = np.asarray(e.scorecard.per_item(primary, "dev"), dtype=np.float64)
        aa_values.append(float(np.mean(b) - np.mean(a)))
    sigma_aa = noise_floor([0.0, *aa_values])
    policy = policy_from_suite(spec.policy, spec.metrics, seed=spec.seed, sigma_aa=sigma_aa)
    champion_eval = aa[0]
    scored = []
    failed_records: list[dict[str, JsonValue]] = [
        {
            "operator": g.plan.operator,
            "label": g.plan.label,
            "failure": g.failure_kind,
            "reason": g.failure,
        }
        for g in generated
        if g.failure is not None
    ]
    for (g, pid), evaluation in zip(candidates, evaluations[3:], strict=True):
        if not evaluation.ok:
            failed_records.append(
                {
                    "operator": g.plan.operator,
                    "label": g.plan.label,
                    "failure": "evaluation",
                    "reason": evaluation.failure,
                }
            )
            continue
        scored.append((g, pid, evaluation))
    dev_evidence = []
    for _, pid, evaluation in scored:
        vetoes = _budget_vetoes(contract, evaluation)
        with lab.ledger.reader() as r:
            problems = check(lab.supply, r, pid).problems
        vetoes += [
            Veto(kind=VetoKind.INTEGRITY, reason=f"{p.where}: {p.message}") for p in problems
        ]
        dev_evidence.append(_evidence(policy, champion_eval, evaluation, "dev", vetoes))
    decisions: tuple[Decision, ...] = ()
    winner: Digest | None = None
    if dev_evidence:
        assessments = assess(dev_evidence, policy)
        best = contender(assessments, policy)
        confirmation = None
        if best is not None:
            best_eval = next(e for _, pid, e in scored if str(pid) == best.candidate_id)
            sealed = _evidence(policy, champion_eval, best_eval, "sealed", ())
            confirmation = confirm(sealed, policy)
        decisions = decide(assessments, policy, confirmation=confirmation)
        winner = next(
            (Digest.parse(d.candidate_id) for d in decisions if d.outcome.value == "shadow"), None
        )
    outcome_of = {d.candidate_id: d for d in decisions}
    record: dict[str, JsonValue] = {
        "schema": ROUND_SCHEMA,
        "round": round_id,
        "capability": capability,
        "suite": str(suite_id),
        "champion": str(champion),
        "seed": seed,
        "cluster": _cluster_record(lab, failure_cluster),
        "started": started.at,
        "finished": format_time(lab.clock.now()),
        "policy": policy.to_record(),
        "sigma_aa": repr(sigma_aa),
        "champion_scorecard": champion_eval.scorecard.summary()
        if champion_eval.scorecard
        else None,
        "candidates": [
            {
                "package": str(pid),
                "name": lab.manifest(pid).name,
                "operator": g.plan.operator,
                "label": g.plan.label,
                "params": dict(g.plan.params),
                "parents": [str(p) for p in g.plan.parents],
                "scorecard": e.scorecard.summary() if e.scorecard else None,
                "scorecard_blob": None if e.record is None else str(e.record),
                "outcome": outcome_of[str(pid)].outcome.value,
                "reasons": list(outcome_of[str(pid)].reasons),
            }
            for g, pid, e in scored
        ],
        "failed": failed_records,
        "decisions": [d.to_record() for d in decisions],
        "winner": None if winner is None else str(winner),
        "action": "shadow" if winner is not None else "archive",
    }
    # The last safe point: the decision, the shadow move, the archived candidates and
    # round.finished are one step (no interrupt splits them).
    interrupts.check(f"recording the decision of {round_id}")
    blob = lab.blobs.put_bytes(canonical.encode(record))
    decided = lab.ledger.append(
        "decision.made",
        capability,
        {
            "round": round_id,
            "decision": str(blob),
            "winner": record["winner"],
            "champion": str(champion),
            "suite": str(suite_id),
            "outcomes": {d.candidate_id: d.outcome.value for d in decisions},
        },
        signer=factory,
        actor="viability-controller",
    )
    if winner is not None:
        current = lab.alias(capability, "shadow")
        # seed, stage 7: a low-risk winner progresses to shadow by itself (the factory
        # key may move shadow only to a package the controller recommended).
        lab.set_alias(
            capability,
            "shadow",
            str(winner),
            expect=None if current is None else str(current),
            reason=f"{round_id}: viability decision {decided.seq} recommends shadow",
            key=lab.config.factory_key,
        )
        say(f"{round_id}: winner {winner.short} moved to {capability}@shadow")
    for d in decisions:
        if winner is not None and d.candidate_id == str(winner):
            continue
        lab.ledger.append(
            "candidate.archived",
            d.candidate_id,
            {
                "round": round_id,
                "package": d.candidate_id,
                "outcome": d.outcome.value,
                "reasons": list(d.reasons),
                "decision": decided.seq,
            },
            signer=factory,
            actor="viability-controller",
        )
    lab.ledger.append(
        "round.finished",
        capability,
        {
            "round": round_id,
            "decision": decided.seq,
            "winner": record["winner"],
            "candidates": len(scored),
            "failed": len(failed_records),
        },
        signer=factory,
        actor=lab.actor,
    )
    return RoundResult(
        round_id=round_id,
        capability=capability,
        champion=champion,
        winner=winner,
        decision_seq=decided.seq,
        decision=blob,
        record=record,
        generated=tuple(generated),
    )


def _cluster_record(lab: Lab, cluster: Digest | None) -> JsonValue:
    if cluster is None:
        return None
    manifest = lab.manifest(cluster)
    meta = manifest.meta.get("cluster", {})
    description = meta.get("description", "") if isinstance(meta, dict) else ""
    return {"id": str(cluster), "name": manifest.name, "description": str(description)}

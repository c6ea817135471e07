"""The breeding round (seed: ``run_breeding_lab_round(failure_cluster)``), end to end.

    parents    <- approved, unrevoked, verified models of the capability    (read)
    candidates <- each allowed operator in the sandbox, in parallel         (generate)
    scorecards <- every candidate and the champion (3x: the A/A no-op)      (evaluate)
    decision   <- viability.round: vs champion and no-op, Holm, sealed      (decide)
    winner     -> the ``shadow`` alias; otherwise every candidate archived  (write)

``run_round`` is the shell: it reads, runs and writes; every decision is
:func:`breedlab.viability.round.decide_round`'s, a pure function of the evaluations.
Every step is a ledger event: ``round.started``, ``candidate.generated`` or
``candidate.failed``, ``candidate.scored``, ``decision.made``, ``candidate.archived``,
``alias.moved``, ``round.finished``. The decision record (a canonical JSON blob, schema
``report.record.ROUND_SCHEMA``) holds everything needed to explain it later from the
ledger alone. The operator runs themselves are ``operator_runs``'s.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from breedlab import canonical, interrupts
from breedlab.canonical import JsonValue
from breedlab.clock import format_time
from breedlab.digest import Digest
from breedlab.errors import InvalidRequest, LabError, NotFound, PolicyError
from breedlab.lab.evaluation import Evaluation, check_comparable, evaluate_models, load_suite
from breedlab.lab.failures import latest_clusters, mine_failures
from breedlab.lab.operator_runs import (
    Generated,
    Plan,
    Progress,
    check_fresh_model_sizes,
    run_plans,
)
from breedlab.lab.parents import (
    ParentSelection,
    approved_parents,
    cluster_key_of,
    select_parents,
)
from breedlab.lab.recipe_format import Recipe
from breedlab.lab.recipes import recipe_for, recipe_plans
from breedlab.ledger import Event, EventKind
from breedlab.registry.capability import Contract
from breedlab.report.record import ROUND_SCHEMA
from breedlab.sandbox.executors import Executor
from breedlab.signing.keys import KeyPair
from breedlab.supply import aliases
from breedlab.supply import keys as supply_keys
from breedlab.supply import packages as supply_packages
from breedlab.supply.packages import check
from breedlab.viability.round import Entrant, RoundDecision, RoundFacts, decide_round

if TYPE_CHECKING:
    from breedlab.supply.service import Supply

__all__ = ["PlansFor", "RoundResult", "approved_parents", "run_round"]

#: ``plans_for(parents, failure_cluster, data, seed)``: a round's operator plans.
PlansFor = Callable[[Sequence[Digest], Digest | None, Mapping[str, Digest], int], list[Plan]]


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


# -- the round --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _Setup:
    """What a round runs on, read and checked before anything runs."""

    capability: str
    contract: Contract
    operators: list[str]
    selection: ParentSelection  # the parents (the champion first), and who was left out
    suite: Digest
    plans: list[Plan]
    failure_cluster: Digest | None
    seed: int
    recipe: Recipe | None  # None: plans from code (tests), not from a recipe file

    @property
    def parents(self) -> list[Digest]:
        return self.selection.parents

    @property
    def champion(self) -> Digest:
        return self.parents[0]


def _allowed_operators(
    capability: str, contract: Contract, operators: Sequence[str] | None
) -> list[str]:
    allowed = list(contract.allowed_operators)
    if operators is None:
        return allowed
    refused = [op for op in operators if op not in allowed]
    if refused:
        raise PolicyError(
            f"operator(s) {', '.join(refused)} are not allowed for {capability} "
            f"(allowed: {', '.join(allowed)})"
        )
    return [op for op in allowed if op in operators]


def _setup(
    supply: Supply,
    capability: str,
    *,
    plans_for: PlansFor,
    failure_cluster: Digest | None,
    operators: Sequence[str] | None,
    seed: int,
    recipe: Recipe | None,
) -> _Setup:
    """Read and check what the round needs; nothing is recorded yet."""
    _, contract = supply_packages.capability(supply, capability)
    allowed = _allowed_operators(capability, contract, operators)
    key = None if failure_cluster is None else cluster_key_of(supply, failure_cluster)
    # SELECT_APPROVED_PARENTS(failure_cluster) first: a bad parent stops the round before
    # anything runs.
    selection = select_parents(supply, capability, key)
    parents = selection.parents
    suite_id = aliases.alias(supply, capability, "suite")
    if suite_id is None:
        raise NotFound(f"capability {capability!r} has no frozen suite (alias {capability}@suite)")
    data = {}
    for role in ("train", "fitness"):
        ref = aliases.alias(supply, capability, f"data-{role}")
        if ref is None:
            raise NotFound(f"capability {capability!r} has no {role} dataset (alias data-{role})")
        data[role] = ref
    plans = [p for p in plans_for(parents, failure_cluster, data, seed) if p.operator in allowed]
    if not plans:
        raise InvalidRequest(f"no operator plans for {capability} with operators {allowed}")
    check_fresh_model_sizes(plans, contract)
    return _Setup(
        capability=capability,
        contract=contract,
        operators=allowed,
        selection=selection,
        suite=suite_id,
        plans=plans,
        failure_cluster=failure_cluster,
        seed=seed,
        recipe=recipe,
    )


def _recipe_field(setup: _Setup) -> dict[str, JsonValue]:
    """The optional ``recipe`` payload field: the digest of the recipe file used."""
    return {} if setup.recipe is None else {"recipe": str(setup.recipe.digest)}


def _start(supply: Supply, setup: _Setup, factory: KeyPair) -> tuple[str, Event]:
    """``round.started``, numbered under the head lock (no two rounds alike)."""
    with supply.ledger.transaction() as tx:
        tx.locked_head()
        number = 1 + sum(
            1 for _ in tx.events(kinds=(EventKind.ROUND_STARTED,), subject=setup.capability)
        )
        round_id = f"round-{number}"
        started = tx.append(
            EventKind.ROUND_STARTED,
            setup.capability,
            {
                "round": round_id,
                "capability": setup.capability,
                "champion": str(setup.champion),
                "parents": [str(p) for p in setup.parents],
                "failure_cluster": (
                    None if setup.failure_cluster is None else str(setup.failure_cluster)
                ),
                "operators": setup.operators,
                "suite": str(setup.suite),
                "seed": setup.seed,
                "plans": [p.to_json() for p in setup.plans],
                **_recipe_field(setup),
            },
            signer=factory,
            actor=supply.actor,
        )
    return round_id, started


def _evaluate(
    supply: Supply,
    setup: _Setup,
    candidates: Sequence[Digest],
    *,
    executor: Executor,
    round_id: str,
    say: Progress,
) -> tuple[list[Evaluation], list[Evaluation]]:
    """The champion's three A/A evaluations (the no-op) and one per candidate."""
    interrupts.check(f"evaluating the candidates of {round_id}")
    say(f"{round_id}: evaluating the champion (x3, the A/A no-op) and {len(candidates)} candidates")
    models = [setup.champion] * 3 + list(candidates)
    evaluations = evaluate_models(
        supply, models, setup.suite, executor=executor, round_id=round_id, progress=say
    )
    check_comparable(evaluations)
    aa = evaluations[:3]
    if not all(e.ok for e in aa):
        failure = next(e.failure for e in aa if not e.ok)
        raise LabError(f"the champion could not be evaluated: {failure}")
    return aa, evaluations[3:]


def _decide(
    supply: Supply,
    setup: _Setup,
    candidates: Sequence[Digest],
    aa: Sequence[Evaluation],
    evaluations: Sequence[Evaluation],
) -> RoundDecision:
    """Read what the pure core needs (the suite, each scored candidate's integrity) and
    call it."""
    spec = load_suite(supply, setup.suite)
    entrants = []
    for pid, e in zip(candidates, evaluations, strict=True):
        problems: tuple[str, ...] = ()
        if e.scorecard is not None:
            with supply.ledger.reader() as r:
                found = check(supply, r, pid).problems
            problems = tuple(f"{p.where}: {p.message}" for p in found)
        entrants.append(
            Entrant(candidate_id=str(pid), scores=e.scorecard, failure=e.failure, problems=problems)
        )
    champion = [e.scorecard for e in aa if e.scorecard is not None]
    return decide_round(
        RoundFacts(
            suite_metrics=spec.metrics,
            suite_policy=spec.policy,
            suite_seed=spec.seed,
            budget=setup.contract.budget,
            champion=champion,
            entrants=entrants,
        )
    )


def _round_record(
    supply: Supply,
    setup: _Setup,
    *,
    round_id: str,
    started: Event,
    generated: Sequence[Generated],
    candidates: Sequence[tuple[Generated, Digest]],
    champion: Evaluation,
    evaluations: Sequence[Evaluation],
    decided: RoundDecision,
) -> dict[str, JsonValue]:
    """The round record (``report.record.ROUND_SCHEMA``): everything needed to explain the
    round later from the ledger alone."""
    plan_of = {str(pid): g.plan for g, pid in candidates}
    failed: list[dict[str, JsonValue]] = [
        {"operator": g.plan.operator, "label": g.plan.label, "failure": g.failure_kind,
         "reason": g.failure}
        for g in generated
        if g.failure is not None
    ]  # fmt: skip
    failed += [
        {"operator": plan_of[u.candidate_id].operator, "label": plan_of[u.candidate_id].label,
         "failure": "evaluation", "reason": u.reason}
        for u in decided.unscored
    ]  # fmt: skip
    evaluation_of = {str(e.model): e for e in evaluations}
    scored = []
    for d in decided.decisions:
        plan, e = plan_of[d.candidate_id], evaluation_of[d.candidate_id]
        scored.append(
            {
                "package": d.candidate_id,
                "name": supply_packages.manifest(supply, Digest.parse(d.candidate_id)).name,
                "operator": plan.operator,
                "label": plan.label,
                "params": dict(plan.params),
                "parents": [str(p) for p in plan.parents],
                "scorecard": e.scorecard.summary() if e.scorecard else None,
                "scorecard_blob": None if e.record is None else str(e.record),
                "outcome": d.outcome.value,
                "reasons": list(d.reasons),
            }
        )
    return {
        "schema": ROUND_SCHEMA,
        "round": round_id,
        "capability": setup.capability,
        "suite": str(setup.suite),
        "champion": str(setup.champion),
        "seed": setup.seed,
        "cluster": _cluster_record(supply, setup.failure_cluster),
        "parent_selection": setup.selection.to_record(),
        "recipe": (
            None
            if setup.recipe is None
            else {"digest": str(setup.recipe.digest), "source": setup.recipe.source}
        ),
        "started": started.at,
        "finished": format_time(supply.clock.now()),
        "policy": decided.policy.to_record(),
        "sigma_aa": repr(decided.sigma_aa),
        "champion_scorecard": champion.scorecard.summary() if champion.scorecard else None,
        "candidates": scored,
        "failed": failed,
        "decisions": [d.to_record() for d in decided.decisions],
        "winner": decided.winner,
        "action": decided.action.value,
    }


def _record_decision(
    supply: Supply,
    setup: _Setup,
    *,
    round_id: str,
    record: Mapping[str, JsonValue],
    decided: RoundDecision,
    factory: KeyPair,
    say: Progress,
) -> tuple[Digest, int]:
    """Write the decision: ``decision.made``, the shadow move, ``candidate.archived`` for
    every other candidate and ``round.finished``. Returns the record's blob and the
    decision's seq."""
    # The last safe point: the decision, the shadow move, the archived candidates and
    # round.finished are one step (no interrupt splits them).
    interrupts.check(f"recording the decision of {round_id}")
    capability = setup.capability
    blob = supply.blobs.put_bytes(canonical.encode(record))
    decision = supply.ledger.append(
        EventKind.DECISION_MADE,
        capability,
        {
            "round": round_id,
            "decision": str(blob),
            "winner": decided.winner,
            "champion": str(setup.champion),
            "suite": str(setup.suite),
            "outcomes": {d.candidate_id: d.outcome.value for d in decided.decisions},
            **_recipe_field(setup),
        },
        signer=factory,
        actor="viability-controller",
    )
    if decided.winner is not None:
        current = aliases.alias(supply, capability, "shadow")
        # seed, stage 7: a low-risk winner progresses to shadow by itself (the factory
        # key may move shadow only to a package the controller recommended).
        aliases.set_alias(
            supply,
            capability,
            "shadow",
            decided.winner,
            expect=None if current is None else str(current),
            reason=f"{round_id}: viability decision {decision.seq} recommends shadow",
            key=supply.config.factory_key,
        )
        say(f"{round_id}: winner {Digest.parse(decided.winner).short} moved to {capability}@shadow")
    for d in decided.archived:
        supply.ledger.append(
            EventKind.CANDIDATE_ARCHIVED,
            d.candidate_id,
            {
                "round": round_id,
                "package": d.candidate_id,
                "outcome": d.outcome.value,
                "reasons": list(d.reasons),
                "decision": decision.seq,
            },
            signer=factory,
            actor="viability-controller",
        )
    supply.ledger.append(
        EventKind.ROUND_FINISHED,
        capability,
        {
            "round": round_id,
            "decision": decision.seq,
            "winner": decided.winner,
            "candidates": len(decided.decisions),
            "failed": len(record["failed"]),
        },
        signer=factory,
        actor=supply.actor,
    )
    return blob, decision.seq


def run_round(
    supply: Supply,
    capability: str,
    *,
    plans_for: PlansFor,
    failure_cluster: Digest | None,
    operators: Sequence[str] | None,
    executor: Executor,
    seed: int = 0,
    progress: Progress | None = None,
    recipe: Recipe | None = None,
) -> RoundResult:
    """Run one breeding round. See the module docstring. ``recipe`` is the recipe
    ``plans_for`` follows, named in the ledger and the record (its bytes are stored)."""
    say = progress or (lambda _message: None)
    setup = _setup(
        supply,
        capability,
        plans_for=plans_for,
        failure_cluster=failure_cluster,
        operators=operators,
        seed=seed,
        recipe=recipe,
    )
    factory = supply_keys.factory_signer(supply)
    interrupts.check(f"starting a round of {capability}")
    if recipe is not None:
        supply.blobs.put_bytes(recipe.raw)  # the digest recorded names bytes we keep
    round_id, started = _start(supply, setup, factory)
    runs = f"{len(setup.plans)} operator runs from {len(setup.parents)} approved parent(s)"
    say(f"{capability} {round_id} (seq {started.seq}): {runs}")
    generated = run_plans(
        supply, setup.plans, setup.contract, executor=executor, round_id=round_id, progress=say
    )
    candidates = [(g, pid) for g in generated for pid in g.candidates]
    models = [pid for _, pid in candidates]
    aa, evaluations = _evaluate(
        supply, setup, models, executor=executor, round_id=round_id, say=say
    )
    decided = _decide(supply, setup, models, aa, evaluations)
    record = _round_record(
        supply,
        setup,
        round_id=round_id,
        started=started,
        generated=generated,
        candidates=candidates,
        champion=aa[0],
        evaluations=evaluations,
        decided=decided,
    )
    blob, seq = _record_decision(
        supply, setup, round_id=round_id, record=record, decided=decided, factory=factory, say=say
    )
    return RoundResult(
        round_id=round_id,
        capability=capability,
        champion=setup.champion,
        winner=None if decided.winner is None else Digest.parse(decided.winner),
        decision_seq=seq,
        decision=blob,
        record=record,
        generated=tuple(generated),
    )


def run_round_with_report(
    supply: Supply,
    capability: str,
    *,
    failure_cluster: str | None,
    operators: Sequence[str] | None,
    executor: Callable[[], Executor],
    seed: int = 0,
    progress: Progress | None = None,
    recipes: Path | None = None,
) -> RoundResult:
    """A round as ``breedlab round`` runs it: the recipe and the parents are checked
    before any job starts (``executor`` is called only then), the failure cluster is the
    one named, else the latest mined (mined now if there is none), the plans are the
    capability's recipe (``recipes``, else ``LAB/recipes/CAP.toml``, else the built-in one:
    :func:`breedlab.lab.recipes.locate`), and the HTML report is written under
    ``reports/CAPABILITY/``."""
    from breedlab.report import render_round_report

    recipe = recipe_for(supply, capability, recipes)
    cluster: Digest | None = None
    if failure_cluster is not None:
        cluster = supply_packages.resolve(supply, failure_cluster)
    elif latest := latest_clusters(supply, capability):
        cluster = latest[0].id
    # refuse bad parents before any job runs (for the cluster, once it is known)
    key = None if cluster is None else cluster_key_of(supply, cluster)
    select_parents(supply, capability, key, any_scope=cluster is None)
    jobs = executor()
    if cluster is None and failure_cluster is None:
        mined = mine_failures(supply, capability, executor=jobs)
        cluster = mined[0].id if mined else None
    result = run_round(
        supply,
        capability,
        plans_for=lambda parents, c, data, s: recipe_plans(supply, recipe, parents, c, data, s),
        failure_cluster=cluster,
        operators=operators,
        executor=jobs,
        seed=seed,
        progress=progress,
        recipe=recipe,
    )
    reports = supply.config.root / "reports" / capability  # rounds are numbered per capability
    reports.mkdir(parents=True, exist_ok=True)
    path = reports / f"{result.round_id}.html"
    path.write_text(render_round_report(result.record), "utf-8")
    return dataclasses.replace(result, report=str(path))


def _cluster_record(supply: Supply, cluster: Digest | None) -> JsonValue:
    if cluster is None:
        return None
    manifest = supply_packages.manifest(supply, cluster)
    meta = manifest.meta.get("cluster", {})
    description = meta.get("description", "") if isinstance(meta, dict) else ""
    return {
        "id": str(cluster),
        "name": manifest.name,
        "description": str(description),
        "key": cluster_key_of(supply, cluster),
    }

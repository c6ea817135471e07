"""Reproduce and reconstruct operator-made packages from their recorded recipes.

``reproduce``: read a package's SLSA provenance (operator, parameters, seed, the exact
parent and data packages), re-run that operator in a fresh sandbox, store what it makes
(blobs only, nothing registered) and compare the re-derived package id with the recorded
one. ``reconstruct_lineage``: do that for every operator-made ancestor too, oldest first,
so the whole lineage is replayed from its source packages (stage 1 exit criterion).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from breedlab import interrupts
from breedlab.canonical import JsonValue
from breedlab.digest import Digest
from breedlab.errors import InvalidRequest, LabError
from breedlab.lab.operator_runs import Plan, run_plans
from breedlab.ledger import EventKind
from breedlab.sandbox.executors import Executor
from breedlab.signing.statements import Statement
from breedlab.supply import keys as supply_keys
from breedlab.supply import lineage as supply_lineage
from breedlab.supply import packages as supply_packages

if TYPE_CHECKING:
    from breedlab.supply.service import Supply

__all__ = ["NOT_REPLAYABLE", "Reproduction", "build_type", "reproduce", "reproduce_decision"]

#: Build types that record data, not a runnable recipe.
NOT_REPLAYABLE = ("import", "suite", "failures")


@dataclass(frozen=True, slots=True, kw_only=True)
class Reproduction:
    package: str
    operator: str
    recomputed: str | None
    failure: str | None = None
    wall_seconds: float = 0.0

    @property
    def match(self) -> bool:
        return self.recomputed == self.package

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "package": self.package,
            "operator": self.operator,
            "recomputed": self.recomputed,
            "match": self.match,
            "failure": self.failure,
        }


def _build(supply: Supply, package: Digest) -> tuple[str, dict[str, JsonValue]]:
    manifest = supply_packages.manifest(supply, package)
    statement = Statement.from_bytes(supply.blobs.get_bytes(manifest.provenance))
    definition = statement.predicate.get("buildDefinition", {})
    if not isinstance(definition, dict):
        raise LabError(f"package {package.short} has malformed provenance")
    build = str(definition.get("buildType", "")).rsplit("/", 2)[-2]
    external = definition.get("externalParameters", {})
    return build, dict(external) if isinstance(external, dict) else {}


def build_type(supply: Supply, package: Digest) -> str:
    return _build(supply, package)[0]


def reproduce(supply: Supply, package: Digest, *, executor: Executor) -> Reproduction:
    """Re-run the operator recorded for ``package`` and compare ids.

    Raises:
        InvalidRequest: the package was imported (or is a suite or cluster): there is no
            operator to re-run; use ``reconstruct``.
    """
    build, external = _build(supply, package)
    if build in NOT_REPLAYABLE:
        raise InvalidRequest(
            f"package {package.short} was made by '{build}', not an operator: nothing to re-run "
            f"(use 'breedlab reconstruct {package.short}')"
        )
    manifest = supply_packages.manifest(supply, package)
    try:
        data = external["data"]
        assert isinstance(data, dict)
        cluster = external.get("failure_cluster")
        plan = Plan(
            operator=str(external["operator"]),
            label=f"reproduce-{external['operator']}",
            params=dict(external["params"]),
            parents=tuple(Digest.parse(str(p)) for p in external["job_parents"]),
            data=tuple((str(role), Digest.parse(str(d))) for role, d in data.items()),
            seed=int(str(external["seed"])),
            failure_cluster=None if cluster is None else Digest.parse(str(cluster)),
        )
        output = str(external["output"])
    except (KeyError, TypeError, AssertionError) as e:
        raise LabError(f"package {package.short} has incomplete provenance: {e}") from e
    _, contract = supply_packages.capability(supply, manifest.capability)
    [generated] = run_plans(
        supply, [plan], contract, executor=executor, round_id=None, record=False
    )
    if generated.failure is not None:
        return Reproduction(
            package=str(package), operator=plan.operator, recomputed=None, failure=generated.failure
        )
    interrupts.check(f"recording the reproduction of {package.short}")
    recomputed = next((pid for out, pid in generated.packages if out.folder == output), None)
    result = Reproduction(
        package=str(package),
        operator=plan.operator,
        recomputed=None if recomputed is None else str(recomputed),
        failure=None if recomputed is not None else f"the re-run made no {output!r} output",
    )
    supply.ledger.append(
        EventKind.PACKAGE_REPRODUCED,
        str(package),
        {
            "package": str(package),
            "operator": plan.operator,
            "recomputed": result.recomputed,
            "match": result.match,
        },
        signer=supply_keys.factory_signer(supply),
        actor=supply.actor,
    )
    return result


def replay_lineage(supply: Supply, package: Digest, *, executor: Executor) -> list[Reproduction]:
    """Reproduce every operator-made package in ``package``'s lineage, oldest first."""
    order: list[Digest] = []
    seen: set[Digest] = set()

    def visit(pid: Digest) -> None:
        if pid in seen:
            return
        seen.add(pid)
        for parent in supply_packages.manifest(supply, pid).parents:
            visit(parent)
        if build_type(supply, pid) not in NOT_REPLAYABLE:
            order.append(pid)

    visit(package)
    return [reproduce(supply, pid, executor=executor) for pid in order]


def reproduce_decision(supply: Supply, ref: str, *, executor: Executor) -> list[Reproduction]:
    """Reproduce every candidate a round's decision judged (``ref`` as
    :func:`breedlab.supply.lineage.decision` reads it: ``latest``, a seq, ``round-N``),
    in the record's order. A candidate that failed to reproduce is reported, not raised.

    Raises:
        NotFound: no such decision.
    """
    _, record = supply_lineage.decision(supply, ref)
    candidates = record.get("candidates")
    packages = [
        Digest.parse(str(c["package"]))
        for c in (candidates if isinstance(candidates, list) else [])
        if isinstance(c, dict) and c.get("package")
    ]
    return [reproduce(supply, pid, executor=executor) for pid in packages]

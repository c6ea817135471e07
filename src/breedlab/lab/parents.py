"""SELECT_APPROVED_PARENTS(failure_cluster) (seed: the round procedure): which models of a
capability a round breeds from, and why.

A model is a parent if it holds a parent approval that covers the round's failure
cluster -- unscoped, or scoped to that cluster's key (``registry.cluster_keys``) -- and
it is unrevoked and intact. The champion comes first and must qualify; a model approved
only for other clusters is left out *for scope*, and the round records that beside the
parents it took, so an explanation can say why a model did not breed.

Owns the choice and its record; leaves the scope's syntax and matching rule to
``registry.cluster_keys``, the approvals themselves to ``supply.approvals``, and what a
round does with its parents to ``lab.breeding``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from breedlab.canonical import JsonValue
from breedlab.digest import Digest
from breedlab.errors import InvalidRequest, NotFound, PolicyError
from breedlab.registry.cluster_keys import cluster_key, in_scope
from breedlab.registry.manifest import Kind
from breedlab.supply import aliases
from breedlab.supply import packages as supply_packages
from breedlab.supply.packages import check

if TYPE_CHECKING:
    from breedlab.supply.service import Supply

__all__ = [
    "ParentChoice",
    "ParentSelection",
    "approved_parents",
    "basis",
    "cluster_key_of",
    "select_parents",
]

UNSCOPED = "unscoped"
SCOPE = "scope"


@dataclass(frozen=True, slots=True, kw_only=True)
class ParentChoice:
    """One model's part in a round's parent selection."""

    package: Digest
    name: str
    # "unscoped" or "scope" (taken: an unscoped approval, or one scoped to the round's
    # cluster); "" for a model left out because its approvals name other clusters only
    because: str
    scopes: tuple[str, ...]  # every cluster key its parent approvals name

    def to_record(self) -> dict[str, JsonValue]:
        return {
            "package": str(self.package),
            "name": self.name,
            "because": self.because,
            "scopes": list(self.scopes),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ParentSelection:
    """SELECT_APPROVED_PARENTS' answer: the parents (the champion first) and the models
    left out for scope, for a round on ``cluster`` (a key; None: a general round)."""

    cluster: str | None
    taken: tuple[ParentChoice, ...]
    left_out: tuple[ParentChoice, ...]

    @property
    def parents(self) -> list[Digest]:
        return [c.package for c in self.taken]

    def to_record(self) -> dict[str, JsonValue]:
        return {
            "cluster_key": self.cluster,
            "taken": [c.to_record() for c in self.taken],
            "left_out": [c.to_record() for c in self.left_out],
        }


def basis(scopes: Sequence[Sequence[str]], cluster: str | None) -> str | None:
    """Why a model whose parent approvals have these scopes (empty: unscoped) is a parent
    of a round on ``cluster``: ``"scope"`` (one names the cluster), ``"unscoped"``, or
    None (it is not: they name other clusters only). Pure."""
    if cluster is not None and any(s and in_scope(s, cluster) for s in scopes):
        return SCOPE
    if any(not s for s in scopes):
        return UNSCOPED
    return None


def cluster_key_of(supply: Supply, cluster: Digest) -> str:
    """The key of a failure-cluster dataset package (what ``approve --cluster`` names).

    Raises:
        InvalidRequest: the package is not a failure-cluster dataset.
    """
    found = supply_packages.manifest(supply, cluster)
    meta = found.meta.get("cluster")
    if found.kind is not Kind.DATASET or not isinstance(meta, dict):
        raise InvalidRequest(
            f"{cluster.short} is not a failure-cluster dataset",
            hint=f"'breedlab failures {found.capability}' lists the clusters",
        )
    return cluster_key(meta)


def select_parents(
    supply: Supply, capability: str, cluster: str | None, *, any_scope: bool = False
) -> ParentSelection:
    """SELECT_APPROVED_PARENTS for a round on ``cluster`` (a cluster key; None: a round
    without one, which only unscoped approvals cover). ``any_scope``: count every parent
    approval, whatever its scope -- a check made before the round's cluster is known.

    Raises:
        NotFound: the capability has no champion.
        PolicyError: the champion is not an approved, intact parent for this cluster.
    """
    champion = aliases.alias(supply, capability, "champion")
    if champion is None:
        raise NotFound(
            f"capability {capability!r} has no champion",
            hint=f"import a model, approve it (purposes parent and release) and "
            f"'breedlab promote {capability} MODEL'",
        )
    taken: list[ParentChoice] = []
    left_out: list[ParentChoice] = []
    with supply.ledger.reader() as r:
        rows = r.packages(capability=capability, kind=Kind.MODEL.value)
        names = {row.id: row.name for row in rows}
        ids = [champion] + [Digest.parse(row.id) for row in rows if row.id != str(champion)]
        for pid in ids:
            scopes = [a.scope for a in r.approvals(str(pid)) if a.purpose == "parent"]
            if not scopes:
                if pid == champion:
                    raise PolicyError(
                        f"the champion {pid.short} is not approved as a parent; run "
                        f"'breedlab approve {pid.short} --purpose parent --key KEY'"
                    )
                continue
            named = tuple(sorted({k for s in scopes for k in s}))
            why = UNSCOPED if any_scope else basis(scopes, cluster)
            choice = ParentChoice(
                package=pid, name=names.get(str(pid), ""), because=why or "", scopes=named
            )
            if why is None:
                if pid == champion:
                    raise PolicyError(
                        f"the champion {pid.short} is approved as a parent only for "
                        f"{', '.join(named)}, not for "
                        + (f"cluster {cluster}" if cluster else "a round without a cluster"),
                        hint=f"approve it for this round's cluster ('breedlab approve "
                        f"{pid.short} --purpose parent --key KEY"
                        + (f" --cluster {cluster}'" if cluster else "'")
                        + ") or name one of its clusters",
                    )
                left_out.append(choice)
                continue
            problems = check(supply, r, pid).problems
            if problems:
                if pid == champion:
                    first = problems[0]
                    raise PolicyError(
                        f"the champion {pid.short} cannot be a parent: {first.where}: "
                        f"{first.message}"
                    )
                continue
            taken.append(choice)
    return ParentSelection(cluster=cluster, taken=tuple(taken), left_out=tuple(left_out))


def approved_parents(supply: Supply, capability: str, cluster: str | None = None) -> list[Digest]:
    """The parents :func:`select_parents` takes for a round on ``cluster``, the champion
    first."""
    return select_parents(supply, capability, cluster).parents

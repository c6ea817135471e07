"""Frozen suites for any capability (issue 12): built from the capability's contract and
its dataset splits, registered as a ``suite`` package and aliased ``CAP@suite``, which
the round reads.

Reads the contract and the ``CAP@data-train``/``data-dev``/``data-sealed`` dataset
packages, asks ``evaluator.design`` what the suite holds, and registers it through
:func:`register_suite` -- the one path the built-in digits suite takes too (same build
type, parents, signing), so a created suite is scored and judged as digits' is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from breedlab.datasets import Dataset, TextDataset, read_any_dataset
from breedlab.digest import Digest
from breedlab.errors import InvalidRequest, NotFound
from breedlab.evaluator import design
from breedlab.evaluator.suite import SUITE_FILE, Budget, SuiteSpec
from breedlab.registry.manifest import Kind
from breedlab.supply import aliases
from breedlab.supply import packages as supply_packages
from breedlab.supply.packages import register

if TYPE_CHECKING:
    from breedlab.supply.service import Supply

__all__ = ["SuiteBuild", "create_suite", "register_suite"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SuiteBuild:
    """A suite made by :func:`create_suite`: its package id and what it holds."""

    suite: Digest
    capability: str
    name: str
    modality: str
    perturbations: tuple[str, ...]
    metrics: tuple[str, ...]
    primary: str
    critical_items: int
    dev_items: int
    sealed_items: int


def register_suite(
    supply: Supply,
    spec: SuiteSpec,
    *,
    license: str,
    parents: Sequence[Digest] = (),
    sign_with: str | None,
) -> Digest:
    """Store ``spec`` as a ``suite`` package whose parents are its dev and sealed datasets
    (then ``parents``, e.g. the champion that chose its critical items)."""
    contract = supply_packages.capability(supply, spec.capability)[1]
    info = register(
        supply,
        files=[(SUITE_FILE, spec.to_bytes())],
        kind=Kind.SUITE,
        name=spec.name,
        capability=spec.capability,
        license=license,
        data_class=contract.data_class,
        risk_tier=contract.risk_tier,
        build_type="suite",
        external={"seed": spec.seed, "critical_items": len(spec.critical_items)},
        parents=[Digest.parse(spec.splits["dev"]), Digest.parse(spec.splits["sealed"]), *parents],
        sign_with=sign_with,
    )
    return info.id


def _split(
    supply: Supply, capability: str, role: str, kind: design.Modality
) -> tuple[Digest, Dataset | TextDataset]:
    """The split's package id and items, refused unless they are texts exactly when the
    capability takes text."""
    ref = aliases.alias(supply, capability, f"data-{role}")
    if ref is None:
        raise NotFound(
            f"capability {capability!r} has no {role} dataset (alias {capability}@data-{role})",
            hint=f"import it and set the alias: breedlab alias set {capability} data-{role} ID",
        )
    folder = supply.workspace.materialise(ref, supply_packages.manifest(supply, ref))
    data = read_any_dataset(folder)
    if isinstance(data, TextDataset) != (kind is design.Modality.TEXT):
        held = "texts" if isinstance(data, TextDataset) else "arrays"
        raise InvalidRequest(
            f"{capability}@data-{role} holds {held} but the capability's input is {kind.value}",
            hint="import the split again with dataset import (--text-column for text)",
        )
    return ref, data


#: Latency replay items for a text suite: one text through a MiniLM-sized encoder takes
#: ~100x an MLP row, so the default 200 items x 5 passes would cost each candidate's
#: evaluation ~10 s of the round; 50 still give a p95 from 50 fastest-of-5 timings.
TEXT_LATENCY_ITEMS = 50


def _budget(kind: design.Modality) -> Budget:
    return Budget(latency_items=TEXT_LATENCY_ITEMS) if kind is design.Modality.TEXT else Budget()


def create_suite(
    supply: Supply,
    capability: str,
    *,
    perturbations: Sequence[str] | None = None,
    critical: Sequence[str] = (),
    metrics: Sequence[str] | None = None,
    seed: int = 0,
    name: str | None = None,
    sign_with: str | None = None,
    alias: bool = True,
) -> SuiteBuild:
    """Build, register and alias (``CAP@suite``) a frozen suite for ``capability``.
    ``alias=False`` registers without moving the alias (a draft, e.g. to score the
    champion before its critical items are chosen).

    ``perturbations`` and ``metrics`` choose subsets of what the modality offers (None:
    all); ``critical`` are dev item ids that must never be wrong (zero tolerance).

    Raises:
        NotFound: no such capability, or a ``data-train``/``data-dev``/``data-sealed``
            alias missing.
        InvalidRequest: a split of the other modality (texts for arrays or back), an
            unknown perturbation or metric name (the error lists the known ones), critical
            ids not in the dev split (named), or a metric selection without the primary.
    """
    contract = supply_packages.capability(supply, capability)[1]
    kind = design.modality(contract.input_schema, contract.input_shape)
    dev_id, dev = _split(supply, capability, "dev", kind)
    sealed_id, sealed = _split(supply, capability, "sealed", kind)
    train = (
        _split(supply, capability, "train", kind)[1] if kind is design.Modality.TABULAR else None
    )
    train_x = train.x if isinstance(train, Dataset) else None
    offered = design.perturbation_catalogue(kind, train_x)
    chosen = design.choose(perturbations, list(offered), "perturbation")
    critical_ids = tuple(sorted(set(critical)))
    unknown = sorted(set(critical_ids) - set(dev.ids))
    if unknown:
        raise InvalidRequest(
            f"critical items not in the dev split: {', '.join(unknown)}",
            hint=f"critical items are ids of {capability}@data-dev",
        )
    records = design.metric_records(
        dev_items=len(dev.ids), perturbations=chosen, critical=bool(critical_ids)
    )
    names = design.choose(metrics, list(records), "metric")
    [primary] = [n for n, r in records.items() if r["role"] == "primary"]
    if primary not in names:
        raise InvalidRequest(f"the metrics must include the primary metric {primary}")
    spec = SuiteSpec(
        capability=capability,
        name=name or f"{capability}-suite",
        seed=seed,
        splits={"dev": str(dev_id), "sealed": str(sealed_id)},
        perturbations=tuple(offered[k] for k in chosen),
        critical_items=critical_ids,
        metrics=tuple(records[n] for n in names),
        policy=design.POLICY,
        budget=_budget(kind),
    )
    license = supply_packages.manifest(supply, dev_id).license
    suite = register_suite(supply, spec, license=license, sign_with=sign_with)
    if alias:
        aliases.point(supply, capability, "suite", suite, reason=f"suite create: {spec.name}")
    return SuiteBuild(
        suite=suite,
        capability=capability,
        name=spec.name,
        modality=kind.value,
        perturbations=chosen,
        metrics=names,
        primary=primary,
        critical_items=len(critical_ids),
        dev_items=len(dev.ids),
        sealed_items=len(sealed.ids),
    )

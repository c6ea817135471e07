"""Failure clusters: where the champion fails, mined from its per-item errors on dev.

Three kinds of cluster (DESIGN §8 "LoRA via PEFT on the failure cluster"):

- ``perturbation``: an input perturbation that costs the champion at least
  ``MIN_DROP`` of dev accuracy. Its dataset is the *training* items under that
  perturbation (seeded by the cluster's own seed and item id): what the adapter trains on.
- ``confusion``: the most frequent (true, predicted) class pairs on dev. Its dataset is
  the training items of those classes.
- ``slice`` (tabular and text capabilities): a quantile bin of one feature -- for text,
  the length in characters (``evaluator.slices.length_slices``) -- where the champion's
  dev error rate is clearly above its overall rate (``evaluator.slices``: an exact
  binomial test, Holm-corrected over every bin; at most ``MAX_SLICES``). Its dataset is
  the training items in the same bin, ``[low, high)`` by the dev split's edges; its meta
  names the feature, the bin and all edges. A small dev split often has none.

A text capability's clusters are text dataset packages (``datasets.write_text_dataset``):
perturbed training texts, the texts of the confused classes, the texts of a length band.

The dev split only *describes* a cluster; the data always comes from the train split,
so the decision split never leaks into training. Each cluster is recorded as a dataset
package (parents: the champion and the train data) and listed in a ``failures.mined``
event.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from breedlab import interrupts
from breedlab.canonical import JsonValue
from breedlab.datasets import (
    Dataset,
    TextDataset,
    read_any_dataset,
    write_dataset,
    write_text_dataset,
)
from breedlab.digest import Digest
from breedlab.errors import LabError, NotFound
from breedlab.evaluator.design import Modality, modality
from breedlab.evaluator.digits import confusion_pairs
from breedlab.evaluator.perturbations import SuitePerturbation, perturb
from breedlab.evaluator.slices import Slice, feature_slices, in_bin, length_slices
from breedlab.evaluator.suite import SuiteSpec
from breedlab.evaluator.text_perturbations import TextPerturbation, perturb_texts
from breedlab.lab.evaluation import evaluate_models, load_suite
from breedlab.ledger import EventKind
from breedlab.registry.manifest import Kind
from breedlab.sandbox.executors import Executor
from breedlab.supply import aliases
from breedlab.supply import keys as supply_keys
from breedlab.supply import packages as supply_packages
from breedlab.supply.packages import register

if TYPE_CHECKING:
    from breedlab.supply.service import Supply

__all__ = ["MAX_SLICES", "MIN_DROP", "Cluster", "latest_clusters", "mine_failures"]

MIN_DROP = 0.05
MAX_SLICES = 3
CLUSTER_SEED = 1009  # not the suite's seed: training never sees the suite's own draws


@dataclass(frozen=True, slots=True, kw_only=True)
class Cluster:
    id: Digest
    name: str
    kind: str  # perturbation | confusion | slice
    description: str
    # accuracy lost on dev (perturbation), dev share of the confusions (confusion), or dev
    # share of the bin's errors beyond the overall rate (slice)
    severity: float
    items: int

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "id": str(self.id),
            "name": self.name,
            "kind": self.kind,
            "description": self.description,
            "severity": repr(self.severity),
            "items": self.items,
        }


def mine_failures(supply: Supply, capability: str, *, executor: Executor) -> list[Cluster]:
    """Evaluate the champion on the suite's dev split and record its failure clusters,
    most severe first."""
    champion = aliases.alias(supply, capability, "champion")
    suite_id = aliases.alias(supply, capability, "suite")
    train_id = aliases.alias(supply, capability, "data-train")
    if champion is None or suite_id is None or train_id is None:
        raise NotFound(f"{capability} needs a champion, a suite and data-train aliases first")
    [evaluation] = evaluate_models(supply, [champion], suite_id, executor=executor, round_id=None)
    if evaluation.scorecard is None:
        raise LabError(f"evaluating the champion failed: {evaluation.failure}")
    spec = load_suite(supply, suite_id)
    dev = evaluation.scorecard.splits["dev"]
    clean = dev.accuracy("clean")
    train = read_any_dataset(
        supply.workspace.materialise(train_id, supply_packages.manifest(supply, train_id))
    )
    found: list[_Found] = []
    for p in spec.perturbations:
        drop = clean - dev.accuracy(p.kind)
        if drop < MIN_DROP:
            continue
        x = _perturbed(p, train)
        description = (
            f"{p.kind} inputs: dev accuracy {dev.accuracy(p.kind):.3f} vs {clean:.3f} clean "
            f"(-{drop:.3f})"
        )
        meta: dict[str, JsonValue] = {
            "kind": "perturbation",
            "perturbation": p.to_record(),
            "description": description,
            "severity": repr(drop),
        }
        ids = tuple(f"{i}~{p.kind}" for i in train.ids)
        found.append((drop, f"{capability}-cluster-{p.kind}", description, meta, x, train.y, ids))
    y_dev = np.asarray(dev.clean.items.predicted)
    dev_data = _dev_items(supply, spec, dev.ids)
    truth = np.asarray([int(v) for v in dev_data.y])
    errors = int(np.sum(y_dev != truth))
    pairs = confusion_pairs(truth, y_dev, top_k=2) if errors else ()
    if pairs:
        classes = sorted({c for pair in pairs for c in (pair.true_class, pair.predicted_class)})
        share = sum(pair.count for pair in pairs) / max(errors, 1)
        names = ", ".join(
            f"{pair.true_class}->{pair.predicted_class} x{pair.count}" for pair in pairs
        )
        description = f"confusions on clean dev inputs: {names}"
        rows = np.isin(train.y, classes)
        meta = {
            "kind": "confusion",
            "classes": classes,
            "description": description,
            "severity": repr(share),
        }
        found.append(
            (
                share * (1 - clean),
                f"{capability}-cluster-confusion",
                description,
                meta,
                *_subset(train, rows),
            )
        )
    contract = supply_packages.capability(supply, capability)[1]
    kind = modality(contract.input_schema, contract.input_shape)
    wrong = ~np.asarray(dev.correct["clean"], dtype=bool)
    if kind is Modality.TABULAR and isinstance(dev_data, Dataset):
        dev_x = dev_data.x.astype(np.float64)
        features = contract.features or tuple(f"x{j}" for j in range(dev_x.shape[1]))
        slices = feature_slices(dev_x, wrong, features)
        found.extend(_slice_clusters(capability, slices, _values(train), train))
    elif kind is Modality.TEXT and isinstance(dev_data, TextDataset):
        slices = length_slices(dev_data.texts, wrong)
        found.extend(_slice_clusters(capability, slices, _values(train), train))
    found.sort(key=lambda f: -f[0])
    # The clusters and failures.mined are one step: recorded whole or not at all.
    interrupts.check(f"recording the failure clusters of {capability}")
    clusters = []
    with tempfile.TemporaryDirectory(prefix="breedlab-cluster-") as scratch:
        for severity, name, description, meta, x, y, ids in found:
            folder = Path(scratch) / name
            cluster_meta: dict[str, JsonValue] = {"cluster": meta, "champion": str(champion)}
            if isinstance(x, tuple):
                write_text_dataset(folder, texts=x, y=y, ids=ids, meta=cluster_meta)
            else:
                write_dataset(folder, x=x.astype(np.float32), y=y, ids=ids, meta=cluster_meta)
            train_manifest = supply_packages.manifest(supply, train_id)
            info = register(
                supply,
                files=[(p.name, p.read_bytes()) for p in sorted(folder.iterdir())],
                kind=Kind.DATASET,
                name=name,
                capability=capability,
                license=train_manifest.license,
                data_class=train_manifest.data_class,
                risk_tier=contract.risk_tier,
                build_type="failures",
                external={
                    "champion": str(champion),
                    "suite": str(suite_id),
                    "cluster_seed": CLUSTER_SEED,
                },
                parents=[champion, train_id],
                meta={"cluster": meta},
                sign_with=supply.config.factory_key,  # the lab made it: the factory vouches
            )
            clusters.append(
                Cluster(
                    id=info.id,
                    name=name,
                    kind=str(meta["kind"]),
                    description=description,
                    severity=severity,
                    items=len(ids),
                )
            )
    supply.ledger.append(
        EventKind.FAILURES_MINED,
        capability,
        {
            "capability": capability,
            "champion": str(champion),
            "suite": str(suite_id),
            "clusters": [c.to_json() for c in clusters],
        },
        signer=supply_keys.factory_signer(supply),
        actor=supply.actor,
    )
    return clusters


#: A cluster before it is recorded: severity, name, description, meta, then its items --
#: feature rows or texts -- with their labels and ids.
_Items = np.ndarray | tuple[str, ...]
_Found = tuple[float, str, str, dict[str, JsonValue], _Items, np.ndarray, tuple[str, ...]]


def _perturbed(p: SuitePerturbation, train: Dataset | TextDataset) -> _Items:
    """The train items under ``p``, each seeded by ``CLUSTER_SEED`` and its id."""
    if isinstance(train, TextDataset) and isinstance(p, TextPerturbation):
        return perturb_texts(p, train.texts, item_ids=train.ids, seed=CLUSTER_SEED)
    if isinstance(train, Dataset) and not isinstance(p, TextPerturbation):
        return perturb(p, train.x.astype(np.float64), item_ids=train.ids, seed=CLUSTER_SEED)
    raise LabError(f"perturbation {p.kind!r} does not fit the train split's items")


def _subset(
    train: Dataset | TextDataset, rows: np.ndarray
) -> tuple[_Items, np.ndarray, tuple[str, ...]]:
    """The items, labels and ids of the train rows ``rows`` (a boolean mask) selects."""
    ids = tuple(i for i, keep in zip(train.ids, rows, strict=True) if keep)
    if isinstance(train, TextDataset):
        texts = tuple(t for t, keep in zip(train.texts, rows, strict=True) if keep)
        return texts, train.y[rows], ids
    return train.x[rows].astype(np.float64), train.y[rows], ids


def _values(data: Dataset | TextDataset) -> np.ndarray:
    """What slices bin, ``(n, features)``: the feature rows, or each text's length."""
    if isinstance(data, TextDataset):
        return np.asarray([[len(t)] for t in data.texts], dtype=np.float64).reshape(-1, 1)
    return data.x.astype(np.float64)


def _slice_clusters(
    capability: str,
    slices: tuple[Slice, ...],
    train_values: np.ndarray,
    train: Dataset | TextDataset,
) -> list[_Found]:
    """The ``MAX_SLICES`` most severe of ``slices`` (most severe first), each with the
    train items in its bin (a bin no train item falls in gives no cluster)."""
    found: list[_Found] = []
    for s in slices:
        rows = in_bin(train_values[:, s.feature_index], s.low, s.high)
        if not rows.any():
            continue
        description = (
            f"{s.feature} in {s.bounds()} (bin {s.bin + 1} of {s.bins}): dev error rate "
            f"{s.rate:.3f} ({s.errors}/{s.items}) vs {s.overall:.3f} overall, "
            f"p={s.p_value:.2g}"
        )
        meta: dict[str, JsonValue] = {
            "kind": "slice",
            **s.to_record(),
            "description": description,
            "severity": repr(s.severity),
        }
        found.append(
            (
                s.severity,
                f"{capability}-cluster-slice-{s.feature_index}-{s.bin}",
                description,
                meta,
                *_subset(train, rows),
            )
        )
        if len(found) == MAX_SLICES:
            break
    return found


def _dev_items(supply: Supply, spec: SuiteSpec, ids: tuple[str, ...]) -> Dataset | TextDataset:
    """The dev split's items and labels, in the scorecard's item order."""
    dev_id = Digest.parse(spec.splits["dev"])
    data = read_any_dataset(
        supply.workspace.materialise(dev_id, supply_packages.manifest(supply, dev_id))
    )
    return data.subset(ids)


def latest_clusters(supply: Supply, capability: str) -> list[Cluster]:
    """The clusters of the last ``failures.mined`` event for the current champion."""
    champion = aliases.alias(supply, capability, "champion")
    events = supply.events(kinds=(EventKind.FAILURES_MINED,))
    for event in reversed(events):
        if event.subject == capability and event.payload.get("champion") == str(champion):
            clusters = event.payload.get("clusters", [])
            assert isinstance(clusters, list)
            return [
                Cluster(
                    id=Digest.parse(c["id"]),
                    name=c["name"],
                    kind=c["kind"],
                    description=c["description"],
                    severity=float(c["severity"]),
                    items=int(c["items"]),
                )
                for c in clusters
            ]
    return []

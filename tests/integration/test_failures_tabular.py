"""Failure clusters of a tabular capability (issue 12): wine, built as a user builds it
through the Lab API, mined for its champion's failures. Whatever the 36 dev items show,
the clusters recorded are exactly what the slice rule computes from the champion's own
dev errors, each with the meta a round's adapter run needs (its kind; for a slice the
feature, its bin and edges), and its items are the train rows of that bin."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from breedlab.datasets import read_dataset
from breedlab.evaluator.slices import feature_slices, in_bin, quantile_edges
from breedlab.families.torch_family import TorchFamily
from breedlab.lab import Lab
from breedlab.lab.failures import MAX_SLICES, latest_clusters
from breedlab.lab.recipes import recipe_plans
from breedlab.ledger import EventKind
from breedlab.supply import packages as supply_packages

pytestmark = pytest.mark.slow


def _only_cultivar_0(model: Path, out: Path) -> Path:
    """The sample model with its head zeroed and biased: it answers cultivar 0 for every
    row, so it fails wherever cultivar 0 is rare (low proline, low alcohol, ...)."""
    from safetensors.numpy import load_file, save_file

    out.mkdir()
    (out / "config.json").write_bytes((model / "config.json").read_bytes())
    state = load_file(model / "model.safetensors")
    head = sorted(k for k in state if k.endswith(".weight") and state[k].shape[0] == 3)[-1]
    state[head] = np.zeros_like(state[head])
    bias = head.removesuffix(".weight") + ".bias"
    state[bias] = np.array([5.0, 0.0, 0.0], dtype=state[bias].dtype)
    save_file(state, str(out / "model.safetensors"))
    return out


@pytest.fixture(scope="module", params=["baseline", "cultivar-0-only"])
def wine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    """A lab with wine's contract, data, suite and promoted champion (the README's walk-
    through, through the Lab API), and the champion's model folder: the sample baseline
    on wine's 36 dev items, or a model that knows only cultivar 0 on 89."""
    root = tmp_path_factory.mktemp("wine")
    made = Lab.samples("wine", root)
    if request.param == "baseline":
        champion = made.model
        fractions = {"train": 0.5, "fitness": 0.1, "dev": 0.2, "sealed": 0.2}
    else:
        champion = _only_cultivar_0(made.model, root / "cultivar-0")
        fractions = {"train": 0.3, "fitness": 0.1, "dev": 0.5, "sealed": 0.1}
    with Lab.init(root / "lab") as lab:
        lab.generate_key("alice", "model")
        lab.generate_key("erin", "evaluation")
        lab.generate_key("pat", "production")
        contract = Lab.init_contract(
            root / "wine.toml",
            "wine",
            task="classification",
            modality="tabular",
            table=made.data,
            label_column="cultivar",
            ignore=("id",),
        )
        lab.add_capability(contract, sign_with="alice")
        lab.import_dataset(
            made.data,
            capability="wine",
            label_column="cultivar",
            id_column="id",
            fractions=fractions,
            sign_with="erin",
            license="BSD-3-Clause",
        )
        lab.create_suite("wine", key="erin")
        model = lab.import_path(
            champion, kind="model", capability="wine", family="torch", license="MIT",
            sign_with="alice",
        )  # fmt: skip
        lab.approve(str(model.id), purpose="parent", key="alice")
        lab.approve(str(model.id), purpose="release", key="alice")
        lab.approve(str(model.id), purpose="release", key="pat")
        lab.promote("wine", str(model.id), key="pat")
    return root / "lab", champion


def _split(lab: Lab, role: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    ref = lab.alias("wine", f"data-{role}")
    assert ref is not None
    data = read_dataset(lab.supply.workspace.materialise(ref, lab.manifest(ref)))
    return data.x.astype(np.float64), data.y, data.ids


def test_wine_failures_are_the_clusters_the_rules_compute_with_the_meta_they_need(
    wine: tuple[Path, Path],
) -> None:
    path, model = wine
    with Lab.open(path) as lab:
        clusters = lab.failures("wine", workers=1)
        assert latest_clusters(lab.supply, "wine") == clusters
        [mined] = lab.events(kinds=(EventKind.FAILURES_MINED,))
        assert [c["id"] for c in mined.payload["clusters"]] == [str(c.id) for c in clusters]
        dev_x, dev_y, _ = _split(lab, "dev")
        train_x, train_y, train_ids = _split(lab, "train")
        # The champion's dev errors, computed here outside the sandbox.
        wrong = TorchFamily().load(model).predict_proba(dev_x).argmax(axis=1) != dev_y
        features = supply_packages.capability(lab.supply, "wine")[1].features
        metas = {c.id: lab.manifest(c.id).meta["cluster"] for c in clusters}

    assert [c.severity for c in clusters] == sorted((c.severity for c in clusters), reverse=True)
    kinds = {str(m["kind"]) for m in metas.values()}
    assert kinds <= {"perturbation", "confusion", "slice"}
    for c in clusters:
        if c.kind == "perturbation":
            assert metas[c.id]["perturbation"]["kind"] in ("feature_noise", "missing")

    # Slices: exactly the rule's (most severe first, at most MAX_SLICES), on wine's
    # features by name; honest on 36 items: possibly none.
    assert len(features) == dev_x.shape[1] == 13  # by name, from the user's table
    expected = feature_slices(dev_x, wrong, features)[:MAX_SLICES]
    if path.parent.joinpath("cultivar-0").exists():
        # This champion fails wherever cultivar 0 is rare: the path that records slices
        # is exercised (on the baseline's 36 items with one error, it honestly is not).
        assert expected
    sliced = [c for c in clusters if c.kind == "slice"]
    assert [(str(metas[c.id]["feature"]), metas[c.id]["bin"]) for c in sliced] == [
        (s.feature, s.bin) for s in expected
    ]
    for c, s in zip(sliced, expected, strict=True):
        meta = metas[c.id]
        column = dev_x[:, s.feature_index]
        assert meta["edges"] == [repr(e) for e in quantile_edges(column)]
        assert (meta["dev_items"], meta["dev_errors"]) == (s.items, s.errors)
        assert float(str(meta["p_value"])) <= 0.05
        low = None if meta["low"] is None else float(str(meta["low"]))
        high = None if meta["high"] is None else float(str(meta["high"]))
        rows = in_bin(train_x[:, s.feature_index], low, high)
        with Lab.open(path, read_only=True) as lab:
            items = read_dataset(lab.supply.workspace.materialise(c.id, lab.manifest(c.id)))
        assert items.ids == tuple(i for i, keep in zip(train_ids, rows, strict=True) if keep)
        np.testing.assert_array_equal(items.y, train_y[rows])
        assert c.name == f"wine-cluster-slice-{s.feature_index}-{s.bin}"

    # A round's starter recipe runs LoRA on the top cluster, whatever its kind, with the
    # cluster's items as its data.
    if clusters:
        with Lab.open(path) as lab:
            lab.init_recipe("wine")
            recipe = lab.recipe("wine")
            data = {r: lab.alias("wine", f"data-{r}") for r in ("train", "fitness")}
            champion = lab.alias("wine", "champion")
            assert champion is not None
            plans = recipe_plans(lab.supply, recipe, [champion], clusters[0].id, data, 0)  # type: ignore[arg-type]
        [lora] = [p for p in plans if p.operator == "adapter"]
        assert ("cluster", clusters[0].id) in lora.data


def test_breedlab_failures_shows_each_clusters_key_for_scoping_approvals(
    wine: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from breedlab.cli import main
    from breedlab.digest import Digest
    from breedlab.registry.cluster_keys import check_cluster_key, cluster_key

    path, _ = wine
    capsys.readouterr()
    assert main(["--lab", str(path), "failures", "wine", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    with Lab.open(path, read_only=True) as lab:
        for c in listed:
            meta = lab.manifest(Digest.parse(c["id"])).meta["cluster"]
            assert c["key"] == check_cluster_key(cluster_key(meta))
            if c["kind"] == "slice":  # wine's features by name, the bin counted from 1
                feature = str(meta["feature"]).lower()
                assert c["key"] == f"slice:{feature}:q{int(meta['bin']) + 1}"
            elif c["kind"] == "perturbation":
                assert c["key"] == f"perturbation:{meta['perturbation']['kind']}"
            else:
                assert c["key"].startswith(f"{c['kind']}:")
    assert len({c["key"] for c in listed}) == len(listed)  # keys tell clusters apart
    assert main(["--lab", str(path), "failures", "wine"]) == 0
    assert "key" in capsys.readouterr().out  # a column of the table

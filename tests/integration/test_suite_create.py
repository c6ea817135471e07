"""A suite for a capability of one's own (issue 12): a tabular contract written by hand,
wine splits imported as dataset packages, ``suite create`` from the CLI, and a torch MLP
trained on it scored through the ordinary evaluation path on every metric of the suite."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from breedlab.capabilities import contract_path
from breedlab.cli import main
from breedlab.datasets import write_dataset
from breedlab.evaluator.perturbations import FeatureNoise, MissingValues
from breedlab.lab import Lab
from breedlab.lab.evaluation import evaluate_models, load_suite
from breedlab.lab.operator_runs import Plan, run_plans
from breedlab.viability.decision import assess
from breedlab.viability.gates import Verdict
from breedlab.viability.round import paired_evidence, policy_from_suite

pytestmark = pytest.mark.slow

SPLITS = ("train", "fitness", "dev", "sealed")


def _wine_contract(folder: Path) -> Path:
    """The digits contract rewritten for wine: 13 float32 features, three cultivars."""
    text = contract_path("digits").read_text("utf-8")
    for old, new in (
        ('name = "digits"', 'name = "wine"'),
        (
            'labels = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]',
            'labels = ["0", "1", "2"]',
        ),
        ("shape = [64]", "shape = [13]"),
        ('range = "0..16 pixel intensities"\n', ""),
        ("classes = 10", "classes = 3"),
    ):
        assert old in text, old
        text = text.replace(old, new)
    path = folder / "wine.toml"
    path.write_text(text, "utf-8")
    return path


def _wine_splits(folder: Path) -> dict[str, Path]:
    """Stratified 50/10/20/20 splits of sklearn's wine, standardised by the train split
    (dev 36 items: a suite needs at least the policy's 30 pairs)."""
    from sklearn.datasets import load_wine
    from sklearn.model_selection import train_test_split

    bunch = load_wine()
    x, y = np.asarray(bunch.data), np.asarray(bunch.target, dtype=np.int64)
    index = np.arange(len(y))
    train, rest = train_test_split(index, train_size=0.5, stratify=y, random_state=0)
    fitness, rest = train_test_split(rest, train_size=0.2, stratify=y[rest], random_state=0)
    dev, sealed = train_test_split(rest, train_size=0.5, stratify=y[rest], random_state=0)
    mean, std = x[train].mean(axis=0), x[train].std(axis=0)
    out = {}
    for name, rows in zip(SPLITS, (train, fitness, dev, sealed), strict=True):
        rows = np.sort(rows)
        out[name] = folder / name
        write_dataset(
            out[name],
            x=((x[rows] - mean) / std).astype(np.float32),
            y=y[rows],
            ids=[f"wine-{i}" for i in rows],
            meta={"split": name, "source": "sklearn.datasets.load_wine, standardised"},
        )
    return out


@pytest.fixture(scope="module")
def wine_lab(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lab with the wine capability and its four splits aliased wine@data-*."""
    root = tmp_path_factory.mktemp("wine")
    with Lab.init(root / "lab") as lab:
        lab.generate_key("alice", "model")
        lab.generate_key("erin", "evaluation")
        lab.add_capability(_wine_contract(root), sign_with="alice")
        for split, folder in _wine_splits(root).items():
            info = lab.import_path(
                folder,
                kind="dataset",
                capability="wine",
                license="CC-BY-4.0",
                name=f"wine-{split}",
                sign_with="erin",
            )
            lab.set_alias("wine", f"data-{split}", str(info.id), reason="wine splits")
    return root / "lab"


def _cli(lab: Path, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["--lab", str(lab), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_tabular_suite_is_created_and_a_trained_mlp_scores_on_every_metric(
    wine_lab: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Lab.open(wine_lab, read_only=True) as lab:
        dev_folder = lab.supply.workspace.materialise(
            dev := lab.alias("wine", "data-dev"),
            lab.manifest(dev),  # type: ignore[arg-type]
        )
    from breedlab.datasets import read_dataset

    dev_ids = read_dataset(dev_folder).ids
    critical = tmp_path / "critical.txt"
    critical.write_text("\n".join(dev_ids[:3]) + "\n\n", "utf-8")
    code, out, err = _cli(
        wine_lab, "suite", "create", "wine", "--critical", str(critical), "--key", "erin",
        "--seed", "5", "--json", capsys=capsys,
    )  # fmt: skip
    assert code == 0, err
    built = json.loads(out)
    assert built["modality"] == "tabular" and built["primary"] == "robust_accuracy"
    assert built["perturbations"] == ["feature_noise", "missing"]
    assert built["critical_items"] == 3 and built["dev_items"] == len(dev_ids) == 36
    with Lab.open(wine_lab) as lab:
        suite_id = lab.alias("wine", "suite")
        assert suite_id is not None and str(suite_id) == built["suite"]
        details = lab.show(str(suite_id))
        assert "erin" in details.signed_by
        manifest = lab.manifest(suite_id)
        assert manifest.parents[:2] == (
            lab.alias("wine", "data-dev"),
            lab.alias("wine", "data-sealed"),
        )
        spec = load_suite(lab.supply, suite_id)
        noise, missing = spec.perturbations
        assert isinstance(noise, FeatureNoise) and isinstance(missing, MissingValues)
        assert noise.std == pytest.approx([1.0] * 13, abs=1e-5)  # train was standardised
        assert spec.critical_items == tuple(sorted(dev_ids[:3]))

        contract = lab.capability("wine")[1]
        executor = lab.executor(1)
        data = tuple((r, lab.alias("wine", f"data-{r}")) for r in ("train", "fitness"))
        [run] = run_plans(
            lab.supply,
            [
                Plan(
                    operator="train",
                    label="train/wine-mlp",
                    params={
                        "architecture": "mlp",
                        "hidden": [16],
                        "epochs": 40,
                        "name": "wine-mlp",
                    },
                    parents=(),
                    data=data,  # type: ignore[arg-type]
                    seed=0,
                )
            ],
            contract,
            executor=executor,
            round_id="wine-setup",
        )
        assert run.failure is None, run.failure
        [evaluation] = evaluate_models(
            lab.supply, list(run.candidates), suite_id, executor=executor
        )
    assert evaluation.scorecard is not None, evaluation.failure
    card = evaluation.scorecard
    names = [str(m["name"]) for m in spec.metrics]
    assert set(names) >= {"accuracy", "macro_f1", "ece", "brier", "nll", "robust_accuracy"}
    assert {"accuracy_feature_noise", "accuracy_missing", "critical", "latency_p95_ms"} <= set(
        names
    )
    for split in ("dev", "sealed"):
        for name in names:
            value = np.asarray(card.per_item(name, split), dtype=np.float64)
            assert np.all(np.isfinite(value)), (name, split)
    dev = card.splits["dev"]
    assert dev.clean.accuracy > 0.8  # wine is easy once standardised
    assert np.mean(card.per_item("macro_f1", "dev")) == pytest.approx(dev.clean.macro_f1)
    assert np.mean(card.per_item("ece", "dev")) == pytest.approx(dev.clean.ece)
    # The viability controller reads the suite's records and judges every metric.
    policy = policy_from_suite(spec.policy, spec.metrics, seed=spec.seed, sigma_aa=0.0)
    evidence = paired_evidence(policy, card, "self", card, "dev")
    [assessment] = assess([evidence], policy)
    judged = {r.spec.name: r for r in assessment.results}
    assert set(judged) == set(names)
    for name, result in judged.items():  # a model against itself: no change, no veto
        assert result.delta in (0.0, None), (name, result.delta)
        assert result.verdict not in (Verdict.NO_DATA, Verdict.WORSE, Verdict.CRITICAL), name
    assert card.summary()["dev"]["variants"].keys() == {"clean", "feature_noise", "missing"}  # type: ignore[index, union-attr]


def test_suite_create_refuses_unknown_names_and_ids_naming_them(
    wine_lab: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    critical = tmp_path / "critical.txt"
    critical.write_text("wine-nope\nwine-zzz\n", "utf-8")
    code, _, err = _cli(
        wine_lab, "suite", "create", "wine", "--critical", str(critical), capsys=capsys
    )
    assert code == 3 and "critical items not in the dev split: wine-nope, wine-zzz" in err
    code, _, err = _cli(
        wine_lab, "suite", "create", "wine", "--perturbations", "noise", capsys=capsys
    )
    assert code == 3 and "unknown perturbation noise; known: feature_noise, missing" in err
    code, _, err = _cli(
        wine_lab, "suite", "create", "wine", "--metrics", "accuracy,f2", capsys=capsys
    )
    assert code == 3 and "unknown metric f2; known: robust_accuracy, accuracy" in err
    code, _, err = _cli(wine_lab, "suite", "create", "wine", "--metrics", "accuracy", capsys=capsys)
    assert code == 3 and "primary metric robust_accuracy" in err
    code, out, err = _cli(
        wine_lab, "suite", "create", "wine", "--perturbations", "missing",
        "--metrics", "robust_accuracy,macro_f1,ece", "--name", "wine-small", capsys=capsys,
    )  # fmt: skip
    assert code == 0, err
    assert "metrics: robust_accuracy, macro_f1, ece (primary robust_accuracy)" in out
    assert "perturbations: missing" in out

"""Issue 12 from the shell: ``capability init`` → ``capability add`` → ``dataset import``,
with scikit-learn's breast-cancer data written to a CSV by the test."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from sklearn.datasets import load_breast_cancer

from breedlab.cli import main

CANCER = load_breast_cancer()
FEATURES = [str(n).replace(" ", "_") for n in CANCER.feature_names]


def _csv(path: Path, bad_row: int | None = None) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*FEATURES, "diagnosis"])
        for i, (x, y) in enumerate(zip(CANCER.data, CANCER.target, strict=True), start=1):
            row = [repr(float(v)) for v in x]
            if i == bad_row:
                row[3] = "n/a"
            writer.writerow([*row, str(CANCER.target_names[y])])
    return path


@pytest.fixture
def lab_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BREEDLAB_LAB", str(tmp_path / "lab"))
    monkeypatch.chdir(tmp_path)
    assert main(["init"]) == 0
    assert main(["keys", "generate", "erin", "--role", "evaluation"]) == 0
    return tmp_path


def test_a_user_brings_a_tabular_capability_and_its_data(
    lab_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labels = ",".join(str(n) for n in CANCER.target_names)
    init = ["capability", "init", "cancer", "--task", "classification", "--modality", "tabular"]
    assert main([*init, "--labels", labels, "--features", ",".join(FEATURES)]) == 0
    assert "cancer.toml" in capsys.readouterr().out
    assert main(init) == 7  # never overwrites
    assert "never overwrites" in capsys.readouterr().err
    assert main(["capability", "add", "cancer.toml"]) == 0
    capsys.readouterr()
    data = _csv(lab_dir / "cancer.csv")
    cmd = ["dataset", "import", str(data), "--capability", "cancer", "--label-column", "diagnosis"]
    assert main([*cmd, "--seed", "1", "--key", "erin", "--license", "CC-BY-4.0", "--json"]) == 0
    out = capsys.readouterr()
    result = json.loads(out.out)
    assert "checked 569 rows" in out.err
    assert [p["split"] for p in result["packages"]] == ["train", "fitness", "dev", "sealed"]
    assert sum(p["items"] for p in result["packages"]) == result["rows"] == 569
    sealed = result["packages"][3]
    assert sealed["alias"] == "cancer@data-sealed"
    assert set(sealed["labels"]) == {"malignant", "benign"}
    assert main(["show", "cancer@data-sealed", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["signed_by"] == ["erin"] and shown["manifest"]["license"] == "CC-BY-4.0"
    # The same file and seed: the same packages, nothing new.
    assert main([*cmd, "--seed", "1", "--key", "erin", "--license", "CC-BY-4.0", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert [p["package"] for p in again["packages"]] == [p["package"] for p in result["packages"]]
    assert not any(p["created"] for p in again["packages"])


def test_a_bad_row_is_one_line_naming_row_and_column(
    lab_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["capability", "init", "cancer", "--task", "classification",
                 "--modality", "tabular", "--labels", "malignant,benign",
                 "--features", ",".join(FEATURES)]) == 0  # fmt: skip
    assert main(["capability", "add", "cancer.toml"]) == 0
    capsys.readouterr()
    data = _csv(lab_dir / "bad.csv", bad_row=17)
    code = main(["dataset", "import", str(data), "--capability", "cancer",
                 "--label-column", "diagnosis"])  # fmt: skip
    assert code == 3
    err = capsys.readouterr().err
    assert f"row 17, column '{FEATURES[3]}': 'n/a' is not a number" in err
    assert "Traceback" not in err
    assert main(["packages", "--capability", "cancer", "--json"]) == 0
    assert [p["kind"] for p in json.loads(capsys.readouterr().out)] == ["capability"]


def test_a_blank_contract_is_refused_until_filled(
    lab_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["capability", "init", "notes", "--task", "classification",
                 "--modality", "text", "--out", "n.toml"]) == 0  # fmt: skip
    assert main(["capability", "add", "n.toml"]) == 3
    assert "n.toml: field 'labels'" in capsys.readouterr().err
    text = (lab_dir / "n.toml").read_text().replace("labels = []", 'labels = ["a", "b"]')
    (lab_dir / "n.toml").write_text(text)
    assert main(["capability", "add", "n.toml"]) == 0
    assert main(["capability", "init", "x", "--task", "regression", "--modality", "text"]) == 3
    assert main(["capability", "init", "x", "--task", "classification", "--modality", "audio"]) == 3


def test_the_reviews_data_step_from_the_shell(
    lab_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dataset", "reviews", "--key", "erin", "--seed", "2", "--json"]) == 0
    out = capsys.readouterr()
    result = json.loads(out.out)
    assert "12752 kept" in out.err
    assert result["size"] == "ci" and result["cleaning"]["kept"] == 12_752
    assert [p["alias"] for p in result["packages"]] == [
        f"reviews@data-{s}" for s in ("train", "fitness", "dev", "sealed")
    ]
    assert main(["dataset", "reviews", "--key", "erin", "--size", "all"]) == 3
    assert "is not one of: full, ci" in capsys.readouterr().err

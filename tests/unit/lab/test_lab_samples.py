"""``breedlab samples``: what a new user imports, made locally (no hub)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_wine

from breedlab.errors import InvalidRequest
from breedlab.families.torch_family import TorchFamily
from breedlab.lab.samples import write_samples


def test_the_wine_samples_are_the_wine_table_and_a_baseline_that_reads_it(
    tmp_path: Path,
) -> None:
    made = write_samples("wine", tmp_path)
    with made.data.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    wine = load_wine()
    assert len(rows) == len(wine.target) == 178
    assert rows[0]["id"] == "wine-000" and rows[0]["cultivar"] == "class_0"
    assert float(rows[0]["proline"]) == wine.data[0, -1]
    features = [k for k in rows[0] if k not in ("id", "cultivar")]
    x = np.array([[float(r[k]) for k in features] for r in rows], dtype=np.float32)
    model = TorchFamily().load(made.model)
    assert model.config["standardize"] is True and model.config["inputs"] == 13
    held_out = slice(1, None, 2)  # the rows the baseline did not see
    accuracy = (model.predict_proba(x[held_out]).argmax(axis=1) == wine.target[held_out]).mean()
    assert accuracy >= 0.8


def test_samples_refuse_an_unknown_capability_and_an_existing_target(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="no samples for 'letters'"):
        write_samples("letters", tmp_path)
    (tmp_path / "wine.csv").write_text("mine")
    with pytest.raises(InvalidRequest, match="exists"):
        write_samples("wine", tmp_path)
    assert (tmp_path / "wine.csv").read_text() == "mine"

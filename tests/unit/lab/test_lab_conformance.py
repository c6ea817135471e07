"""A model answers its capability contract (issue 10): at import, at release approval
and before every alias move, a model's family is known, it loads strictly within the
capability's memory budget, and a probe built from the contract gets one finite
probability per label."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from breedlab import canonical
from breedlab.cli import main
from breedlab.errors import IntegrityError, InvalidRequest
from breedlab.families.torch_family import build_module, save_torch_model
from breedlab.lab import Lab
from breedlab.supply import conformance
from builders import make_model_dir

DIGITS = {"architecture": "mlp", "classes": 10, "hidden": [4], "inputs": 64}


def _model(root: Path, name: str, **changes: Any) -> Path:
    config = {**DIGITS, **changes}
    torch.manual_seed(0)
    save_torch_model(root / name, config, build_module(config))
    return root / name


def _import(lab: Lab, folder: Path, **kw: Any) -> str:
    info = lab.import_path(folder, kind="model", capability="digits", license="MIT", **kw)
    return str(info.id)


def test_a_model_answering_the_contract_imports_with_its_declared_family(
    lab: Lab, tmp_path: Path
) -> None:
    pid = _import(lab, _model(tmp_path, "m"))
    assert lab.manifest(lab.resolve(pid)).family == "torch"  # config.json declares it


def test_a_model_with_the_wrong_output_width_is_refused_at_import_naming_the_fix(
    lab: Lab, tmp_path: Path
) -> None:
    before = len(lab.events())
    with pytest.raises(IntegrityError, match=r"outputs 3 classes but capability 'digits' lists 10"):
        _import(lab, _model(tmp_path, "three", classes=3))
    assert len(lab.events()) == before  # nothing registered


def test_a_model_with_the_wrong_input_width_is_refused_at_import(lab: Lab, tmp_path: Path) -> None:
    with pytest.raises(
        IntegrityError, match=r"does not take the contract's input \(shape \[64\]\)"
    ):
        _import(lab, _model(tmp_path, "narrow", inputs=16))


def test_a_model_over_the_capabilitys_memory_budget_is_refused_before_it_is_built(
    lab: Lab, tmp_path: Path
) -> None:
    # digits: memory_mib = 512. hidden 2**31 would be 161061273610 float32 parameters.
    folder = _model(tmp_path, "huge")
    config = canonical.decode((folder / "config.json").read_bytes())
    assert isinstance(config, dict)
    (folder / "config.json").write_bytes(canonical.encode({**config, "hidden": [2**31]}))
    with pytest.raises(IntegrityError, match=r"config 'hidden' .* over the budget of 512 MiB"):
        _import(lab, folder)


def _weights_only(tmp_path: Path) -> Path:
    """A folder with bytes named like weights and nothing that says how to load them."""
    folder = tmp_path / "bytes"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"weights")
    return folder


def test_an_unloadable_folder_that_names_a_family_is_refused_at_import(
    lab: Lab, tmp_path: Path
) -> None:
    folder = _weights_only(tmp_path)
    with pytest.raises(IntegrityError, match=r"has no config\.json"):
        _import(lab, folder, family="torch")
    with pytest.raises(InvalidRequest, match="unknown model family 'onnx'"):
        _import(lab, folder, family="onnx")


def test_a_model_without_a_family_is_refused_at_import_naming_the_flag(
    lab: Lab, tmp_path: Path
) -> None:
    folder = _weights_only(tmp_path)
    before = (len(lab.events()), len(lab.packages()))
    with pytest.raises(InvalidRequest, match=r"names no model family, .* --family torch"):
        _import(lab, folder)
    assert (len(lab.events()), len(lab.packages())) == before
    lab.import_path(folder, kind="dataset", capability="digits", license="MIT")  # not a model


def test_a_registered_model_is_probed_again_before_release_and_every_alias_move(
    lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid = _import(lab, make_model_dir(tmp_path, "good"), sign_with="alice")
    probed: list[str] = []
    real = conformance.check_answers_contract

    def spy(
        folder: Path, family: str | None, contract: Any, *, what: str, base: bool = False
    ) -> None:
        probed.append(what)
        real(folder, family, contract, what=what, base=base)

    monkeypatch.setattr(conformance, "check_answers_contract", spy)
    lab.approve(pid, purpose="parent", key="alice")
    assert probed == []  # a parent approval serves nothing
    lab.approve(pid, purpose="release", key="pat")
    lab.set_alias("digits", "staging", pid)
    lab.promote("digits", pid, key="pat")
    assert len(probed) == 3 and all(w.startswith("model ") for w in probed)


def test_a_model_answering_the_contract_is_approved_aliased_and_promoted(
    lab: Lab, tmp_path: Path
) -> None:
    pid = _import(lab, make_model_dir(tmp_path, "good"), sign_with="alice")
    lab.approve(pid, purpose="release", key="pat")
    lab.set_alias("digits", "staging", pid)
    lab.promote("digits", pid, key="pat")
    assert str(lab.alias("digits", "champion")) == pid


def test_the_cli_refuses_a_wrong_width_import_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from breedlab.capabilities import contract_path

    monkeypatch.setenv("BREEDLAB_LAB", str(tmp_path / "lab"))
    assert main(["init"]) == 0
    assert main(["capability", "add", str(contract_path("digits"))]) == 0
    capsys.readouterr()
    folder = _model(tmp_path, "three", classes=3)
    code = main(["import", str(folder), "--kind", "model", "--capability", "digits",
                 "--license", "MIT"])  # fmt: skip
    assert code == 5
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "outputs 3 classes but capability 'digits' lists 10 labels" in err


def test_the_cli_refuses_a_contract_whose_shape_is_not_numbers_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from breedlab.capabilities import contract_path

    monkeypatch.setenv("BREEDLAB_LAB", str(tmp_path / "lab"))
    assert main(["init"]) == 0
    bad = tmp_path / "bad.toml"
    bad.write_text(contract_path("digits").read_text().replace("shape = [64]", 'shape = ["x"]'))
    capsys.readouterr()
    assert main(["capability", "add", str(bad)]) == 3
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "field 'input.shape'" in err


def _text_capability(lab: Lab, tmp_path: Path) -> str:
    from breedlab.registry.contract_template import write_contract_template

    path = tmp_path / "blurbs.toml"
    write_contract_template(
        path, name="blurbs", task="classification", modality="text", labels=("neg", "pos")
    )
    lab.add_capability(path)
    return "blurbs"


def test_a_bare_text_encoder_imports_as_a_base_but_is_never_aliased_or_released(
    lab: Lab, tmp_path: Path
) -> None:
    from text_models import save_tiny_bert, save_tiny_encoder_classifier

    capability = _text_capability(lab, tmp_path)
    encoder = tmp_path / "encoder"
    save_tiny_bert(encoder, classifier=False)
    info = lab.import_path(
        encoder, kind="model", capability=capability, license="MIT", family="transformers"
    )
    with pytest.raises(IntegrityError, match="bare encoder with no classification head"):
        lab.set_alias(capability, "staging", str(info.id))
    with pytest.raises(IntegrityError, match="bare encoder"):
        lab.approve(str(info.id), purpose="release", key="pat")
    # The same encoder with a head answers the contract (two labels, two classes).
    headed = save_tiny_encoder_classifier(tmp_path / "headed", classes=2)
    pid = lab.import_path(
        headed, kind="model", capability=capability, license="MIT", family="transformers"
    ).id
    lab.set_alias(capability, "staging", str(pid))
    assert lab.alias(capability, "staging") == pid

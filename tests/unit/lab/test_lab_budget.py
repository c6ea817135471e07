"""Every path that loads a registered model bounds its config by the capability's memory
budget, not the families' 2 GiB default (issue 10): the evaluator's sandbox job, an
operator's parent, the server and the shadow process. The model here is imported under
digits' 512 MiB budget; the contract then tightens it to 1 MiB (a new version of the
capability), so the model (1.2 MB of float32 weights) is within 2 GiB but over budget."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from breedlab.capabilities import contract_path
from breedlab.datasets import write_dataset
from breedlab.digest import Digest
from breedlab.errors import IntegrityError, InvalidRequest
from breedlab.evaluator.digits import DIGITS_PERTURBATIONS, digits_splits
from breedlab.evaluator.suite import SUITE_FILE, Budget, SuiteSpec
from breedlab.factory.operators.torch_models import load_parent
from breedlab.families.torch_family import build_module, save_torch_model
from breedlab.lab import Lab
from breedlab.lab.builtin import DIGITS_METRICS, DIGITS_POLICY
from breedlab.lab.evaluation import evaluate_models
from breedlab.lab.operator_runs import model_input
from breedlab.sandbox.executors import LocalExecutor
from breedlab.serving.served_models import load_served
from breedlab.serving.shadow_process import READY, RESULT, job_frame

OVER = r"over the budget of 1 MiB"


def _model(root: Path, name: str, hidden: int) -> Path:
    config = {"architecture": "mlp", "classes": 10, "hidden": [hidden], "inputs": 64}
    torch.manual_seed(0)
    save_torch_model(root / name, config, build_module(config))
    return root / name


@pytest.fixture
def tightened(lab: Lab, tmp_path: Path) -> tuple[Lab, Digest, Digest]:
    """(lab, a 4096-wide model over the 1 MiB budget, a 4-wide model within it)."""
    ids = []
    for name, hidden in (("wide", 4096), ("narrow", 4)):
        info = lab.import_path(
            _model(tmp_path, name, hidden), kind="model", capability="digits", license="MIT"
        )
        ids.append(info.id)
    text = contract_path("digits").read_text("utf-8")
    assert "memory_mib = 512" in text
    tight = tmp_path / "digits.toml"
    tight.write_text(text.replace("memory_mib = 512", "memory_mib = 1"), "utf-8")
    lab.add_capability(tight)
    assert lab.capability("digits")[1].budget.memory_bytes == 1 << 20
    return lab, ids[0], ids[1]


def _suite(lab: Lab, tmp_path: Path) -> Digest:
    splits = digits_splits(0)
    refs = {}
    for split in (splits.dev, splits.sealed):
        folder = tmp_path / "data" / split.name.value
        write_dataset(folder, x=split.x.astype(np.float32), y=split.y, ids=split.item_ids)
        info = lab.import_path(folder, kind="dataset", capability="digits", license="CC0-1.0")
        refs[split.name.value] = str(info.id)
    spec = SuiteSpec(
        capability="digits",
        name="budget-suite",
        seed=0,
        splits=refs,
        perturbations=DIGITS_PERTURBATIONS,
        critical_items=(),
        metrics=DIGITS_METRICS,
        policy=DIGITS_POLICY,
        budget=Budget(),
    )
    (tmp_path / "suite").mkdir()
    (tmp_path / "suite" / SUITE_FILE).write_bytes(spec.to_bytes())
    info = lab.import_path(tmp_path / "suite", kind="suite", capability="digits", license="MIT")
    return info.id


def test_an_evaluation_job_refuses_a_model_over_its_capabilitys_budget(
    tightened: tuple[Lab, Digest, Digest], tmp_path: Path
) -> None:
    lab, wide, narrow = tightened
    suite = _suite(lab, tmp_path)
    over, within = evaluate_models(lab.supply, [wide, narrow], suite, executor=LocalExecutor(2))
    assert not over.ok and over.failure is not None
    assert "evaluation error" in over.failure and "config 'hidden'" in over.failure
    assert OVER in over.failure
    assert within.ok, within.failure  # the budget, not the suite, refused the wide one


def test_an_operator_refuses_a_parent_over_its_capabilitys_budget(
    tightened: tuple[Lab, Digest, Digest],
) -> None:
    lab, wide, narrow = tightened
    parent = model_input(lab.supply, wide)
    assert parent.max_bytes == 1 << 20
    with pytest.raises(InvalidRequest, match=r"\(1\.2 MiB\), " + OVER):  # before it is built
        load_parent(parent)
    config, _ = load_parent(model_input(lab.supply, narrow))
    assert config["hidden"] == [4]


def test_the_server_refuses_a_model_over_its_capabilitys_budget(
    tightened: tuple[Lab, Digest, Digest],
) -> None:
    lab, wide, narrow = tightened
    with pytest.raises(IntegrityError, match=OVER):
        load_served(lab, wide)
    assert load_served(lab, narrow).max_bytes == 1 << 20  # what the shadow process gets


def test_the_shadow_process_refuses_a_model_over_the_budget_it_is_given(
    tightened: tuple[Lab, Digest, Digest],
) -> None:
    lab, wide, narrow = tightened
    specs = [
        [
            str(model_input(lab.supply, pid).folder),
            "torch",
            [str(i) for i in range(10)],
            64,
            1 << 20,
            0,  # max_length: float rows, not texts
        ]
        for pid in (wide, narrow)
    ]
    jobs_r, jobs_w = os.pipe()
    results_r, results_w = os.pipe()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-I",
            "-c",
            "from breedlab.serving.shadow_process import main; main()",
            json.dumps(specs),
            str(jobs_r),
            str(results_w),
            "normal",
        ],
        pass_fds=(jobs_r, results_w),
        stderr=subprocess.PIPE,
    )
    os.close(jobs_r)
    os.close(results_w)
    row = [8.0] * 64
    # job 1: the wide model as the shadow; job 2: the narrow one
    os.write(jobs_w, job_frame(1, 0, 1, row) + job_frame(2, 1, 1, row))
    os.close(jobs_w)  # end of input: the process answers what it holds, then exits
    with os.fdopen(results_r, "rb") as results:
        raw = results.read()
    _, err = proc.communicate(timeout=300)
    answers = [RESULT.unpack_from(raw, at) for at in range(0, len(raw), RESULT.size)]
    assert answers[0][0] == READY
    labels = {job: label for job, label, _, _ in answers[1:]}
    assert labels[1] == -1 and labels[2] >= 0  # the wide model answers every job as failed
    [line] = err.decode().strip().splitlines()
    assert OVER in line and "config 'hidden'" in line

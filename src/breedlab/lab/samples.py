"""Sample folders for the README's tours: data and a model a user could have brought.

``breedlab samples digits DIR`` writes ``DIR/digits-data`` (the built-in digits training
split, in breedlab's dataset format) and ``DIR/my-model`` (a small MLP trained on it here,
in the torch family's format). ``breedlab samples wine DIR`` writes what a team bringing
its own tabular capability starts from: ``DIR/wine.csv`` (scikit-learn's wine data: an
``id`` column, 13 measurements, the ``cultivar`` label) and ``DIR/wine-model``, a quick
baseline MLP the team trained on half of the rows (every other one), standardizing its
inputs. Nothing comes from a hub: the data ship with scikit-learn, the models are
trained locally in a second or two.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from breedlab.datasets import write_dataset
from breedlab.errors import InvalidRequest
from breedlab.evaluator.digits import digits_splits

__all__ = ["SAMPLE_CAPABILITIES", "Samples", "write_samples"]

#: The digits sample model: what ``train`` would make for digits, small enough to train
#: in-process.
SAMPLE_CONFIG = {"architecture": "mlp", "classes": 10, "hidden": [32], "inputs": 64}
#: The wine baseline: 13 measurements on very different scales, hence ``standardize``.
WINE_CONFIG = {"architecture": "mlp", "classes": 3, "hidden": [8], "inputs": 13}
WINE_LABEL = "cultivar"


@dataclass(frozen=True, slots=True)
class Samples:
    data: Path
    model: Path
    train_accuracy: float


def write_samples(capability: str, out: Path, *, seed: int = 0) -> Samples:
    """Write the sample data and model for ``capability`` (one of
    :data:`SAMPLE_CAPABILITIES`) under ``out``.

    Raises:
        InvalidRequest: no samples for that capability, or a target exists.
    """
    if capability not in SAMPLE_CAPABILITIES:
        known = ", ".join(SAMPLE_CAPABILITIES)
        raise InvalidRequest(f"no samples for {capability!r}", hint=f"samples exist for: {known}")
    return SAMPLE_CAPABILITIES[capability](out, seed)


def _digits(out: Path, seed: int) -> Samples:
    data, model = _free(out / "digits-data", out / "my-model")
    train = digits_splits(seed).train
    write_dataset(
        data,
        x=train.x.astype(np.float32),
        y=train.y,
        ids=train.item_ids,
        meta={"split": "train", "seed": seed, "source": "sklearn.datasets.load_digits"},
    )
    accuracy = _train_model(model, SAMPLE_CONFIG, train.x, train.y, seed=seed, steps=200)
    return Samples(data=data, model=model, train_accuracy=accuracy)


def _wine(out: Path, seed: int) -> Samples:
    from sklearn.datasets import load_wine

    data, model = _free(out / "wine.csv", out / "wine-model")
    wine = load_wine()
    names = [re.sub(r"[^a-z0-9]+", "_", n.lower()).strip("_") for n in wine.feature_names]
    labels = [str(n) for n in wine.target_names]
    out.mkdir(parents=True, exist_ok=True)
    with data.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", *names, WINE_LABEL])
        for i, (row, label) in enumerate(zip(wine.data, wine.target, strict=True)):
            writer.writerow([f"wine-{i:03d}", *(f"{v:g}" for v in row), labels[label]])
    half = slice(0, None, 2)  # the rows the team had when it trained its baseline
    config = {**WINE_CONFIG, "standardize": True}
    x = np.asarray(wine.data[half], dtype=np.float32)
    accuracy = _train_model(model, config, x, wine.target[half], seed=seed, steps=60)
    return Samples(data=data, model=model, train_accuracy=accuracy)


SAMPLE_CAPABILITIES: Mapping[str, Callable[[Path, int], Samples]] = {
    "digits": _digits,
    "wine": _wine,
}


def _free(*paths: Path) -> tuple[Path, ...]:
    for path in paths:
        if path.exists():
            raise InvalidRequest(f"{path} exists; choose another folder")
    return paths


def _train_model(
    folder: Path,
    config: Mapping[str, Any],
    x_rows: npt.NDArray[Any],
    y_rows: npt.NDArray[Any],
    *,
    seed: int,
    steps: int,
) -> float:
    """Full-batch Adam on (x, y), saved in the torch family's format; the accuracy on
    the rows it was trained on."""
    import torch

    from breedlab.families.torch_family import (
        build_module,
        save_torch_model,
        set_input_statistics,
    )

    torch.manual_seed(seed)
    module = build_module(config)
    x = torch.tensor(x_rows, dtype=torch.float32)  # a copy: the split is read-only
    y = torch.tensor(y_rows, dtype=torch.int64)
    set_input_statistics(module, x)
    opt = torch.optim.Adam(module.parameters(), lr=0.01)
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(module(x), y)
        loss.backward()  # type: ignore[no-untyped-call]  # torch leaves it untyped
        opt.step()
    module.eval()
    with torch.no_grad():
        accuracy = float((module(x).argmax(dim=1) == y).float().mean())
    save_torch_model(folder, config, module)
    return accuracy

"""Sample folders for the README's tour: a dataset and a model a user could have brought.

``breedlab samples digits DIR`` writes ``DIR/digits-data`` (the built-in digits training
split, in breedlab's dataset format) and ``DIR/my-model`` (a small MLP trained on it here,
in the torch family's format). Nothing comes from a hub: the data ships with
scikit-learn, the model is trained locally in a second or two.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from breedlab.datasets import write_dataset
from breedlab.errors import InvalidRequest
from breedlab.evaluator.digits import digits_splits

__all__ = ["Samples", "write_samples"]

#: The sample model: what ``train`` would make for digits, small enough to train in-process.
SAMPLE_CONFIG = {"architecture": "mlp", "classes": 10, "hidden": [32], "inputs": 64}


@dataclass(frozen=True, slots=True)
class Samples:
    data: Path
    model: Path
    train_accuracy: float


def write_samples(capability: str, out: Path, *, seed: int = 0, steps: int = 200) -> Samples:
    """Write the sample dataset and model folders for a built-in capability.

    Raises:
        InvalidRequest: not a built-in capability with samples, or a folder exists.
    """
    if capability != "digits":
        raise InvalidRequest(
            f"no samples for {capability!r}", hint="samples exist for the built-in 'digits'"
        )
    data, model = out / "digits-data", out / "my-model"
    for folder in (data, model):
        if folder.exists():
            raise InvalidRequest(f"{folder} exists; choose another folder")
    import torch

    from breedlab.families.torch_family import build_module, save_torch_model

    train = digits_splits(seed).train
    write_dataset(
        data,
        x=train.x.astype(np.float32),
        y=train.y,
        ids=train.item_ids,
        meta={"split": "train", "seed": seed, "source": "sklearn.datasets.load_digits"},
    )
    torch.manual_seed(seed)
    module = build_module(SAMPLE_CONFIG)
    x = torch.tensor(train.x, dtype=torch.float32)  # a copy: the split is read-only
    y = torch.tensor(train.y, dtype=torch.int64)
    opt = torch.optim.Adam(module.parameters(), lr=0.01)
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(module(x), y)
        loss.backward()  # type: ignore[no-untyped-call]  # torch leaves it untyped
        opt.step()
    module.eval()
    with torch.no_grad():
        accuracy = float((module(x).argmax(dim=1) == y).float().mean())
    save_torch_model(model, SAMPLE_CONFIG, module)
    return Samples(data=data, model=model, train_accuracy=accuracy)

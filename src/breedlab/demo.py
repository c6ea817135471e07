"""The scripted tour behind ``breedlab demo`` (what ``make demo`` runs).

It builds a fresh lab on the embedded default (files + SQLite, no servers) and walks the
supply chain of seed stages 0-1 end to end, with real data and a real model: keys for
the four owners, the built-in ``digits`` capability contract, the digits data as a
dataset package, a multinomial logistic regression trained on it (scikit-learn) and
stored as safetensors, signatures, a release approval, the ``champion`` alias, refusals
of what must be refused, a signed ledger checkpoint, full verification, lineage and the
reconstruction of the champion from the store.

Each step is reported through a callback so the CLI can render it; the tour itself
prints nothing.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from breedlab.capabilities import contract_path
from breedlab.errors import Conflict, InvalidRequest, LabError
from breedlab.lab import Lab

__all__ = ["DemoSummary", "Step", "run_demo"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    title: str
    detail: str
    command: str  # the CLI command a user would type for this step


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoSummary:
    lab: Path
    champion: str
    dataset: str
    accuracy: str
    events: int
    steps: int


def _digits_arrays(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = digits.data.astype(np.float32)
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.25, random_state=seed, stratify=y
    )
    return x_train, x_test, y_train, y_test


def _write_dataset(folder: Path, seed: int) -> None:
    from safetensors.numpy import save_file

    x_train, x_test, y_train, y_test = _digits_arrays(seed)
    folder.mkdir(parents=True)
    save_file(
        {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test},
        str(folder / "digits.safetensors"),
    )
    (folder / "README.md").write_text(
        "scikit-learn's bundled UCI optical recognition of handwritten digits, "
        f"split 75/25 stratified with seed {seed}.\n",
        "utf-8",
    )


def _train_model(folder: Path, seed: int) -> float:
    """A real multinomial logistic regression; returns held-out accuracy."""
    from safetensors.numpy import save_file
    from sklearn.linear_model import LogisticRegression

    x_train, x_test, y_train, y_test = _digits_arrays(seed)
    scale = np.float32(1.0 / 16.0)
    model = LogisticRegression(max_iter=2000, C=1.0)
    model.fit(x_train * scale, y_train)
    accuracy = float(model.score(x_test * scale, y_test))
    folder.mkdir(parents=True)
    save_file(
        {
            "weight": model.coef_.astype(np.float32),
            "bias": model.intercept_.astype(np.float32),
        },
        str(folder / "model.safetensors"),
    )
    config = {"architecture": "linear", "inputs": 64, "classes": 10, "input_scale": "0.0625"}
    (folder / "config.json").write_text(json.dumps(config, sort_keys=True, indent=2), "utf-8")
    return accuracy


def run_demo(path: Path, report: Callable[[Step], None], *, seed: int = 0) -> DemoSummary:
    """Run the tour in a fresh lab at ``path``; ``report`` receives each step."""
    steps = 0

    def say(title: str, detail: str, command: str) -> None:
        nonlocal steps
        steps += 1
        report(Step(title=title, detail=detail, command=command))

    lab = Lab.init(path, name="demo")
    with lab:
        say("init", f"a fresh lab at {path} (files + SQLite)", f"breedlab init {path}")
        owners = {"alice": "model", "erin": "evaluation", "sam": "security", "pat": "production"}
        for name, role in owners.items():
            lab.generate_key(name, role)
        say(
            "keys",
            "Ed25519 keys for the model, evaluation, security and production owners "
            "(plus 'lab', which signs ledger checkpoints)",
            "breedlab keys generate alice --role model",
        )
        contract = lab.add_capability(contract_path("digits"), sign_with="alice")
        say(
            "capability",
            f"stage 0 contract 'digits' registered as {contract.id.short}",
            "breedlab capability add digits.toml --sign-with alice",
        )
        with tempfile.TemporaryDirectory(prefix="breedlab-demo-") as scratch:
            data_dir = Path(scratch) / "digits-data"
            _write_dataset(data_dir, seed)
            dataset = lab.import_path(
                data_dir,
                kind="dataset",
                capability="digits",
                license="CC-BY-4.0",
                name="digits-data",
                sign_with="erin",
            )
            say(
                "import dataset",
                f"{dataset.manifest.total_size} bytes as {dataset.id.short}, signed by erin",
                "breedlab import digits-data --kind dataset --capability digits "
                "--license CC-BY-4.0 --sign-with erin",
            )
            model_dir = Path(scratch) / "digits-linear"
            accuracy = _train_model(model_dir, seed)
            model = lab.import_path(
                model_dir,
                kind="model",
                capability="digits",
                license="Apache-2.0",
                name="digits-linear",
                parents=[str(dataset.id)],
                family="linear",
            )
            say(
                "import model",
                f"logistic regression trained here, held-out accuracy {accuracy:.3f}, "
                f"stored as {model.id.short} with the dataset as its parent",
                "breedlab import digits-linear --kind model --capability digits "
                "--license Apache-2.0 --parent digits-data-id",
            )
            again = lab.import_path(
                model_dir,
                kind="model",
                capability="digits",
                license="Apache-2.0",
                name="digits-linear",
                parents=[str(dataset.id)],
                family="linear",
            )
            say(
                "re-import",
                f"same content, same id {again.id.short}; nothing new written "
                f"(created={again.created})",
                "breedlab import digits-linear ...",
            )
            pickle_file = Path(scratch) / "weights.pt"
            pickle_file.write_bytes(b"\x80\x04not really a pickle")
            try:
                lab.import_path(pickle_file, kind="model", capability="digits", license="MIT")
            except InvalidRequest as e:
                say("refused", f"pickle weights: {e.message}", "breedlab import weights.pt ...")
        lab.sign(str(model.id), key="alice")
        say(
            "sign",
            f"{model.id.short} signed by alice (DSSE, in-toto)",
            "breedlab sign ID --key alice",
        )
        lab.approve(str(model.id), purpose="release", key="pat")
        lab.approve(str(model.id), purpose="parent", key="alice")
        say(
            "approve",
            "pat (production) approves it for release; alice (model) as a parent",
            "breedlab approve ID --purpose release --key pat",
        )
        move = lab.set_alias("digits", "champion", str(model.id), reason="first champion")
        say(
            "alias",
            f"digits@champion -> {model.id.short} (compare-and-swap, ledger seq {move.seq})",
            "breedlab alias set digits champion ID",
        )
        try:  # a writer that read the alias before it was set: its move must lose
            lab.set_alias("digits", "champion", str(model.id), expect=None)
        except Conflict as e:
            say("refused", f"a stale alias move: {e.message}", "breedlab alias set ...")
        checkpoint = lab.checkpoint()
        say(
            "checkpoint",
            f"signed RFC 6962 tree head over {checkpoint.payload['tree_size']} events",
            "breedlab ledger checkpoint",
        )
        results = lab.verify()
        store = lab.verify_store()
        ledger = lab.verify_ledger()
        bad = [r for r in results if not r.ok]
        if bad or store.problems:
            raise LabError(f"demo verification failed: {bad or store.problems}")
        say(
            "verify --all",
            f"{len(results)} packages, {store.objects} objects re-hashed, "
            f"{ledger.events} ledger events chained, checkpoints verified",
            "breedlab verify --all",
        )
        graph = lab.lineage("digits@champion")
        chain = " <- ".join(f"{n.name} ({n.kind})" for n in graph.ancestors)
        say("lineage", chain, "breedlab lineage digits@champion")
        rebuilt = lab.reconstruct("digits@champion")
        say(
            "reconstruct",
            f"champion rebuilt from the store into {rebuilt.folder}; "
            f"recomputed id {'matches' if rebuilt.match else 'DIFFERS'}",
            "breedlab reconstruct digits@champion",
        )
        if not rebuilt.match:
            raise LabError("the champion could not be reconstructed")
        events = len(lab.events())
    return DemoSummary(
        lab=path,
        champion=str(model.id),
        dataset=str(dataset.id),
        accuracy=f"{accuracy:.3f}",
        events=events,
        steps=steps,
    )

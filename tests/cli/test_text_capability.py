"""Issue 12 for text, from the shell: a CSV of short reviews -> ``capability init
--modality text`` -> ``capability add`` -> ``dataset import --text-column`` -> ``suite
create`` -> a tiny random-init BERT classifier (MiniLM's tokenizer) imported with
``--family transformers``, promoted, and scored on the suite by ``breedlab failures``."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path
from typing import Any

import pytest

from breedlab import canonical
from breedlab.cli import main
from breedlab.datasets import read_any_dataset, read_text_dataset
from breedlab.digest import Digest
from breedlab.evaluator.text_perturbations import TEXT_PERTURBATIONS
from breedlab.lab import Lab
from breedlab.ledger import EventKind
from builders import tiny_text_classifier

GOOD = ("great", "wonderful", "delightful", "superb", "moving", "charming")
BAD = ("awful", "boring", "dull", "terrible", "tedious", "clumsy")
FILLER = ("and the cast", "from start to finish", "in every scene", "all along", "at times")


def _reviews(path: Path, rows: int = 240, seed: int = 0) -> Path:
    """``rows`` short positive/negative sentences (alternating), seeded; lengths vary."""
    rng = random.Random(seed)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "review", "sentiment"])
        for i in range(rows):
            positive = i % 2 == 0
            words = GOOD if positive else BAD
            extra = " ".join(rng.choice(FILLER) for _ in range(rng.randrange(0, 4)))
            text = f"The film was {rng.choice(words)} {extra} and {rng.choice(words)}."
            writer.writerow([f"r{i}", " ".join(text.split()), "pos" if positive else "neg"])
    return path


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> Any:
    code = main([*args, "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)


@pytest.fixture
def lab_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BREEDLAB_LAB", str(tmp_path / "lab"))
    monkeypatch.chdir(tmp_path)
    assert main(["init"]) == 0
    for name, role in (("alice", "model"), ("erin", "evaluation"), ("pat", "production")):
        assert main(["keys", "generate", name, "--role", role]) == 0
    return tmp_path


def _scorecards(lab: Path) -> list[dict[str, Any]]:
    """Every ``candidate.scored`` record in the ledger, oldest first."""
    with Lab.open(lab, read_only=True) as opened:
        events = opened.supply.events(kinds=(EventKind.CANDIDATE_SCORED,))
        return [
            canonical.decode(
                opened.supply.blobs.get_bytes(Digest.parse(str(e.payload["scorecard"])))
            )
            for e in events
        ]


@pytest.mark.slow
def test_a_text_capability_is_suited_scored_and_mined_from_the_shell(
    lab_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    init = ["capability", "init", "reviews", "--task", "classification", "--modality", "text"]
    assert main([*init, "--labels", "neg,pos"]) == 0
    assert main(["capability", "add", "reviews.toml", "--sign-with", "alice"]) == 0
    capsys.readouterr()
    data = _reviews(lab_dir / "reviews.csv")
    imported = _run(
        ["dataset", "import", str(data), "--capability", "reviews", "--text-column", "review",
         "--label-column", "sentiment", "--id-column", "id", "--key", "erin",
         "--license", "CC0-1.0"],
        capsys,
    )  # fmt: skip
    assert sum(p["items"] for p in imported["packages"]) == 240

    # --perturbations chooses among the text kinds, and names them when asked for others.
    assert main(["suite", "create", "reviews", "--perturbations", "typos,noise"]) == 3
    assert "known: typos, case, whitespace, word_dropout, word_swap" in capsys.readouterr().err
    chosen = _run(["suite", "create", "reviews", "--perturbations", "word_swap,typos"], capsys)
    assert chosen["perturbations"] == ["typos", "word_swap"]
    suite = _run(["suite", "create", "reviews", "--key", "erin"], capsys)
    assert suite["modality"] == "text"
    assert suite["perturbations"] == list(TEXT_PERTURBATIONS)
    assert suite["dev_items"] >= 30

    model = tiny_text_classifier(lab_dir / "tiny-bert", labels=2, seed=0)
    info = _run(
        ["import", str(model), "--kind", "model", "--capability", "reviews",
         "--family", "transformers", "--license", "MIT", "--sign-with", "alice"],
        capsys,
    )  # fmt: skip
    model_id = info["id"]
    assert main(["approve", model_id, "--purpose", "parent", "--key", "alice"]) == 0
    assert main(["approve", model_id, "--purpose", "release", "--key", "alice"]) == 0
    assert main(["approve", model_id, "--purpose", "release", "--key", "pat"]) == 0
    assert main(["promote", "reviews", model_id, "--key", "pat"]) == 0
    capsys.readouterr()

    # `failures` scores the champion on the suite (a candidate.scored record), twice.
    first = _run(["failures", "reviews"], capsys)
    second = _run(["failures", "reviews"], capsys)
    cards = _scorecards(lab_dir / "lab")[-2:]
    assert len(cards) == 2
    for card in cards:
        assert card["model"] == model_id and card["suite"] == suite["suite"]
        for split in ("dev", "sealed"):
            variants = card["summary"][split]["variants"]
            assert set(variants) == {"clean", *TEXT_PERTURBATIONS}
            assert all(0.0 <= float(v) <= 1.0 for v in variants.values())
        assert int(card["budget"]["batch_size"]) == 1
    # Seeded perturbations and a deterministic model: the same per-item outputs, the same
    # scores; only the timings may differ.
    assert cards[0]["outputs"] == cards[1]["outputs"]
    for split in ("dev", "sealed"):
        assert cards[0]["summary"][split] == cards[1]["summary"][split]
    assert first == second

    # Clusters of a text capability are text packages (confusions exist for any
    # classifier; a random-init model makes plenty).
    assert first, "a random-init classifier confuses the classes"
    with Lab.open(lab_dir / "lab", read_only=True) as lab:
        for cluster in first:
            ref = Digest.parse(cluster["id"])
            folder = lab.supply.workspace.materialise(ref, lab.manifest(ref))
            texts = read_text_dataset(folder)
            assert len(texts) == cluster["items"] > 0
            assert cluster["kind"] in {"perturbation", "confusion", "slice"}
        train = lab.alias("reviews", "data-train")
        assert train is not None
        whole = read_any_dataset(lab.supply.workspace.materialise(train, lab.manifest(train)))
    confusion = [c for c in first if c["kind"] == "confusion"]
    assert confusion and confusion[0]["items"] == len(whole)  # both classes confused

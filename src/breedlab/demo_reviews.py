"""The second half of ``breedlab demo``: the built-in text capability ``reviews`` at CI
size (issue 12), in the same lab as the digits tour.

all-MiniLM-L6-v2 from its package becomes the champion through a ``train`` run in the
sandbox (a head on frozen embeddings); the frozen text suite; the champion's failure
clusters; one round whose LoRA, fine-tune, distillation, int8 and merge candidates are
really trained and scored on the Rotten Tomatoes sentences; then ``serve`` answers a
review over HTTP on 127.0.0.1. Like the digits tour, nothing about the outcome is
scripted: the round may pick a winner or archive everything, and the tour says which.
``breedlab demo --quick`` skips it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from breedlab.lab import Lab
from breedlab.lab.breeding import RoundResult
from breedlab.lab.builtin import Bootstrap

__all__ = ["REVIEW", "ReviewsTour", "reviews_tour"]

#: The sentence the tour sends to ``serve`` (not in the corpus).
REVIEW = "A warm, funny and beautifully acted film."

Say = Callable[[str, str, str], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class ReviewsTour:
    boot: Bootstrap
    round: RoundResult
    answer: dict[str, object]  # serve's answer to REVIEW


def reviews_tour(
    lab: Lab,
    say: Say,
    progress: Callable[[str], None],
    *,
    seed: int = 0,
    workers: int = 2,
    keys: tuple[str, str, str] = ("alice", "erin", "pat"),
) -> ReviewsTour:
    """Bootstrap ``reviews`` (CI size), mine its failures, run a round, serve a review.

    ``keys``: the model, evaluation and production owners' keys, already in the lab.
    """
    import httpx

    from breedlab.http import create_app, serving

    model_key, evaluation_key, production_key = keys
    boot = lab.bootstrap_reviews(
        model_key=model_key,
        evaluation_key=evaluation_key,
        production_key=production_key,
        size="ci",
        seed=seed,
        workers=workers,
        progress=progress,
    )
    say(
        "reviews",
        f"Rotten Tomatoes sentences split by movie (signed), all-MiniLM-L6-v2 imported, "
        f"champion {boot.champion.short} = a head trained on it in the sandbox, text suite "
        f"with {boot.critical_items} critical items, a fine-tuned sibling parent",
        "breedlab capability bootstrap reviews --size ci --model-key alice "
        "--evaluation-key erin --production-key pat",
    )
    clusters = lab.failures("reviews", workers=workers)
    worst = clusters[0] if clusters else None
    say(
        "failures",
        f"{len(clusters)} text failure clusters; worst: "
        + (worst.description if worst else "none"),
        "breedlab failures reviews",
    )
    result = lab.run_round(
        "reviews",
        failure_cluster=None if worst is None else str(worst.id),
        workers=workers,
        seed=seed,
        progress=progress,
    )
    candidates = result.record["candidates"]
    assert isinstance(candidates, list)
    scores = ", ".join(
        f"{c['label']} {float(c['scorecard']['dev']['accuracy']):.3f}: {c['outcome']}"
        for c in candidates
    )
    champion = float(result.record["champion_scorecard"]["dev"]["accuracy"])
    verdict = (
        f"winner {result.winner.short} moved to reviews@shadow"
        if result.winner is not None
        else "no winner: every candidate archived with its reasons"
    )
    say(
        "round",
        f"champion dev accuracy {champion:.3f}; {scores}; {verdict}",
        "breedlab round reviews",
    )
    with (
        serving(create_app(lab, token="demo-admin-token")) as url,
        httpx.Client(base_url=url, timeout=120) as c,
    ):
        response = c.post("/v1/reviews/predict", json={"unit": "demo", "inputs": REVIEW})
        response.raise_for_status()
        answer: dict[str, object] = response.json()
    probabilities = answer["probabilities"]
    assert isinstance(probabilities, list)
    say(
        "serve text",
        f"{REVIEW!r} -> {answer['label']} "
        f"(p = {max(float(p) for p in probabilities):.2f}, by the champion)",
        f'curl -d \'{{"unit": "u1", "inputs": "{REVIEW}"}}\' 127.0.0.1:8000/v1/reviews/predict',
    )
    return ReviewsTour(boot=boot, round=result, answer=answer)

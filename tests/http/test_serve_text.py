"""Issue 12, serving text end to end: a text capability's champion (a tiny BERT sequence
classifier imported with family ``transformers``) answers a text as the model itself
does; ``predict:batch`` answers a list of texts with one call of the model, as the
texts one by one; the contract's ``max_length`` and input type are enforced; the shadow
process gets texts in length-prefixed UTF-8 frames and its pairs are recorded; a canary
between two text models routes by cohort and records both answers."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from breedlab.errors import InvalidRequest
from breedlab.families import load_model
from breedlab.http import create_app
from breedlab.lab import Lab
from breedlab.lab import release as controller
from breedlab.release import CanaryPolicy, ShadowGate
from breedlab.serving.served_models import WARM_UP_TEXT
from breedlab.supply.evidence import read_evidence
from release_lab import TEXT_MAX_LENGTH, TEXTS, client, serving, text_release_lab

TOKEN = "test-token"
LABELS = ("neg", "pos")
#: The canary drill's gate: one answered shadow pair lets the canary start.
DRILL_GATE = ShadowGate(min_pairs=1, min_agreement=0.0, max_p50_ratio=1e9, max_p95_ratio=1e9)

Served = tuple[Lab, dict[str, str], dict[str, Path], str]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    lab, ids, folders = text_release_lab(tmp_path_factory.mktemp("text"))
    app = create_app(lab, token=TOKEN, max_batch=8, canary_policy=CanaryPolicy(stage_min=40))
    with serving(app) as url:
        yield lab, ids, folders, url
    lab.close()


def _reference(folder: Path, texts: list[str]) -> list[tuple[str, list[float]]]:
    """What the model in ``folder`` answers, loaded on its own, one text at a time."""
    model = load_model(folder, "transformers")
    out = []
    for text in texts:
        [probs] = model.predict_proba([text])
        out.append((LABELS[int(np.argmax(probs))], [float(p) for p in probs]))
    return out


def test_a_text_is_answered_as_the_champion_model_answers_it(served: Served) -> None:
    _, ids, folders, url = served
    expected = _reference(folders["champion"], list(TEXTS))
    with client(url) as c:
        answers = [c.post("/v1/notes/predict", json={"unit": "u", "inputs": t}) for t in TEXTS]
    for r, (label, probs) in zip(answers, expected, strict=True):
        assert r.status_code == 200, r.text
        assert r.json()["label"] == label and r.json()["role"] == "champion"
        assert r.json()["package"] == ids["champion"]
        assert r.json()["probabilities"] == pytest.approx(probs, rel=1e-9, abs=1e-12)
    assert len({label for label, _ in expected}) == 2  # the texts really differ


def test_a_batch_of_texts_answers_as_the_texts_one_by_one(served: Served) -> None:
    _, _, _, url = served
    items = [{"unit": f"b{i}", "inputs": t} for i, t in enumerate(TEXTS)]
    with client(url) as c:
        singles = [c.post("/v1/notes/predict", json=item).json() for item in items]
        batch = c.post("/v1/notes/predict:batch", json={"requests": items})
        over = c.post("/v1/notes/predict:batch", json={"requests": items + items[:1]})
    assert batch.status_code == 200, batch.text
    results = batch.json()["results"]
    assert [r["label"] for r in results] == [s["label"] for s in singles]
    for got, single in zip(results, singles, strict=True):
        # One forward pass pads the texts to one length: equal but for the last digits.
        assert got["probabilities"] == pytest.approx(single["probabilities"], rel=1e-5)
        assert got["role"] == "champion" and got["package"] == single["package"]
    assert over.status_code == 422
    assert over.json()["message"] == "requests: a batch holds at most 8 requests (got 9)"


def test_a_batch_of_texts_calls_the_model_once(served: Served) -> None:
    lab, _, _, _ = served
    router = lab.router()
    try:
        route = router.refresh().routes["notes"]
        calls: list[int] = []

        class Counting:
            def __init__(self, model: Any) -> None:
                self.model = model

            def predict_proba(self, x: Any) -> Any:
                calls.append(len(x))
                return self.model.predict_proba(x)

        counted = replace(
            route, champion=replace(route.champion, model=Counting(route.champion.model))
        )  # type: ignore[arg-type]
        assert router.batches(counted)
        answers = router.predict_batch(counted, list(TEXTS))
        assert calls == [len(TEXTS)]
        singles = [
            router.predict(route, unit="u", inputs=t, truth=None, low_risk=True) for t in TEXTS
        ]
        assert [a.label for a in answers] == [s.label for s in singles]
    finally:
        router.close()


@pytest.mark.parametrize(
    ("inputs", "says"),
    [
        ("x" * (TEXT_MAX_LENGTH + 1), f"more than the contract's max_length of {TEXT_MAX_LENGTH}"),
        ([0.5, 1.0], "inputs: this capability takes one text (a JSON string)"),
        ({"text": "a film"}, "inputs: this capability takes one text (a JSON string)"),
        ("   ", "inputs: the text is empty"),
        ("the film \ud800", "inputs: "),  # refused as the body is read (pydantic)
    ],
)
def test_a_text_request_that_breaks_the_contract_is_a_422(
    served: Served, inputs: object, says: str
) -> None:
    _, _, _, url = served
    one = {"unit": "u", "inputs": inputs}
    two = {"requests": [{"unit": "a", "inputs": "a film"}, one]}
    json_type = {"Content-Type": "application/json"}
    with client(url) as c:  # JSON as any client may write it: a lone surrogate escaped
        r = c.post("/v1/notes/predict", content=json.dumps(one), headers=json_type)
        batch = c.post("/v1/notes/predict:batch", content=json.dumps(two), headers=json_type)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "invalid_request" and says in r.json()["message"]
    assert batch.status_code == 422 and batch.json()["message"].startswith("requests.1")


def test_a_text_champion_warms_up_on_a_fixed_short_text(served: Served) -> None:
    lab, _, _, _ = served
    router = lab.router()
    try:
        champion = router.refresh().routes["notes"].champion
        assert champion.takes_text and champion.warm_up_row == WARM_UP_TEXT
        label, probs = champion.predict(champion.warm_up_row)
        assert label in LABELS and sum(probs) == pytest.approx(1.0)
    finally:
        router.close()


def test_a_mirrored_text_reaches_the_shadow_process_and_is_recorded_as_a_pair(
    served: Served,
) -> None:
    lab, ids, folders, _ = served
    texts = [TEXTS[i % len(TEXTS)] for i in range(40)] + ["Ünïcödé — the film was 好"]
    router = lab.router()
    try:
        controller.start_shadow(lab.supply, "notes", ids["head"])
        route = router.refresh().routes["notes"]
        assert route.shadow is not None
        assert router.mirror.wait_ready(timeout=300)  # an event, with a generous bound
        for i, text in enumerate(texts):
            router.predict(route, unit=f"s{i}", inputs=text, truth=None, low_risk=True)
        router.mirror.flush()
        assert router.mirror.dropped == 0
        pid, pairs, _ = controller.read_shadow_pairs(lab.supply, "notes")
    finally:
        controller.stop_shadow(lab.supply, "notes")
        router.close()
    assert str(pid) == ids["head"]
    assert len(pairs) == len(texts) and all(p.answered for p in pairs)
    champion = [label for label, _ in _reference(folders["champion"], texts)]
    shadow = [label for label, _ in _reference(folders["head"], texts)]
    # Pairs are written as the shadow process answers them: compare as multisets.
    assert Counter((p.primary, p.shadow) for p in pairs) == Counter(
        zip(champion, shadow, strict=True)
    )
    assert any(p.timed for p in pairs)


def test_a_canary_between_two_text_models_routes_by_cohort_and_records_both_answers(
    served: Served,
) -> None:
    lab, ids, folders, url = served
    texts = [TEXTS[i % len(TEXTS)] for i in range(30)]
    with client(url, TOKEN) as c:
        assert c.post("/admin/notes/shadow/start", json={"package": ids["bert2"]}).is_success
        for i in range(4):
            c.post("/v1/notes/predict", json={"unit": f"s{i}", "inputs": TEXTS[i]})
        c.get("/admin/notes/shadow/report")  # flushes the mirror
        started = controller.start_canary(lab.supply, "notes", percent=50, gate=DRILL_GATE)
        answers = [
            c.post("/v1/notes/predict", json={"unit": f"unit-{i}", "inputs": t, "risk": "low"})
            for i, t in enumerate(texts)
        ]
        c.post("/admin/notes/canary/stop")
        c.post("/admin/notes/shadow/stop")
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    roles = [a.json()["role"] for a in answers]
    assert {"canary", "champion"} <= set(roles)
    references = {
        "canary": _reference(folders["bert2"], texts),
        "champion": _reference(folders["champion"], texts),
    }
    for i, a in enumerate(answers):
        label, probs = references[a.json()["role"]][i]
        assert a.json()["label"] == label
        assert a.json()["probabilities"] == pytest.approx(probs, rel=1e-9, abs=1e-12)
    records = read_evidence(lab.supply, "notes", "canary", started.seq).records
    observed = {str(r["unit"]): r for r in records if "unit" in r}
    canary_units = {f"unit-{i}" for i, role in enumerate(roles) if role == "canary"}
    assert set(observed) == canary_units
    for i, t in enumerate(texts):
        if f"unit-{i}" in observed:
            record = observed[f"unit-{i}"]
            assert record["canary"] == references["canary"][i][0], t
            assert record["champion"] == references["champion"][i][0], t


def test_an_offline_replay_of_a_text_request_log_pairs_every_text(
    served: Served, tmp_path: Path
) -> None:
    lab, ids, folders, _ = served
    log = tmp_path / "requests.jsonl"
    log.write_text("".join(json.dumps({"unit": "u", "inputs": t}) + "\n" for t in TEXTS))
    _, replayed = controller.replay_shadow(lab.supply, "notes", log, ref=ids["head"])
    assert replayed.agreement is not None and replayed.agreement.trials == len(TEXTS)
    # The agreement counted is the two models' own: labels compared text by text.
    champion = _reference(folders["champion"], list(TEXTS))
    head = _reference(folders["head"], list(TEXTS))
    same = sum(a == b for (a, _), (b, _) in zip(champion, head, strict=True))
    assert replayed.agreement.successes == same
    # A line that is not a text for this capability names the file and line.
    log.write_text(json.dumps({"unit": "u", "inputs": [1.0, 2.0]}) + "\n")
    with pytest.raises(InvalidRequest, match=r"requests\.jsonl:1: "):
        controller.replay_shadow(lab.supply, "notes", log, ref=ids["head"])

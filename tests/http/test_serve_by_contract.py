"""Issue 12, serving by contract: a tabular capability of one's own (wine) answers
requests that name their features as it answers positional ones; ``predict:batch``
answers a bounded list of requests as if each were sent alone, in order, and refuses the
whole batch -- routing none of it -- when one request is bad, naming its index; a text
request is checked against the contract's ``max_length`` (text end to end: test_serve_text)."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from breedlab.errors import InvalidRequest
from breedlab.http import create_app
from breedlab.lab import Lab
from breedlab.lab import release as controller
from breedlab.registry.capability import InputType
from breedlab.release import CanaryPolicy, ShadowGate
from breedlab.serving.request_inputs import InputSchema
from release_lab import body, client, release_lab, serving, use_release_key

TOKEN = "test-token"
MAX_BATCH = 8
#: The canary drill's gate: one answered shadow pair lets the canary start.
DRILL_GATE = ShadowGate(min_pairs=1, min_agreement=0.0, max_p50_ratio=1e9, max_p95_ratio=1e9)

Served = tuple[Lab, str, list[str], list[dict[str, float]]]


def _wine_lab(root: Path) -> tuple[Lab, list[str], list[dict[str, float]]]:
    """What a team bringing wine has after `Your own capability` steps 1 and 4: the
    contract (alcohol given a range of its own), the sample model imported as the
    torch family, approved by two keys and promoted."""
    samples = Lab.samples("wine", root)
    with Lab.init(root / "lab") as lab:
        for name, role in (("alice", "model"), ("pat", "production")):
            lab.generate_key(name, role)
    use_release_key(root / "lab", "pat")
    contract = Lab.init_contract(
        root / "wine.toml",
        "wine",
        task="classification",
        modality="tabular",
        table=samples.data,
        label_column="cultivar",
        ignore=("id",),
    )
    text = contract.read_text("utf-8")
    commented = '# [input.ranges]              # optional: a range per feature\n# alcohol = "0..20"'
    assert commented in text
    contract.write_text(text.replace(commented, '[input.ranges]\nalcohol = "0..20"'), "utf-8")
    lab = Lab.open(root / "lab")
    lab.add_capability(contract)
    model = str(
        lab.import_path(
            samples.model,
            kind="model",
            capability="wine",
            license="MIT",
            sign_with="alice",
            name="wine-model",
            family="torch",
        ).id
    )
    lab.approve(model, purpose="parent", key="alice")
    lab.approve(model, purpose="release", key="alice")
    lab.approve(model, purpose="release", key="pat")  # medium risk: a second approver
    lab.promote("wine", model, key="pat")
    with samples.data.open(newline="") as f:
        table = list(csv.DictReader(f))
    features = [c for c in table[0] if c not in ("id", "cultivar")]
    rows = [{name: float(r[name]) for name in features} for r in table]
    return lab, features, rows


@pytest.fixture(scope="module")
def wine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    lab, features, rows = _wine_lab(tmp_path_factory.mktemp("wine"))
    app = create_app(lab, token=TOKEN, max_batch=MAX_BATCH)
    with serving(app) as url:
        yield lab, url, features, rows
    lab.close()


def _named(row: dict[str, float], unit: str) -> dict[str, object]:
    return {"unit": unit, "inputs": dict(reversed(list(row.items())))}  # any order will do


def _positional(features: list[str], row: dict[str, float], unit: str) -> dict[str, object]:
    return {"unit": unit, "inputs": [row[name] for name in features]}


def _ok_count(metrics: str) -> float:
    line = 'breedlab_requests_total{capability="wine",outcome="ok",role="champion"} '
    found = re.search(re.escape(line) + r"(\S+)", metrics)
    return 0.0 if found is None else float(found[1])


def test_named_features_answer_exactly_as_the_positional_row(wine: Served) -> None:
    lab, url, features, rows = wine
    with client(url) as c:
        for i in range(0, len(rows), 9):
            named = c.post("/v1/wine/predict", json=_named(rows[i], f"u{i}"))
            positional = c.post("/v1/wine/predict", json=_positional(features, rows[i], f"u{i}"))
            assert named.status_code == positional.status_code == 200, named.text
            assert named.json() == positional.json()
    # The row the router sees: the object's values in contract order, as float32.
    schema = lab.router().table.routes["wine"].champion.schema
    assert schema.features == tuple(features)
    named_row = schema.check(schema.row(dict(reversed(list(rows[0].items())))))  # type: ignore[arg-type]
    assert named_row.dtype.name == "float32"
    assert named_row.tolist() == schema.check([rows[0][f] for f in features]).tolist()


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda r: {k: v for k, v in r.items() if k != "ash"}, "inputs: missing 'ash'"),
        (lambda r: {**r, "colour": 1.0}, "inputs: unknown 'colour'"),
        (
            lambda r: {k: v for k, v in r.items() if k not in ("ash", "hue")} | {"x": 1.0},
            "inputs: unknown 'x'; missing 'ash', 'hue'",
        ),
        (lambda r: {**r, "hue": "abc"}, "inputs.hue: 'abc' is not a number"),
        (lambda r: {**r, "hue": True}, "inputs.hue: 'True' is not a number"),
        (lambda r: {**r, "hue": None}, "inputs.hue: 'None' is not a number"),
        (
            lambda r: {**r, "alcohol": 99.0},
            "inputs[0] (alcohol): 99.0 is outside the contract's range 0..20",
        ),
        (lambda r: {**r, "proline": 1e39}, "inputs[12] (proline): 1e+39 is not a finite float32"),
        (lambda r: "a sentence", "inputs: this capability takes 13 numbers, not a text"),
        (lambda r: {}, "inputs: missing 'alcohol', 'malic_acid'"),
    ],
)
def test_a_bad_named_request_is_a_422_naming_the_feature(
    wine: Served, change: object, says: str
) -> None:
    _, url, _, rows = wine
    with client(url) as c:
        r = c.post("/v1/wine/predict", json={"unit": "u", "inputs": change(rows[0])})  # type: ignore[operator]
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "invalid_request"
    assert r.json()["message"].startswith(says), r.json()["message"]


def test_a_positional_row_out_of_a_feature_s_range_names_the_feature(wine: Served) -> None:
    _, url, features, rows = wine
    body = _positional(features, {**rows[0], "alcohol": -1.0}, "u")
    with client(url) as c:
        r = c.post("/v1/wine/predict", json=body)
        assert r.status_code == 422
        assert r.json()["message"].startswith("inputs[0] (alcohol): -1.0 is outside")
        short = c.post("/v1/wine/predict", json={"unit": "u", "inputs": [1.0, 2.0]})
        assert short.json()["message"] == "inputs must hold 13 numbers (got 2)"
        letters = c.post("/v1/wine/predict", json={"unit": "u", "inputs": ["a"] * 13})
        assert letters.status_code == 422
        assert letters.json()["message"].startswith("inputs.0: ")  # no union member named


def test_a_batch_answers_each_request_as_it_would_alone_in_order(wine: Served) -> None:
    _, url, features, rows = wine
    items = [
        _named(rows[i], f"b{i}") if i % 2 else _positional(features, rows[i], f"b{i}")
        for i in range(0, 8 * 20, 20)
    ]
    with client(url) as c:
        singles = [c.post("/v1/wine/predict", json=item).json() for item in items]
        batch = c.post("/v1/wine/predict:batch", json={"requests": items})
    assert batch.status_code == 200, batch.text
    assert batch.json() == {"results": singles}
    assert len({s["label"] for s in singles}) > 1  # the rows really differ


def test_a_batch_over_the_bound_is_refused_naming_the_bound(wine: Served) -> None:
    _, url, features, rows = wine
    items = [_positional(features, rows[i], f"b{i}") for i in range(MAX_BATCH + 1)]
    with client(url) as c:
        before = _ok_count(c.get("/metrics").text)
        over = c.post("/v1/wine/predict:batch", json={"requests": items})
        empty = c.post("/v1/wine/predict:batch", json={"requests": []})
        after = _ok_count(c.get("/metrics").text)
    assert over.status_code == 422
    assert over.json()["message"] == f"requests: a batch holds at most {MAX_BATCH} requests (got 9)"
    assert empty.status_code == 422 and empty.json()["message"].startswith("requests: ")
    assert after == before


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ({"inputs": {"alcohol": 13.0}}, "requests.5: inputs: missing 'malic_acid'"),
        ({"label": "merlot"}, "requests.5: label: 'merlot' is not one of wine's labels"),
        ({"unit": ""}, "requests.5.unit: "),
        ({"inputs": "a sentence"}, "requests.5: inputs: this capability takes 13 numbers"),
    ],
)
def test_one_bad_request_fails_the_whole_batch_by_its_index_and_none_is_routed(
    wine: Served, bad: dict[str, object], says: str
) -> None:
    _, url, _, rows = wine
    items = [_named(rows[i], f"b{i}") for i in range(MAX_BATCH)]
    items[5] = {**items[5], **bad}
    with client(url) as c:
        before = _ok_count(c.get("/metrics").text)
        r = c.post("/v1/wine/predict:batch", json={"requests": items})
        after = _ok_count(c.get("/metrics").text)
    assert r.status_code == 422, r.text
    assert r.json()["message"].startswith(says), r.json()["message"]
    assert after == before  # validated whole before any was routed


def test_a_batch_routes_each_unit_to_the_canary_or_champion_as_single_requests_do(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    lab, ids = release_lab(tmp_path_factory.mktemp("batch-canary"))
    lab.approve(ids["good"], purpose="release", key="pat")
    app = create_app(lab, token=TOKEN, canary_policy=CanaryPolicy(stage_min=40))
    try:
        with serving(app) as url, client(url, TOKEN) as c:
            assert c.post("/admin/digits/shadow/start", json={"package": ids["good"]}).is_success
            for i in range(10):
                c.post("/v1/digits/predict", json=body(i))
            c.get("/admin/digits/shadow/report")  # flushes the mirror
            controller.start_canary(lab.supply, "digits", percent=50, gate=DRILL_GATE)
            items = [body(i, unit=f"unit-{i}") for i in range(40)]
            batched: list[str] = []
            for start in range(0, len(items), 20):
                r = c.post("/v1/digits/predict:batch", json={"requests": items[start : start + 20]})
                assert r.status_code == 200, r.text
                batched += [a["role"] for a in r.json()["results"]]
            singles = [c.post("/v1/digits/predict", json=item).json()["role"] for item in items]
            status = c.get("/admin/digits/status").json()
    finally:
        lab.close()
    assert batched == singles  # the sticky cohort: one unit, one role, however it came
    assert {"canary", "champion"} <= set(batched)
    assert status["canary"] == ids["good"] and status["stage"] is not None


def test_a_text_request_is_checked_against_the_contract() -> None:
    schema = InputSchema(type=InputType.TEXT, size=0, max_length=20)
    assert schema.row("a fine film") == "a fine film"
    for bad, says in (
        ("", "inputs: the text is empty"),
        ("   ", "inputs: the text is empty"),
        ("x" * 21, "inputs: the text holds 21 characters, more than the contract's max_length"),
        ("a \ud800 film", "inputs: the text is not valid Unicode (a lone surrogate at 2)"),
        ([1.0, 2.0], "inputs: this capability takes one text"),
        ({"text": "hi"}, "inputs: this capability takes one text"),
    ):
        with pytest.raises(InvalidRequest, match=f"^{re.escape(says)}"):
            schema.row(bad)  # type: ignore[arg-type]
    tensor = InputSchema(size=2, bounds=((0.0, 1.0), (0.0, 1.0)))
    with pytest.raises(InvalidRequest, match=r"^inputs: this capability's inputs have no names"):
        tensor.row({"a": 1.0, "b": 1.0})
    with pytest.raises(InvalidRequest, match=r"^inputs\[1\]: 2.0 is outside"):
        tensor.check([0.5, 2.0])

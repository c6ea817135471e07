"""Bad input never takes the server down or blames a model (issue 10): bodies are
bounded before they are parsed, every error has one shape, the contract's range and
labels are enforced, client errors are not model errors, and the docs work offline."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from breedlab.errors import InvalidRequest
from breedlab.http import create_app
from breedlab.lab import Lab, promotion
from release_lab import body, release_lab

LIMIT = 64 << 10


@pytest.fixture(scope="module")
def app_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, TestClient]]:
    root = tmp_path_factory.mktemp("limits")
    lab, _ = release_lab(root)
    with TestClient(create_app(lab, token="t", max_body=LIMIT)) as c:
        yield lab, c
    lab.close()


def _one_shape(r: object) -> dict[str, str]:
    answer = r.json()  # type: ignore[attr-defined]
    assert set(answer) == {"error", "message"}, answer
    assert "\n" not in answer["message"]
    return answer  # type: ignore[no-any-return]


def _count(metrics: str, series: str) -> float:
    lines = [ln for ln in metrics.splitlines() if ln.startswith(series)]
    return float(lines[0].split()[-1]) if lines else 0.0


OK = 'breedlab_requests_total{capability="digits",outcome="ok",role="champion"}'


def _asgi_post(app: object, path: str, chunks: list[bytes]) -> httpx.Response:
    """POST ``chunks`` as separate ASGI messages (no socket to merge them), chunked."""

    async def go() -> httpx.Response:
        async def stream() -> AsyncIterator[bytes]:
            for chunk in chunks:
                yield chunk

        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            headers = {"content-type": "application/json"}
            return await c.post(path, content=stream(), headers=headers)

    return asyncio.run(go())


def test_a_refused_body_never_reaches_the_route(app_client: tuple[Lab, TestClient]) -> None:
    # A whole, valid body, then padding past the limit: the route must not act on the
    # part that arrived before the limit was passed (a promote would have happened).
    _, c = app_client
    before = _count(c.get("/metrics").text, OK)
    good = json.dumps(body(0)).encode()
    r = _asgi_post(c.app, "/v1/digits/predict", [good, *[b" " * 4096] * (LIMIT // 4096 + 1)])
    assert r.status_code == 413 and _one_shape(r)["error"] == "invalid_request"
    r = _asgi_post(c.app, "/v1/digits/predict", [good[:-1], b"," + b"[" * 40 + b"]" * 40, b"}"])
    assert r.status_code == 400 and "deeper than 32" in _one_shape(r)["message"]
    assert _count(c.get("/metrics").text, OK) == before
    assert _asgi_post(c.app, "/v1/digits/predict", [good[:20], good[20:]]).status_code == 200


@pytest.mark.parametrize(
    ("nested", "status"),
    [
        (b"[" * 32 + b"]" * 32, 400),  # one past the bound, far below any parser's limit
        (b'{"a":' * 40 + b"1" + b"}" * 40, 400),
        (b"[" * 31 + b"]" * 31, 422),  # at the bound (the body's own object is one level)
        (b'"' + b"[{" * 500 + b'"', 422),  # brackets inside a string are not nesting
        (b'"\\\\"' + b"[" * 33 + b"]" * 33, 400),  # an escaped backslash ends no string
    ],
    ids=["33-levels", "41-levels", "32-levels", "in-a-string", "after-backslashes"],
)
def test_json_nested_deeper_than_the_bound_is_refused_before_it_is_parsed(
    app_client: tuple[Lab, TestClient], nested: bytes, status: int
) -> None:
    _, c = app_client
    raw = b'{"unit": "u", "inputs": [1], "extra": ' + nested + b"}"
    r = c.post("/v1/digits/predict", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    message = _one_shape(r)["message"]
    assert ("nests deeper than 32 levels" in message) == (status == 400)


def test_a_unit_full_of_brackets_is_served(app_client: tuple[Lab, TestClient]) -> None:
    _, c = app_client
    r = c.post("/v1/digits/predict", json={**body(1), "unit": "[{" * 100 + '\\"' + "[" * 50})
    assert r.status_code == 200, r.text


def test_a_body_over_the_limit_is_refused_before_it_is_read(
    app_client: tuple[Lab, TestClient],
) -> None:
    _, c = app_client
    big = json.dumps({**body(0), "label": "3" * (LIMIT + 10)}).encode()
    r = c.post("/v1/digits/predict", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "larger than" in _one_shape(r)["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for i in range(0, len(big), 4096):
            yield big[i : i + 4096]

    r = c.post("/v1/digits/predict", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and _one_shape(r)["error"] == "invalid_request"
    assert c.get("/healthz").status_code == 200
    assert c.post("/v1/digits/predict", json=body(0)).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "content", "status"),
    [
        ("GET", "/nowhere", None, 404),
        ("GET", "/v1/digits/predict", None, 405),
        ("POST", "/v1/digits/predict", b"{not json", 422),
        ("POST", "/v1/digits/predict", b'{"unit": "\xff\xfe", "inputs": [1]}', 400),
        ("POST", "/v1/digits/predict", b"[" * 20_000 + b"]" * 20_000, 400),
        ("POST", "/v1/digits/predict", b'{"unit": "u", "inputs": [Infinity]}', 422),
    ],
    ids=["no-route", "method", "not-json", "not-utf8", "deeply-nested", "infinity"],
)
def test_every_error_has_one_shape_and_none_is_a_500(
    app_client: tuple[Lab, TestClient], method: str, path: str, content: bytes | None, status: int
) -> None:
    _, c = app_client
    headers = {"content-type": "application/json"}
    r = c.request(method, path, content=content, headers=headers)
    assert r.status_code == status, r.text
    _one_shape(r)


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"inputs": [-100.0] + [0.0] * 63}, "inputs[0]"),  # the contract says 0..16
        ({"inputs": [3e38] * 64}, "inputs[0]"),  # finite, far out of range
        ({"inputs": [0.0] * 63 + [1e39]}, "inputs[63]"),  # not a float32 at all
        ({"label": "eleven"}, "label"),
    ],
)
def test_inputs_outside_the_contract_are_the_clients_fault_never_a_models(
    app_client: tuple[Lab, TestClient], change: dict[str, object], where: str
) -> None:
    _, c = app_client
    before = c.get("/metrics").text
    r = c.post("/v1/digits/predict", json={**body(0), **change})
    assert r.status_code == 422 and _one_shape(r)["message"].startswith(where)
    after = c.get("/metrics").text

    def count(metrics: str, series: str) -> float:
        lines = [ln for ln in metrics.splitlines() if ln.startswith(series)]
        return float(lines[0].split()[-1]) if lines else 0.0

    invalid = 'breedlab_requests_total{capability="digits",outcome="invalid",role="champion"}'
    errors = 'breedlab_errors_total{capability="digits",role="champion"}'
    assert count(after, invalid) == count(before, invalid) + 1
    assert count(after, errors) == count(before, errors)


def test_the_schema_documents_the_error_statuses_and_the_docs_need_no_cdn(
    app_client: tuple[Lab, TestClient],
) -> None:
    _, c = app_client
    schema = c.get("/openapi.json").json()
    predict = schema["paths"]["/v1/{capability}/predict"]["post"]["responses"]
    assert {"200", "404", "413", "422", "503"} <= set(predict)
    promote = schema["paths"]["/admin/{capability}/promote"]["post"]["responses"]
    assert {"401", "403", "409"} <= set(promote)
    docs = c.get("/docs").text
    assert "cdn." not in docs and "unpkg" not in docs
    script = next(p for p in docs.split('"') if p.endswith("swagger-ui-bundle.js"))
    assert c.get(script).status_code == 200  # served from the installed package


def test_a_champion_that_answers_nan_is_a_503_not_a_crash(
    app_client: tuple[Lab, TestClient], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _, c = app_client
    route = c.app.state.router.refresh().routes["digits"]  # type: ignore[attr-defined]
    model = route.champion.model
    import numpy as np

    monkeypatch.setattr(model, "predict_proba", lambda x: np.full((1, 10), np.nan))
    r = c.post("/v1/digits/predict", json=body(0))
    assert r.status_code == 503 and _one_shape(r)["error"] == "unavailable"


@pytest.mark.parametrize("baking_s", [10**15, 366 * 86400])
def test_a_baking_period_past_a_year_is_the_clients_fault_never_a_crash(
    app_client: tuple[Lab, TestClient], baking_s: int
) -> None:
    # 10**15 s overflows a timedelta (it was a 500); a longer period than a year, once
    # recorded, is added to the promotion's time on every replay of the ledger.
    lab, c = app_client
    champion = str(lab.alias("digits", "champion"))
    r = c.post(
        "/admin/digits/promote",
        json={"package": champion, "baking_s": baking_s},
        headers={"authorization": "Bearer t"},
    )
    assert r.status_code == 422 and _one_shape(r)["message"].startswith("baking_s")
    with pytest.raises(InvalidRequest, match="at most 365 days"):
        promotion.PromotionPolicy(baking=timedelta(seconds=min(baking_s, 10**12)))

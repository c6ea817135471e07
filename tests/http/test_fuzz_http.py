"""A fuzz pass over the HTTP API (issue 10): requests generated from the served OpenAPI
schema -- every path and method, bodies valid and broken (wrong types, huge numbers, NaN
and Infinity tokens, deep nesting, invalid UTF-8, unknown fields, long strings under the
limit, bodies over it), odd content types, headers and path parameters -- never get a 5xx
other than a documented 503, every error answer has the one ``{error, message}`` shape,
and no exception escapes the app (the test client re-raises any)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from breedlab.http import create_app
from release_lab import body, release_lab

LIMIT = 64 << 10
TOKEN = "fuzz-token"
#: Reproducible (a fixed derivation, no example database) and free of timing: the host
#: is shared, so no deadline; the example counts keep the file well under a minute.
FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD")


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[TestClient, dict[str, str], dict[str, Any]]]:
    root = tmp_path_factory.mktemp("fuzz-http")
    lab, ids = release_lab(root)
    app = create_app(lab, token=TOKEN, max_body=LIMIT)
    with TestClient(app, raise_server_exceptions=True) as c:
        yield c, ids, c.get("/openapi.json").json()
    lab.close()


# -- what the schema says -----------------------------------------------------------------


def _resolve(schema: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    node: Any = spec
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return _resolve(node, spec)


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any] | None]]:
    """Every (method, path, body schema) the schema documents."""
    out = []
    for path, item in sorted(spec["paths"].items()):
        for method, op in sorted(item.items()):
            content = (op.get("requestBody") or {}).get("content", {})
            schema = content.get("application/json", {}).get("schema")
            out.append((method.upper(), path, schema))
    return out


def _from_schema(schema: dict[str, Any], spec: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values that answer ``schema`` (mostly: the numbers stay finite, lists short)."""
    schema = _resolve(schema, spec)
    if "anyOf" in schema:
        return st.one_of(*(_from_schema(s, spec) for s in schema["anyOf"]))
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "null":
        return st.none()
    if kind == "string":
        return st.text(min_size=schema.get("minLength", 0), max_size=schema.get("maxLength", 80))
    if kind == "integer":
        low, high = int(schema.get("minimum", -(2**63))), int(schema.get("maximum", 2**70))
        edges = [v for v in (low, high, 2**31, 2**53 + 1, 2**63, 10**15, 10**30) if v <= high]
        return st.one_of(st.integers(min_value=low, max_value=high), st.sampled_from(edges))
    if kind == "number":
        return st.floats(
            min_value=schema.get("minimum", schema.get("exclusiveMinimum")),
            max_value=schema.get("maximum"),
            exclude_min="exclusiveMinimum" in schema,
            allow_nan=False,
            allow_infinity=False,
        ) | st.sampled_from([schema.get("maximum", 1.7e308), 5e-324])
    if kind == "array":
        item = _from_schema(schema["items"], spec)
        return st.one_of(
            st.lists(item, min_size=schema.get("minItems", 0), max_size=8),
            st.lists(item, min_size=64, max_size=64),  # the digits contract's shape
        )
    if kind == "object":
        props = schema.get("properties", {})
        required = set(schema.get("required", ()))
        return st.fixed_dictionaries(
            {k: _from_schema(v, spec) for k, v in props.items() if k in required},
            optional={k: _from_schema(v, spec) for k, v in props.items() if k not in required},
        )
    return _any_json()


def _any_json() -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**80), max_value=2**80),
        st.floats(),  # NaN and Infinity too: json.dumps writes them as bare tokens
        st.text(max_size=40),
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=12,
    )


# -- breaking a body -----------------------------------------------------------------------

#: Number tokens json.loads reads as infinities, or as ints too long to convert.
HUGE = [b"1e400", b"-1e400", b"1" * 5000, b"NaN", b"-Infinity", b"1E+999999999", b"-0.0e-999"]
#: Byte sequences that are not UTF-8: a stray continuation, an overlong, a surrogate.
NOT_UTF8 = [b"\xff", b"\x80", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc3"]


@st.composite
def _broken(draw: st.DrawFn, valid: Any) -> bytes:
    """``valid`` as JSON bytes, perhaps broken in one of the ways a client can."""
    value = valid
    how = draw(
        st.one_of(
            st.just("as-is"),  # half the bodies answer the schema: they reach the routes
            st.sampled_from(
                [
                    "drop",
                    "unknown",
                    "retype",
                    "huge",
                    "utf8",
                    "nest",
                    "long",
                    "cut",
                    "bytes",
                    "over",
                ]
            ),
        )
    )
    if isinstance(value, dict) and value and how in ("drop", "retype"):
        key = draw(st.sampled_from(sorted(value)))
        value = {k: v for k, v in value.items() if k != key}
        if how == "retype":
            value[key] = draw(_any_json())
    elif isinstance(value, dict) and how == "unknown":
        value = {**value, draw(st.text(min_size=1, max_size=12)): draw(_any_json())}
    elif how == "long":
        value = {**(value if isinstance(value, dict) else {}), "unit": "x" * (LIMIT - 4096)}
    raw = json.dumps(value).encode()
    if how == "huge":
        at = draw(st.integers(0, len(raw)))
        raw = b'{"unit": "u", "inputs": [' + draw(st.sampled_from(HUGE)) + b"], " + raw[1:at]
    elif how == "utf8":
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(st.sampled_from(NOT_UTF8)) + raw[at:]
    elif how == "nest":
        depth = draw(st.sampled_from([20, 100, 900, 999, 1500, 30_000]))
        opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}")]))
        raw = opener * depth + raw + closer * depth
    elif how == "cut":
        raw = raw[: draw(st.integers(0, max(0, len(raw) - 1)))]
    elif how == "bytes":
        raw = draw(st.binary(max_size=200))
    elif how == "over":
        raw = raw + b" " * (LIMIT + 1)
    return raw


CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "application/json; charset=latin-1",
    "application/problem+json",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/octet-stream",
    "application/json; boundary",
    ";;;",
    None,
]


def _headers(admin: bool) -> st.SearchStrategy[dict[str, str]]:
    """Half the time the headers a well-behaved client sends; else odd ones."""
    auth = st.sampled_from(
        [f"Bearer {TOKEN}", "Bearer wrong", "Basic dTpw", "bearer", "", "Bearer " + "x" * 900]
    )
    extra = st.dictionaries(
        st.sampled_from(["accept", "x-request-id", "accept-encoding", "cookie", "user-agent"]),
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60),
        max_size=2,
    )
    odd = st.builds(
        lambda a, e, ct: {
            **e,
            **({"authorization": a} if admin else {}),
            **({"content-type": ct} if ct else {}),
        },
        auth,
        extra,
        st.sampled_from(CONTENT_TYPES),
    )
    usual = {"content-type": "application/json"}
    return st.one_of(
        st.just({**usual, "authorization": f"Bearer {TOKEN}"} if admin else usual), odd
    )


def _capability() -> st.SearchStrategy[str]:
    return st.one_of(
        st.just("digits"),
        st.just("digits"),
        st.sampled_from(["nothing", "DIGITS", "digits ", "..", "%00", "[digits]"]),
        st.text(min_size=1, max_size=40),
    )


# -- the promise ---------------------------------------------------------------------------


def _answers_in_shape(r: httpx.Response, method: str) -> None:
    assert r.status_code < 500 or r.status_code == 503, (r.status_code, r.text[:300])
    if r.status_code < 400 or method == "HEAD":
        return
    answer = r.json()
    assert isinstance(answer, dict) and set(answer) == {"error", "message"}, answer
    assert all(isinstance(v, str) and v for v in answer.values()), answer
    assert len(answer["message"].splitlines()) == 1, answer  # one line, whatever it quotes
    if r.status_code == 503:
        assert answer["error"] == "unavailable", answer


def _url(path: str, capability: str) -> str:
    return path.replace("{capability}", quote(capability, safe=""))


#: Every operation the served schema documents (pinned below): each is fuzzed on its own.
OPERATIONS = [
    ("GET", "/admin/{capability}/shadow/report"),
    ("GET", "/admin/{capability}/status"),
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("POST", "/admin/{capability}/canary/start"),
    ("POST", "/admin/{capability}/canary/stop"),
    ("POST", "/admin/{capability}/promote"),
    ("POST", "/admin/{capability}/rollback"),
    ("POST", "/admin/{capability}/shadow/start"),
    ("POST", "/admin/{capability}/shadow/stop"),
    ("POST", "/v1/{capability}/predict"),
    ("POST", "/v1/{capability}/predict:batch"),
]


def test_the_fuzzed_operations_are_every_operation_the_schema_documents(
    served: tuple[TestClient, dict[str, str], dict[str, Any]],
) -> None:
    _, _, spec = served
    assert sorted((m, p) for m, p, _ in _operations(spec)) == sorted(OPERATIONS)


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[" ".join(o) for o in OPERATIONS])
@FUZZ
@given(data=st.data())
def test_generated_requests_never_get_a_server_error(
    served: tuple[TestClient, dict[str, str], dict[str, Any]],
    method: str,
    path: str,
    data: st.DataObject,
) -> None:
    c, ids, spec = served
    schema = {(m, p): b for m, p, b in _operations(spec)}[method, path]
    if data.draw(st.integers(0, 9), label="other method") == 0:
        method = data.draw(st.sampled_from(METHODS), label="method")
    url = _url(path, data.draw(_capability(), label="capability"))
    if data.draw(st.integers(0, 4), label="query") == 0:
        url += "?" + quote(data.draw(st.text(max_size=30), label="query text"), safe="=&")
    headers = data.draw(_headers(path.startswith("/admin")), label="headers")
    content: bytes | None = None
    if schema is not None or data.draw(st.integers(0, 4), label="body anyway") == 0:
        valid = data.draw(_from_schema(schema or {}, spec), label="valid body")
        if isinstance(valid, dict) and "package" in valid and data.draw(st.booleans()):
            valid["package"] = data.draw(st.sampled_from(sorted(ids.values())))
        if path.endswith("/predict") and data.draw(st.booleans(), label="a real input"):
            valid = body(data.draw(st.integers(0, 1000)))
        if path.endswith(":batch") and data.draw(st.booleans(), label="real inputs"):
            rows = data.draw(st.lists(st.integers(0, 1000), min_size=1, max_size=70))
            valid = {"requests": [body(i) for i in rows]}  # over the bound (64) too
        content = data.draw(_broken(valid), label="body")
    r = c.request(method, url, content=content, headers=headers)
    _answers_in_shape(r, method)


@FUZZ
@given(
    change=st.dictionaries(
        st.sampled_from(["unit", "inputs", "label", "risk"]),
        st.one_of(
            _any_json(),
            st.lists(st.floats(width=64), min_size=64, max_size=64),
            st.lists(
                st.sampled_from([0.0, 16.0, 1e39, -1e-45, math.inf]), min_size=64, max_size=64
            ),
            st.text(max_size=300),
        ),
        max_size=3,
    ),
)
def test_generated_predict_bodies_are_answered_or_refused_in_one_shape(
    served: tuple[TestClient, dict[str, str], dict[str, Any]], change: dict[str, Any]
) -> None:
    c, _, _ = served
    raw = json.dumps({**body(7), **change}).encode()  # NaN/Infinity as bare tokens
    r = c.post("/v1/digits/predict", content=raw, headers={"content-type": "application/json"})
    _answers_in_shape(r, "POST")
    if r.status_code == 200:
        answer = r.json()
        assert answer["label"] in [str(i) for i in range(10)]
        assert math.isclose(sum(answer["probabilities"]), 1.0, rel_tol=1e-4)


def test_the_server_still_serves_after_the_fuzzing(
    served: tuple[TestClient, dict[str, str], dict[str, Any]],
) -> None:
    c, _, _ = served
    assert c.get("/healthz").json()["ok"] is True
    assert c.post("/v1/digits/predict", json=body(3)).status_code == 200


def _reference_depth(value: Any) -> int:
    """Nesting depth by recursion over the parsed value (the scan's independent oracle)."""
    if isinstance(value, list):
        return 1 + max((_reference_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_reference_depth(v) for v in value.values()), default=0)
    return 0


@FUZZ
@given(
    value=st.recursive(
        st.one_of(st.integers(), st.text(alphabet='[]{}"\\\\ab,:', max_size=12)),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(st.text(alphabet='[]{}"\\\\a', max_size=6), inner, max_size=3)
        ),
        max_leaves=30,
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=6),
    ascii_only=st.booleans(),
)
def test_the_nesting_scan_agrees_with_the_parsed_depth_however_the_body_is_cut(
    value: Any, cuts: list[int], ascii_only: bool
) -> None:
    from breedlab.http.limits import JsonNesting

    raw = json.dumps(value, ensure_ascii=ascii_only).encode()
    at = sorted({c % (len(raw) + 1) for c in cuts})
    scan = JsonNesting()
    for a, b in zip([0, *at], [*at, len(raw)], strict=True):
        scan.feed(raw[a:b])  # chunk borders inside strings and backslash runs too
    assert scan.deepest == _reference_depth(value)

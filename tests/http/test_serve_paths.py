"""What the server tells an HTTP client never shows its filesystem (issue 10): an error
from an admin route, a degraded capability on ``/healthz`` or a 503 on predict names the
package (its short id) or the key, never a path under the lab or the temp folder."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from breedlab.capabilities import contract_path
from breedlab.http import create_app
from breedlab.lab import Lab
from release_lab import body, release_lab

#: An absolute path as it would appear in a message (after a space, quote or bracket).
ABSOLUTE = re.compile(r"(?:^|[\s'\"(\[=])(/[\w.-]+)+")


@pytest.fixture(scope="module")
def app_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, TestClient]]:
    root = tmp_path_factory.mktemp("paths")
    lab, ids = release_lab(root)
    for name in ("good", "good2"):
        lab.approve(ids[name], purpose="release", key="pat")
    with TestClient(create_app(lab, token="t")) as c:
        c.headers["Authorization"] = "Bearer t"
        c.ids = ids  # type: ignore[attr-defined]
        yield lab, c
    lab.close()


def _no_paths(lab: Lab, text: str) -> None:
    root = lab.config.root
    for where in {str(root), str(root.resolve()), str(root.parent)}:
        assert where not in text, text
    assert not ABSOLUTE.search(text), text


def _short(pkg: str) -> str:
    return pkg.removeprefix("sha256:")[:12]


def test_an_admin_4xx_names_the_key_not_the_keys_folder(
    app_client: tuple[Lab, TestClient],
) -> None:
    lab, c = app_client
    good = c.ids["good"]  # type: ignore[attr-defined]
    r = c.post("/admin/digits/promote", json={"package": good, "key": "nobody"})
    assert r.status_code == 404, r.text
    _no_paths(lab, r.text)
    assert r.json()["message"] == "no private key 'nobody' in LAB/keys"
    pat = lab.config.keys_dir / "pat.key"
    pat.chmod(0o644)
    try:
        r = c.post("/admin/digits/shadow/start", json={"package": good, "key": "pat"})
    finally:
        pat.chmod(0o600)
    assert r.status_code == 422, r.text
    _no_paths(lab, r.text)
    assert "private key LAB/keys/pat.key is readable by others" in r.json()["message"]


def test_a_model_that_no_longer_loads_is_named_by_its_id_over_http(
    app_client: tuple[Lab, TestClient], tmp_path: Path
) -> None:
    # The contract's budget tightened after import (1 KiB: every model of digits is over
    # it), so loads fail where the lab materialised the package (LAB/work/inputs/...).
    lab, c = app_client
    ids = c.ids  # type: ignore[attr-defined]
    text = contract_path("digits").read_text("utf-8")
    (tmp_path / "digits.toml").write_text(text.replace("memory_mib = 512", "memory_mib = 0.001"))
    lab.add_capability(tmp_path / "digits.toml", sign_with="alice")
    errors = [
        c.post("/admin/digits/promote", json={"package": ids["good"]}),
        c.post("/admin/digits/shadow/start", json={"package": ids["good2"]}),
    ]
    assert [r.status_code for r in errors] == [500, 500], [r.text for r in errors]
    for r, name in zip(errors, ("good", "good2"), strict=True):
        _no_paths(lab, r.text)
        message = r.json()["message"]
        assert f"package sha256:{_short(ids[name])}" in message and "over the budget" in message
    # A server started now cannot load the champion: degraded, and a 503 that says why.
    with TestClient(create_app(lab, token="t")) as fresh:
        health, predict = fresh.get("/healthz"), fresh.post("/v1/digits/predict", json=body(0))
    assert (health.status_code, predict.status_code) == (200, 503)
    champion = _short(str(lab.alias("digits", "champion")))
    for r in (health, predict):
        _no_paths(lab, r.text)
        assert f"package sha256:{champion}" in r.text, r.text

"""Release evidence is content-addressed, and the server follows only what verifies
(issue: every state change is signed by a key allowed to make it).

- Shadow pairs and canary observations are sealed into the store; the events that decide
  name the sealed digests; an edited log changes no report and ``verify --all`` names it.
- A champion moved around the lab (an unsigned event, or a projection row edited) is not
  served: the router verifies new events before it follows them.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from breedlab.capabilities import contract_path
from breedlab.digest import Digest
from breedlab.errors import IntegrityError, UnauthorizedChange
from breedlab.http import create_app
from breedlab.lab import Lab
from breedlab.lab import release as controller
from breedlab.release import CanaryPolicy, ShadowGate
from breedlab.supply.evidence import read_evidence, sealed_segments
from release_lab import body, release_lab, release_settings, shadow

#: A fault drill: the broken candidate must reach the canary for its guardrails to act.
DRILL_GATE = ShadowGate(min_pairs=1, min_agreement=0.0, max_p50_ratio=1e9, max_p95_ratio=1e9)
SEAL_EVERY = 25


@pytest.fixture
def lab_ids(tmp_path: Path) -> Iterator[tuple[Lab, dict[str, str]]]:
    lab, ids = release_lab(tmp_path)
    lab.close()
    release_settings(tmp_path / "lab", seal_every=SEAL_EVERY)  # seal often, to see it happen
    lab = Lab.open(tmp_path / "lab")
    for name in ("good", "good2", "broken"):
        lab.approve(ids[name], purpose="release", key="pat")
    yield lab, ids
    lab.close()


def _until(condition: object, what: str, bound_s: float = 120.0) -> None:
    """Wait for ``condition()`` (an event another thread causes), with a generous bound."""
    deadline = time.monotonic() + bound_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)


def _shadow_file(lab: Lab) -> Path:
    _, seq = controller.shadow_run(lab.supply, "digits")
    return lab.config.root / "release" / "digits" / f"shadow-{seq}.jsonl"


def _agree_everywhere(path: Path) -> None:
    """What the attack wants: every mirrored pair an agreement."""
    lines = []
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        if rec.get("shadow") is not None:
            rec["shadow"] = rec["primary"]
        lines.append(json.dumps(rec, sort_keys=True))
    path.write_text("\n".join(lines) + "\n")


def test_shadow_pairs_are_sealed_as_they_stream_and_when_the_run_stops(
    lab_ids: tuple[Lab, dict[str, str]],
) -> None:
    lab, ids = lab_ids
    router = lab.router()
    try:
        shadow(lab, router, ids["broken"], n=0)
        _, seq = controller.shadow_run(lab.supply, "digits")
        route = router.refresh().routes["digits"]
        for chunk in range(4):  # the server streams; every seal_every records are sealed
            for i in range(SEAL_EVERY):
                b = body(chunk * SEAL_EVERY + i)
                router.predict(route, unit=f"s{i}", inputs=b["inputs"], truth=None, low_risk=True)  # type: ignore[arg-type]
            router.mirror.flush()

            def sealed(upto: int = (chunk + 1) * SEAL_EVERY) -> bool:
                return read_evidence(lab.supply, "digits", "shadow", seq).sealed == upto

            _until(sealed, f"the background seal of chunk {chunk}")
        stopped = controller.stop_shadow(lab.supply, "digits")
    finally:
        router.close()
    evidence = read_evidence(lab.supply, "digits", "shadow", seq)
    assert evidence.unsealed == 0 and evidence.sealed == 4 * SEAL_EVERY
    assert stopped.payload["evidence"] == list(evidence.digests)
    assert len(evidence.digests) == 4  # sealed as it streamed, one seal per chunk
    segments = sealed_segments(lab.supply, "digits", "shadow", seq)
    assert [s.start for s in segments[1:]] == [s.end for s in segments[:-1]]  # contiguous
    assert lab.verify_evidence().problems == ()
    lab.verify_ledger()


def test_an_edited_shadow_log_changes_no_report_and_verify_all_names_it(
    lab_ids: tuple[Lab, dict[str, str]],
) -> None:
    lab, ids = lab_ids
    router = lab.router()
    try:
        shadow(lab, router, ids["broken"], n=60)
        controller.stop_shadow(lab.supply, "digits")  # seals every pair
    finally:
        router.close()
    _, before = controller.shadow_report(lab.supply, "digits")
    assert before.agreement is not None and before.agreement.estimate < 0.5  # a bad model

    _agree_everywhere(_shadow_file(lab))

    _, after = controller.shadow_report(lab.supply, "digits")
    assert after.agreement == before.agreement  # reports read the sealed copy
    [problem] = lab.verify_evidence().problems
    assert problem.where.endswith(_shadow_file(lab).name)
    assert "edited after it was sealed" in problem.message


def test_the_canary_gate_reads_only_sealed_pairs_and_names_them(
    lab_ids: tuple[Lab, dict[str, str]],
) -> None:
    lab, ids = lab_ids
    router = lab.router()
    try:
        shadow(lab, router, ids["good"], n=60)
        started = controller.start_canary(lab.supply, "digits", percent=50)
    finally:
        router.close()
    _, seq = controller.shadow_run(lab.supply, "digits")
    evidence = read_evidence(lab.supply, "digits", "shadow", seq)
    assert evidence.unsealed == 0  # the start sealed the run first
    assert started.payload["shadow_evidence"] == list(evidence.digests)
    assert started.payload["shadow"]["answered"] == 60  # type: ignore[index]


def test_an_edited_canary_log_changes_no_status_and_verify_all_names_it(
    lab_ids: tuple[Lab, dict[str, str]],
) -> None:
    lab, ids = lab_ids
    router = lab.router(canary_policy=CanaryPolicy(stage_min=40))
    try:
        shadow(lab, router, ids["broken"], n=10)
        controller.start_canary(lab.supply, "digits", percent=100, gate=DRILL_GATE)
        for i in range(300):
            route = router.refresh().routes["digits"]
            if route.canary_run is None:
                break
            b = body(i, unit=f"c{i}")
            router.predict(
                route,
                unit=str(b["unit"]),
                inputs=b["inputs"],  # type: ignore[arg-type]
                truth=str(b["label"]),
                low_risk=True,
            )
    finally:
        router.close()
    [aborted] = lab.events(kinds=("release.canary_aborted",))
    started = lab.events(kinds=("release.canary_started",))[-1]
    evidence = read_evidence(lab.supply, "digits", "canary", started.seq)
    assert aborted.payload["evidence"] == list(evidence.digests) and evidence.unsealed == 0
    status = controller.canary_status(lab.supply, "digits")
    path = lab.config.root / "release" / "digits" / f"canary-{started.seq}.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    for rec in lines:  # the attack: every observation a success
        rec["failed"], rec["canary"] = False, rec["champion"]
    path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in lines))

    assert controller.canary_status(lab.supply, "digits") == status
    [problem] = lab.verify_evidence().problems
    assert problem.where.endswith(path.name) and "edited after it was sealed" in problem.message


def test_show_and_lineage_join_the_release_evidence_of_a_package(
    lab_ids: tuple[Lab, dict[str, str]],
) -> None:
    lab, ids = lab_ids
    router = lab.router()
    try:
        shadow(lab, router, ids["good"], n=30)
        controller.stop_shadow(lab.supply, "digits")
    finally:
        router.close()
    shown = lab.show(ids["good"])
    kinds = [r.kind for r in shown.release]
    assert kinds == ["release.shadow_started", "release.shadow_stopped"]
    sealed = shown.release[-1].evidence
    assert sealed and all(lab.blobs.has(Digest.parse(d)) for d in sealed)
    [node] = [n for n in lab.lineage(ids["good"]).ancestors if n.id == ids["good"]]
    assert [r.kind for r in node.release] == kinds
    champion = lab.show("digits@champion")
    assert [r.kind for r in champion.release] == ["release.promoted"]


# -- the server follows only what verifies ---------------------------------------------------


def _forge_champion(lab: Lab, pkg: str) -> int:
    old = lab.alias("digits", "champion")
    ev = lab.ledger.append(
        "alias.moved",
        "digits",
        {"capability": "digits", "alias": "champion", "old": str(old), "new": pkg,
         "reason": "", "via": "promote"},
        signer=None,
        actor="pat",
    )  # fmt: skip
    return ev.seq


def test_a_champion_moved_by_an_unsigned_event_is_not_served(
    lab_ids: tuple[Lab, dict[str, str]],
) -> None:
    lab, ids = lab_ids
    champion = str(lab.alias("digits", "champion"))
    router = lab.router()
    try:
        seq = _forge_champion(lab, ids["broken"])
        lab.set_alias("digits", "nightly", ids["good"])  # history goes on after it
        route = router.refresh().routes["digits"]
        assert str(route.champion.package) == champion  # the last verified table serves
        assert router.refused is not None and re.search(rf"\bseq {seq}\b", router.refused)
        answer = router.predict(
            route, unit="u", inputs=body(0)["inputs"], truth=None, low_risk=True
        )  # type: ignore[arg-type]
        assert str(answer.package) == champion
    finally:
        router.close()
    with pytest.raises(UnauthorizedChange, match=f"seq {seq}"):
        create_app(lab, token="t")  # a server does not start on it


def test_a_champion_row_edited_without_an_event_is_not_served(
    lab_ids: tuple[Lab, dict[str, str]],
) -> None:
    lab, ids = lab_ids
    champion = str(lab.alias("digits", "champion"))
    router = lab.router()
    try:
        db = sqlite3.connect(lab.config.root / "ledger.db")
        with db:
            db.execute("UPDATE aliases SET target = ? WHERE name = 'champion'", (ids["broken"],))
        db.close()
        lab.set_alias("digits", "nightly", ids["good"])  # a real event moves the head
        route = router.refresh().routes["digits"]
        assert str(route.champion.package) == champion  # served from verified events
        assert router.refused is None
    finally:
        router.close()


# -- one capability's failure never takes the others down -----------------------------------


def test_a_capability_whose_champion_stops_loading_is_degraded_and_the_others_serve(
    tmp_path: Path,
) -> None:
    lab, ids = release_lab(tmp_path)
    try:
        text = contract_path("digits").read_text().replace('name = "digits"', 'name = "other"')
        (tmp_path / "other.toml").write_text(text)
        lab.add_capability(tmp_path / "other.toml", sign_with="alice")
        other = lab.import_path(
            tmp_path / "models" / "good2", kind="model", capability="other", license="MIT",
            family="torch", sign_with="alice", name="other-model",
        )  # fmt: skip
        lab.approve(str(other.id), purpose="release", key="pat")
        lab.promote("other", str(other.id), key="pat")
        app = create_app(lab, token="t")
        with TestClient(app) as c:
            assert c.post("/v1/other/predict", json=body(0)).status_code == 200
            weights = lab.blobs.path(
                next(f.digest for f in other.manifest.files if f.path == "model.safetensors")
            )
            weights.chmod(0o644)
            weights.write_bytes(b"\x00" * 64)  # the disk under one champion goes bad
            app.state.router._models.clear()  # a cold load, as after a restart
            lab.set_alias("digits", "nightly", ids["good"])  # the ledger head moves

            served = c.post("/v1/digits/predict", json=body(1))
            assert served.status_code == 200 and served.json()["package"] == ids["champion"]
            health = c.get("/healthz").json()
            assert "other" in health["degraded"] and health["champions"]["digits"]
            # the last good route of 'other' goes on serving what it had loaded before
            assert "other" in health["champions"]
        with pytest.raises(IntegrityError, match="corrupt"):
            controller.load_served(lab, other.id)
        fresh = create_app(lab, token="t")  # a restart: nothing good to keep for 'other'
        with TestClient(fresh) as c:
            refused = c.post("/v1/other/predict", json=body(0))
            assert refused.status_code == 503 and refused.json()["error"] == "unavailable"
            assert c.post("/v1/digits/predict", json=body(0)).status_code == 200
            assert "other" in c.get("/healthz").json()["degraded"]
    finally:
        lab.close()

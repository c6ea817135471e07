"""`breedlab serve` on a real uvicorn server on 127.0.0.1 with a real HTTP client (seed,
stage 3): shadow never touches the primary, a broken canary is aborted without a human,
promotion needs its gates and approvals, rollback works for every promoted artifact,
admin needs the token, bad bodies get a one-line 4xx."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from breedlab.capabilities import contract_path
from breedlab.errors import NotFound, PolicyError
from breedlab.http import create_app
from breedlab.lab import Lab, promotion
from breedlab.lab import release as controller
from breedlab.release import CanaryPolicy, MinimumDwell, ShadowGate
from breedlab.serving import mirror
from release_lab import body, client, release_lab, serving

TOKEN = "test-token"
NO_DWELL = promotion.PromotionPolicy(dwell=MinimumDwell(min_time=timedelta(0), min_requests=0))
#: A fault drill: the broken candidate must reach the canary for its guardrails to act.
DRILL_GATE = ShadowGate(min_pairs=1, min_agreement=0.0, max_p50_ratio=1e9, max_p95_ratio=1e9)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, dict[str, str], str]]:
    root = tmp_path_factory.mktemp("serve")
    lab, ids = release_lab(root)
    for name in ("good", "good2", "broken"):
        lab.approve(ids[name], purpose="release", key="pat")
    app = create_app(lab, token=TOKEN, canary_policy=CanaryPolicy(stage_min=40))
    with serving(app) as url:
        yield lab, ids, url
    lab.close()


def test_an_unauthenticated_admin_call_is_refused(
    served: tuple[Lab, dict[str, str], str],
) -> None:
    _, _, url = served
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        with client(url) as c:
            r = c.get("/admin/digits/status", headers=headers)
            assert r.status_code == 401
            assert r.headers["www-authenticate"] == "Bearer"
            r = c.post("/admin/digits/rollback", headers=headers)
            assert r.status_code == 401
    with client(url, TOKEN) as c:
        assert c.get("/admin/digits/status").status_code == 200


def test_bad_request_bodies_get_a_one_line_4xx_never_a_500(
    served: tuple[Lab, dict[str, str], str],
) -> None:
    _, _, url = served
    good = body(0)
    bad_bodies: list[object] = [
        {"unit": "u"},
        {"inputs": good["inputs"]},
        {"unit": "u", "inputs": [1.0, 2.0]},
        {"unit": "u", "inputs": ["a"] * 64},
        {"unit": "", "inputs": good["inputs"]},
        {"unit": "u", "inputs": good["inputs"], "extra": 1},
        {"unit": "u", "inputs": good["inputs"], "risk": "medium"},
        [1, 2, 3],
    ]
    with client(url) as c:
        for b in bad_bodies:
            r = c.post("/v1/digits/predict", json=b)
            assert r.status_code == 422, (b, r.text)
            err = r.json()
            assert err["error"] == "invalid_request" and "\n" not in err["message"]
        r = c.post(
            "/v1/digits/predict", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert r.status_code == 422
        r = c.post("/v1/nothing/predict", json=good)
        assert r.status_code == 404 and r.json()["error"] == "not_found"


def test_the_openapi_schema_lists_every_route_and_metrics_count_per_role(
    served: tuple[Lab, dict[str, str], str],
) -> None:
    _, _, url = served
    with client(url) as c:
        schema = c.get("/openapi.json").json()
        c.post("/v1/digits/predict", json=body(1))
        metrics = c.get("/metrics").text
        health = c.get("/healthz").json()
    paths = set(schema["paths"])
    for path in (
        "/v1/{capability}/predict",
        "/metrics",
        "/healthz",
        "/admin/{capability}/shadow/start",
        "/admin/{capability}/shadow/report",
        "/admin/{capability}/canary/start",
        "/admin/{capability}/status",
        "/admin/{capability}/promote",
        "/admin/{capability}/rollback",
    ):
        assert path in paths, path
    predict = schema["paths"]["/v1/{capability}/predict"]["post"]
    assert "PredictRequest" in json.dumps(predict["requestBody"])
    assert 'breedlab_requests_total{capability="digits",outcome="ok",role="champion"}' in metrics
    assert 'breedlab_latency_seconds_bucket{capability="digits"' in metrics
    assert "breedlab_shadow_up " in metrics and "breedlab_shadow_restarts 0.0" in metrics
    assert health["ok"] is True


def test_shadow_never_changes_a_primary_response_or_its_status(
    served: tuple[Lab, dict[str, str], str], tmp_path: Path
) -> None:
    lab, ids, url = served
    requests: list[object] = [body(i) for i in range(60)] + [{"unit": "u", "inputs": [1.0]}]
    with client(url, TOKEN) as c:
        before = [c.post("/v1/digits/predict", json=b) for b in requests]
        # The broken model disagrees with the champion on almost every input.
        r = c.post("/admin/digits/shadow/start", json={"package": ids["broken"]})
        assert r.status_code == 200, r.text
        during = [c.post("/v1/digits/predict", json=b) for b in requests]
        report = c.get("/admin/digits/shadow/report").json()
        c.post("/admin/digits/shadow/stop")
    assert [(r.status_code, r.json()) for r in before] == [
        (r.status_code, r.json()) for r in during
    ]
    assert all(r.json()["role"] == "champion" for r in during[:-1])
    assert report["mirrored"] == 60 and report["mirrored"] == report["answered"] + report["dropped"]
    assert float(report["agreement"]["estimate"]) < 0.5  # the mirror saw the broken answers
    assert report["flips"]
    # Offline replay of the same requests gives the same agreement.
    log = tmp_path / "requests.jsonl"
    log.write_text("".join(json.dumps(b) + "\n" for b in requests[:60]))
    _, replayed = controller.replay_shadow(lab.supply, "digits", log, ref=ids["broken"])
    assert replayed.agreement is not None
    assert replayed.agreement.successes == report["agreement"]["successes"]


def test_a_full_mirror_queue_drops_and_counts_and_never_blocks_the_primary(
    served: tuple[Lab, dict[str, str], str],
) -> None:
    lab, ids, _ = served
    router = lab.router(shadow_queue=1)
    try:
        controller.start_shadow(lab.supply, "digits", ids["good"])
        route = router.refresh().routes["digits"]
        answers = [
            router.predict(
                route,
                unit=f"u{i}",
                inputs=body(i)["inputs"],
                truth=None,
                low_risk=True,  # type: ignore[arg-type]
            )
            for i in range(300)
        ]
        router.mirror.flush()
        assert all(a.role == "champion" for a in answers)
        assert router.mirror.mirrored == 300 and router.mirror.dropped > 0
        _, report = controller.shadow_report(lab.supply, "digits")
        assert report.mirrored == 300 and report.dropped == router.mirror.dropped
    finally:
        controller.stop_shadow(lab.supply, "digits")
        router.close()


def test_killing_the_shadow_process_mid_stream_never_touches_the_primary(
    served: tuple[Lab, dict[str, str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    lab, ids, _ = served
    monkeypatch.setattr(mirror, "_FIRST_BACKOFF_S", 3600.0)  # no restart in this test
    router = lab.router()
    try:
        route = router.refresh().routes["digits"]
        alone = [route.champion.predict(body(i)["inputs"]) for i in range(120)]
        controller.start_shadow(lab.supply, "digits", ids["good"])
        route = router.refresh().routes["digits"]
        pid = router.mirror.pid
        assert pid is not None and pid != os.getpid()

        def ask(i: int) -> tuple[str, list[float]]:
            a = router.predict(
                route, unit=f"u{i}", inputs=body(i)["inputs"], truth=None, low_risk=True
            )
            assert a.role == "champion"
            return a.label, a.probabilities

        answers = [ask(i) for i in range(40)]
        router.mirror.flush()  # the shadow process answered: it is mid-stream now
        answers += [ask(i) for i in range(40, 60)]
        os.kill(pid, signal.SIGKILL)
        answers += [ask(i) for i in range(60, 120)]
        router.mirror.flush()  # returns: the lost mirrors are counted as drops
        assert answers == alone
        assert router.mirror.mirrored == 120 and router.mirror.dropped >= 60
        _, report = controller.shadow_report(lab.supply, "digits")
        assert report.mirrored == 120 and report.dropped == router.mirror.dropped
        assert report.mirrored == report.answered + report.dropped
    finally:
        controller.stop_shadow(lab.supply, "digits")
        router.close()
    assert router.mirror.pid is None


def test_a_broken_canary_is_aborted_without_a_human_and_the_champion_serves_after_the_switch(
    served: tuple[Lab, dict[str, str], str],
) -> None:
    lab, ids, url = served
    champion = lab.alias("digits", "champion")
    with client(url, TOKEN) as c:
        assert (
            c.post("/admin/digits/shadow/start", json={"package": ids["broken"]}).status_code == 200
        )
        for i in range(20):
            c.post("/v1/digits/predict", json=body(i))
        c.get("/admin/digits/shadow/report")
        # The admin route applies the real shadow gate: the broken model cannot pass it.
        refused = c.post("/admin/digits/canary/start", json={"percent": 50})
        assert refused.status_code == 403 and "shadow gate" in refused.json()["message"]
        controller.start_canary(lab.supply, "digits", percent=50, gate=DRILL_GATE)
        roles = [c.post("/v1/digits/predict", json=body(i)).json()["role"] for i in range(300)]
        status = c.get("/admin/digits/status").json()
    [aborted] = lab.events(kinds=("release.canary_aborted",))
    last_canary = max(i for i, r in enumerate(roles) if r == "canary")
    assert roles.count("canary") == aborted.payload["recovery"]["exposure_requests"]  # type: ignore[index,call-overload]
    assert all(r == "champion" for r in roles[last_canary + 1 :])
    assert len(roles) - last_canary > 200  # plenty of requests after the switch
    assert set(aborted.payload["aborted_by"]) & {"wrong", "disagreement"}  # type: ignore[arg-type]
    recovery = aborted.payload["recovery"]
    for moment in ("t_onset", "t_detect", "t_switch", "t_verified"):
        assert moment in recovery  # type: ignore[operator]
    assert float(recovery["time_to_mitigate_s"]) < 0.05  # type: ignore[index,call-overload,arg-type]
    assert status["canary"] is None and ids["broken"] in status["deny_list"]
    assert lab.alias("digits", "champion") == champion
    # The deny-listed id cannot come back: not to shadow, not to champion.
    with pytest.raises(PolicyError, match="retired"):
        controller.start_shadow(lab.supply, "digits", ids["broken"])
    with pytest.raises(PolicyError, match="deny-list"):
        promotion.promote(lab.supply, "digits", ids["broken"], policy=NO_DWELL)
    status_text = controller.canary_status(lab.supply, "digits")
    assert status_text["status"] == "aborted" and "abort" in status_text


def _shadow_and_canary(lab: Lab, url: str, cap: str, pkg: str) -> None:
    with client(url, TOKEN) as c:
        assert c.post(f"/admin/{cap}/shadow/start", json={"package": pkg}).status_code == 200
        for i in range(60):
            assert c.post(f"/v1/{cap}/predict", json=body(i)).status_code == 200
        started = c.post(f"/admin/{cap}/canary/start", json={"percent": 50})
        assert started.status_code == 200, started.text
        for i in range(400):  # the requests the capability marks low-risk may see it
            c.post(f"/v1/{cap}/predict", json={**body(i, unit=f"unit-{i}"), "risk": "low"})
    assert controller.release_state(lab.supply, cap).canary_passed, controller.canary_status(
        lab.supply, cap
    )


def test_promotion_needs_the_gates_and_rollback_returns_every_promoted_artifact(
    served: tuple[Lab, dict[str, str], str],
) -> None:
    lab, ids, url = served
    first = lab.alias("digits", "champion")
    with pytest.raises(PolicyError, match="never went through shadow"):
        promotion.promote(lab.supply, "digits", ids["good2"], policy=NO_DWELL)
    promoted = []
    for name in ("good", "good2"):
        _shadow_and_canary(lab, url, "digits", ids[name])
        before = lab.alias("digits", "champion")
        ev = promotion.promote(lab.supply, "digits", ids[name], policy=NO_DWELL)
        promoted.append((ids[name], str(before)))
        assert ev.payload["previous"] == str(before)
        with client(url) as c:  # the server follows the ledger without a restart
            assert c.post("/v1/digits/predict", json=body(0)).json()["package"] == ids[name]
    assert lab.alias("digits", "previous") == lab.resolve(promoted[-1][1])
    with client(url, TOKEN) as c:
        r = c.post("/admin/digits/rollback")
        assert r.status_code == 200, r.text
        assert c.post("/v1/digits/predict", json=body(0)).json()["package"] == ids["good"]
        again = c.post("/admin/digits/rollback")
        assert again.status_code == 403  # reversible only through a new promotion
    recovery = r.json()["recovery"]
    assert float(recovery["time_to_recover_s"]) < 1.0
    # Every promotion recorded a previous that verifies: each has a rollback path (the
    # first champion, promoted when the lab was set up, replaced nothing).
    promotions = lab.events(kinds=("release.promoted",))
    assert promotions[0].payload["previous"] is None
    for ev in promotions[1:]:
        [res] = lab.verify([str(ev.payload["previous"])])
        assert res.ok
    criteria = {c.name: c for c in lab.exit_criteria("digits")}
    assert criteria["rollback every promoted artifact"].passed
    assert criteria["verify hashes"].passed
    assert not criteria["reproduce candidates"].passed  # no round ran in this lab
    assert str(first) in {p for _, p in promoted}


def test_a_promotion_without_the_approvals_its_risk_tier_needs_is_refused(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    root = tmp_path_factory.mktemp("tiers")
    text = contract_path("digits").read_text()
    contract = root / "digits-high.toml"
    contract.write_text(
        text.replace('name = "digits"', 'name = "digits-high"').replace(
            'risk_tier = "low"', 'risk_tier = "high"'
        )
    )
    lab, ids = release_lab(root, capability_file=contract)
    cap = "digits-high"
    # The proposer (alice signed the package) approving her own candidate is not enough.
    lab.approve(ids["good"], purpose="release", key="alice")
    app = create_app(lab, token=TOKEN, canary_policy=CanaryPolicy(stage_min=40))
    with serving(app) as url:
        _shadow_and_canary(lab, url, cap, ids["good"])
        controller.stop_shadow(lab.supply, cap)
        lab.approve(ids["good2"], purpose="release", key="pat")
        controller.start_shadow(lab.supply, cap, ids["good2"])
        with client(url, TOKEN) as c:
            c.post(f"/v1/{cap}/predict", json=body(0))
            assert c.get(f"/admin/{cap}/shadow/report").json()["answered"] == 1
        controller.start_canary(lab.supply, cap, percent=100, gate=DRILL_GATE)
        with client(url) as c:  # a high-risk capability's requests are high-risk by default
            roles = {c.post(f"/v1/{cap}/predict", json=body(i)).json()["role"] for i in range(50)}
        assert roles == {"champion"}
        controller.stop_canary(lab.supply, cap, reason="only low-risk requests may see a canary")
        with pytest.raises(PolicyError, match="other than the proposer") as e:
            promotion.promote(lab.supply, cap, ids["good"], policy=NO_DWELL)
        assert "security" in str(e.value.message)
        lab.approve(ids["good"], purpose="release", key="pat")  # independent, not security
        with pytest.raises(PolicyError, match="'security' key") as e:
            promotion.promote(lab.supply, cap, ids["good"], policy=NO_DWELL)
        assert "proposer" not in e.value.message
        with client(url, TOKEN) as c:
            r = c.post(f"/admin/{cap}/promote", json={"package": ids["good"]})
            assert r.status_code == 403
        lab.approve(ids["good"], purpose="release", key="sam")
        ev = promotion.promote(lab.supply, cap, ids["good"], policy=NO_DWELL)
        assert ev.payload["risk_tier"] == "high"
    with pytest.raises(NotFound):
        promotion.rollback(lab.supply, "digits")  # no previous for the other capability
    lab.close()


def test_an_injected_canary_fault_falls_back_to_the_champion_and_the_sprt_aborts(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    lab, ids = release_lab(tmp_path_factory.mktemp("fault"))
    lab.approve(ids["good"], purpose="release", key="pat")
    router = lab.router(faults={"canary": 1.0})
    try:
        controller.start_shadow(lab.supply, "digits", ids["good"])
        route = router.refresh().routes["digits"]
        for i in range(60):
            router.predict(route, unit=f"s{i}", inputs=body(i)["inputs"], truth=None, low_risk=True)  # type: ignore[arg-type]
        router.mirror.flush()
        controller.start_canary(lab.supply, "digits", percent=100)
        answers = []
        for i in range(40):
            route = router.refresh().routes["digits"]
            answers.append(
                router.predict(
                    route,
                    unit=f"c{i}",
                    inputs=body(i)["inputs"],
                    truth=None,
                    low_risk=True,  # type: ignore[arg-type]
                )
            )
        [aborted] = lab.events(kinds=("release.canary_aborted",))
        assert "error" in aborted.payload["aborted_by"]  # type: ignore[operator]
        assert all(
            a.role == "champion" and a.package == lab.resolve(ids["champion"]) for a in answers
        )
        assert sum(a.canary_failed for a in answers) == 20  # the SPRT's minimum samples
    finally:
        router.close()
        lab.close()


def test_serve_may_run_the_shadow_process_at_normal_priority_whatever_the_config_says(
    lab: Lab,
) -> None:
    from breedlab.errors import InvalidRequest

    assert lab.config.shadow_priority == "idle"
    idle, normal = lab.router(), lab.router(shadow_priority="normal")
    try:
        assert idle.mirror.idle and not normal.mirror.idle
    finally:
        idle.close()
        normal.close()
    with pytest.raises(InvalidRequest, match="one of idle, normal"):
        lab.router(shadow_priority="low")


def test_the_socket_serve_listens_on_gets_nagle_turned_off_for_each_connection() -> None:
    # asyncio sets TCP_NODELAY only on IPPROTO_TCP sockets; on a socket made with proto 0
    # every answer on a kept-alive connection waited ~40 ms for a delayed ACK.
    import asyncio
    import socket

    from breedlab.errors import InvalidRequest
    from breedlab.http import listen

    async def accepted_nodelay(sock: socket.socket) -> list[int]:
        seen: list[int] = []

        async def on_connection(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            conn = writer.get_extra_info("socket")
            seen.append(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(on_connection, sock=sock)
        reader, writer = await asyncio.open_connection(*sock.getsockname()[:2])
        await reader.read()  # until the server closed it
        writer.close()
        server.close()
        await server.wait_closed()
        return seen

    sock = listen("127.0.0.1", 0)
    assert sock.getsockname()[1] != 0
    assert asyncio.run(accepted_nodelay(sock)) == [1]
    with listen("127.0.0.1", 0) as taken, pytest.raises(InvalidRequest, match="cannot listen"):
        listen("127.0.0.1", taken.getsockname()[1])

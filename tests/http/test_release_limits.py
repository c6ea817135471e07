"""Bounds of a release that the serving router enforces: a canary stage's exposure cap
(notes §5.2), the previous champion's baking period (notes §5.4), and the shadow
process's own promises (idle priority, sampled timing, no pickles, no re-import of the
server's ``__main__``)."""

from __future__ import annotations

import ast
import contextlib
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from breedlab.cli import main
from breedlab.errors import InvalidRequest, NotFound, Unavailable
from breedlab.lab import Lab, promotion
from breedlab.lab import release as controller
from breedlab.release import CanaryPolicy, ExposureCap, MinimumDwell
from breedlab.serving import mirror, shadow_process
from breedlab.serving import router as router_module
from breedlab.serving.router import Router
from breedlab.serving.served_models import ServedModel
from release_lab import body, release_lab, shadow

NO_DWELL = MinimumDwell(min_time=timedelta(0), min_requests=0)


@pytest.fixture
def lab_ids(tmp_path: Path) -> Iterator[tuple[Lab, dict[str, str]]]:
    lab, ids = release_lab(tmp_path)
    for name in ("good", "good2"):
        lab.approve(ids[name], purpose="release", key="pat")
    yield lab, ids
    lab.close()


def _ask(router: Router, unit: str, i: int) -> str:
    route = router.refresh().routes["digits"]
    b = body(i)
    answer = router.predict(
        route,
        unit=unit,
        inputs=b["inputs"],  # type: ignore[arg-type]
        truth=str(b["label"]),
        low_risk=True,
    )
    return answer.role


@contextlib.contextmanager
def _canary(lab: Lab, pkg: str, cap: ExposureCap) -> Iterator[Router]:
    """A router serving a 100% canary of ``pkg`` (stages need 20 requests) under ``cap``."""
    router = lab.router(canary_policy=CanaryPolicy(stage_min=20))
    try:
        shadow(lab, router, pkg)
        controller.start_canary(lab.supply, "digits", percent=100, cap=cap, stage_min=20)
        yield router
    finally:
        router.close()


# -- exposure caps --------------------------------------------------------------------------


def test_an_exposure_cap_rejects_nonsense_and_a_cap_no_stage_could_pass() -> None:
    for bad in (0, -3, 2.5, True):
        with pytest.raises(InvalidRequest, match="positive integer"):
            ExposureCap(requests=bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest, match="needs 100 canary requests"):
        ExposureCap(requests=99).check_passable(100)
    ExposureCap(requests=100).check_passable(100)
    assert ExposureCap.from_record(None) == ExposureCap(requests=None, units=None)
    cap = ExposureCap(requests=7, units=3)
    assert ExposureCap.from_record(cap.to_record()) == cap


def test_a_units_cap_still_admits_the_units_already_in() -> None:
    cap = ExposureCap(requests=None, units=2)
    assert cap.admits(requests=50, units={"a", "b"}, unit="a")
    assert not cap.admits(requests=50, units={"a", "b"}, unit="c")
    assert cap.admits(requests=0, units={"a"}, unit="c")
    assert not ExposureCap(requests=5).admits(requests=5, units=set(), unit="x")


def test_start_canary_refuses_a_cap_below_the_stage_minimum(
    lab_ids: tuple[Lab, dict[str, str]],
) -> None:
    lab, ids = lab_ids
    router = lab.router()
    try:
        shadow(lab, router, ids["good"])
        with pytest.raises(InvalidRequest, match="would stop every stage"):
            controller.start_canary(
                lab.supply, "digits", cap=ExposureCap(requests=10), stage_min=20
            )
        assert controller.release_state(lab.supply, "digits").canary is None  # nothing recorded
    finally:
        router.close()


def test_a_stage_that_reaches_its_request_cap_undecided_stops_inconclusive_exactly_at_the_cap(
    lab_ids: tuple[Lab, dict[str, str]],
) -> None:
    lab, ids = lab_ids
    # 30 requests cannot pass a stage: the error SPRT needs ~76 clean answers to accept.
    with _canary(lab, ids["good"], ExposureCap(requests=30)) as router:
        roles: list[str] = []
        lock = threading.Lock()

        def client(k: int) -> None:  # concurrent requests: the cap must still be exact
            for i in range(40):
                role = _ask(router, f"t{k}-{i}", k * 100 + i)
                with lock:
                    roles.append(role)

        threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert roles.count("canary") == 30
        [stopped] = lab.events(kinds=("release.canary_stopped",))
        assert stopped.payload["inconclusive"] is True
        assert stopped.payload["exposure"] == {"requests": 30, "units": 30}
        assert "exposure cap reached at stage 0" in str(stopped.payload["reason"])
        assert not lab.events(kinds=("release.canary_aborted",))
        state = controller.release_state(lab.supply, "digits")
        assert state.canary is None
        assert lab.resolve(ids["good"]) not in state.deny  # no harm shown: not retired
        after = [_ask(router, f"after-{i}", i) for i in range(20)]
        assert after == ["champion"] * 20
        status = controller.canary_status(lab.supply, "digits")
        assert status["status"] == "stopped"
        assert status["stop"] == {"reason": stopped.payload["reason"], "inconclusive": True}
        assert status["exposure_cap"] == {"requests": 30, "units": None}


def test_a_units_cap_bounds_the_distinct_units_a_stage_exposes(
    lab_ids: tuple[Lab, dict[str, str]],
) -> None:
    lab, ids = lab_ids
    with _canary(lab, ids["good"], ExposureCap(requests=None, units=4)) as router:
        served: dict[str, list[str]] = {}
        for i in range(12):  # four units come back three times each
            unit = f"u{i % 4}"
            served.setdefault(unit, []).append(_ask(router, unit, i))
        assert all(roles == ["canary"] * 3 for roles in served.values())
        assert _ask(router, "a-fifth-unit", 99) == "champion"
        [stopped] = lab.events(kinds=("release.canary_stopped",))
        assert stopped.payload["exposure"] == {"requests": 12, "units": 4}
        assert _ask(router, "u0", 0) == "champion"  # the canary has stopped for everyone


# -- baking -----------------------------------------------------------------------------


def _promote(lab: Lab, router: Router, pkg: str, baking: timedelta) -> None:
    shadow(lab, router, pkg)
    controller.start_canary(lab.supply, "digits", percent=100, stage_min=20)
    for i in range(400):
        _ask(router, f"p-{pkg[:8]}-{i}", i)
        if controller.release_state(lab.supply, "digits").canary_passed:
            break
    assert controller.release_state(lab.supply, "digits").canary_passed
    policy = promotion.PromotionPolicy(dwell=NO_DWELL, baking=baking)
    ev = promotion.promote(lab.supply, "digits", pkg, policy=policy)
    assert ev.payload["baking_s"] == int(baking.total_seconds())


def test_the_previous_champion_stays_warm_while_it_bakes_and_is_released_after(
    lab_ids: tuple[Lab, dict[str, str]],
) -> None:
    lab, ids = lab_ids
    old = lab.resolve(ids["champion"])
    router = lab.router(canary_policy=CanaryPolicy(stage_min=20))
    try:
        _promote(lab, router, ids["good"], timedelta(seconds=3))
        route = router.refresh().routes["digits"]
        assert route.previous is not None and route.previous.package == old
        assert old in router._models  # loaded: a rollback needs no load
        assert router.table.expires is not None
        time.sleep(3.2)
        route = router.refresh().routes["digits"]  # the ledger did not move; time did
        assert route.previous is None
        assert old not in router._models  # released
        assert route.champion.package == lab.resolve(ids["good"])
        # Rollback still works after baking: a cold load, measured like any other.
        ev = promotion.rollback(lab.supply, "digits", switch=lambda: router.refresh(force=True))
        assert ev.payload["package"] == str(old)
        assert router.refresh().routes["digits"].champion.package == old
        assert float(str(ev.payload["recovery"]["time_to_recover_s"])) > 0  # type: ignore[index]
        assert controller.release_state(lab.supply, "digits").baking_until is None
    finally:
        router.close()


def test_after_a_rollback_the_release_aliases_read_stale_and_the_canary_keeps_its_stages(
    lab_ids: tuple[Lab, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    lab, ids = lab_ids
    good = lab.resolve(ids["good"])
    router = lab.router(canary_policy=CanaryPolicy(stage_min=20))
    try:
        shadow(lab, router, ids["good"])
        capsys.readouterr()
        assert main(["--lab", str(lab.config.root), "shadow", "report", "digits"]) == 0
        said = " ".join(capsys.readouterr().out.split())
        assert "the shadow runs: a pair counts here once" in said  # the log lags the server
        assert "GET /admin/digits/status has the live count" in said
        controller.start_canary(lab.supply, "digits", percent=25, stage_min=20)  # stages 25%, 50%
        for i in range(1000):
            _ask(router, f"r-{i}", i)
            if controller.release_state(lab.supply, "digits").canary_passed:
                break
        reached = controller.canary_status(lab.supply, "digits")
        assert reached["status"] == "passed" and reached["stage"] == 1, reached
        policy = promotion.PromotionPolicy(dwell=NO_DWELL, baking=timedelta(0))
        promotion.promote(lab.supply, "digits", ids["good"], policy=policy)
        promoted = controller.canary_status(lab.supply, "digits")
        assert promoted["status"] == "promoted" and promoted["stage"] == 1
        capsys.readouterr()
        assert main(["--lab", str(lab.config.root), "rollback", "digits"]) == 0
        out = capsys.readouterr().out  # the switch and this process's cold load, apart
        assert re.search(r"switch +\d+\.\d{3} s .*cold load +\d+\.\d{3} s", out, re.DOTALL)
        rolled = lab.events(kinds=("release.rolled_back",))[-1]
    finally:
        router.close()
    status = controller.canary_status(lab.supply, "digits")
    assert status["package"] == str(good)
    assert status["stage"] == reached["stage"]  # not reset to stage 0
    assert status["status"] == "rolled back"
    assert status["since"] == {"event": "release.rolled_back", "seq": rolled.seq}
    stale = controller.stale_release_aliases(lab.supply, "digits")
    assert lab.alias("digits", "shadow") == good and lab.alias("digits", "canary") == good
    assert stale == {"shadow": stale["canary"], "canary": stale["canary"]}
    assert stale["canary"] == f"rolled back at seq {rolled.seq}"
    with pytest.raises(NotFound, match=r"still names .* whose run ended \(rolled back at seq"):
        controller.stop_shadow(lab.supply, "digits")
    lab.close()
    assert main(["--lab", str(lab.config.root), "show", str(good)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "digits@shadow (stale: rolled back at seq" in out
    assert "digits@canary (stale: rolled back at seq" in out


def test_a_canary_failure_counts_against_it_only_when_the_champion_answered_the_input(
    lab_ids: tuple[Lab, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    lab, ids = lab_ids
    with _canary(lab, ids["good"], ExposureCap()) as router:
        router.faults["canary"] = 1.0  # every canary answer fails
        route = router.refresh().routes["digits"]
        run = route.canary_run
        assert run is not None
        units = (f"u{i}" for i in range(10_000))
        unit = next(u for u in units if run.contains(u))
        inputs = body(0)["inputs"]
        before = run.stage.requests

        def champion_fails(self: ServedModel, inputs: object) -> tuple[str, list[float]]:
            raise Unavailable("the champion cannot answer this input either")

        with monkeypatch.context() as m:  # an input no model answers: nobody's verdict
            m.setattr(ServedModel, "predict", champion_fails)
            with pytest.raises(Unavailable):
                router.predict(route, unit=unit, inputs=inputs, truth=None, low_risk=True)  # type: ignore[arg-type]
        assert run.stage.requests == before
        answer = router.predict(route, unit=unit, inputs=inputs, truth=None, low_risk=True)  # type: ignore[arg-type]
        assert answer.role == "champion" and answer.canary_failed  # the user got an answer
        assert run.stage.requests == before + 1  # and the canary's failure was counted


def test_a_zero_baking_period_keeps_nothing_warm(
    lab_ids: tuple[Lab, dict[str, str]],
) -> None:
    lab, ids = lab_ids
    router = lab.router(canary_policy=CanaryPolicy(stage_min=20))
    try:
        _promote(lab, router, ids["good"], timedelta(0))
        table = router.refresh()
        assert table.routes["digits"].previous is None and table.expires is None
        with pytest.raises(InvalidRequest, match="not negative"):
            promotion.PromotionPolicy(baking=timedelta(seconds=-1))
    finally:
        router.close()


# -- the shadow process -----------------------------------------------------------------------


def test_the_shadow_process_runs_at_idle_priority_unless_configured_otherwise(
    lab_ids: tuple[Lab, dict[str, str]],
) -> None:
    lab, ids = lab_ids
    router = lab.router()  # this lab: [release] shadow_priority = "normal"
    try:
        controller.start_shadow(lab.supply, "digits", ids["good"])
        route = router.refresh().routes["digits"]
        assert route.shadow is not None and router.mirror.pid is not None
        assert os.sched_getscheduler(router.mirror.pid) == os.SCHED_OTHER
        idle = mirror.ShadowMirror()  # the default: SCHED_IDLE, set before it imports
        idle.retarget([(route.shadow, route.champion)])
        try:
            assert idle.pid is not None
            assert os.sched_getscheduler(idle.pid) == os.SCHED_IDLE  # no wait: no CPU needed
        finally:
            idle.close()
    finally:
        router.close()


def test_the_shadow_process_times_a_sample_of_its_pairs(
    lab_ids: tuple[Lab, dict[str, str]],
) -> None:
    lab, ids = lab_ids
    router = lab.router()
    try:
        shadow(lab, router, ids["good"], n=200)
        _, pairs, _ = controller.read_shadow_pairs(lab.supply, "digits")
        answered = [p for p in pairs if p.answered]
        timed = [p for p in answered if p.timed]
        assert len(answered) == 200
        assert 200 // 4 <= len(timed) <= 200 // 4 + 1  # the first, then one in four
        assert all(p.primary_latency_s and p.shadow_latency_s for p in timed)
        _, report = controller.shadow_report(lab.supply, "digits")
        assert report.latency_p50 is not None and report.latency_p50.pairs == len(timed)
    finally:
        router.close()


def test_nothing_crosses_to_the_shadow_process_by_pickle() -> None:
    for module in (mirror, router_module, shadow_process):
        tree = ast.parse(Path(str(module.__file__)).read_text("utf-8"))
        imported = {
            alias.name.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.Import | ast.ImportFrom)
            for alias in (node.names if isinstance(node, ast.Import) else [node])  # type: ignore[list-item]
            if isinstance(alias, ast.alias)
        } | {
            str(node.module).split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom)
        }
        assert not imported & {"pickle", "multiprocessing", "marshal", "shelve", "dill"}


def test_a_server_script_without_a_main_guard_still_shadows(
    lab_ids: tuple[Lab, dict[str, str]], tmp_path: Path
) -> None:
    # multiprocessing's spawn re-imports the parent's __main__, which breaks (or forks
    # forever) a script without the guard; the shadow process must not depend on it.
    lab, ids = lab_ids
    controller.start_shadow(lab.supply, "digits", ids["good"])
    tests = Path(__file__).resolve().parents[1]
    script = tmp_path / "unguarded.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys
            from pathlib import Path
            sys.path.insert(0, {str(tests)!r})
            from release_lab import body
            from breedlab.lab import Lab
            from breedlab.lab import release as controller
            lab = Lab.open(Path({str(lab.config.root)!r}))
            router = lab.router()
            assert router.mirror.wait_ready(timeout=300), "the shadow process never became ready"
            route = router.refresh().routes["digits"]
            for i in range(20):
                router.predict(route, unit=str(i), inputs=body(i)["inputs"], truth=None,
                               low_risk=True)
            router.mirror.flush(timeout=60)
            print(router.mirror.mirrored, router.mirror.dropped)
            router.close()
            lab.close()
            """
        ),
        "utf-8",
    )
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["20", "0"]


def test_a_shadow_process_that_dies_is_started_again_after_a_backoff(
    lab_ids: tuple[Lab, dict[str, str]],
) -> None:
    lab, ids = lab_ids
    router = lab.router()
    try:
        shadow(lab, router, ids["good"], n=10)
        first = router.mirror.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        route = router.refresh().routes["digits"]
        deadline = time.monotonic() + 120  # a generous bound on an event, not a timer
        while router.mirror._alive and time.monotonic() < deadline:
            time.sleep(0.05)  # the collector notices the end of the pipe
        for i in range(5):  # inside the backoff: dropped, and no restart yet
            router.predict(route, unit=f"k{i}", inputs=body(i)["inputs"], truth=None, low_risk=True)  # type: ignore[arg-type]
        assert router.mirror.restarts == 0
        time.sleep(1.1)  # the first backoff is 1 s
        router.predict(route, unit="wake", inputs=body(0)["inputs"], truth=None, low_risk=True)  # type: ignore[arg-type]
        deadline = time.monotonic() + 120
        while router.mirror.restarts == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert router.mirror.wait_ready(timeout=300)
        second = router.mirror.pid
        assert second is not None and second != first and router.mirror.restarts == 1
        dropped = router.mirror.dropped
        for i in range(20):
            router.predict(route, unit=f"b{i}", inputs=body(i)["inputs"], truth=None, low_risk=True)  # type: ignore[arg-type]
        router.mirror.flush()
        assert router.mirror.dropped == dropped  # mirrored and answered again
        _, report = controller.shadow_report(lab.supply, "digits")
        assert report.mirrored == report.answered + report.dropped
        assert report.dropped == dropped
    finally:
        router.close()

"""`breedlab traffic` against a real server on 127.0.0.1: it sends the dev split (or a
folder), summarises who answered, refuses other hosts before sending anything, and a
server that is down or refuses a request is one line with its family's exit code. Its
labels reach the canary's guardrails, and `shadow report --wait-pairs` waits for the
shadow's answers."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from breedlab.cli import main
from breedlab.datasets import write_dataset
from breedlab.http import create_app
from breedlab.lab import Lab
from release_lab import digits, release_lab, serving


def _dev_split(lab: Lab, folder: Path, n: int = 40) -> None:
    """Register ``n`` digits as the capability's dev split (``digits@data-dev``)."""
    x, y = digits()
    write_dataset(folder, x=x[:n], y=y[:n], ids=[f"d{i}" for i in range(n)])
    data = lab.import_path(
        folder, kind="dataset", capability="digits", license="CC-BY-4.0", sign_with="erin"
    )
    lab.set_alias("digits", "data-dev", str(data.id))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str], str]]:
    root = tmp_path_factory.mktemp("traffic")
    lab, ids = release_lab(root)
    _dev_split(lab, root / "dev")
    with serving(create_app(lab)) as url:
        yield root, ids, url
    lab.close()


@pytest.fixture
def lab_env(
    served: tuple[Path, dict[str, str], str], monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, dict[str, str], str]:
    monkeypatch.setenv("BREEDLAB_LAB", str(served[0] / "lab"))
    return served


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_traffic_sends_the_dev_split_and_summarises_who_answered(
    lab_env: tuple[Path, dict[str, str], str], capsys: pytest.CaptureFixture[str]
) -> None:
    _, ids, url = lab_env
    assert main(["traffic", "digits", "--url", url, "--count", "30", "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["url"] == url and rec["capability"] == "digits"
    assert rec["dataset"].startswith("digits@data-dev (sha256:")
    assert (rec["sent"], rec["answered"], rec["errors"]) == (30, 30, 0)
    assert rec["roles"] == {"champion": 30} and rec["packages"] == {ids["champion"]: 30}
    assert 0 < rec["latency_s"]["p50"] <= rec["latency_s"]["p95"]
    assert rec["first_error"] is None
    # Without --count: one request per item; localhost is loopback too.
    port = url.rsplit(":", 1)[1]
    assert main(["traffic", "digits", "--url", f"http://localhost:{port}", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["answered"] == 40


def test_traffic_from_a_folder_prints_a_table_people_read(
    lab_env: tuple[Path, dict[str, str], str], capsys: pytest.CaptureFixture[str]
) -> None:
    root, ids, url = lab_env
    code = main(["traffic", "digits", "--url", url, "--dataset", str(root / "dev"), "-h"])
    assert code == 0 and "loopback only" in " ".join(capsys.readouterr().out.split())
    code = main(["traffic", "digits", "--url", url, "--dataset", str(root / "dev"), "--count", "5"])
    out = " ".join(capsys.readouterr().out.split())
    assert code == 0
    assert f"sent 5 request(s) from {root / 'dev'} to {url}: 5 answered, 0 failed" in out
    assert f"answered by champion 5 packages {ids['champion'][:19]} 5 latency p50" in out


@pytest.mark.parametrize(
    ("url", "code", "said"),
    [
        ("not a url", 3, "is not a server URL"),
        ("http://127.0.0.1:8000/v1/digits/predict", 3, "base URL"),
        ("http://127.0.0.1:99999", 3, "bad port"),
        ("http://192.0.2.1:8000", 6, "192.0.2.1 is not this machine"),
        ("http://example.org", 6, "example.org is not this machine"),
    ],
)
def test_a_bad_url_or_another_host_is_refused_before_anything_is_sent(
    lab_env: tuple[Path, dict[str, str], str],
    capsys: pytest.CaptureFixture[str],
    url: str,
    code: int,
    said: str,
) -> None:
    assert main(["traffic", "digits", "--url", url]) == code
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: ") and said in captured.err
    assert "Traceback" not in captured.err
    assert main(["traffic", "digits", "--url", url, "--json"]) == code
    err = json.loads(capsys.readouterr().err)
    assert err["error"] == ("invalid_request" if code == 3 else "policy_refused")


def test_a_server_that_is_down_is_one_line_with_a_hint_and_exit_8(
    lab_env: tuple[Path, dict[str, str], str], capsys: pytest.CaptureFixture[str]
) -> None:
    down = f"http://127.0.0.1:{_free_port()}"
    assert main(["traffic", "digits", "--url", down]) == 8
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith(f"error: no server answers at {down}")
    assert err[1].startswith("hint: start one with 'breedlab serve'")
    assert len(err) == 2
    assert main(["traffic", "digits", "--url", down, "--json"]) == 8
    captured = capsys.readouterr()
    assert captured.out == ""
    body = json.loads(captured.err)
    assert body["error"] == "unavailable" and "breedlab serve" in body["hint"]


def test_a_request_the_server_refuses_stops_the_run_with_its_family_exit_code(
    lab_env: tuple[Path, dict[str, str], str], capsys: pytest.CaptureFixture[str]
) -> None:
    root, _, url = lab_env
    folder = root / "too-bright"
    if not folder.exists():  # pixels far outside the contract's 0..16
        write_dataset(folder, x=np.full((3, 64), 100.0), y=np.array([1, 2, 3]), ids=["a", "b", "c"])
    args = ["traffic", "digits", "--url", url, "--dataset", str(folder), "--count", "9"]
    assert main([*args, "--json"]) == 3
    captured = capsys.readouterr()
    rec = json.loads(captured.out)  # the summary still goes to stdout
    assert (rec["sent"], rec["answered"], rec["errors"]) == (1, 0, 1)  # nothing would pass
    assert rec["first_error"].startswith("the server answered 422 invalid_request: ")
    assert json.loads(captured.err)["message"] == rec["first_error"]


def test_a_timeout_that_is_not_a_number_of_seconds_is_refused(
    lab_env: tuple[Path, dict[str, str], str], capsys: pytest.CaptureFixture[str]
) -> None:
    _, _, url = lab_env
    # inf passes the options' ranges (nan does not: a usage error), and would never end.
    assert main(["traffic", "digits", "--url", url, "--timeout", "inf"]) == 3
    assert main(["shadow", "report", "digits", "--wait-pairs", "1", "--timeout", "inf"]) == 3
    err = capsys.readouterr().err
    assert err.count("error: --timeout is a") == 2 and "Traceback" not in err
    assert main(["traffic", "digits", "--url", url, "--timeout", "nan"]) == 2


@pytest.fixture
def release_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[dict[str, str], str]]:
    lab, ids = release_lab(tmp_path)
    _dev_split(lab, tmp_path / "dev", n=120)
    lab.approve(ids["good"], purpose="release", key="pat")
    monkeypatch.setenv("BREEDLAB_LAB", str(tmp_path / "lab"))
    with serving(create_app(lab)) as url:
        yield ids, url
    lab.close()


def test_labelled_traffic_drives_a_shadow_and_a_canary_to_its_verdict(
    release_env: tuple[dict[str, str], str], capsys: pytest.CaptureFixture[str]
) -> None:
    ids, url = release_env
    assert main(["shadow", "start", "digits", ids["good"][:16]]) == 0
    # No traffic yet: waiting for answers that cannot come ends at the bound, one line.
    assert main(["shadow", "report", "digits", "--wait-pairs", "1", "--timeout", "0"]) == 8
    assert "0 answered pair(s) after 0 s" in capsys.readouterr().err
    assert main(["traffic", "digits", "--url", url, "--count", "60"]) == 0
    assert "60 answered, 0 failed" in capsys.readouterr().out
    # The shadow process answers in its own time: the report waits for it (an event,
    # with a generous bound for a loaded host).
    code = main(["shadow", "report", "digits", "--wait-pairs", "60", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["answered"] == 60 and report["dropped"] == 0
    assert main(["canary", "start", "digits", "--percent", "50"]) == 0
    capsys.readouterr()
    assert main(["traffic", "digits", "--url", url, "--count", "400", "--json"]) == 0
    sent = json.loads(capsys.readouterr().out)
    assert sent["answered"] == 400 and sent["roles"]["canary"] >= 100
    assert sent["packages"][ids["good"]] == sent["roles"]["canary"]
    assert main(["canary", "status", "digits", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["status"] == "passed"
    # Each canary request carried its item's label: the wrong-answer guardrail counted
    # every one of them (without labels it counts none).
    assert status["guardrails"]["wrong"]["n"] == status["requests"] == 100
    # A shadow run that ended cannot deliver more pairs: no waiting, a policy refusal.
    assert main(["shadow", "stop", "digits"]) == 0
    assert main(["shadow", "report", "digits", "--wait-pairs", "1000"]) == 6
    assert re.search(r"ended with \d+ answered pair\(s\), not 1000", capsys.readouterr().err)

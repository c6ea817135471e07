"""The release commands are shells over the controller: one line per error with the
family's exit code, JSON where they print data, and exit-criteria fails loudly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from breedlab.cli import main
from release_lab import release_lab


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("release-cli")
    lab, ids = release_lab(root)
    lab.close()
    return root, ids


@pytest.fixture
def lab_dir(
    built: tuple[Path, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, dict[str, str]]:
    monkeypatch.setenv("BREEDLAB_LAB", str(built[0] / "lab"))
    return built


def test_release_commands_refuse_with_one_line_and_the_family_exit_code(
    lab_dir: tuple[Path, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    _, ids = lab_dir
    assert main(["shadow", "report", "digits"]) == 4
    assert main(["canary", "status", "digits"]) == 4
    assert main(["rollback", "digits"]) == 4
    # Not recommended by the controller and not approved: refused by policy.
    assert main(["shadow", "start", "digits", ids["good"][:16]]) == 6
    assert main(["promote", "digits", ids["good"][:16]]) == 6
    # An exposure cap no stage could pass (a stage needs 100 requests) is bad input.
    assert main(["canary", "start", "digits", "--max-requests", "99"]) == 3
    err = capsys.readouterr().err
    assert "would stop every stage" in err
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if line[:1] != " "]
    assert all(line.startswith(("error:", "hint:")) for line in lines)
    assert main(["promote", "digits", ids["good"][:16], "--baking", "-1"]) == 2  # usage


def test_shadow_replay_and_exit_criteria_through_the_cli(
    lab_dir: tuple[Path, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    root, ids = lab_dir
    from release_lab import body

    log = root / "requests.jsonl"
    log.write_text("".join(json.dumps(body(i)) + "\n" for i in range(40)))
    capsys.readouterr()
    code = main(["shadow", "replay", "digits", str(log), "--package", ids["good"][:16], "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["answered"] == 40 and float(report["agreement"]["estimate"]) > 0.9
    # the same report as a table (it crashed on the flip matrix once there was data)
    code = main(["shadow", "replay", "digits", str(log), "--package", ids["broken"][:16]])
    out = capsys.readouterr().out
    assert code == 0 and "flips (champion->shadow)" in " ".join(out.split())
    assert "->" in out.split("flips", 1)[1]  # a damaged head flips labels
    assert main(["exit-criteria", "digits", "--json"]) == 1  # no round, no promotion yet
    criteria = {c["name"]: c for c in json.loads(capsys.readouterr().out)}
    assert criteria["verify hashes"]["passed"] is True
    assert criteria["reproduce candidates"]["passed"] is False
    assert criteria["rollback every promoted artifact"]["passed"] is False


def test_breedlab_serve_binds_loopback_and_creates_a_private_admin_token(
    lab_dir: tuple[Path, dict[str, str]],
) -> None:
    import os
    import socket
    import subprocess
    import sys
    import time

    import httpx

    root, ids = lab_dir
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cli = [sys.executable, "-c", "from breedlab.cli import main; main()"]
    proc = subprocess.Popen(
        [*cli, "--lab", str(root / "lab"), "serve", "--port", str(port), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        started = json.loads(proc.stdout.readline())  # one JSON line, then only warnings
        assert started["url"] == f"http://127.0.0.1:{port}" and started["pid"] == proc.pid
        assert started["admin_token_file"] == str(root / "lab" / "keys" / "admin.token")
        deadline = time.monotonic() + 300  # a cold start under load: imports, models
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.2)
        assert health.json()["champions"]["digits"] == ids["champion"]
        token = root / "lab" / "keys" / "admin.token"
        assert os.stat(token).st_mode & 0o777 == 0o600
        headers = {"Authorization": f"Bearer {token.read_text().strip()}"}
        r = httpx.get(f"http://127.0.0.1:{port}/admin/digits/status", headers=headers)
        assert r.status_code == 200 and r.json()["champion"] == ids["champion"]
    finally:
        proc.terminate()
        proc.communicate(timeout=60)  # reaps it and closes its stdout


def test_serve_on_port_0_says_where_once_it_listens_and_stops_cleanly_on_sigterm(
    lab_dir: tuple[Path, dict[str, str]],
) -> None:
    import signal
    import subprocess
    import sys

    import httpx

    root, ids = lab_dir
    cli = [
        sys.executable,
        "-c",
        "from breedlab.cli import main; main()",
        "--lab",
        str(root / "lab"),
    ]
    proc = subprocess.Popen(
        [*cli, "serve", "--port", "0", "--json", "--shadow-priority", "normal"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        started = json.loads(proc.stdout.readline())
        port = int(started["url"].rsplit(":", 1)[1])
        assert port != 0 and started["url"] == f"http://127.0.0.1:{port}"
        # It listened before it said where: the first try connects (no retry loop).
        health = httpx.get(f"{started['url']}/healthz", timeout=300, trust_env=False)
        assert health.json()["champions"]["digits"] == ids["champion"]
        # That port is taken now: a second server says so in one line, before loading.
        second = subprocess.run(
            [*cli, "serve", "--port", str(port)], capture_output=True, text=True, timeout=300
        )
        assert second.returncode == 3
        assert second.stderr.startswith(f"error: cannot listen on 127.0.0.1:{port}: ")
        assert "hint: choose another --port (--port 0 takes any free one)" in second.stderr
        bad = subprocess.run(
            [*cli, "serve", "--port", "0", "--shadow-priority", "low"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert bad.returncode == 3 and "shadow priority is one of idle, normal" in bad.stderr
        proc.send_signal(signal.SIGTERM)  # what `kill` sends: a clean stop, exit 0
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert out == "" and "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()

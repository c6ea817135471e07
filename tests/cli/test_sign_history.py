"""A lab from before signed events: verification refuses its unsigned history until the
lab key vouches for it once (``breedlab ledger sign-history``), which also pins the lab
key; unsigned events after that are refused again."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from breedlab.cli import main
from breedlab.lab import Lab


def _old_lab(root: Path) -> None:
    """A lab whose history holds events written unsigned, as versions before signed
    events wrote them, and whose config pins no lab key."""
    with Lab.init(root) as lab:
        lab.generate_key("alice", "model")
        model = root.parent / "m"
        model.mkdir()
        (model / "model.safetensors").write_bytes(b"w" * 64)
        for seq_kind in ("staging", "nightly"):
            lab.ledger.append(
                "alias.moved",
                "digits",
                {"capability": "digits", "alias": seq_kind, "old": None,
                 "new": "sha256:" + "0" * 64, "reason": "old"},
                signer=None,
                actor="old-breedlab",
            )  # fmt: skip
    config = root / "breedlab.toml"
    config.write_text(re.sub(r'lab_key_id = "\w+"', 'lab_key_id = ""', config.read_text()))


def test_sign_history_vouches_once_pins_the_lab_key_and_refuses_later_unsigned_events(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "lab"
    _old_lab(root)
    lab_flag = ["--lab", str(root)]

    assert main([*lab_flag, "ledger", "verify"]) == 5
    assert "not signed" in capsys.readouterr().err

    assert main([*lab_flag, "ledger", "sign-history", "--json"]) == 0
    attested = json.loads(capsys.readouterr().out)
    assert attested["kind"] == "ledger.attested" and attested["payload"]["unsigned"] == 2
    assert re.search(r'lab_key_id = "[0-9a-f]{64}"', (root / "breedlab.toml").read_text())

    assert main([*lab_flag, "ledger", "verify", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["attested"] == 2 and report["pinned"] is True
    assert main([*lab_flag, "ledger", "sign-history"]) == 7  # nothing left to vouch for
    capsys.readouterr()

    with Lab.open(root) as lab:
        ev = lab.ledger.append("alias.moved", "digits", {
            "capability": "digits", "alias": "late", "old": None,
            "new": "sha256:" + "0" * 64, "reason": "",
        }, signer=None, actor="mallory")  # fmt: skip
    assert main([*lab_flag, "ledger", "verify"]) == 5
    assert f"ledger seq {ev.seq} (alias.moved): not signed" in " ".join(
        capsys.readouterr().err.split()
    )

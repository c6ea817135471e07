"""Rounds are numbered per capability (issue 10): ``round-1`` of two capabilities are
told apart by ``CAP/round-N``; a bare ``round-N`` that names both is refused with a hint."""

from __future__ import annotations

from pathlib import Path

import pytest

from breedlab import canonical
from breedlab.errors import InvalidRequest
from breedlab.lab import Lab


def test_a_round_name_shared_by_two_capabilities_must_be_qualified(tmp_path: Path) -> None:
    with Lab.init(tmp_path / "lab") as lab:
        seqs = {}
        for cap in ("alpha", "beta"):
            record = lab.blobs.put_bytes(canonical.encode({"capability": cap}))
            seqs[cap] = lab.ledger.append(
                "decision.made",
                cap,
                {"round": "round-1", "decision": str(record)},
                signer=lab.factory_signer(),
            ).seq
        with pytest.raises(InvalidRequest, match="more than one capability") as caught:
            lab.decision("round-1")
        assert caught.value.hint == "name one of: alpha/round-1, beta/round-1"
        for cap in ("alpha", "beta"):
            event, record = lab.decision(f"{cap}/round-1")
            assert event.seq == seqs[cap] and record == {"capability": cap}

"""``breedlab migrate`` copies a lab to S3 + PostgreSQL and back, verifying every object
and the chain, and refuses a target that holds anything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from services import Bucket

from breedlab.cli import main
from breedlab.errors import Conflict, InvalidRequest
from breedlab.lab import Lab


def _state(lab: Lab) -> tuple[list[tuple[int, str]], list[str]]:
    events = [(e.seq, e.hash) for e in lab.events()]
    return events, sorted(d.hex for d in lab.blobs.digests())


def test_a_lab_goes_to_s3_and_postgresql_and_back_unchanged(
    lab: Lab, tmp_path: Path, pg_url: str, bucket: Bucket, capsys: pytest.CaptureFixture[str]
) -> None:
    lab.checkpoint()
    before = _state(lab)
    scaled = tmp_path / "scaled"
    code = main(["--lab", str(lab.config.root), "migrate", str(scaled), "--store", bucket.url,
                 "--store-endpoint", bucket.endpoint, "--store-region", "us-east-1",
                 "--ledger", pg_url, "--json"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    report = json.loads(capsys.readouterr().out)
    assert report["events"] == len(before[0]) and report["objects"] == len(before[1])

    with Lab.open(scaled) as copy:
        assert copy.config.store_url == bucket.url and copy.config.ledger_url == pg_url
        assert _state(copy) == before
        assert copy.verify_store().problems == ()
        assert copy.verify_ledger().checkpoints[0].status == "verified"
        assert [k.name for k in copy.keys()] == [k.name for k in lab.keys()]
        copy.generate_key("newcomer", "model")  # the copy is a working lab
        back = copy.migrate(tmp_path / "back")
        after = _state(copy)
        with pytest.raises(Conflict, match="not empty"):  # same bucket and database again
            lab.migrate(tmp_path / "again", store_url=bucket.url, ledger_url=pg_url,
                        store_endpoint=bucket.endpoint, store_region="us-east-1")  # fmt: skip
    assert not (tmp_path / "again").exists()
    with Lab.open(tmp_path / "back") as home:
        assert home.config.store_url == "objects" and home.config.ledger_url == "ledger.db"
        assert _state(home) == after and back.events == len(after[0])
        home.verify_ledger()


def test_a_non_empty_target_folder_is_refused(lab: Lab, tmp_path: Path) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file").write_text("mine")
    with pytest.raises(InvalidRequest, match="not an empty folder"):
        lab.migrate(tmp_path / "busy")
    assert (tmp_path / "busy" / "file").read_text() == "mine"

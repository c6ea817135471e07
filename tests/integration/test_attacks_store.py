"""Attacks on the object store: every flipped, swapped, cut, deleted or planted byte is
named by ``verify`` (which package, which file) or ``verify_store`` (which object).

DESIGN §4: "Every read verifies the digest. ``breedlab verify`` re-hashes everything it
is asked to." Immutability rests on verification, not on file modes (root ignores 0444).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from attack_lab import Fixture

from breedlab.digest import Digest
from breedlab.errors import IntegrityError
from breedlab.lab import VerifyResult


def failed(results: list[VerifyResult]) -> dict[str, list[tuple[str, str]]]:
    """Package id → [(where, message)] for every package that did not verify."""
    return {r.package: [(p.where, p.message) for p in r.problems] for r in results if not r.ok}


@pytest.mark.parametrize("path", ["model.safetensors", "config.json", "notes/card.md"])
@pytest.mark.parametrize("offset", [0, None, -1], ids=["first", "middle", "last"])
def test_a_flipped_byte_in_a_file_blob_is_named_by_verify_with_its_package_and_path(
    fx: Fixture, path: str, offset: int | None
) -> None:
    blob = fx.file_digest(fx.ids.model, path)
    fx.flip(blob, offset)

    bad = failed(fx.lab.verify())

    assert list(bad) == [fx.ids.model]
    [(where, message)] = bad[fx.ids.model]
    assert where == path
    assert blob in message and "corrupt" in message
    store = fx.lab.verify_store()
    assert [p.where for p in store.problems] == [f"object {Digest.parse(blob).short}"]


@pytest.mark.parametrize("change", ["cut", "grow"])
def test_a_blob_cut_short_or_grown_by_one_byte_is_named_by_verify(fx: Fixture, change: str) -> None:
    blob = fx.blob_path(fx.file_digest(fx.ids.dataset, "data.safetensors"))
    data = blob.read_bytes()
    blob.chmod(0o644)
    blob.write_bytes(data[:-1] if change == "cut" else data + b"\x00")

    bad = failed(fx.lab.verify())

    assert list(bad) == [fx.ids.dataset]
    assert [where for where, _ in bad[fx.ids.dataset]] == ["data.safetensors"]
    assert len(fx.lab.verify_store().problems) == 1


def test_a_flipped_byte_in_a_manifest_is_named_as_the_manifest_of_its_package(
    fx: Fixture,
) -> None:
    fx.flip(fx.ids.wide, 5)

    bad = failed(fx.lab.verify())

    assert list(bad) == [fx.ids.wide]
    [(where, message)] = bad[fx.ids.wide]
    assert where == "manifest"
    assert fx.ids.wide in message
    [result] = fx.lab.verify([fx.ids.wide])
    assert result.name == "?"  # nothing of a corrupt manifest is believed


def test_a_flipped_byte_in_a_provenance_statement_is_named_as_provenance(fx: Fixture) -> None:
    fx.flip(fx.manifest(fx.ids.dataset).provenance)

    bad = failed(fx.lab.verify())

    assert list(bad) == [fx.ids.dataset]
    assert [where for where, _ in bad[fx.ids.dataset]] == ["provenance"]


def test_a_flipped_byte_in_a_signature_envelope_is_named_and_the_signer_no_longer_counts(
    fx: Fixture,
) -> None:
    envelope = fx.envelope("signatures", fx.ids.dataset)
    fx.flip(envelope)

    [result] = fx.lab.verify([fx.ids.dataset])

    assert not result.ok
    assert [p.where for p in result.problems] == [f"signature {envelope[:19]}"]
    assert "corrupt" in result.problems[0].message
    assert result.signed_by == ()


def test_a_flipped_byte_in_an_approval_envelope_is_named_and_blocks_the_champion(
    fx: Fixture,
) -> None:
    envelope = fx.envelope("approvals", fx.ids.wide, purpose="release")
    fx.flip(envelope)

    [result] = fx.lab.verify([fx.ids.wide])

    assert [p.where for p in result.problems] == [f"approval {envelope[:19]}"]
    with pytest.raises(IntegrityError, match="approval"):
        fx.lab.promote("digits", fx.ids.wide, key="pat")
    assert str(fx.lab.alias("digits", "champion")) == fx.ids.model


@pytest.mark.parametrize("offset", [0, None, -1], ids=["first", "middle", "last"])
def test_a_flipped_byte_in_an_unreferenced_object_is_named_by_verify_store(
    fx: Fixture, offset: int | None
) -> None:
    loose = fx.lab.blobs.put_bytes(b"an object no package refers to, yet\n" * 10)
    fx.flip(loose, offset)

    store = fx.lab.verify_store()

    assert [p.where for p in store.problems] == [f"object {loose.short}"]
    assert str(loose) in store.problems[0].message
    assert not failed(fx.lab.verify())  # no package refers to it


def test_a_blob_swapped_for_another_blobs_bytes_is_caught_where_it_was_swapped(
    fx: Fixture,
) -> None:
    victim = fx.file_digest(fx.ids.model, "model.safetensors")
    donor = fx.file_digest(fx.ids.wide, "model.safetensors")
    target = fx.blob_path(victim)
    target.chmod(0o644)
    target.write_bytes(fx.blob_path(donor).read_bytes())

    bad = failed(fx.lab.verify())
    store = fx.lab.verify_store()

    assert list(bad) == [fx.ids.model]
    assert [where for where, _ in bad[fx.ids.model]] == ["model.safetensors"]
    assert [p.where for p in store.problems] == [f"object {Digest.parse(victim).short}"]


def test_a_swapped_manifest_cannot_pass_for_another_package(fx: Fixture) -> None:
    # The wide model's manifest bytes stored under the draft's id: same kind, same
    # capability, a perfectly valid manifest -- but not the one the id names.
    target = fx.blob_path(fx.ids.draft)
    target.chmod(0o644)
    target.write_bytes(fx.blob_path(fx.ids.wide).read_bytes())

    bad = failed(fx.lab.verify())

    assert list(bad) == [fx.ids.draft]
    assert [where for where, _ in bad[fx.ids.draft]] == ["manifest"]


def test_a_deleted_file_blob_is_named_as_missing_by_verify(fx: Fixture) -> None:
    fx.blob_path(fx.file_digest(fx.ids.model, "config.json")).unlink()

    bad = failed(fx.lab.verify())

    assert list(bad) == [fx.ids.model]
    [(where, message)] = bad[fx.ids.model]
    assert where == "config.json"
    assert "missing" in message


def test_a_stray_file_in_a_fanout_folder_is_reported_by_verify_store(fx: Fixture) -> None:
    fanout = fx.blob_path(fx.ids.model).parent
    stray = fanout / "not-a-digest.txt"
    stray.write_bytes(b"who put this here?")

    store = fx.lab.verify_store()

    assert [(p.where, p.message) for p in store.problems] == [
        (str(stray), "stray file in the object store")
    ]


def test_an_object_planted_under_a_digest_name_it_does_not_hash_to_is_reported(
    fx: Fixture,
) -> None:
    fake = Digest("ab" * 32)
    fx.blob_path(fake).parent.mkdir(parents=True, exist_ok=True)
    fx.blob_path(fake).write_bytes(b"planted")

    store = fx.lab.verify_store()

    assert [p.where for p in store.problems] == [f"object {fake.short}"]


def _file_in_the_sha256_folder(fx: Fixture) -> Path:
    stray = fx.root / "objects" / "sha256" / "README"
    stray.write_bytes(b"stray")
    return stray


def _folder_under_a_digest_name(fx: Fixture) -> Path:
    stray = fx.blob_path(Digest("cd" * 32))
    stray.mkdir(parents=True)
    return stray


@pytest.mark.parametrize("plant", [_file_in_the_sha256_folder, _folder_under_a_digest_name])
def test_a_stray_entry_in_the_object_tree_is_reported_not_a_crash(
    fx: Fixture, plant: Callable[[Fixture], Path]
) -> None:
    stray = plant(fx)

    store = fx.lab.verify_store()

    assert [(p.where, p.message) for p in store.problems] == [
        (str(stray), "stray file in the object store")
    ]


def test_a_stray_file_at_the_top_of_the_object_store_is_reported(fx: Fixture) -> None:
    stray = fx.root / "objects" / "payload.sh"
    stray.write_bytes(b"#!/bin/sh\n")

    store = fx.lab.verify_store()

    assert [p.where for p in store.problems] == [str(stray)]


def test_reconstructing_a_tampered_package_refuses_and_leaves_no_folder(
    fx: Fixture, tmp_path: Path
) -> None:
    fx.flip(fx.file_digest(fx.ids.model, "notes/card.md"))
    out = tmp_path / "rebuilt"

    with pytest.raises(IntegrityError, match="corrupt"):
        fx.lab.reconstruct(fx.ids.model, out=out)

    assert not out.exists()


def test_reimporting_identical_content_does_not_hide_a_corrupt_blob(
    fx: Fixture, tmp_path: Path
) -> None:
    blob = fx.file_digest(fx.ids.wide, "model.safetensors")
    original = fx.blob_path(blob).read_bytes()
    fx.flip(blob)
    source = tmp_path / "again"
    source.mkdir()
    (source / "model.safetensors").write_bytes(original)

    again = fx.lab.import_path(  # a dataset: a model would first be loaded (and refused)
        source, kind="dataset", capability="digits", license="MIT", name="digits-wide-again"
    )

    bad = failed(fx.lab.verify([fx.ids.wide, str(again.id)]))
    assert sorted(bad) == sorted([fx.ids.wide, str(again.id)])
    assert all(where == "model.safetensors" for probs in bad.values() for where, _ in probs)


def test_an_untouched_copy_of_the_fixture_verifies_completely(fx: Fixture) -> None:
    results = fx.lab.verify()

    assert len(results) == 7 and all(r.ok for r in results)
    assert not fx.lab.verify_store().problems
    assert fx.lab.verify_ledger().events == fx.last_seq()
    shutil.rmtree(fx.root / "work", ignore_errors=True)  # scratch is safe to delete
    assert all(r.ok for r in fx.lab.verify())

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from breedlab.digest import Digest
from breedlab.errors import IntegrityError, InvalidRequest
from breedlab.registry.manifest import (
    DataClass,
    FileEntry,
    Kind,
    Manifest,
    RiskTier,
    check_relative_path,
)

H = "a" * 64


def manifest(**changes: object) -> Manifest:
    fields: dict[str, object] = {
        "kind": Kind.MODEL,
        "name": "digits-mlp",
        "capability": "digits",
        "license": "Apache-2.0",
        "data_class": DataClass.PUBLIC,
        "risk_tier": RiskTier.LOW,
        "files": (FileEntry(path="config.json", sha256=H, size=3),),
        "provenance": Digest(H),
    }
    fields.update(changes)
    return Manifest(**fields)  # type: ignore[arg-type]


def test_a_manifest_round_trips_through_its_stored_bytes() -> None:
    m = manifest(parents=(Digest("b" * 64),), meta={"k": "v"}, family="torch")
    assert Manifest.from_bytes(m.to_bytes()) == m
    assert m.id == Digest.of(m.to_bytes())


def test_file_names_are_bound_into_the_id() -> None:
    a = manifest(files=(FileEntry(path="a.bin2", sha256=H, size=1),))
    b = manifest(files=(FileEntry(path="b.bin2", sha256=H, size=1),))
    assert a.id != b.id


@pytest.mark.parametrize(
    "path", ["../x", "/etc/passwd", "a/../../b", "a//b", "./a", "a\\b", "", "a/\x00"]
)
def test_paths_that_could_escape_a_folder_are_refused(path: str) -> None:
    with pytest.raises(InvalidRequest):
        check_relative_path(path)


def test_a_tampered_manifest_with_a_traversal_path_is_an_integrity_error() -> None:
    data = manifest().to_bytes().replace(b'"config.json"', b'"../evil.sh"')
    with pytest.raises(IntegrityError, match="traversal"):
        Manifest.from_bytes(data)


def test_non_canonical_or_unknown_field_manifests_are_refused() -> None:
    data = manifest().to_bytes()
    with pytest.raises(IntegrityError):
        Manifest.from_bytes(data.replace(b",", b", ", 1))
    with pytest.raises(IntegrityError, match="unknown"):
        Manifest.from_bytes(data.replace(b'{"capability"', b'{"a":1,"capability"'))


def test_empty_unsorted_and_duplicate_file_lists_are_refused() -> None:
    with pytest.raises(InvalidRequest):
        manifest(files=())
    entry_a = FileEntry(path="a", sha256=H, size=1)
    entry_b = FileEntry(path="b", sha256=H, size=1)
    with pytest.raises(InvalidRequest):
        manifest(files=(entry_b, entry_a))
    with pytest.raises(InvalidRequest):
        manifest(files=(entry_a, entry_a))


@given(st.sampled_from(list(Kind)), st.sampled_from(list(DataClass)))
def test_every_kind_and_class_round_trips(kind: Kind, data_class: DataClass) -> None:
    m = manifest(kind=kind, data_class=data_class)
    assert Manifest.from_bytes(m.to_bytes()).kind is kind

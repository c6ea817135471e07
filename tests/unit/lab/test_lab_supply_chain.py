"""The Lab's supply chain (seed, stage 1): artifacts cannot be overwritten, aliases
update atomically, every package has provenance and a digest."""

from __future__ import annotations

from pathlib import Path

import pytest

from breedlab.digest import Digest
from breedlab.errors import Conflict, InvalidRequest, NotFound, PolicyError
from breedlab.lab import Lab
from breedlab.signing.statements import SLSA_PREDICATE, Statement
from builders import make_model_dir


def _objects(lab: Lab) -> set[Digest]:
    return set(lab.blobs.digests())


def test_an_import_records_files_provenance_and_an_event(lab: Lab, tmp_path: Path) -> None:
    src = make_model_dir(tmp_path, "m1")
    info = lab.import_path(src, kind="model", capability="digits", license="mit")
    assert info.created
    m = info.manifest
    assert [f.path for f in m.files] == ["config.json", "model.safetensors", "sub/notes.txt"]
    assert m.license == "MIT"
    assert m.data_class.value == "public" and m.risk_tier.value == "low"
    statement = Statement.from_bytes(lab.blobs.get_bytes(m.provenance))
    assert statement.predicate_type == SLSA_PREDICATE
    build = statement.predicate["buildDefinition"]
    assert build["buildType"] == "https://breedlab.dev/build/import/v1"
    assert sorted(s.name for s in statement.subjects) == [f.path for f in m.files]
    events = lab.events(kinds=("package.registered",))
    assert events[-1].subject == str(info.id)


def test_re_importing_identical_content_gives_the_same_id_and_writes_nothing(
    lab: Lab, tmp_path: Path
) -> None:
    src = make_model_dir(tmp_path, "m1")
    first = lab.import_path(src, kind="model", capability="digits", license="MIT")
    objects, events = _objects(lab), len(lab.events())
    again = lab.import_path(src, kind="model", capability="digits", license="MIT")
    assert again.id == first.id and not again.created
    assert _objects(lab) == objects
    assert len(lab.events()) == events


@pytest.mark.parametrize(
    ("kind", "license", "error"),
    [
        ("weights", "MIT", "unknown kind"),
        ("model", "Proprietary-1.0", "SPDX"),
        ("capability", "MIT", "capability add"),
    ],
)
def test_a_refused_import_writes_nothing(
    lab: Lab, tmp_path: Path, kind: str, license: str, error: str
) -> None:
    src = make_model_dir(tmp_path, "m1")
    before_objects, before_events = _objects(lab), len(lab.events())
    with pytest.raises(InvalidRequest, match=error):
        lab.import_path(src, kind=kind, capability="digits", license=license)
    assert _objects(lab) == before_objects
    assert len(lab.events()) == before_events


def test_a_folder_with_one_pickle_among_good_files_writes_nothing(lab: Lab, tmp_path: Path) -> None:
    src = make_model_dir(tmp_path, "m1")
    (src / "zz_weights.ckpt").write_bytes(b"\x80\x04")
    before = _objects(lab)
    with pytest.raises(InvalidRequest, match="pickle"):
        lab.import_path(src, kind="model", capability="digits", license="MIT")
    assert _objects(lab) == before


def test_an_unknown_capability_is_not_found(lab: Lab, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="capability"):
        lab.import_path(make_model_dir(tmp_path, "m"), kind="model", capability="x", license="MIT")


def test_ids_resolve_by_prefix_and_alias(lab: Lab, tmp_path: Path) -> None:
    info = lab.import_path(make_model_dir(tmp_path, "m1"), kind="model", capability="digits",
                           license="MIT")  # fmt: skip
    assert lab.resolve(info.id.hex[:8]) == info.id
    assert lab.resolve(f"sha256:{info.id.hex[:10]}") == info.id
    lab.set_alias("digits", "candidate", str(info.id))
    assert lab.resolve("digits@candidate") == info.id
    with pytest.raises(NotFound):
        lab.resolve("digits@nothing")
    with pytest.raises(NotFound):
        lab.resolve("0000000000")


def _two_models(lab: Lab, tmp_path: Path) -> tuple[Digest, Digest]:
    a = lab.import_path(make_model_dir(tmp_path, "a", b"A"), kind="model", capability="digits",
                        license="MIT", name="a")  # fmt: skip
    b = lab.import_path(make_model_dir(tmp_path, "b", b"B"), kind="model", capability="digits",
                        license="MIT", name="b")  # fmt: skip
    return a.id, b.id


def test_alias_moves_are_compare_and_swap_and_the_history_is_the_ledger(
    lab: Lab, tmp_path: Path
) -> None:
    a, b = _two_models(lab, tmp_path)
    lab.set_alias("digits", "staging", str(a))
    with pytest.raises(Conflict, match=f"points at {str(a)[:19]}, not nothing"):
        lab.set_alias("digits", "staging", str(b))  # stale: expected unset
    with pytest.raises(Conflict):
        lab.set_alias("digits", "staging", str(b), expect=str(b))
    lab.set_alias("digits", "staging", str(b), expect=str(a), reason="better")
    history = lab.alias_history("digits")
    assert [(m.old, m.new) for m in history] == [(None, str(a)), (str(a), str(b))]
    assert history[-1].reason == "better"
    assert lab.alias("digits", "staging") == b
    lab.verify_ledger()


def test_only_approved_unrevoked_verified_models_become_champion(lab: Lab, tmp_path: Path) -> None:
    a, b = _two_models(lab, tmp_path)
    with pytest.raises(PolicyError, match="moves only by promotion or rollback"):
        lab.set_alias("digits", "champion", str(a), key="pat")
    with pytest.raises(PolicyError, match="release approval"):
        lab.promote("digits", str(a), key="pat")
    lab.approve(str(a), purpose="parent", key="alice")
    with pytest.raises(PolicyError, match="release approval"):
        lab.promote("digits", str(a), key="pat")
    lab.approve(str(a), purpose="release", key="pat")
    with pytest.raises(PolicyError, match="signed by nobody"):  # stage 0: a signed champion
        lab.promote("digits", str(a), key="pat")
    lab.sign(str(a), key="alice")
    with pytest.raises(PolicyError, match="'model'"):  # promotions are a production act
        lab.promote("digits", str(a), key="alice")
    first = lab.promote("digits", str(a), key="pat")
    assert first.payload["previous"] is None
    lab.approve(str(b), purpose="release", key="pat")
    lab.sign(str(b), key="alice")
    lab.revoke(str(b), reason="bad data")
    with pytest.raises(PolicyError, match="revoked"):
        lab.promote("digits", str(b), key="pat")
    assert lab.alias("digits", "champion") == a
    lab.verify_ledger()


def test_signing_and_approving_record_who_vouches(lab: Lab, tmp_path: Path) -> None:
    a, _ = _two_models(lab, tmp_path)
    lab.sign(str(a), key="alice")
    with pytest.raises(Conflict):
        lab.sign(str(a), key="alice")
    lab.approve(str(a), purpose="release", key="pat")
    with pytest.raises(Conflict):
        lab.approve(str(a), purpose="release", key="pat")
    with pytest.raises(InvalidRequest, match="purpose"):
        lab.approve(str(a), purpose="fun", key="pat")
    details = lab.show(str(a))
    assert details.signed_by == ("alice",)
    assert [(x.purpose, x.key, x.role) for x in details.approvals] == [
        ("release", "pat", "production")
    ]
    [result] = lab.verify([str(a)])
    assert result.ok and result.signed_by == ("alice",)


def test_lineage_links_parents_and_children(lab: Lab, tmp_path: Path) -> None:
    data = lab.import_path(make_model_dir(tmp_path, "d", b"D"), kind="dataset",
                           capability="digits", license="CC-BY-4.0", name="data")  # fmt: skip
    model = lab.import_path(make_model_dir(tmp_path, "m", b"M"), kind="model",
                            capability="digits", license="MIT", parents=[str(data.id)])  # fmt: skip
    graph = lab.lineage(str(model.id))
    assert [n.name for n in graph.ancestors] == ["m", "data"]
    assert graph.ancestors[0].parents == (str(data.id),)
    down = lab.lineage(str(data.id))
    assert [n.id for n in down.descendants] == [str(model.id)]
    dot = graph.to_dot()
    assert f'"{data.id}" -> "{model.id}"' in dot


def test_the_champion_is_reconstructed_from_the_store_with_the_same_id(
    lab: Lab, tmp_path: Path
) -> None:
    a, _ = _two_models(lab, tmp_path)
    lab.sign(str(a), key="alice")
    lab.approve(str(a), purpose="release", key="pat")
    lab.promote("digits", str(a), key="pat")
    rebuilt = lab.reconstruct("digits@champion", out=tmp_path / "rebuilt")
    assert rebuilt.match and rebuilt.recomputed == str(a)
    assert (tmp_path / "rebuilt" / "sub" / "notes.txt").read_text() == "a"
    with pytest.raises(InvalidRequest, match="not empty"):
        lab.reconstruct("digits@champion", out=tmp_path / "rebuilt")


def test_checkpoints_sign_the_tree_head_and_verify(lab: Lab, tmp_path: Path) -> None:
    _two_models(lab, tmp_path)
    ev = lab.checkpoint()
    assert ev.kind == "checkpoint.signed"
    assert ev.payload["tree_size"] == ev.seq - 1
    report = lab.verify_ledger()
    assert [c.status for c in report.checkpoints] == ["verified"]
    assert report.events == ev.seq


def test_keys_are_trusted_through_the_ledger_and_revocation_is_recorded(lab: Lab) -> None:
    names = {k.name: k for k in lab.keys()}
    assert set(names) == {"lab", "factory", "alice", "erin", "sam", "pat"}
    assert names["factory"].role == "factory"
    assert names["pat"].role == "production" and names["pat"].has_private
    with pytest.raises(Conflict):
        lab.generate_key("pat", "production")
    revoked = lab.revoke_key("sam", "laptop lost")
    assert revoked.status == "revoked" and revoked.revoked_reason == "laptop lost"
    with pytest.raises(Conflict):
        lab.revoke_key("sam", "again")
    with pytest.raises(InvalidRequest):
        lab.revoke_key("erin", "  ")


def test_init_refuses_to_reuse_a_lab_or_a_non_empty_folder(tmp_path: Path) -> None:
    Lab.init(tmp_path / "l1").close()
    with pytest.raises(Conflict):
        Lab.init(tmp_path / "l1")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(InvalidRequest):
        Lab.init(tmp_path / "full")

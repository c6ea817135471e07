"""Parent approvals scoped to failure clusters, and SELECT_APPROVED_PARENTS(failure_cluster)
using them (issue 12: "parent selection that uses the cluster: parents approved for it")."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from breedlab import canonical
from breedlab.digest import Digest
from breedlab.errors import ChainBroken, Conflict, InvalidRequest, PolicyError
from breedlab.lab import Lab
from breedlab.lab.parents import approved_parents, select_parents
from breedlab.registry.manifest import DataClass, Kind, RiskTier
from breedlab.signing import dsse
from breedlab.signing.statements import Statement
from breedlab.supply.packages import register
from builders import make_model_dir

NOISE = "perturbation:noise"
CONFUSION = "confusion:1-8"


def _model(lab: Lab, tmp_path: Path, name: str) -> Digest:
    folder = make_model_dir(tmp_path, name, name.encode())
    info = lab.import_path(folder, kind="model", capability="digits", license="MIT", name=name,
                           sign_with="alice")  # fmt: skip
    return info.id


def _cluster(lab: Lab, meta: dict[str, object], name: str) -> Digest:
    """A failure-cluster dataset as ``lab.failures`` records one (its meta is what counts)."""
    return register(
        lab.supply, files=[("items.json", canonical.encode(meta))], kind=Kind.DATASET,
        name=name, capability="digits", license="MIT", data_class=DataClass.PUBLIC,
        risk_tier=RiskTier.LOW, build_type="failures", external={}, meta={"cluster": meta},
    ).id  # fmt: skip


@pytest.fixture
def scoped(lab: Lab, tmp_path: Path) -> tuple[Lab, dict[str, Digest]]:
    """A champion (unscoped parent), a model for the noise cluster only, one for the
    confusion cluster only, one unscoped, and the two cluster datasets."""
    ids = {n: _model(lab, tmp_path, n) for n in ("champ", "noisy", "confused", "plain")}
    lab.approve(str(ids["champ"]), purpose="release", key="pat")
    lab.promote("digits", str(ids["champ"]), key="pat")
    lab.approve(str(ids["champ"]), purpose="parent", key="alice")
    lab.approve(str(ids["noisy"]), purpose="parent", key="alice", clusters=[NOISE])
    lab.approve(str(ids["confused"]), purpose="parent", key="erin", clusters=[CONFUSION])
    lab.approve(str(ids["plain"]), purpose="parent", key="erin")
    noise = {"kind": "perturbation", "perturbation": {"kind": "noise", "sigma": "0.5"},
             "description": "noise", "severity": "0.2"}  # fmt: skip
    ids["noise"] = _cluster(lab, noise, "digits-cluster-noise")
    ids["confusion"] = _cluster(lab, {"kind": "confusion", "classes": [1, 8]}, "c")
    return lab, ids


def test_a_parent_scoped_to_a_cluster_breeds_on_it_and_not_on_another(
    scoped: tuple[Lab, dict[str, Digest]],
) -> None:
    lab, ids = scoped
    assert lab.cluster_key(ids["noise"]) == NOISE
    assert lab.cluster_key(str(ids["confusion"])) == CONFUSION

    on_noise = select_parents(lab.supply, "digits", NOISE)
    assert on_noise.parents[0] == ids["champ"]
    assert set(on_noise.parents[1:]) == {ids["noisy"], ids["plain"]}
    because = {c.name: c.because for c in on_noise.taken}
    assert because == {"champ": "unscoped", "noisy": "scope", "plain": "unscoped"}
    assert [(c.name, c.scopes) for c in on_noise.left_out] == [("confused", (CONFUSION,))]

    on_confusion = approved_parents(lab.supply, "digits", CONFUSION)
    assert ids["confused"] in on_confusion and ids["noisy"] not in on_confusion
    assert ids["plain"] in on_confusion and on_confusion[0] == ids["champ"]


def test_a_round_without_a_cluster_takes_only_unscoped_parents_as_before(
    scoped: tuple[Lab, dict[str, Digest]],
) -> None:
    lab, _ = scoped
    general = select_parents(lab.supply, "digits", None)
    assert {c.name for c in general.taken} == {"champ", "plain"}
    assert {c.name for c in general.left_out} == {"noisy", "confused"}
    assert approved_parents(lab.supply, "digits") == general.parents
    record = general.to_record()
    assert record["cluster_key"] is None and len(record["left_out"]) == 2


def test_a_champion_approved_only_for_other_clusters_is_refused_naming_the_fix(
    lab: Lab, tmp_path: Path
) -> None:
    champ = _model(lab, tmp_path, "champ")
    lab.approve(str(champ), purpose="release", key="pat")
    lab.promote("digits", str(champ), key="pat")
    lab.approve(str(champ), purpose="parent", key="alice", clusters=[NOISE])
    assert approved_parents(lab.supply, "digits", NOISE) == [champ]
    with pytest.raises(PolicyError, match=f"only for {NOISE}, not for cluster {CONFUSION}") as e:
        approved_parents(lab.supply, "digits", CONFUSION)
    assert f"--cluster {CONFUSION}" in (e.value.hint or "")
    with pytest.raises(PolicyError, match="a round without a cluster"):
        approved_parents(lab.supply, "digits", None)
    # before the round's cluster is known, any parent approval lets the round start
    assert select_parents(lab.supply, "digits", None, any_scope=True).parents == [champ]


def test_a_scoped_release_approval_and_a_malformed_key_are_refused(
    lab: Lab, tmp_path: Path
) -> None:
    model = _model(lab, tmp_path, "m")
    before = len(lab.events())
    with pytest.raises(InvalidRequest, match="only a parent approval is scoped"):
        lab.approve(str(model), purpose="release", key="pat", clusters=[NOISE])
    with pytest.raises(InvalidRequest, match="not a cluster key"):
        lab.approve(str(model), purpose="parent", key="alice", clusters=["Noise"])
    assert len(lab.events()) == before


def test_a_key_may_widen_its_scope_but_not_repeat_what_it_approved(
    lab: Lab, tmp_path: Path
) -> None:
    model = _model(lab, tmp_path, "m")
    first = lab.approve(str(model), purpose="parent", key="alice", clusters=[NOISE, CONFUSION])
    assert first.clusters == (CONFUSION, NOISE)
    with pytest.raises(Conflict, match="covering"):
        lab.approve(str(model), purpose="parent", key="alice", clusters=[NOISE])
    wider = lab.approve(str(model), purpose="parent", key="alice")
    assert wider.clusters == ()
    with pytest.raises(Conflict):
        lab.approve(str(model), purpose="parent", key="alice", clusters=["length:q1"])
    shown = [(a.key, a.clusters) for a in lab.show(str(model)).approvals]
    assert shown == [("alice", (CONFUSION, NOISE)), ("alice", ())]
    [result] = lab.verify([str(model)])
    assert result.ok
    lab.verify_ledger()


def test_the_scope_is_in_the_signed_statement_and_the_event(
    scoped: tuple[Lab, dict[str, Digest]],
) -> None:
    lab, ids = scoped
    [event] = [
        e
        for e in lab.events()
        if e.kind == "package.approved" and e.payload["package"] == str(ids["noisy"])
    ]
    assert event.payload["clusters"] == [NOISE]
    envelope = dsse.Envelope.from_bytes(
        lab.blobs.get_bytes(Digest.parse(str(event.payload["envelope"])))
    )
    assert Statement.from_bytes(envelope.payload).predicate["clusters"] == [NOISE]
    # an unscoped approval's event and statement look as they did before scopes existed
    [plain] = [
        e
        for e in lab.events()
        if e.kind == "package.approved" and e.payload["package"] == str(ids["plain"])
    ]
    assert "clusters" not in plain.payload


def _sql(lab: Lab) -> sqlite3.Connection:
    return sqlite3.connect(lab.config.root / "ledger.db", isolation_level=None)


def test_a_widened_scope_in_the_projection_is_caught_and_does_not_select(
    scoped: tuple[Lab, dict[str, Digest]],
) -> None:
    lab, ids = scoped
    db = _sql(lab)
    try:  # the attacker unscopes the noise-only approval in the derived table
        db.execute("UPDATE approvals SET clusters = NULL WHERE package = ?", (str(ids["noisy"]),))
    finally:
        db.close()
    with pytest.raises(ChainBroken, match="'approvals' disagrees"):
        lab.verify_ledger()
    [result] = lab.verify([str(ids["noisy"])])
    assert not result.ok
    assert "different cluster scope" in result.problems[0].message
    # the edited row would make it a parent of every round; its envelope says otherwise
    assert ids["noisy"] not in approved_parents(lab.supply, "digits", CONFUSION)

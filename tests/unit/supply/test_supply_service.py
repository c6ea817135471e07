"""The registry service (``breedlab.supply``): one command verifies each package once,
and forgets what it verified when the trust behind it changes; a revoked package is told
apart from a tampered one by the problem's kind, not by its wording."""

from __future__ import annotations

from pathlib import Path

import pytest

from breedlab.digest import Digest
from breedlab.errors import IntegrityError, PolicyError
from breedlab.lab import Lab
from breedlab.supply import aliases, packages
from breedlab.supply.values import ProblemKind
from builders import make_model_dir


def _model(lab: Lab, tmp_path: Path, name: str) -> Digest:
    folder = make_model_dir(tmp_path, name)
    info = lab.import_path(folder, kind="model", capability="digits", license="MIT")
    return info.id


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[Digest]:
    """Every package ``supply.packages`` verifies, in order."""
    checked: list[Digest] = []
    real = packages.check_package

    def spy(*args: object, **kwargs: object) -> object:
        checked.append(args[2])  # type: ignore[arg-type]
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(packages, "check_package", spy)
    return checked


def test_one_command_verifies_a_package_once(
    lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid = _model(lab, tmp_path, "m1")
    checked = _counting(monkeypatch)
    with lab.supply.command():
        lab.sign(str(pid), key="alice")  # verified, then signed: forgotten
        aliases.set_alias(lab.supply, "digits", "staging", str(pid))
        aliases.set_alias(lab.supply, "digits", "testing", str(pid))
        with lab.ledger.reader() as r:
            packages.require_intact(lab.supply, r, pid)
    assert checked == [pid, pid]  # before the signature, and once after it


def test_outside_a_command_every_use_verifies_again(
    lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid = _model(lab, tmp_path, "m1")
    checked = _counting(monkeypatch)
    lab.set_alias("digits", "staging", str(pid))
    lab.set_alias("digits", "testing", str(pid))
    assert checked == [pid, pid]


@pytest.mark.parametrize(
    ("revoked", "error", "message"),
    [("itself", PolicyError, "is revoked"), ("its parent", IntegrityError, "parent revoked")],
)
def test_a_revocation_inside_a_command_is_not_hidden_by_what_it_verified(
    lab: Lab, tmp_path: Path, revoked: str, error: type[Exception], message: str
) -> None:
    parent = _model(lab, tmp_path, "parent")
    folder = make_model_dir(tmp_path, "child")
    child = lab.import_path(
        folder, kind="model", capability="digits", license="MIT", parents=[str(parent)]
    ).id
    with lab.supply.command():
        lab.set_alias("digits", "staging", str(child))
        lab.revoke(str(child if revoked == "itself" else parent), reason="bad data")
        with pytest.raises(error, match=message):
            lab.set_alias("digits", "testing", str(child))


def test_the_error_class_follows_the_problem_kind(lab: Lab, tmp_path: Path) -> None:
    tampered = _model(lab, tmp_path, "m1")
    revoked = _model(lab, tmp_path, "m2")
    lab.revoke(str(revoked), reason="bad data")
    # its own file (the two models share their config's blob)
    entry = next(f for f in lab.manifest(tampered).files if f.path == "sub/notes.txt")
    path = lab.blobs.path(entry.digest)  # type: ignore[attr-defined]  # the file store's
    path.chmod(0o644)
    path.write_bytes(b"not the model")
    [bad, gone] = lab.verify([str(tampered), str(revoked)])
    assert [p.kind for p in bad.problems] == [ProblemKind.INTEGRITY]
    assert [p.kind for p in gone.problems] == [ProblemKind.REVOKED]
    with lab.ledger.reader() as r:
        with pytest.raises(IntegrityError, match="does not verify"):
            packages.require_intact(lab.supply, r, tampered)
        with pytest.raises(PolicyError, match="is revoked"):
            packages.require_intact(lab.supply, r, revoked)

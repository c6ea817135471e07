"""The authority table (pure): who may make which change (the promotion rule it applies
is tested in tests/unit/release/test_release_promotion.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from breedlab.authority import RULES, Approval, AuthorityState, Signer, authorize
from breedlab.authority.policy import EnvelopeFacts, Facts, PackageFacts
from breedlab.ledger import Event
from breedlab.ledger.kinds import EventKind
from breedlab.registry.manifest import RiskTier
from breedlab.signing.keys import Role

SRC = Path(__file__).resolve().parents[3] / "src" / "breedlab"
PKG = "sha256:" + "1" * 64
OTHER = "sha256:" + "2" * 64


def signer(role: Role, keyid: str = "k" * 64) -> Signer:
    return Signer(keyid=keyid, name=role.value, role=role)


def event(
    kind: str, payload: dict[str, object], *, seq: int = 10, subject: str = "digits"
) -> Event:
    return Event(
        seq=seq,
        at="2026-01-01T00:00:00.000000Z",
        actor="t",
        kind=kind,
        subject=subject,
        payload=payload,  # type: ignore[arg-type]
        prev_hash="0" * 64,
        hash="1" * 64,
    )


def test_every_kind_is_written_and_read_through_the_catalogue() -> None:
    # A kind spelt as a string in the code escapes the catalogue's payload check and
    # this table's rule-per-kind check (tests/unit/ledger/test_ledger_kinds.py): outside
    # ledger/kinds.py, a catalogue kind appears only as an EventKind member.
    values = {k.value for k in EventKind}
    spelt = []
    members = set()
    for path in SRC.rglob("*.py"):
        if path.name == "kinds.py" and path.parent.name == "ledger":
            continue
        tree = ast.parse(path.read_text())
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
        }
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and node.value in values
                and id(node) not in docstrings
            ):
                spelt.append(f"{path.relative_to(SRC)}:{node.lineno} {node.value!r}")
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "EventKind"
            ):
                members.add(node.attr)
    assert not spelt, spelt
    assert len(members) > 20  # the scan sees the code that writes them
    assert {EventKind[m].value for m in members} <= set(RULES)


def test_an_unknown_kind_is_refused_whoever_signs_it() -> None:
    for role in Role:
        why = authorize(AuthorityState(), event("package.noted", {}), signer(role), Facts())
        assert why is not None and "not a kind" in why


@pytest.mark.parametrize(
    ("kind", "allowed"),
    [
        ("key.added", {Role.LAB}),
        ("checkpoint.signed", {Role.LAB}),
        ("decision.made", {Role.FACTORY}),
        ("release.canary_passed", {Role.FACTORY}),
        ("release.promoted", {Role.PRODUCTION}),
        ("package.approved", {Role.MODEL, Role.EVALUATION, Role.SECURITY, Role.PRODUCTION}),
        ("package.revoked", {Role.LAB, Role.SECURITY, Role.PRODUCTION}),
    ],
)
def test_roles_outside_the_table_are_refused(kind: str, allowed: set[Role]) -> None:
    assert RULES[kind].roles == frozenset(allowed)
    for role in set(Role) - allowed:
        why = authorize(AuthorityState(), event(kind, {}), signer(role), Facts())
        assert why is not None and f"has role '{role}'" in why


def _approval_state() -> AuthorityState:
    state = AuthorityState()
    state.packages[PKG] = PackageFacts(
        id=PKG, kind="model", capability="digits", risk_tier=RiskTier.LOW
    )
    return state


def _approval(keyid: str, role: str, *, signers: set[str], predicate_role: str) -> tuple:
    ev = event(
        "package.approved",
        {"package": PKG, "purpose": "release", "keyid": keyid, "role": role, "envelope": "x"},
    )
    facts = Facts(
        envelope=EnvelopeFacts(
            signers=frozenset(signers),
            package=PKG,
            predicate={"purpose": "release", "role": predicate_role},
        )
    )
    return ev, facts


def test_an_approval_counts_only_for_the_key_that_signed_it_in_its_real_role() -> None:
    alice = signer(Role.MODEL, "a" * 64)
    state = _approval_state()
    ok_ev, ok_facts = _approval("a" * 64, "model", signers={"a" * 64}, predicate_role="model")
    assert authorize(state, ok_ev, alice, ok_facts) is None
    state.apply(ok_ev, alice, ok_facts)
    assert state.valid_approvals(PKG, "release") == (
        Approval(keyid="a" * 64, role=Role.MODEL, purpose="release", seq=10),
    )
    # the row names another key; the row claims another role; the envelope claims one
    for keyid, role, predicate_role, match in [
        ("s" * 64, "security", "security", "names key"),
        ("a" * 64, "security", "model", "claims role 'security'"),
        ("a" * 64, "model", "security", "envelope claims role 'security'"),
    ]:
        ev, facts = _approval(keyid, role, signers={"a" * 64}, predicate_role=predicate_role)
        why = authorize(state, ev, alice, facts)
        assert why is not None and match in why, why
    # an envelope someone else signed
    ev, facts = _approval("a" * 64, "model", signers={"s" * 64}, predicate_role="model")
    assert "not signed by" in str(authorize(state, ev, alice, facts))


def _scoped(purpose: str, event_scope: object, envelope_scope: object) -> tuple[Event, Facts]:
    """An approval by alice (model) whose event and envelope name these scopes
    (``None``: the field is absent)."""

    def scoped(fields: dict[str, object], value: object) -> dict[str, object]:
        return fields if value is None else {**fields, "clusters": value}

    base = {"package": PKG, "purpose": purpose, "keyid": "a" * 64, "role": "model"}
    ev = event("package.approved", scoped({**base, "envelope": "x"}, event_scope))
    predicate = scoped({"purpose": purpose, "role": "model"}, envelope_scope)
    return ev, Facts(
        envelope=EnvelopeFacts(signers=frozenset({"a" * 64}), package=PKG, predicate=predicate)
    )


@pytest.mark.parametrize(
    ("purpose", "event_scope", "envelope_scope", "match"),
    [
        ("parent", None, None, None),  # unscoped, as every approval before scopes
        ("parent", ["perturbation:noise"], ["perturbation:noise"], None),
        ("parent", None, ["perturbation:noise"], "different cluster scope"),  # widened
        ("parent", ["confusion:1-8"], ["perturbation:noise"], "different cluster scope"),
        ("parent", ["perturbation:noise"], None, "different cluster scope"),
        ("release", ["perturbation:noise"], ["perturbation:noise"], "only a parent approval"),
        ("parent", ["z:1", "a:1"], ["z:1", "a:1"], "not a sorted list"),
        ("parent", [], [], "not a sorted list"),
        ("parent", ["Noise"], ["Noise"], "not a sorted list"),
    ],
)
def test_a_cluster_scope_counts_only_on_a_parent_approval_and_as_its_envelope_states(
    purpose: str, event_scope: object, envelope_scope: object, match: str | None
) -> None:
    ev, facts = _scoped(purpose, event_scope, envelope_scope)
    why = authorize(_approval_state(), ev, signer(Role.MODEL, "a" * 64), facts)
    assert why == match if match is None else (why is not None and match in why), why


def test_a_revoked_keys_approvals_stop_counting_from_its_revocation() -> None:
    alice = signer(Role.MODEL, "a" * 64)
    state = _approval_state()
    ev, facts = _approval("a" * 64, "model", signers={"a" * 64}, predicate_role="model")
    state.apply(ev, alice, facts)
    state.apply(event("key.revoked", {"keyid": "a" * 64, "name": "alice"}, seq=11), None, Facts())
    assert state.valid_approvals(PKG, "release") == ()


def _approvals(*pairs: tuple[str, Role]) -> tuple[Approval, ...]:
    return tuple(Approval(keyid=k, role=r, purpose="release", seq=1) for k, r in pairs)


def test_champion_moves_only_by_promotion_or_rollback_by_a_production_key() -> None:
    state = _approval_state()
    state.approvals[PKG] = list(_approvals(("pat", Role.PRODUCTION)))
    state.signers[PKG] = {"alice"}
    move = {"capability": "digits", "alias": "champion", "old": None, "new": PKG, "reason": ""}
    pat = signer(Role.PRODUCTION)
    assert authorize(state, event("alias.moved", {**move, "via": "promote"}), pat, Facts()) is None
    assert "outside a promotion" in str(authorize(state, event("alias.moved", move), pat, Facts()))
    alice = signer(Role.MODEL)
    why = authorize(state, event("alias.moved", {**move, "via": "promote"}), alice, Facts())
    assert "'production' key" in str(why)
    rollback = {**move, "new": OTHER, "via": "rollback"}
    assert "only to digits@previous" in str(
        authorize(state, event("alias.moved", rollback), pat, Facts())
    )

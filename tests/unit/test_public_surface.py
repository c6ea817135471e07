from __future__ import annotations

import importlib

import pytest

MODULES = [
    "breedlab",
    "breedlab.errors",
    "breedlab.choices",
    "breedlab.digest",
    "breedlab.canonical",
    "breedlab.clock",
    "breedlab.interrupts",
    "breedlab.signing",
    "breedlab.authority",
    "breedlab.registry",
    "breedlab.ledger",
    "breedlab.lab",
    "breedlab.lab.recipes",
    "breedlab.lab.recipe_format",
    "breedlab.supply",
    "breedlab.jobs",
    "breedlab.datasets",
    "breedlab.families",
    "breedlab.sandbox",
    "breedlab.viability",
    "breedlab.release",
    "breedlab.evaluator",
    "breedlab.report",
    "breedlab.factory.operators",
]


@pytest.mark.parametrize("name", MODULES)
def test_every_public_name_is_listed_and_exists(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert sorted(exported) == sorted(set(exported))
    for attr in exported:
        assert hasattr(module, attr), f"{name}.{attr}"


def test_the_lab_api_is_pinned() -> None:
    from breedlab.lab import Lab

    public = sorted(n for n in dir(Lab) if not n.startswith("_"))
    assert public == sorted([
        "actor", "add_capability", "alias", "alias_history", "approve", "bootstrap_digits",
        "bootstrap_reviews", "bootstrap_reviews_data",
        "capabilities", "capability", "checkpoint", "close", "decision", "endorse_keys",
        "events", "executor",
        "failures", "generate_key", "import_path", "init", "key", "keys", "lineage",
        "manifest", "migrate", "open", "package", "packages", "reconstruct", "reproduce",
        "reproduce_decision", "resolve",
        "revoke", "revoke_key", "run_round", "set_alias", "show", "sign", "verify",
        "verify_ledger", "verify_store",
        # authority (DESIGN §13)
        "factory_signer", "release_signer", "sign_history", "verify_evidence", "witness_export",
        # a capability of one's own (issue 12)
        "import_dataset", "init_contract",
        # release controls (seed, stage 3)
        "canary_start", "canary_status", "canary_stop", "exit_criteria", "promote",
        "release_state", "rollback", "router", "shadow_pairs", "shadow_replay",
        "shadow_report", "shadow_start", "shadow_stop", "shadow_wait", "stale_release_aliases",
        # jobs' inputs and the sample folders (the demo's and ``breedlab samples``)
        "parent_input", "samples",
        # recipes as data (issue 12)
        "init_recipe", "recipe",
        # parent approvals scoped to failure clusters (issue 12)
        "cluster_key",
        # suites for any capability (issue 12)
        "create_suite",
        # the supply service's parts (``lab.supply`` is the service itself)
        "blobs", "clock", "config", "ledger", "workspace",
    ])  # fmt: skip

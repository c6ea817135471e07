"""The public surface of breedlab.release, and the purity of its cores."""

from __future__ import annotations

import ast
from pathlib import Path

import breedlab.release as release

RELEASE_DIR = Path(release.__file__).parent
PURE_MODULES = [
    "__init__.py",
    "_decimal.py",
    "canary.py",
    "cohorts.py",
    "gates.py",
    "oscillation.py",
    "recovery.py",
    "sequential.py",
    "shadow_stats.py",
    "state.py",
]

# Pure cores: the standard library's pure parts, numpy, scipy and the base modules.
ALLOWED_IMPORTS = {
    "__future__",
    "collections",
    "dataclasses",
    "datetime",
    "enum",
    "hashlib",
    "itertools",
    "math",
    "operator",
    "statistics",
    "typing",
    "numpy",
    "scipy",
    "breedlab",
}
ALLOWED_BREEDLAB = {
    "breedlab.errors",
    "breedlab.canonical",
    "breedlab.clock",
    "breedlab.digest",
    "breedlab.ledger",  # state.py folds Event values; it reads no database
}


def test_the_public_surface_is_pinned() -> None:
    assert sorted(release.__all__) == sorted(
        [
            "DEFAULT_RAMP",
            "DEFAULT_RESAMPLES",
            "MAX_BAKING",
            "SALT_BYTES",
            "Approval",
            "BandVerdict",
            "CanaryObservation",
            "CanaryPolicy",
            "CanaryStage",
            "ChampionChange",
            "ChangeKind",
            "Cohort",
            "DeadBand",
            "DenyList",
            "DwellStatus",
            "ExposureCap",
            "Flip",
            "FlipFlopRule",
            "FlipFlopStatus",
            "FlipMatrix",
            "GateResult",
            "Guardrail",
            "GuardrailStatus",
            "LatencyRatio",
            "MinimumDwell",
            "MsprtConfig",
            "MsprtGuardrail",
            "NoDataRule",
            "Pair",
            "Problem",
            "PromotionFacts",
            "PromotionPolicy",
            "PromotionTiming",
            "Proportion",
            "Ramp",
            "Recovery",
            "ShadowGate",
            "ShadowPair",
            "ShadowReport",
            "SprtConfig",
            "SprtGuardrail",
            "SrmResult",
            "SrmVerdict",
            "Trigger",
            "Unmet",
            "Verdict",
            "WorseWhen",
            "gate_problems",
            "promotion_problems",
            "bucket",
            "combined_verdict",
            "flip_flop",
            "in_canary",
            "new_salt",
            "ramp_from",
            "sample_ratio_check",
            "summarise_shadow",
            "wilson_interval",
        ]
    )
    for name in release.__all__:
        assert getattr(release, name) is not None


def test_release_cores_import_nothing_that_does_io_or_reads_the_clock() -> None:
    for path in (RELEASE_DIR / name for name in PURE_MODULES):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in ALLOWED_IMPORTS, f"{path.name} imports {name}"
                if name.startswith("breedlab.") and not name.startswith("breedlab.release"):
                    assert name in ALLOWED_BREEDLAB, f"{path.name} imports {name}"


def test_every_release_module_says_what_it_owns_and_leaves() -> None:
    for path in sorted(RELEASE_DIR.glob("*.py")):
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        assert doc, f"{path.name} has no docstring"
        if path.name != "__init__.py":
            assert "Owns" in doc and "Leaves" in doc, path.name

"""Imports point down (DESIGN §2): base < signing, jobs < registry, ledger, families,
datasets < factory, evaluator, viability, release < sandbox < lab < http < demo < cli
(``breedlab serve`` starts the HTTP app, and the demo runs it in process).
No pickle anywhere; torch stays out of the supply chain so the CLI starts fast."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "breedlab"

LAYERS = {
    "errors": 0, "choices": 0, "digest": 0, "canonical": 0, "clock": 0, "config": 0,
    "interrupts": 0,
    "signing": 1,
    "jobs": 1, "tensors": 1,
    "registry": 2, "ledger": 2, "capabilities": 2, "datasets": 2, "families": 2,
    "factory": 3, "evaluator": 3, "viability": 3, "release": 3, "routing": 3, "report": 3,
    "sandbox": 4, "authority": 4,
    "lab": 5, "http": 6, "demo": 7, "cli": 8,
}  # fmt: skip


def _component(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


def test_imports_point_down() -> None:
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC.parent).with_suffix("")
        here = _component(".".join(rel.parts))
        if here not in LAYERS:
            continue
        for name in _imports(path):
            if not name.startswith("breedlab.") and name != "breedlab":
                continue
            there = _component(name)
            if there in ("", here):
                continue
            assert LAYERS[there] <= LAYERS[here] and not (
                LAYERS[there] == LAYERS[here] and LAYERS[here] > 0
            ), f"{rel} imports {name}: {there} is not below {here}"


def test_nothing_imports_pickle_or_torch_load() -> None:
    for path in SRC.rglob("*.py"):
        text = path.read_text()
        assert "pickle" not in _imports(path), path
        assert "torch.load(" not in text, path


def test_the_supply_chain_does_not_import_torch() -> None:
    code = (
        "import sys, breedlab.cli, breedlab.lab, breedlab.ledger, breedlab.registry;"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_every_component_has_a_docstring_map() -> None:
    for init in SRC.rglob("__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc, f"{init} has no docstring"

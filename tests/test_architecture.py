"""Imports point down (DESIGN §2): base < signing, jobs < registry, ledger, families,
datasets < factory, evaluator, viability, release < sandbox < supply < serving < lab < http
< demo < cli
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
    "rows": 2, "splits": 2,
    "factory": 3, "evaluator": 3, "viability": 3, "release": 3, "routing": 3, "report": 3,
    "sandbox": 4, "authority": 4,
    "supply": 5, "serving": 6, "lab": 7, "http": 8, "demo": 9, "demo_reviews": 8.5, "cli": 10,
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


# ------------------------------------------------------------- inside components

#: Private names used across modules today (issue 11 removes them; only shrinks).
KNOWN_PRIVATE_USES = {
    ("breedlab.cli", "command._help_option"),  # typer's, for plain help
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in SRC.rglob("*.py"):
        name = ".".join(path.relative_to(SRC.parent).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


def _graph() -> dict[str, set[str]]:
    """Every module's imports of other breedlab modules: at the top, inside functions
    and under ``TYPE_CHECKING`` alike (a circle hidden in a function is still one)."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # ``from pkg import submodule`` depends on the submodule, not on the
                # package's __init__ (which any import of a submodule runs anyway).
                subs = [f"{node.module}.{a.name}" for a in node.names]
                names = [a for a in subs if a not in modules]
                targets = [s for s in subs if s in modules] + ([node.module] if names else [])
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def _circles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(component)
    return found


def test_the_circle_finder_finds_a_circle_hidden_in_a_function() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert _circles(graph) == [{"a", "b", "c"}]
    assert _circles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles() -> None:
    """Inside components too: a module's own package ``__init__`` re-exporting it counts
    (the fix is a base module both import), and so does an import inside a function."""
    assert _circles(_graph()) == [], "import circles"


def test_no_new_private_names_across_modules() -> None:
    """``from m import _x``, and ``obj._x`` where no class of the module defines ``_x``,
    reach into another module's internals."""
    uses = set()
    for name, path in _modules().items():
        tree = ast.parse(path.read_text())
        own = (
            {
                n.name
                for cls in ast.walk(tree)
                if isinstance(cls, ast.ClassDef)
                for n in ast.walk(cls)
                if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
            }
            | {
                t.id
                for cls in ast.walk(tree)
                if isinstance(cls, ast.ClassDef)
                for n in cls.body
                if isinstance(n, ast.AnnAssign | ast.Assign)
                for t in ([n.target] if isinstance(n, ast.AnnAssign) else n.targets)
                if isinstance(t, ast.Name)
            }
            | {
                n.attr
                for n in ast.walk(tree)
                if isinstance(n, ast.Attribute)
                and isinstance(n.value, ast.Name)
                and n.value.id == "self"
                and isinstance(n.ctx, ast.Store)
            }
        )
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("breedlab"):
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        uses.add((name, f"from {node.module} import {alias.name}"))
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and isinstance(node.value, ast.Name)
                and node.value.id not in {"self", "cls", "os", "sys"}
                and node.attr not in own
            ):
                uses.add((name, f"{node.value.id}.{node.attr}"))
    assert uses <= KNOWN_PRIVATE_USES, sorted(uses - KNOWN_PRIVATE_USES)


def test_the_shells_import_only_the_lab_facade() -> None:
    """cli/, http/ and the demo reach the lab through ``breedlab.lab`` (the Lab and the
    values it re-exports), never through a module inside it (issue 11: one facade)."""
    modules = _modules()
    lab_modules = {m for m in modules if m.startswith("breedlab.lab.")}
    shells = [
        (name, path)
        for name, path in modules.items()
        if name.startswith(("breedlab.cli", "breedlab.http")) or name == "breedlab.demo"
    ]
    reached = []
    for name, path in shells:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                reached += [(name, a.name) for a in node.names if a.name in lab_modules]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module in lab_modules:
                    reached.append((name, node.module))
                elif node.module == "breedlab.lab":
                    reached += [
                        (name, f"breedlab.lab.{a.name}")
                        for a in node.names
                        if f"breedlab.lab.{a.name}" in lab_modules
                    ]
    assert len(shells) > 10 and lab_modules  # the walk saw the shells and the lab
    assert reached == [], reached

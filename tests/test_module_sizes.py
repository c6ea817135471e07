"""Issue 11's size rule: no module over about 600 lines unless its docstring says why
it is one module (a paragraph starting "Why one module")."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "breedlab"
LIMIT = 600


def test_a_long_module_says_why_it_is_one_module() -> None:
    unexplained = []
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if text.count("\n") <= LIMIT:
            continue
        doc = ast.get_docstring(ast.parse(text)) or ""
        if "Why one module" not in doc:
            unexplained.append(f"{path.relative_to(SRC)}: {text.count(chr(10))} lines")
    assert not unexplained, unexplained

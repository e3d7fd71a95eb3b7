"""The steps package stays framework-free: no other Headwater module, no Airflow, no Beam."""

from __future__ import annotations

import ast
from pathlib import Path

import headwater.steps

ROOT = Path(headwater.steps.__file__).parent
# headwater.canonical imports only the standard library: a leaf the steps share with the core
# so that a record's canonical JSON (the split key) has one implementation.
LEAVES = ("headwater.steps", "headwater.canonical")


def test_steps_import_only_steps_and_allowed_libraries() -> None:
    bad = []
    for path in ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top in ("airflow", "apache_beam", "recordlinkage") or (
                    top == "headwater" and not name.startswith(LEAVES)
                ):
                    bad.append(f"{path.name}: {name}")
    assert bad == []

"""The steps package stays framework-free: no other Headwater module, no Airflow, no Beam."""

from __future__ import annotations

import ast
from pathlib import Path

import headwater.steps

ROOT = Path(headwater.steps.__file__).parent


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
                    top == "headwater" and not name.startswith("headwater.steps")
                ):
                    bad.append(f"{path.name}: {name}")
    assert bad == []

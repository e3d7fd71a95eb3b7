"""Imports point one way (GUIDE habit 1): checked on the source, not by convention."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "headwater"


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def test_core_never_imports_airflow_or_beam() -> None:
    for path in SRC.rglob("*.py"):
        for mod in imports_of(path):
            assert not mod.startswith(("airflow", "apache_beam")), f"{path} imports {mod}"


def test_store_and_catalog_import_nothing_above_them() -> None:
    forbidden = ("headwater.lineage", "headwater.run", "headwater.cli", "headwater.server",
                 "headwater.api", "headwater.staging", "headwater.steps")
    for layer in ("store", "catalog"):
        for path in (SRC / layer).rglob("*.py"):
            for mod in imports_of(path):
                assert not mod.startswith(forbidden), f"{path} imports {mod}"
    for path in (SRC / "store").rglob("*.py"):
        assert not any(m.startswith("headwater.catalog") for m in imports_of(path)), path


def test_steps_are_framework_free() -> None:
    for path in (SRC / "steps").rglob("*.py"):
        for mod in imports_of(path):
            assert not mod.startswith(("headwater.catalog", "headwater.store", "headwater.run",
                                       "headwater.api")), f"{path} imports {mod}"

"""Rows of a table in a form two engines' outputs can be compared by: the equivalence tests check
these as well as table fingerprints (issue 14: a fingerprint is only as good as its algorithm)."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa


def _canonical(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)  # a CSV/JSON writer may turn 2.0 into 2
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


def sorted_rows(table: pa.Table) -> list[str]:
    """Each row as canonical JSON (columns sorted by name, integral floats as integers,
    dictionaries decoded), sorted: equal lists mean the same multiset of rows."""
    return sorted(json.dumps(_canonical(row), sort_keys=True, default=str)
                  for row in table.to_pylist())

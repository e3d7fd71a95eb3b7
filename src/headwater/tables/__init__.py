"""Tables as first-class versions: formats, schema, column stats, a layout-free fingerprint.

The names below are loaded on first use (PEP 562), so importing ``headwater.tables.detect`` —
which every directory ``log`` does — does not import pyarrow, numpy and pandas.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from headwater.tables.detect import TABLE_FORMATS, detect_format, table_files
    from headwater.tables.fingerprint import TableFingerprinter, table_fingerprint
    from headwater.tables.formats import read_table
    from headwater.tables.profile import (
        TableProfile,
        TableProfiler,
        profile_table,
        schema_to_json,
    )

_WHERE = {
    "TABLE_FORMATS": "detect",
    "detect_format": "detect",
    "table_files": "detect",
    "TableFingerprinter": "fingerprint",
    "table_fingerprint": "fingerprint",
    "read_table": "formats",
    "TableProfile": "profile",
    "TableProfiler": "profile",
    "profile_table": "profile",
    "schema_to_json": "profile",
}

__all__ = [
    "TABLE_FORMATS",
    "TableFingerprinter",
    "TableProfile",
    "TableProfiler",
    "detect_format",
    "profile_table",
    "read_table",
    "schema_to_json",
    "table_files",
    "table_fingerprint",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)

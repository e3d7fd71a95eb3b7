"""Canonical JSON: the one way Headwater turns a value into bytes that are hashed or compared.

Cache keys, manifests, record ordering keys (the split key, Beam's one-record-per-id choice) and
dead-letter rows all hash or compare these strings, so every copy must produce the same
characters: sorted keys, compact separators, no whitespace. Two knobs exist only to keep the
bytes of data already written byte-identical (changing them would change digests of existing
versions and cache keys):

- ``ensure_ascii``: manifests (``headwater.manifest`` v1) were written with raw UTF-8 paths
  (``ensure_ascii=False``); every other caller escapes non-ASCII (the json default).
- ``stringify``: most callers hash arbitrary records, where a date or a Decimal becomes its
  ``str``. The manifest format and step parameters only ever hold JSON-native values, and an
  unexpected type there is a bug that must raise ``TypeError`` rather than hash silently.

Pretty-printing for people (``headwater ... --json``, log lines) is a different concept and
does not use this module.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["canonical_bytes", "canonical_json"]


def canonical_json(value: Any, *, ensure_ascii: bool = True, stringify: bool = True) -> str:
    """``value`` as canonical JSON text (sorted keys, ``(",", ":")`` separators).

    Raises ``TypeError`` for a value JSON cannot hold when ``stringify`` is false, and
    ``ValueError`` for a circular structure.
    """
    return json.dumps(
        value,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=ensure_ascii,
        default=str if stringify else None,
    )


def canonical_bytes(value: Any, *, ensure_ascii: bool = True, stringify: bool = True) -> bytes:
    """:func:`canonical_json` encoded as UTF-8: what gets hashed."""
    return canonical_json(value, ensure_ascii=ensure_ascii, stringify=stringify).encode("utf-8")

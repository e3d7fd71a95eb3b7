"""Which algorithm made a stored table fingerprint, and whether two of them can be compared.

Kept apart from :mod:`headwater.tables.fingerprint` (numpy, pyarrow, pandas) so the catalog and
the re-log fast path can ask without importing them. See docs/adr/0003-table-fingerprint.md.

Stored forms: ``tfpN:<hex>`` is algorithm N; 64 bare lower-case hex digits (catalogs written
before issue 14) is algorithm 1, whose row hash was linear in its cells (values swapped between
rows did not change it).
"""

from __future__ import annotations

import re

from headwater.errors import IncomparableFingerprints

#: The algorithm :class:`~headwater.tables.fingerprint.TableFingerprinter` computes.
ALGORITHM = 2
PREFIX = f"tfp{ALGORITHM}:"
#: ``versions.table_fingerprint`` is ``String(64)``: prefix and digest fit in it.
STORED_LEN = 64
_PREFIXED = re.compile(r"\Atfp([1-9][0-9]*):[0-9a-f]{16,64}\Z")
_LEGACY = re.compile(r"\A[0-9a-f]{64}\Z")


def fingerprint_algorithm(fingerprint: str) -> int:
    """The algorithm that produced a stored fingerprint: ``tfpN:…`` is N, 64 bare hex digits 1.

    Raises :class:`IncomparableFingerprints` for anything else (it cannot be compared at all).
    """
    m = _PREFIXED.match(fingerprint)
    if m:
        return int(m.group(1))
    if _LEGACY.match(fingerprint):
        return 1
    raise IncomparableFingerprints(f"{fingerprint[:80]!r} is not a table fingerprint")


def is_current(fingerprint: str | None) -> bool:
    """True when ``fingerprint`` was made by the current algorithm (comparable with new ones)."""
    m = _PREFIXED.match(fingerprint or "")
    return m is not None and int(m.group(1)) == ALGORITHM


def same_rows(a: str, b: str) -> bool:
    """Whether two stored fingerprints say the tables hold the same multiset of rows.

    Raises :class:`IncomparableFingerprints` when different algorithms made them: equal or
    unequal strings would say nothing then (recompute the older one:
    ``Catalog.table_fingerprint`` does it from the stored data).
    """
    alg_a, alg_b = fingerprint_algorithm(a), fingerprint_algorithm(b)
    if alg_a != alg_b:
        raise IncomparableFingerprints(
            f"table fingerprints of algorithms {alg_a} and {alg_b} cannot be compared; "
            "recompute the older one from the stored data (Catalog.table_fingerprint)"
        )
    return a == b

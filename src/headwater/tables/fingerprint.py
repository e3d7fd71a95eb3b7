"""A digest of a table's rows that ignores how they are split into files and ordered.

Algorithm 2 (``tfp2:``; see docs/adr/0003-table-fingerprint.md):

1. **Cells → canonical codes.** Every cell becomes 16 bytes that depend on its value only, not on
   the Arrow physical type: numbers (any integer width, float32/64, decimal) by value, so ``2``,
   ``2.0`` and ``-0.0 + 2`` agree (a CSV writer prints ``2.0`` as ``2``, which reads back as an
   integer); strings and binaries (``string``, ``large_string``, ``string_view``, dictionary) by a
   keyed 128-bit SipHash of their bytes; timestamps as UTC nanoseconds, dates as days; anything
   nested as canonical JSON. Nulls are a separate flag byte, so no value can pass for a null.
2. **Row → keyed, non-linear 128-bit hash** of the concatenated codes of its columns in
   column-name order plus the null flags (SipHash-2-4 under two fixed keys, vectorised by pandas'
   ``hash_array``). A changed, moved or swapped cell changes the row's hash unpredictably, unlike
   algorithm 1, whose row hash was linear in its cell hashes, so values swapped between rows
   cancelled out (issue 14).
3. **Table → multiset.** Row hashes are added modulo 2**128, which does not depend on row order
   or on how rows are split into batches, files or Beam bundles (parts merge by addition); a
   duplicated or dropped row changes the sum (and the row count).
4. **Digest.** BLAKE3 over the algorithm number, the row count, the sum, and the sorted column
   names with their value families (a column null everywhere is ``null`` whatever its declared
   type). Stored as ``tfp2:`` + 59 hex digits (236 bits), which fits the catalog's 64-character
   column: no schema change. An unprefixed 64-hex value is algorithm 1 (before issue 14).

What is *not* canonicalised here: how a reader turns a file into typed columns. That lives in
one place, :mod:`headwater.tables.formats` (e.g. CSV reads an empty string as null).
Fingerprints of different algorithms are never compared: :func:`same_rows` raises
:class:`~headwater.errors.IncomparableFingerprints`; ``Catalog.table_fingerprint`` recomputes a
legacy one from the stored data.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from headwater.canonical import canonical_bytes
from headwater.store.hashing import hash_bytes
from headwater.tables.fingerprint_version import (
    ALGORITHM,
    PREFIX,
    STORED_LEN,
    fingerprint_algorithm,
    is_current,
    same_rows,
)

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = [
    "ALGORITHM",
    "PREFIX",
    "TableFingerprinter",
    "fingerprint_algorithm",
    "is_current",
    "same_rows",
    "table_fingerprint",
    "type_family",
]

_DIGEST_HEX = STORED_LEN - len(PREFIX)

# SipHash keys (pandas takes 16 characters). Fixed, public: they separate this use of SipHash
# from others and make the two 64-bit lanes independent; they are not a secret.
_CELL_KEYS = ("hw-tfp2-cell-k1!", "hw-tfp2-cell-k2!")
_ROW_KEYS = ("hw-tfp2-row-k01!", "hw-tfp2-row-k02!")
_MOD = 1 << 128
_LO32 = np.uint64(0xFFFFFFFF)
_TWO63 = 2.0**63

# Tags in the second word of a number's code: which space the first word is in.
_INTEGRAL, _FLOAT_BITS, _BOOL, _UINT64_HIGH = 0, 1, 2, 3


def type_family(t: pa.DataType) -> str:
    """The coarse logical type used by fingerprints and schema comparison across engines."""
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "float"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "string"
    if pa.types.is_dictionary(t):
        return type_family(t.value_type)
    if (pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t)
            or pa.types.is_binary_view(t)):
        return "binary"
    if pa.types.is_timestamp(t):
        return "timestamp"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_null(t):
        return "null"
    return "json"


def _value_family(t: pa.DataType) -> str:
    """The family a fingerprint records: integers and floats are both numbers (by value)."""
    fam = type_family(t)
    return "number" if fam in ("int", "float") else fam


# -- cells --------------------------------------------------------------------------------------
def _string_codes(arr: pa.Array, codes: npt.NDArray[np.uint64]) -> None:
    """Keyed 128-bit SipHash of each distinct value (Arrow's dictionary encoding finds them
    without turning the whole column into Python objects), spread back over the rows."""
    from pandas.util import hash_array  # imported on first use: 0.2 s plain commands don't need

    enc = pc.dictionary_encode(arr)
    distinct = enc.dictionary.to_numpy(zero_copy_only=False)
    index = enc.indices.to_numpy(zero_copy_only=False)
    for lane, key in enumerate(_CELL_KEYS):
        codes[:, lane] = hash_array(distinct, hash_key=key, categorize=False)[index]


def _number_codes(arr: pa.Array, codes: npt.NDArray[np.uint64]) -> None:
    t = arr.type
    if pa.types.is_integer(t):
        if pa.types.is_uint64(t):
            u = pc.fill_null(arr, 0).to_numpy(zero_copy_only=False).astype(np.uint64)
            codes[:, 0] = u
            codes[:, 1] = np.where(u >= np.uint64(1 << 63), _UINT64_HIGH, _INTEGRAL)
        else:
            ints = pc.fill_null(arr.cast(pa.int64()), 0).to_numpy(zero_copy_only=False)
            codes[:, 0] = ints.astype(np.int64).view(np.uint64)
            codes[:, 1] = _INTEGRAL
        return
    v = pc.fill_null(arr.cast(pa.float64()), 0.0).to_numpy(zero_copy_only=False).astype(np.float64)
    with np.errstate(invalid="ignore"):
        integral = np.isfinite(v) & (v == np.trunc(v)) & (np.abs(v) < _TWO63)
    as_int = np.where(integral, v, 0.0).astype(np.int64).view(np.uint64)
    canon = np.where(np.isnan(v), np.nan, v).view(np.uint64)  # one NaN; -0.0 is integral (0)
    codes[:, 0] = np.where(integral, as_int, canon)
    codes[:, 1] = np.where(integral, _INTEGRAL, _FLOAT_BITS)


def _cell_codes(
    arr: pa.ChunkedArray | pa.Array,
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.bool_], bool]:
    """(n x 2 codes, null mask, any non-null value) of one column; see the module docstring."""
    if pa.types.is_dictionary(arr.type):  # before combining: chunks may have other dictionaries
        arr = arr.cast(arr.type.value_type)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    n = len(arr)
    t = arr.type
    fam = type_family(t)
    codes = np.zeros((n, 2), dtype=np.uint64)
    nulls = (arr.is_null().to_numpy(zero_copy_only=False) if arr.null_count
             else np.zeros(n, dtype=np.bool_))
    if fam in ("int", "float"):
        _number_codes(arr, codes)
    elif fam == "bool":
        codes[:, 0] = pc.fill_null(arr, False).to_numpy(zero_copy_only=False).astype(np.uint64)
        codes[:, 1] = _BOOL
    elif fam == "timestamp":
        ns = arr.cast(pa.timestamp("ns", tz=t.tz and "UTC")).cast(pa.int64())
        codes[:, 0] = pc.fill_null(ns, 0).to_numpy(zero_copy_only=False).view(np.uint64)
    elif fam == "date":
        days = arr.cast(pa.date32()).cast(pa.int32()).cast(pa.int64())
        codes[:, 0] = pc.fill_null(days, 0).to_numpy(zero_copy_only=False).view(np.uint64)
    elif fam in ("string", "binary"):
        flat = pc.fill_null(arr.cast(pa.large_string() if fam == "string" else pa.large_binary()),
                            "" if fam == "string" else b"")
        _string_codes(flat, codes)
    elif fam == "json":
        texts = [json.dumps(v, sort_keys=True, default=str) for v in arr.to_pylist()]
        _string_codes(pa.array(texts, pa.large_string()), codes)
    codes[nulls] = 0
    return codes, nulls, n > int(nulls.sum())


def _row_hash_sum(codes: list[npt.NDArray[np.uint64]], nulls: list[npt.NDArray[np.bool_]],
                  n: int) -> int:
    """Sum modulo 2**128 of the keyed 128-bit hashes of ``n`` rows."""
    from pandas.util import hash_array

    k = len(codes)
    width = 17 * k + 1  # 16 code bytes per column, one null flag per column, one version byte
    buf = np.zeros((n, width), dtype=np.uint8)
    for i, (c, m) in enumerate(zip(codes, nulls, strict=True)):
        buf[:, 16 * i:16 * (i + 1)] = c.astype("<u8").view(np.uint8).reshape(n, 16)
        buf[:, 16 * k + i] = m
    buf[:, -1] = ALGORITHM
    rows = pa.Array.from_buffers(pa.binary(width), n, [None, pa.py_buffer(buf)])
    rows_obj = rows.to_numpy(zero_copy_only=False)
    total = 0
    for lane, key in enumerate(_ROW_KEYS):
        h = hash_array(rows_obj, hash_key=key, categorize=False).astype(np.uint64)
        # exact sum of n < 2**32 64-bit values: add 32-bit halves separately, then recombine
        lo = int(np.add.reduce(h & _LO32, dtype=np.uint64))
        hi = int(np.add.reduce(h >> np.uint64(32), dtype=np.uint64))
        total += (lo + (hi << 32)) << (64 * lane)
    return total % _MOD


class TableFingerprinter:
    """Accumulates record batches (in any order, from any number of files) into a fingerprint.

    Its state is plain Python (ints, dicts), so it pickles as a Beam ``CombineFn`` accumulator.
    """

    def __init__(self) -> None:
        self._sum = 0
        self.rows = 0
        #: column name -> value families seen with at least one non-null value
        self._columns: dict[str, set[str]] | None = None

    def _add_columns(self, columns: dict[str, set[str]]) -> None:
        if self._columns is None:
            self._columns = {name: set(fams) for name, fams in columns.items()}
        elif set(columns) != set(self._columns):
            raise ValueError(
                f"table parts disagree on columns: {sorted(self._columns)} vs {sorted(columns)}"
            )
        else:
            for name, fams in columns.items():
                self._columns[name] |= fams

    def update(self, batch: pa.RecordBatch | pa.Table) -> None:
        names = sorted(batch.schema.names)
        if len(set(names)) != len(names):
            raise ValueError(f"table has duplicate column names: {names}")
        n = batch.num_rows
        seen: dict[str, set[str]] = {name: set() for name in names}
        if n:
            codes, nulls = [], []
            for name in names:
                col = batch.column(name)
                c, m, any_value = _cell_codes(col)
                codes.append(c)
                nulls.append(m)
                if any_value:
                    seen[name].add(_value_family(col.type))
            for start in range(0, n, 1 << 31):  # keeps every exact partial sum below 2**64
                stop = min(n, start + (1 << 31))
                self._sum = (self._sum + _row_hash_sum(
                    [c[start:stop] for c in codes], [m[start:stop] for m in nulls],
                    stop - start)) % _MOD
        self._add_columns(seen)
        self.rows += n

    def merge(self, other: TableFingerprinter) -> TableFingerprinter:
        """Fold ``other`` (the fingerprinter of other parts of the same table) into this one.

        Row hashes combine by addition modulo 2**128, so fingerprinting parts on different
        workers and merging them gives the digest of the whole table (a Beam ``CombineFn``'s
        ``merge_accumulators``). Returns ``self``.
        """
        if other._columns is not None:
            self._add_columns(other._columns)
        self._sum = (self._sum + other._sum) % _MOD
        self.rows += other.rows
        return self

    def hexdigest(self) -> str:
        """The stored form: ``tfp2:`` and 59 hex digits of BLAKE3 (see the module docstring)."""
        columns = sorted(
            (name, "|".join(sorted(fams)) or "null") for name, fams in (self._columns or {}).items()
        )
        doc = {"algorithm": ALGORITHM, "columns": columns, "rows": self.rows,
               "sum": f"{self._sum:032x}"}
        digest = hash_bytes(canonical_bytes(doc, stringify=False))  # same bytes as before
        return PREFIX + digest[:_DIGEST_HEX]


def table_fingerprint(table: pa.Table) -> str:
    """The fingerprint of an in-memory table (the same as of its rows in any files/order)."""
    fp = TableFingerprinter()
    for batch in table.to_batches(max_chunksize=1 << 16):
        fp.update(batch)
    if table.num_rows == 0:
        fp.update(table)
    return fp.hexdigest()

"""A digest of a table's rows that ignores how they are split into files and ordered.

Each row is hashed (vectorised, through pandas' SipHash-based ``hash_pandas_object`` on columns
first normalised to a canonical type family, so int32 and int64 or string and large_string agree),
then rows are combined with addition modulo 2**64 under two independent keys: a multiset hash.
The final digest also covers the row count and the sorted column names with their type families.
So the same rows written by Airflow as one Parquet file and by Beam as twelve JSONL shards get the
same fingerprint; a changed cell, an added or dropped row, or a renamed column does not.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from headwater.store.hashing import hash_bytes

if TYPE_CHECKING:
    import pandas as pd

_KEYS = ("headwater-fp-k01", "headwater-fp-k02")
_NULL = np.uint64(0x9E3779B97F4A7C15)
_MUL = np.uint64(0x100000001B3)


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
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return "binary"
    if pa.types.is_timestamp(t):
        return "timestamp"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_null(t):
        return "null"
    return "json"


def _canonical(arr: pa.ChunkedArray | pa.Array) -> pd.Series:
    """A pandas Series whose hash depends only on the values, not the Arrow physical type."""
    import pandas as pd  # imported on first use: 0.2 s that plain CLI commands do not need

    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    t = arr.type
    fam = type_family(t)
    if pa.types.is_dictionary(t):
        arr = arr.dictionary_decode()
    if fam in ("bool", "int"):
        vals = pc.fill_null(arr.cast(pa.int64()), 0)
        return pd.Series(vals.to_numpy(zero_copy_only=False))
    if fam == "float":
        vals = pc.fill_null(arr.cast(pa.float64()), 0.0)
        return pd.Series(vals.to_numpy(zero_copy_only=False))
    if fam == "timestamp":
        vals = arr.cast(pa.timestamp("ns", tz=t.tz and "UTC")).cast(pa.int64())
        return pd.Series(pc.fill_null(vals, 0).to_numpy(zero_copy_only=False))
    if fam == "date":
        vals = arr.cast(pa.date32()).cast(pa.int32()).cast(pa.int64())
        return pd.Series(pc.fill_null(vals, 0).to_numpy(zero_copy_only=False))
    if fam in ("string", "binary"):
        return pd.Series(
            arr.cast(pa.large_string() if fam == "string" else pa.large_binary()).to_numpy(
                zero_copy_only=False
            ),
            dtype=object,
        )
    if fam == "null":
        return pd.Series(np.zeros(len(arr), dtype=np.int64))
    return pd.Series(
        [json.dumps(v, sort_keys=True, default=str) for v in arr.to_pylist()], dtype=object
    )


def _hash(series: pd.Series, key: str) -> np.ndarray:
    from pandas.util import hash_pandas_object

    return hash_pandas_object(series, index=False, hash_key=key).to_numpy()  # type: ignore[no-any-return]


class TableFingerprinter:
    """Accumulates record batches (in any order, from any number of files) into a fingerprint."""

    def __init__(self) -> None:
        self._sums = [np.uint64(0), np.uint64(0)]
        self.rows = 0
        self._columns: dict[str, str] | None = None

    def update(self, batch: pa.RecordBatch | pa.Table) -> None:
        columns = {name: type_family(batch.schema.field(name).type) for name in batch.schema.names}
        if self._columns is None:
            self._columns = columns
        elif set(columns) != set(self._columns):
            raise ValueError(
                f"table parts disagree on columns: {sorted(self._columns)} vs {sorted(columns)}"
            )
        else:  # a part that is all-null in a column types it "null": take the other part's type
            for name, fam in columns.items():
                if self._columns[name] == "null":
                    self._columns[name] = fam
        n = batch.num_rows
        if n == 0:
            return
        for k, key in enumerate(_KEYS):
            row = np.zeros(n, dtype=np.uint64)
            for name in sorted(columns):
                col = batch.column(name)
                h = _hash(_canonical(col), key)
                nulls = col.is_null()
                if nulls.null_count or pc.any(nulls).as_py():
                    h = np.where(nulls.to_numpy(zero_copy_only=False), _NULL, h)
                with np.errstate(over="ignore"):
                    row = row * _MUL + h.astype(np.uint64)
            with np.errstate(over="ignore"):
                self._sums[k] = np.uint64(self._sums[k] + np.add.reduce(row, dtype=np.uint64))
        self.rows += n

    def merge(self, other: TableFingerprinter) -> TableFingerprinter:
        """Fold ``other`` (the fingerprinter of other parts of the same table) into this one.

        The row hashes are combined by addition modulo 2**64, so fingerprinting parts on
        different workers and merging them gives the digest of the whole table (a Beam
        ``CombineFn``'s ``merge_accumulators``). Returns ``self``.
        """
        if other._columns is not None:
            if self._columns is None:
                self._columns = dict(other._columns)
            elif set(other._columns) != set(self._columns):
                raise ValueError(
                    f"table parts disagree on columns: {sorted(self._columns)} vs "
                    f"{sorted(other._columns)}"
                )
            else:
                for name, fam in other._columns.items():
                    if self._columns[name] == "null":
                        self._columns[name] = fam
        with np.errstate(over="ignore"):
            self._sums = [np.uint64(a + b) for a, b in zip(self._sums, other._sums, strict=True)]
        self.rows += other.rows
        return self

    def hexdigest(self) -> str:
        doc = {
            "columns": sorted((self._columns or {}).items()),
            "rows": self.rows,
            "sums": [f"{int(s):016x}" for s in self._sums],
        }
        return hash_bytes(json.dumps(doc, sort_keys=True).encode())


def table_fingerprint(table: pa.Table) -> str:
    fp = TableFingerprinter()
    for batch in table.to_batches(max_chunksize=1 << 16):
        fp.update(batch)
    if table.num_rows == 0:
        fp.update(table)
    return fp.hexdigest()

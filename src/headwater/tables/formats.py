"""Table file formats Headwater understands: Parquet, CSV, JSON Lines and Arrow IPC.

A version is a table when all of its data files share one of these formats (files whose names
start with ``_`` or ``.``, such as ``_SUCCESS``, are ignored). Readers stream record batches so a
large table is profiled without being held in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.ipc as ipc
import pyarrow.json as pajson
import pyarrow.parquet as pq

from headwater.tables.detect import TABLE_FORMATS


def iter_batches(
    stream: BinaryIO, fmt: str, *, batch_rows: int = 65536
) -> Iterator[pa.RecordBatch]:
    """Record batches of one file of format ``fmt`` read from a binary stream."""
    if fmt == "parquet":
        # Parquet's footer is at the end: a verifying (non-seekable) stream is read whole first
        source = stream if _seekable(stream) else pa.BufferReader(stream.read())
        pf = pq.ParquetFile(source)
        yield from pf.iter_batches(batch_size=batch_rows)
    elif fmt == "csv":
        # CSV cannot tell an empty string from a missing value: read both as null, as Parquet
        # and JSON writers of the same rows would have them
        reader = pacsv.open_csv(
            stream, convert_options=pacsv.ConvertOptions(strings_can_be_null=True)
        )
        yield from reader
    elif fmt == "jsonl":
        table = pajson.read_json(stream)
        yield from table.to_batches(max_chunksize=batch_rows)
    elif fmt == "arrow":
        data = stream.read()
        try:  # the IPC file format (.arrow/.feather v2); its reader is indexed, not iterable
            reader = ipc.open_file(pa.py_buffer(data))
            yield from (reader.get_batch(i) for i in range(reader.num_record_batches))
        except pa.ArrowInvalid:
            yield from ipc.open_stream(pa.py_buffer(data))
    else:
        raise ValueError(
            f"unknown table format {fmt!r}; expected one of {sorted(set(TABLE_FORMATS.values()))}"
        )


def _seekable(stream: BinaryIO) -> bool:
    try:
        return bool(stream.seekable())
    except (AttributeError, ValueError):
        return False


def read_table(stream: BinaryIO, fmt: str) -> pa.Table:
    """One file of format ``fmt`` as a table.

    Parquet is read through ``ParquetFile``, not ``pq.read_table``: the latter goes through
    Arrow's dataset scanner, whose worker threads can still be alive when the interpreter exits
    and abort it (``terminate called without an active exception``, apache/arrow#34314) — a
    ``headwater report`` printed its table and then died with SIGABRT in 2 runs out of 3.
    """
    if fmt == "parquet":
        source = stream if _seekable(stream) else pa.BufferReader(stream.read())
        return pq.ParquetFile(source).read()
    batches = list(iter_batches(stream, fmt))
    return pa.Table.from_batches(batches) if batches else pa.table({})


def concat(tables: list[pa.Table]) -> pa.Table:
    """Concatenate parts whose inferred types may differ (an all-null CSV column, say)."""
    if not tables:
        return pa.table({})
    return pa.concat_tables(tables, promote_options="permissive")

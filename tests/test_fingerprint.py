"""The table fingerprint is a contract: it changes exactly when the multiset of rows does.

Property-based (hypothesis) in both directions: row order, file split, file format and physical
types never change it; a swapped or moved cell, a duplicated or dropped row always does. Plus
its versioning: stored fingerprints name their algorithm, and fingerprints of different
algorithms are never compared (issue 14, docs/adr/0003-table-fingerprint.md).
"""

from __future__ import annotations

import io
import itertools
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from headwater import Catalog
from headwater.catalog.models import Version
from headwater.errors import IncomparableFingerprints
from headwater.store.hashing import hash_bytes
from headwater.tables.fingerprint import (
    ALGORITHM,
    PREFIX,
    TableFingerprinter,
    fingerprint_algorithm,
    is_current,
    same_rows,
    table_fingerprint,
)
from headwater.tables.formats import iter_batches

COLUMNS = ("id", "label", "score", "flag")
SCHEMA = pa.schema([("id", pa.int64()), ("label", pa.string()), ("score", pa.float64()),
                    ("flag", pa.bool_())])
Row = tuple[Any, ...]

# labels from letters that no CSV reader takes for a null, a boolean or a number, never empty
# (CSV cannot tell "" from a missing value: headwater reads both as null, tables/formats.py)
labels = st.text(alphabet="abcxyz", min_size=1, max_size=6)
# halves: some integral (a CSV writer prints 2.0 as "2", read back as an integer), some not
scores = st.integers(-8, 8).map(lambda k: k / 2)
rows_st = st.lists(
    st.tuples(st.none() | st.integers(-(2**31), 2**31 - 1), st.none() | labels,
              st.none() | scores, st.none() | st.booleans()),
    max_size=30,
)
PROPS = settings(max_examples=60, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def to_table(rows: list[Row], schema: pa.Schema = SCHEMA) -> pa.Table:
    return pa.table({name: pa.array([r[i] for r in rows], schema.field(name).type)
                     for i, name in enumerate(COLUMNS)}, schema=schema)


def fp_of_parts(parts: list[pa.Table]) -> str:
    """Each part fingerprinted on its own (a worker), then merged (Beam's CombineFn)."""
    total = TableFingerprinter()
    for part in parts:
        fp = TableFingerprinter()
        for batch in part.to_batches(max_chunksize=7) or [part]:  # an empty part: its columns
            fp.update(batch)
        total.merge(fp)
    return total.hexdigest()


def split(table: pa.Table, cuts: list[int]) -> list[pa.Table]:
    bounds = sorted({0, table.num_rows, *(c % (table.num_rows + 1) for c in cuts)})
    return [table.slice(a, b - a) for a, b in itertools.pairwise(bounds)] or [table]


# -- the issue's reproduction ---------------------------------------------------------------------
def test_issue_reproduction_swapped_labels() -> None:
    a = pa.table({"id": [1, 2], "label": ["spam", "ham"]})
    b = pa.table({"id": [1, 2], "label": ["ham", "spam"]})
    assert table_fingerprint(a) != table_fingerprint(b)


# -- invariance -----------------------------------------------------------------------------------
@PROPS
@given(rows=rows_st, order=st.randoms(use_true_random=False),
       cuts=st.lists(st.integers(0, 64), max_size=4))
def test_order_split_and_physical_types_never_change_it(
    rows: list[Row], order: Any, cuts: list[int]
) -> None:
    fp = table_fingerprint(to_table(rows))
    shuffled = list(rows)
    order.shuffle(shuffled)
    narrow = pa.schema([("id", pa.int32()), ("label", pa.large_string()),
                        ("score", pa.float32()), ("flag", pa.bool_())])
    variants = [
        to_table(shuffled),
        to_table(shuffled, narrow),  # int32, large_string, float32 (halves are exact)
        to_table(shuffled).select(list(reversed(COLUMNS))),
    ]
    dict_label = to_table(shuffled)
    dict_label = dict_label.set_column(1, "label", dict_label.column("label").dictionary_encode())
    variants.append(dict_label)
    for variant in variants:
        assert table_fingerprint(variant) == fp
        assert fp_of_parts(split(variant, cuts)) == fp


def write(table: pa.Table, fmt: str) -> bytes:
    buf = io.BytesIO()
    if fmt == "parquet":
        pq.write_table(table, buf)
    elif fmt == "csv":
        pacsv.write_csv(table, buf)
    elif fmt == "jsonl":
        for row in table.to_pylist():
            buf.write((json.dumps(row) + "\n").encode())
    elif fmt == "arrow-file":
        with ipc.new_file(buf, table.schema) as w:
            w.write_table(table)
    else:
        with ipc.new_stream(buf, table.schema) as w:
            w.write_table(table)
    return buf.getvalue()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=rows_st.filter(bool), cuts=st.lists(st.integers(0, 64), max_size=2))
def test_every_format_read_by_headwater_gives_the_same_fingerprint(
    rows: list[Row], cuts: list[int]
) -> None:
    table = to_table(rows)
    expected = table_fingerprint(table)
    for fmt in ("parquet", "csv", "jsonl", "arrow-file", "arrow-stream"):
        fp = TableFingerprinter()
        for part in split(table, cuts):  # one file per part, as a sharded writer leaves them
            if fmt == "jsonl" and part.num_rows == 0:
                continue  # an empty JSON Lines file has no columns at all
            for batch in iter_batches(io.BytesIO(write(part, fmt)),
                                      fmt.removeprefix("arrow-").replace("file", "arrow")
                                      .replace("stream", "arrow")):
                fp.update(batch)
        assert fp.hexdigest() == expected, fmt


# -- sensitivity ----------------------------------------------------------------------------------
@st.composite
def mutated(draw: st.DrawFn) -> tuple[list[Row], list[Row]]:
    rows = draw(rows_st.filter(lambda r: len(r) >= 1))
    out = [list(r) for r in rows]
    i = draw(st.integers(0, len(rows) - 1))
    j = draw(st.integers(0, len(rows) - 1))
    c = draw(st.integers(0, len(COLUMNS) - 1))
    kind = draw(st.sampled_from(["swap", "move", "duplicate", "drop", "set"]))
    if kind == "swap":  # swap one cell between two rows
        out[i][c], out[j][c] = out[j][c], out[i][c]
    elif kind == "move":  # a value moves to another row, leaving a null behind
        out[j][c], out[i][c] = out[i][c], None
    elif kind == "duplicate":
        out.append(list(out[i]))
    elif kind == "drop":
        del out[i]
    else:
        out[i][c] = draw([st.none() | st.integers(-5, 5), st.none() | labels,
                          st.none() | scores, st.none() | st.booleans()][c])
    return rows, [tuple(r) for r in out]


@PROPS
@given(case=mutated())
def test_it_changes_exactly_when_the_rows_do(case: tuple[list[Row], list[Row]]) -> None:
    before, after = case
    same_multiset = Counter(before) == Counter(after)
    assert (table_fingerprint(to_table(before)) == table_fingerprint(to_table(after))) \
        == same_multiset


def test_moved_value_duplicate_and_dropped_row_on_a_real_sized_table() -> None:
    n = 5000
    base = pa.table({"user": list(range(n)), "part": ["train"] * (n - 12) + ["test"] * 12})
    fp = table_fingerprint(base)
    # 12 users change parts with 12 others: per-column multisets are unchanged (the real case
    # of issue 14: two split settings gave the same algorithm-1 fingerprint)
    parts = base.column("part").to_pylist()
    parts[:12], parts[-12:] = parts[-12:], parts[:12]
    assert table_fingerprint(base.set_column(1, "part", pa.array(parts))) != fp
    assert table_fingerprint(pa.concat_tables([base, base.slice(7, 1)])) != fp
    assert table_fingerprint(base.slice(1)) != fp


# -- versioning -----------------------------------------------------------------------------------
def test_stored_fingerprint_names_its_algorithm_and_fits_the_column() -> None:
    fp = table_fingerprint(to_table([(1, "a", 0.5, True)]))
    assert fp.startswith(PREFIX) and len(fp) == 64
    assert fingerprint_algorithm(fp) == ALGORITHM == 2 and is_current(fp)
    legacy = hash_bytes(b"any algorithm-1 digest: 64 bare hex digits")
    assert fingerprint_algorithm(legacy) == 1 and not is_current(legacy)
    assert same_rows(fp, fp) and not same_rows(fp, table_fingerprint(to_table([])))
    with pytest.raises(IncomparableFingerprints, match="algorithms 2 and 1"):
        same_rows(fp, legacy)
    for bad in ("", "tfp2:XYZ", "nope", legacy.upper()):
        with pytest.raises(IncomparableFingerprints, match="not a table fingerprint"):
            fingerprint_algorithm(bad)


def test_a_catalog_with_algorithm_1_fingerprints_keeps_working(catalog: Catalog,
                                                              tmp_path: Path) -> None:
    """A version written before algorithm 2 carries a bare 64-hex fingerprint. It is never
    compared as is: ``table_fingerprint`` recomputes it from the stored data, ``same_table``
    compares through that, and logging the same files again records a current fingerprint."""
    data = tmp_path / "users.parquet"
    table = to_table([(1, "spam", 0.5, True), (2, "ham", 1.0, None)])
    pq.write_table(table, data)
    swapped = tmp_path / "swapped.csv"
    pacsv.write_csv(to_table([(1, "ham", 0.5, True), (2, "spam", 1.0, None)]), swapped)
    same_as_csv = tmp_path / "same.csv"
    pacsv.write_csv(table.take([1, 0]), same_as_csv)
    cat = catalog
    old = cat.log(data, name="users")
    legacy = hash_bytes(b"an algorithm-1 fingerprint")
    with cat.session() as s:  # what a catalog written before issue 14 holds
        s.get(Version, old.id).table_fingerprint = legacy
        s.commit()
    old = cat.get("users@1")
    assert old.table_fingerprint == legacy
    assert cat.table_fingerprint(old) == table_fingerprint(table)
    cat.log(swapped, name="swapped")
    cat.log(same_as_csv, name="same")
    assert cat.same_table("users@1", "same@latest")
    assert not cat.same_table("users@1", "swapped@latest")
    # the same files under another name: the legacy profile is not copied, it is redone
    again = cat.log(data, name="users_copy")
    assert again.table_fingerprint == table_fingerprint(table)

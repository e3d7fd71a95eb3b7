"""Table fingerprint throughput: the measurement behind docs/adr/0003-table-fingerprint.md.

Run: .venv/bin/python bench/table_fingerprint.py [--rows 1000000] [--compare-with FILE]
(``--compare-with`` times another fingerprint module's ``table_fingerprint`` in the same run, e.g.
algorithm 1: ``git show 1a31acc^:src/headwater/tables/fingerprint.py > /tmp/fp_v1.py``.)
Fingerprints one in-memory table (int64 id, string label, float64 score, bool flag, with nulls)
and prints the best of three wall times, plus the same figure as a ratio to a baseline measured
in the same run: pandas' ``hash_pandas_object`` over every column once (the per-cell hashing any
row-wise fingerprint has to pay at least).
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from collections.abc import Callable

import numpy as np
import pyarrow as pa

from headwater.tables.fingerprint import table_fingerprint


def best_of(fn: Callable[[], object], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def make_table(rows: int) -> pa.Table:
    rng = np.random.default_rng(14)
    labels = np.array(["spam", "ham", "eggs", "", "bacon and eggs"], dtype=object)
    return pa.table({
        "id": pa.array(np.arange(rows, dtype=np.int64)),
        "label": pa.array(labels[rng.integers(0, len(labels), rows)],
                          mask=rng.random(rows) < 0.05, type=pa.string()),
        "score": pa.array(rng.random(rows), mask=rng.random(rows) < 0.05),
        "flag": pa.array(rng.random(rows) < 0.5),
    })


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--compare-with", help="path of another fingerprint module to time too")
    args = ap.parse_args()
    table = make_table(args.rows)

    def baseline() -> None:
        from pandas.util import hash_pandas_object

        for col in table.columns:
            hash_pandas_object(col.to_pandas(), index=False)

    base = best_of(baseline)
    fp = best_of(lambda: table_fingerprint(table))
    print(f"rows={args.rows} columns={table.num_columns}")
    print(f"baseline hash_pandas_object per column: {base:.3f} s")
    print(f"table_fingerprint: {fp:.3f} s ({fp / base:.2f}x baseline, "
          f"{args.rows / fp / 1e6:.2f} M rows/s)")
    if args.compare_with:
        spec = importlib.util.spec_from_file_location("other_fingerprint", args.compare_with)
        if spec is None or spec.loader is None:
            raise SystemExit(f"cannot load {args.compare_with}")
        other = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(other)
        old = best_of(lambda: other.table_fingerprint(table))
        print(f"{args.compare_with}: {old:.3f} s ({old / base:.2f}x baseline); "
              f"table_fingerprint / it = {fp / old:.2f}")


if __name__ == "__main__":
    main()

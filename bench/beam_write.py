"""Benchmark: ``Clean`` + ``WriteVersion`` against the same pipeline ending in ``WriteToParquet``.

Why: versioning a Beam output must cost little next to writing it at all. Both pipelines read
the same generated users (a 20,000-row sample from ``headwater.steps.sample`` tiled with fresh
record ids), run ``Clean`` and write snappy Parquet; one ends in Beam's ``WriteToParquet``, the
other in ``WriteVersion`` (shards hashed into the content-addressed store, profiled with the
mergeable table fingerprint, one catalog commit). A third pipeline with no sink at all (``Clean``
then a count) is measured too, so the sinks' own costs can be compared. Each is timed in this
one process, in the order given by ``--order``; ratios are against ``WriteToParquet``.

    .venv/bin/python bench/beam_write.py --rows 1000000
    .venv/bin/python bench/beam_write.py --rows 10000000 --repeat 1
    .venv/bin/python bench/beam_write.py --rows 200000 -- --runner=FnApiRunner   # in-process

Target: ``WriteVersion`` total time at most 1.15 x the ``WriteToParquet`` pipeline.
Not part of the test suite's pass/fail.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.options.pipeline_options import PipelineOptions
from headwater_beam import OUTPUT, Clean, WriteVersion

from headwater import Catalog, Settings
from headwater.steps.sample import generate_users

DEFAULT_RUNNER = ["--runner=FnApiRunner", "--direct_running_mode=multi_processing",
                  "--direct_num_workers=2"]
CHUNK = 20_000


def _chunk(index: int, base: list[dict[str, Any]], rows: int) -> Iterator[dict[str, Any]]:
    start = index * len(base)
    for i, record in enumerate(base[: max(0, min(len(base), rows - start))]):
        yield {**record, "record_id": f"r{start + i:010d}"}


def _source(p: beam.Pipeline, base: list[dict[str, Any]], rows: int) -> beam.PCollection:
    chunks = (rows + len(base) - 1) // len(base)
    return (p
            | "Chunks" >> beam.Create(list(range(chunks)))
            | "Spread" >> beam.Reshuffle()
            | "Generate" >> beam.FlatMap(_chunk, base, rows))


def run_one(kind: str, *, base: list[dict[str, Any]], rows: int, schema: pa.Schema,
            beam_args: list[str], out_dir: str, settings: Settings) -> tuple[float, int]:
    p = beam.Pipeline(options=PipelineOptions(beam_args))
    cleaned = _source(p, base, rows) | "Clean" >> Clean()
    if kind == "parquet":
        _ = cleaned[OUTPUT] | "Write" >> beam.io.WriteToParquet(
            os.path.join(out_dir, "plain", "part"), schema, codec="snappy",
            file_name_suffix=".parquet")
    elif kind == "version":
        _ = cleaned[OUTPUT] | "Write" >> WriteVersion("bench_users", settings=settings,
                                                      schema=schema)
    else:
        _ = cleaned[OUTPUT] | "Count" >> beam.combiners.Count.Globally()
    t0 = time.perf_counter()
    p.run().wait_until_finish()
    elapsed = time.perf_counter() - t0
    if kind == "parquet":
        written = sum(pq.ParquetFile(f).metadata.num_rows
                      for f in glob.glob(os.path.join(out_dir, "plain", "part*")))
        shutil.rmtree(os.path.join(out_dir, "plain"))
    elif kind == "version":
        with Catalog.open(settings=settings) as cat:
            written = cat.get("bench_users@latest").row_count or 0
    else:
        written = -1
    return elapsed, written


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    beam_args = DEFAULT_RUNNER
    if "--" in argv:
        cut = argv.index("--")
        argv, beam_args = argv[:cut], argv[cut + 1:]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--order", default="none,parquet,version",
                        help="pipelines to time, in order (none, parquet, version)")
    args = parser.parse_args(argv)
    base = generate_users(n_records=CHUNK, seed=1).to_pylist()
    schema = generate_users(n_records=100, seed=1).schema  # Clean keeps the (string) types
    work = tempfile.mkdtemp(prefix="hw-bench-")
    settings = Settings(catalog_url=f"sqlite:///{work}/catalog.db", store_url=f"{work}/store",
                        lineage="off")
    kinds = args.order.split(",")
    times: dict[str, list[float]] = {k: [] for k in kinds}
    print(f"rows={args.rows:,} runner={' '.join(beam_args)} cpus={os.cpu_count()}")
    try:
        for r in range(args.repeat):
            for kind in kinds:
                elapsed, written = run_one(kind, base=base, rows=args.rows, schema=schema,
                                           beam_args=beam_args, out_dir=work, settings=settings)
                times[kind].append(elapsed)
                print(f"  round {r + 1} {kind:8s} {elapsed:8.1f} s  rows written "
                      f"{written if written >= 0 else '-'}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    best = {k: min(v) for k, v in times.items()}
    print("best of each:")
    for k, v in best.items():
        print(f"  {k:8s} {v:8.1f} s  {args.rows / v:10,.0f} rows/s")
    if "parquet" in best and "version" in best:
        ratio = best["version"] / best["parquet"]
        print(f"WriteVersion / WriteToParquet = {ratio:.3f} "
              f"(overhead {100 * (ratio - 1):+.1f} %, target <= +15 %)")
        if "none" in best:
            sink_p = best["parquet"] - best["none"]
            sink_v = best["version"] - best["none"]
            print(f"sink alone (minus the no-sink pipeline): WriteToParquet {sink_p:.1f} s, "
                  f"WriteVersion {sink_v:.1f} s")


if __name__ == "__main__":
    main()

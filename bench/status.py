"""What ``status`` costs over a large lineage graph on PostgreSQL (docs/retract-status.md).

Builds 10,000 datasets, one version each, in a chain/fan lineage: 100 sources; every other
dataset made by its own job's run reading two earlier datasets ``@latest`` (the one 100 before
it, so chains 100 deep, and one picked pseudo-randomly, so fans). Then seeds every cause: one
source retracted, a newer version of another source, a newer run with other code for one job,
an alias an input was read through moved. Times ``Catalog.status()`` (latest of every dataset)
and ``status(all_versions=True)``, median of 5, in a fresh schema dropped afterwards.

    .venv/bin/python bench/status.py [--url postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections import Counter
from datetime import timedelta

import sqlalchemy as sa

from headwater import Catalog
from headwater.catalog.models import (
    Alias,
    Dataset,
    Job,
    Namespace,
    Run,
    RunInput,
    RunOutput,
    Version,
    VersionRetraction,
    utcnow,
)
from headwater.catalog.status import _causes
from headwater.lineage import NullLineage
from headwater.settings import Settings

DATASETS = 10_000
SOURCES = 100


def build(cat: Catalog) -> None:
    now = utcnow()
    with cat.session() as s:
        s.execute(sa.insert(Namespace), [{"id": 1, "name": "bench", "created_at": now}])
        s.execute(sa.insert(Dataset), [
            {"id": i, "namespace_id": 1, "name": f"d{i}", "type": "table", "version_count": 1,
             "meta": {}, "created_at": now} for i in range(1, DATASETS + 1)])
        s.execute(sa.insert(Job), [
            {"id": i, "namespace_id": 1, "name": f"job{i}", "created_at": now}
            for i in range(1, DATASETS + 1)])
        runs, inputs, outputs, versions = [], [], [], []
        for i in range(1, DATASETS + 1):
            rid = str(uuid.UUID(int=i))
            runs.append({"id": rid, "job_id": i, "state": "COMPLETED", "params": {"i": i},
                         "code_fingerprint": "c1", "engine": {},
                         "started_at": now + timedelta(microseconds=i)})
            versions.append({"id": i, "dataset_id": i, "number": 1, "digest": f"{i:064x}",
                             "store_url": ".", "kind": "table", "stats": {}, "meta": {},
                             "state": "committed", "created_at": now, "run_id": rid})
            outputs.append({"run_id": rid, "version_id": i, "created": True})
            if i > SOURCES:
                for j in sorted({i - SOURCES, 1 + (i * 7919) % (i - 1)}):
                    sel = "production" if j == 2 else "latest"
                    inputs.append({"run_id": rid, "version_id": j, "ref": f"bench/d{j}@{sel}",
                                   "selector": sel, "is_state": False})
        s.execute(sa.insert(Run), runs)
        s.execute(sa.insert(Version), versions)
        s.execute(sa.insert(RunOutput), outputs)
        s.execute(sa.insert(RunInput), inputs)
        # causes: source 1 retracted; a newer version of source 3; a newer run of job 5000 with
        # other code; alias production on d2 moved from @1 to a new @2
        s.execute(sa.insert(VersionRetraction), [{"version_id": 1, "action": "retract",
                                                  "actor": "bench", "reason": "bad", "at": now}])
        s.execute(sa.insert(Version), [
            {"id": DATASETS + 1, "dataset_id": 3, "number": 2, "digest": "b" * 64,
             "store_url": ".", "kind": "table", "stats": {}, "meta": {}, "state": "committed",
             "created_at": now},
            {"id": DATASETS + 2, "dataset_id": 2, "number": 2, "digest": "c" * 64,
             "store_url": ".", "kind": "table", "stats": {}, "meta": {}, "state": "committed",
             "created_at": now}])
        s.execute(sa.insert(Alias), [{"dataset_id": 2, "name": "production",
                                      "version_id": DATASETS + 2, "updated_at": now}])
        s.execute(sa.insert(Run), [{"id": str(uuid.UUID(int=DATASETS + 1)), "job_id": 5000,
                                    "state": "COMPLETED", "params": {"i": 5000},
                                    "code_fingerprint": "c2", "engine": {},
                                    "started_at": now + timedelta(seconds=1)}])
        s.execute(sa.text("ANALYZE"))


def median_of(fn: object, n: int = 5) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    schema = f"hw_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(args.url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in args.url else "?"
    url = f"{args.url}{sep}options=-csearch_path%3D{schema}"
    try:
        tmp = tempfile.mkdtemp(prefix="hw-status-")
        cat = Catalog(Settings.resolve(catalog_url=url, store_url=f"{tmp}/store"),
                      lineage=NullLineage())
        build(cat)
        latest = cat.status()
        every = cat.status(all_versions=True)
        print(f"{len(latest)} datasets: {dict(Counter(s.status for s in latest))}; "
              f"{sum(len(s.causes) for s in every)} causes over {len(every)} versions")
        t_latest = median_of(cat.status)
        t_all = median_of(lambda: cat.status(all_versions=True))
        print(f"status() over {DATASETS} datasets on PostgreSQL: median {t_latest * 1e3:.0f} ms")
        print(f"status(all_versions=True): median {t_all * 1e3:.0f} ms")
        with cat.session() as s:
            t_query = median_of(lambda: _causes(s))
        print(f"  of which the one recursive query (catalog.status._causes): "
              f"median {t_query * 1e3:.0f} ms")
        cat.close()
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    main()

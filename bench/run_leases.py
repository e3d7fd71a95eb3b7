"""What run leases cost: the reaper query every command runs at catalog open, a run block's
heartbeat thread (started and stopped once per run) and one heartbeat (SQLite).

    .venv/bin/python bench/run_leases.py
"""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import timedelta

import sqlalchemy as sa

from headwater import Catalog
from headwater.catalog import leases
from headwater.catalog.models import Run, utcnow
from headwater.lineage import NullLineage
from headwater.reaper import reap_dead_runs
from headwater.settings import Settings

RUNS = 100_000


def median_of(fn: Callable[[], object], n: int) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    tmp = tempfile.mkdtemp(prefix="hw-leases-")
    settings = Settings.resolve(catalog_url=f"sqlite:///{tmp}/c.db", store_url=f"{tmp}/store")
    cat = Catalog(settings, lineage=NullLineage())
    with cat.run("seed"):
        pass
    me = leases.this_process()
    with cat.session() as s:
        job_id = s.scalar(sa.select(Run.job_id))
        now = utcnow()
        s.execute(sa.insert(Run), [
            {"id": str(uuid.uuid4()), "job_id": job_id, "state": "COMPLETED", "params": {},
             "engine": {}, "started_at": now, "owner_host": me.host,
             "lease_until": now + timedelta(seconds=300)} for _ in range(RUNS)])
    query = sa.select(Run.id).where(
        Run.state == "RUNNING", Run.lease_until.is_not(None),
        sa.or_(Run.lease_until < utcnow(), Run.owner_host == me.host))
    sql = str(query.compile(cat.engine, compile_kwargs={"literal_binds": True}))
    with cat.engine.connect() as conn:
        print("plan:", conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql).all())
    reap = median_of(lambda: reap_dead_runs(cat), 50)
    print(f"reap_dead_runs over {RUNS + 1} runs, none RUNNING: median {reap * 1e3:.2f} ms")
    beat = median_of(lambda: leases.Heartbeat(cat.engine, "x", interval=30, lease=300)
                     .start().stop(), 200)
    print(f"heartbeat thread start + stop: median {beat * 1e6:.0f} us")
    renew = median_of(lambda: leases.renew(cat.engine, "x", 300), 50)
    print(f"one heartbeat UPDATE (SQLite): median {renew * 1e3:.2f} ms")
    # the Airflow retry link: a new try of a task whose job has RUNS completed runs
    ids = {"name": "airflow", "dag_id": "d", "task_id": "t", "run_id": "r", "map_index": -1}
    with cat.run("d.t", engine={**ids, "try_number": 1}) as first:
        pass
    with cat.session() as s:
        job_id = s.get_one(Run, first.id).job_id
        s.execute(sa.insert(Run), [
            {"id": str(uuid.uuid4()), "job_id": job_id, "state": "COMPLETED", "params": {},
             "engine": {**ids, "run_id": f"r{i}"}, "started_at": now} for i in range(RUNS)])
    tries = iter(range(2, 1000))
    with_attempt = median_of(lambda: _block(cat, ids, next(tries), attempt=True), 7)
    without = median_of(lambda: _block(cat, ids, next(tries), attempt=False), 7)
    print(f"run block of a job with {RUNS} runs: with attempt {with_attempt * 1e3:.1f} ms, "
          f"without {without * 1e3:.1f} ms")
    cat.close()


def _block(cat: Catalog, ids: dict[str, object], try_number: int, *, attempt: bool) -> None:
    with cat.run("d.t", engine={**ids, "try_number": try_number},
                 attempt=ids if attempt else None):
        pass


if __name__ == "__main__":
    main()

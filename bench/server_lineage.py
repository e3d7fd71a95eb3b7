"""Benchmark: lineage walks over a 1-million-edge catalog on PostgreSQL, and the server under 200
concurrent readers.

Why: the catalog server answers "where did this come from / what came from it" interactively, so
a depth-20 walk must stay under 100 ms on a large catalog, and dashboards plus the Airflow page
must be able to read concurrently without errors.

The generated graph is a braid: 50 layers of 6,667 datasets; the run at (layer l, position p)
reads versions (l-1, p) and (l-1, p+1) and writes version (l, p) — 333,350 runs, 340,017
versions and 1,000,050 edges (``run_inputs`` + ``run_outputs``). A depth-20 walk from the last
layer touches ~210 versions and ~210 runs (the cone widens by one per hop). It is bulk-inserted
with SQL into a fresh schema of the local PostgreSQL, which is dropped at the end.

    .venv/bin/python bench/server_lineage.py                       # graph + walks + 200 readers
    .venv/bin/python bench/server_lineage.py --readers 200 --requests 10 --skip-walks

Ratios are against a depth-1 walk measured in the same run. Targets: depth-20 walk < 100 ms;
200 concurrent readers, 0 errors. Loopback only; every loop is bounded. Not part of the tests.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

from headwater import Catalog
from headwater.catalog import db
from headwater.lineage.base import NullLineage

PG = os.environ.get("HEADWATER_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
LAYERS, WIDTH = 50, 6667


def build_graph(engine: sa.Engine, *, layers: int, width: int) -> int:
    """Bulk-insert the braid; returns the number of edges."""
    v_id = f"(l * {width} + p + 1)"
    stmts = [
        "INSERT INTO namespaces (id, name, created_at) VALUES (1, 'bench', now())",
        f"""INSERT INTO datasets (id, namespace_id, name, type, metadata, version_count,
                created_at)
            SELECT p + 1, 1, 'd' || p, 'table', '{{}}', {layers + 1}, now()
            FROM generate_series(0, {width - 1}) p""",
        f"""INSERT INTO jobs (id, namespace_id, name, created_at)
            SELECT l, 1, 'step' || l, now() FROM generate_series(1, {layers}) l""",
        f"""INSERT INTO runs (id, job_id, state, params, engine, started_at, ended_at)
            SELECT md5('run' || l || '-' || p)::uuid::text, l, 'COMPLETED', '{{}}',
                   '{{"name": "bench"}}', now() - (l * {width} + p) * interval '1 second',
                   now() - (l * {width} + p) * interval '1 second' + interval '2 seconds'
            FROM generate_series(1, {layers}) l, generate_series(0, {width - 1}) p""",
        f"""INSERT INTO versions (id, dataset_id, number, digest, store_url, kind, size,
                file_count, row_count, stats, metadata, state, created_at, run_id)
            SELECT {v_id}, p + 1, l + 1, md5('v' || l || '-' || p) || md5('w' || l || '-' || p),
                   '/bench', 'table', 100, 1, 10, '{{}}', '{{}}', 'committed', now(),
                   CASE WHEN l = 0 THEN NULL ELSE md5('run' || l || '-' || p)::uuid::text END
            FROM generate_series(0, {layers}) l, generate_series(0, {width - 1}) p""",
        f"""INSERT INTO run_inputs (run_id, version_id)
            SELECT md5('run' || l || '-' || p)::uuid::text, (l - 1) * {width} + p + 1
            FROM generate_series(1, {layers}) l, generate_series(0, {width - 1}) p
            UNION ALL
            SELECT md5('run' || l || '-' || p)::uuid::text,
                   (l - 1) * {width} + (p + 1) % {width} + 1
            FROM generate_series(1, {layers}) l, generate_series(0, {width - 1}) p""",
        f"""INSERT INTO run_outputs (run_id, version_id, created)
            SELECT md5('run' || l || '-' || p)::uuid::text, {v_id}, true
            FROM generate_series(1, {layers}) l, generate_series(0, {width - 1}) p""",
    ]
    with engine.begin() as conn:
        for stmt in stmts:
            conn.execute(sa.text(stmt))
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.execute(sa.text("ANALYZE"))
        inputs = conn.execute(sa.text("SELECT count(*) FROM run_inputs")).scalar_one()
        outputs = conn.execute(sa.text("SELECT count(*) FROM run_outputs")).scalar_one()
    return int(inputs) + int(outputs)


def timed(fn: object, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        out.append((time.perf_counter() - t) * 1000)
    return out


def walks(cat: Catalog, *, layers: int, width: int, repeat: int) -> bool:
    mid = width // 2
    last = f"bench/d{mid}@{layers + 1}"
    middle = f"bench/d{mid}@{layers // 2}"
    base = statistics.median(timed(lambda: cat.lineage(last, direction="up", depth=1), repeat))
    print(f"baseline: depth-1 upstream walk  median {base:7.1f} ms")
    ok = True
    for label, ref, direction in (("upstream from the last layer", last, "up"),
                                  ("downstream from the middle layer", middle, "down"),
                                  ("both ways from the middle layer", middle, "both")):
        graph = cat.lineage(ref, direction=direction, depth=20)
        samples = timed(lambda r=ref, d=direction: cat.lineage(r, direction=d, depth=20), repeat)
        med, worst = statistics.median(samples), max(samples)
        versions = sum(1 for n in graph.nodes.values() if n["type"] == "version")
        runs = len(graph.nodes) - versions
        verdict = "ok" if med < 100 else "OVER 100 ms"
        ok = ok and med < 100
        print(f"depth-20 {label:34s} {versions:4d} versions {runs:4d} runs  median "
              f"{med:7.1f} ms  max {worst:7.1f} ms  ({med / base:4.1f}x baseline)  {verdict}")
    return ok


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _readers(base: str, paths: list[str], *, readers: int, requests: int
                   ) -> tuple[int, int, list[float], float]:
    import httpx

    latencies: list[float] = []
    errors = 0
    samples: list[str] = []
    limits = httpx.Limits(max_connections=readers, max_keepalive_connections=readers)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
        async def reader(i: int) -> None:
            nonlocal errors
            for k in range(requests):
                path = paths[(i + k) % len(paths)]
                t = time.perf_counter()
                try:
                    r = await client.get(path)
                    if r.status_code != 200:
                        errors += 1
                        samples.append(f"{path}: {r.status_code} {r.text[:200]}")
                except httpx.HTTPError as exc:
                    errors += 1
                    samples.append(f"{path}: {type(exc).__name__} {exc}")
                latencies.append((time.perf_counter() - t) * 1000)

        start = time.perf_counter()
        await asyncio.gather(*(reader(i) for i in range(readers)))
        elapsed = time.perf_counter() - start
    for line in samples[:5]:
        print("  error:", line)
    return readers * requests, errors, latencies, elapsed


def concurrent_readers(url: str, *, layers: int, width: int, readers: int, requests: int) -> bool:
    port = _free_port()
    env = {**os.environ, "HEADWATER_HOME": str(Path(os.environ.get("TMPDIR", "/tmp")) /
                                                 "hw-bench-home")}
    env.pop("HEADWATER_SERVER_TOKENS", None)
    cli = Path(sys.executable).with_name("headwater")
    log = Path(env["HEADWATER_HOME"]) / "server.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as sink:
        proc = subprocess.Popen([str(cli), "--catalog", url, "serve", "--host", "127.0.0.1",
                                 "--port", str(port), "--log-level", "warning"],
                                env=env, stdout=sink, stderr=sink)
    try:
        import httpx

        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(base + "/api/v1/namespaces", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise SystemExit("the server did not start")
        mid = width // 2
        walk = f"/api/v1/versions/bench/d{mid}/{layers + 1}/lineage?direction=up&depth=20"
        with httpx.Client(base_url=base, timeout=60) as client:
            samples = []
            for _ in range(15):
                t = time.perf_counter()
                r = client.get(walk)
                samples.append((time.perf_counter() - t) * 1000)
                assert r.status_code == 200, r.text
        print(f"API depth-20 upstream lineage over HTTP ({len(r.json()['nodes'])} nodes): "
              f"median {statistics.median(samples):.1f} ms")
        paths = [
            "/api/v1/datasets?limit=50&search=d12",
            f"/api/v1/versions/bench/d{mid}/{layers + 1}",
            f"/api/v1/versions/bench/d{mid}/{layers + 1}/lineage?direction=up&depth=5",
            f"/api/v1/datasets/bench/d{mid + 1}/versions?limit=20",
            "/api/v1/runs?limit=20",
            "/api/v1/namespaces",
        ]
        total, errors, lat, elapsed = asyncio.run(
            _readers(base, paths, readers=readers, requests=requests))
        lat.sort()
        p50, p95 = lat[len(lat) // 2], lat[int(len(lat) * 0.95)]
        print(f"{readers} concurrent readers x {requests} requests: {total} requests in "
              f"{elapsed:.1f} s = {total / elapsed:.0f} req/s, errors {errors}, "
              f"p50 {p50:.0f} ms, p95 {p95:.0f} ms")
        if errors:
            print("  server log (tail):", log.read_text(errors="replace")[-1500:])
        return errors == 0
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layers", type=int, default=LAYERS)
    ap.add_argument("--width", type=int, default=WIDTH)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--readers", type=int, default=200)
    ap.add_argument("--requests", type=int, default=10, help="per reader")
    ap.add_argument("--skip-walks", action="store_true")
    ap.add_argument("--skip-readers", action="store_true")
    ap.add_argument("--keep", metavar="SCHEMA", help="build into (or reuse) this schema and "
                    "keep it afterwards, to rerun without rebuilding the graph")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanup below

    schema = args.keep or f"hw_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(db.normalise_url(PG))
    with admin.begin() as conn:
        exists = conn.execute(sa.text("SELECT 1 FROM pg_namespace WHERE nspname = :s"),
                              {"s": schema}).scalar()
        if not exists:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = f"{PG}{'&' if '?' in PG else '?'}options=-csearch_path%3D{schema}"
    ok = True
    try:
        engine = db.create_catalog_engine(url)
        if exists:
            print(f"graph: reusing schema {schema}")
        else:
            db.upgrade(engine)
            t = time.perf_counter()
            edges = build_graph(engine, layers=args.layers, width=args.width)
            print(f"graph: {edges:,} edges ({args.layers} layers x {args.width}) built in "
                  f"{time.perf_counter() - t:.1f} s on PostgreSQL (schema {schema})")
        engine.dispose()
        if not args.skip_walks:
            cat = Catalog.open(url, store_url="/tmp/hw-bench-store", lineage=NullLineage())
            ok = walks(cat, layers=args.layers, width=args.width, repeat=args.repeat) and ok
            cat.close()
        if not args.skip_readers:
            ok = concurrent_readers(url, layers=args.layers, width=args.width,
                                    readers=args.readers, requests=args.requests) and ok
    finally:
        if not args.keep:
            with admin.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
    print("targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""OpenLineage ingestion: recorded Airflow events, our own emitter's events, a foreign (Spark-like)
producer; exact version links, idempotence, run folding, secrets, and bad events."""

from __future__ import annotations

import copy
import json
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from headwater import Catalog
from headwater.catalog.models import OpenLineageRun, Run, RunInput, Version
from headwater.lineage.facets import stored_event
from headwater.lineage.outbox import OutboxRecorder
from headwater.server.app import create_app
from tests.server.conftest import DATA

API = "/api/v1"
PRODUCER = "https://example.com/spark-like/1.0"


def counts(cat: Catalog) -> dict[str, int]:
    return cat.stats()


@pytest.fixture
def fresh(catalog: Catalog) -> Iterator[tuple[Catalog, TestClient]]:
    with TestClient(create_app(catalog), base_url="http://localhost") as c:
        yield catalog, c


def airflow_events() -> list[dict[str, Any]]:
    return [json.loads(line) for line in
            (DATA / "airflow_hw_generic_events.jsonl").read_text().splitlines() if line]


def spark_event(event_type: str, run_id: str, *, time: str, job: str = "etl.orders_totals",
                inputs: list[dict[str, Any]] | None = None,
                outputs: list[dict[str, Any]] | None = None,
                run_facets: dict[str, Any] | None = None) -> dict[str, Any]:
    """A hand-written event as a Spark integration writes one (spec 2-0-2)."""
    return {
        "eventType": event_type, "eventTime": time, "producer": PRODUCER,
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": run_id, "facets": {
            "processing_engine": {"_producer": PRODUCER, "_schemaURL": "x", "name": "spark",
                                  "version": "3.5.1"}, **(run_facets or {})}},
        "job": {"namespace": "spark-prod", "name": job, "facets": {
            "jobType": {"_producer": PRODUCER, "_schemaURL": "x", "processingType": "BATCH",
                        "integration": "SPARK", "jobType": "SQL_JOB"}}},
        "inputs": inputs or [], "outputs": outputs or [],
    }


def ds(namespace: str, name: str, version: str | None = None, **facets: Any) -> dict[str, Any]:
    f = dict(facets)
    if version is not None:
        f["version"] = {"_producer": PRODUCER, "_schemaURL": "x", "datasetVersion": version}
    return {"namespace": namespace, "name": name, "facets": f}


def test_recorded_airflow_events_become_runs_versions_and_edges(fresh: Any) -> None:
    cat, c = fresh
    events = airflow_events()
    results = [c.post(f"{API}/lineage", json=e) for e in events]
    assert [r.status_code for r in results] == [201, 201, 201]
    even = results[1].json()
    assert even["inputs"] == ["test/numbers@1"] and even["outputs"] == ["test/even@1"]
    before = counts(cat)
    assert before == {"datasets": 2, "versions": 2, "runs": 3}
    # the producer is at least once: the same events again change nothing
    again = [c.post(f"{API}/lineage", json=e) for e in events]
    assert [r.status_code for r in again] == [200, 200, 200]
    assert {r.json()["status"] for r in again} == {"duplicate"}
    assert counts(cat) == before
    v = c.get(f"{API}/versions/test/even/1").json()
    assert v["kind"] == "external" and v["row_count"] == 3
    assert v["digest"] == events[1]["outputs"][0]["facets"]["version"]["digest"]
    assert [col["name"] for col in v["schema"]] == ["id", "value"]
    assert v["stats"]["null_counts"] == {"id": 0, "value": 0}
    run = c.get(f"{API}/runs/{even['run_id']}").json()
    assert run["engine"]["dag_id"] == "hw_generic" and run["engine"]["task_id"] == "even"
    assert run["engine"]["name"] == "Airflow" and run["state"] == "COMPLETED"
    assert run["params"] == {"modulus": 2} and run["code_fingerprint"]
    assert run["parent"]["job"] == "hw_generic"
    assert [e["event_type"] for e in run["events"]] == ["COMPLETE"]
    # external versions have no data here: a clear 400, not a crash
    rows = c.get(f"{API}/versions/test/even/1/rows")
    assert rows.status_code == 400 and "external version" in rows.json()["detail"]
    impact = c.get(f"{API}/versions/test/numbers/1/impact").json()
    (entry,) = impact["rebuild"]["entries"]  # the rebuild plan (headwater/rebuild/plan.py)
    assert (entry["dag_id"], entry["task_ids"]) == ("hw_generic", ["even"])
    assert entry["engine"] == "airflow"


def test_our_own_emitter_events_land_on_existing_versions(catalog_url: str, tmp_path: Any
                                                          ) -> None:
    cat = Catalog.open(catalog_url, store_url=str(tmp_path / "store"),
                       lineage=OutboxRecorder(deliver=False))
    try:
        v1 = cat.log(pa.table({"id": [1, 2]}), name="own/raw")
        with cat.run("derive", inputs=[v1.ref], namespace="own") as run:
            run.log_output(pa.table({"n": [2]}), name="own/derived")
        with cat.engine.connect() as conn:
            events = [stored_event(row[0] if isinstance(row[0], dict) else json.loads(row[0]))
                      for row in
                      conn.execute(sa.text("select event from lineage_outbox order by id"))]
        assert len(events) == 4  # START + COMPLETE of the log run and of derive
        before = counts(cat)
        with TestClient(create_app(cat), base_url="http://localhost") as c:
            results = [c.post(f"{API}/lineage", json=e).json() for e in events]
            assert counts(cat) == before  # no duplicate datasets, versions or runs
            complete = results[-1]
            assert complete["run_id"] == run.id
            assert complete["inputs"] == ["own/raw@1"] and complete["outputs"] == ["own/derived@1"]
            v = c.get(f"{API}/versions/own/derived/1").json()
            assert v["kind"] == "table" and v["run"]["id"] == run.id
            ds_info = c.get(f"{API}/datasets/own/derived").json()
            assert ds_info["openlineage"][0]["name"].endswith("/datasets/own/derived")
    finally:
        cat.close()


def test_input_version_facet_links_that_exact_version_not_the_latest(small: Catalog) -> None:
    """Marquez links the latest version of an input; we link the one the event names."""
    v1 = small.get("t/users@1")
    assert small.get("t/users").number == 2
    from headwater.catalog.models import utcnow
    from headwater.lineage.base import RunEvent
    from headwater.lineage.facets import build_event, event_to_dict

    event = event_to_dict(build_event(RunEvent(
        run_id=str(uuid.uuid4()), job_namespace="ext", job_name="reader", state="COMPLETE",
        event_time=utcnow(), params={}, code_fingerprint=None, cache_key=None, engine={},
        parent=None, nominal_time=None, inputs=(v1.info(),), outputs=())))
    with TestClient(create_app(small), base_url="http://localhost") as c:
        result = c.post(f"{API}/lineage", json=event).json()
        assert result["inputs"] == ["t/users@1"]
        # a foreign dataset: datasetVersion "a" then "b" written; a reader of "a" links to "a"
        rid = [str(uuid.uuid4()) for _ in range(3)]
        for n, (r, version) in enumerate(zip(rid[:2], ["a", "b"], strict=True)):
            c.post(f"{API}/lineage", json=spark_event(
                "COMPLETE", r, time=f"2026-01-0{n + 1}T00:00:00Z",
                outputs=[ds("s3://lake", "events/daily", version)]))
        read = c.post(f"{API}/lineage", json=spark_event(
            "COMPLETE", rid[2], time="2026-01-03T00:00:00Z", job="report",
            inputs=[ds("s3://lake", "events/daily", "a")])).json()
        assert read["inputs"] == ["s3.lake/events.daily@1"]
        unversioned = c.post(f"{API}/lineage", json=spark_event(
            "COMPLETE", str(uuid.uuid4()), time="2026-01-04T00:00:00Z", job="report2",
            inputs=[ds("s3://lake", "events/daily")])).json()
        assert unversioned["inputs"] == ["s3.lake/events.daily@2"]  # no facet: the latest


def test_foreign_producer_start_complete_fail(fresh: Any) -> None:
    cat, c = fresh
    rid = str(uuid.uuid4())
    schema = {"_producer": PRODUCER, "_schemaURL": "x",
              "fields": [{"name": "order_id", "type": "long"}, {"name": "total", "type": "double"}]}
    out = ds("postgres://bob:hunter2@db.example:5432", "shop.public.order_totals", schema=schema)
    out["outputFacets"] = {"outputStatistics": {"_producer": PRODUCER, "_schemaURL": "x",
                                                "rowCount": 1200, "size": 65536}}
    inp = ds("s3://raw-bucket", "warehouse/orders/2026-01-01", "v17")
    start = c.post(f"{API}/lineage", json=spark_event(
        "START", rid, time="2026-01-01T10:00:00+00:00", inputs=[inp], outputs=[out]))
    assert start.status_code == 201 and start.json()["outputs"] == []  # not committed yet
    running = c.get(f"{API}/runs/{rid}").json()
    assert running["state"] == "RUNNING" and running["inputs"][0]["ref"].startswith(
        "s3.raw-bucket/warehouse.orders.2026-01-01@")
    done = c.post(f"{API}/lineage", json=spark_event(
        "COMPLETE", rid, time="2026-01-01T10:05:00+00:00", inputs=[inp], outputs=[out])).json()
    assert done["outputs"] == ["postgres.bob.db.example.5432/shop.public.order_totals@1"]
    run = c.get(f"{API}/runs/{rid}").json()
    assert run["state"] == "COMPLETED" and run["duration_seconds"] == 300
    assert run["engine"]["name"] == "spark" and run["engine"]["integration"] == "SPARK"
    assert run["job_full_name"] == "spark-prod/etl.orders_totals"
    totals = c.get(f"{API}/versions/postgres.bob.db.example.5432/shop.public.order_totals/1").json()
    assert totals["kind"] == "external" and totals["row_count"] == 1200 and totals["size"] == 65536
    assert totals["dataset_type"] == "external"
    everything = json.dumps([c.get(f"{API}/datasets").json(), totals, run,
                             c.get(f"{API}/lineage", params={
                                 "nodeId": "job:spark-prod:etl.orders_totals"}).json()])
    assert "hunter2" not in everything  # the password in the namespace was masked at ingestion
    with cat.engine.connect() as conn:
        stored = conn.execute(sa.text("select event from ol_events")).all()
    assert "hunter2" not in json.dumps([str(r[0]) for r in stored])
    # a late START (out of order) never moves a finished run back to RUNNING
    c.post(f"{API}/lineage", json=spark_event("START", rid, time="2026-01-01T09:59:00+00:00"))
    assert c.get(f"{API}/runs/{rid}").json()["state"] == "COMPLETED"
    # FAIL: error recorded, outputs not versioned
    failed = str(uuid.uuid4())
    error = {"_producer": PRODUCER, "_schemaURL": "x", "message": "division by zero",
             "programmingLanguage": "scala", "stackTrace": "at Foo.bar(Foo.scala:1)"}
    r = c.post(f"{API}/lineage", json=spark_event(
        "FAIL", failed, time="2026-01-02T00:00:00Z", outputs=[out],
        run_facets={"errorMessage": error})).json()
    assert r["outputs"] == []
    run = c.get(f"{API}/runs/{failed}").json()
    assert run["state"] == "FAILED" and run["error"].startswith("division by zero")


def test_airflow_task_events_fold_into_the_catalog_run(small: Catalog) -> None:
    """START from Airflow (its own run id, no provenance) makes a placeholder; COMPLETE with our
    provenance facet names the catalog run: one run remains, with the Airflow id mapped to it."""
    catalog_run = next(r for r in small.runs() if r.job == "derive")
    airflow_id = str(uuid.uuid4())
    complete = airflow_events()[1]
    start = copy.deepcopy(complete)
    start["eventType"], start["eventTime"] = "START", "2026-01-01T00:00:00+00:00"
    start["run"] = {"runId": airflow_id, "facets": {}}
    start["outputs"] = []
    start["inputs"] = []
    complete = copy.deepcopy(complete)
    complete["run"]["runId"] = airflow_id
    complete["run"]["facets"]["headwater_provenance"]["runId"] = catalog_run.id
    with TestClient(create_app(small), base_url="http://localhost") as c:
        before = counts(small)
        assert c.post(f"{API}/lineage", json=start).json()["run_id"] == airflow_id
        assert counts(small)["runs"] == before["runs"] + 1
        done = c.post(f"{API}/lineage", json=complete).json()
        assert done["run_id"] == catalog_run.id
        assert counts(small)["runs"] == before["runs"]
    with small.session() as s:
        assert s.get(OpenLineageRun, airflow_id).run_id == catalog_run.id
        assert s.get(Run, airflow_id) is None
        native = s.get(Run, catalog_run.id)
        assert native is not None and not (native.engine or {}).get("ingested")


def test_foreign_name_never_takes_over_a_native_dataset(small: Catalog) -> None:
    with TestClient(create_app(small), base_url="http://localhost") as c:
        r = c.post(f"{API}/lineage", json=spark_event(
            "COMPLETE", str(uuid.uuid4()), time="2026-01-01T00:00:00Z",
            outputs=[ds("t", "users", "1")])).json()
        (ref,) = r["outputs"]
        assert ref.startswith("t/users-") and ref.endswith("@1")
        assert c.get(f"{API}/datasets/t/users").json()["versions"] == 2


def test_dataset_and_job_events(fresh: Any) -> None:
    _, c = fresh
    dataset_event = {"eventTime": "2026-01-01T00:00:00Z", "producer": PRODUCER,
                     "dataset": ds("bigquery", "proj.sales.orders", "42")}
    r = c.post(f"{API}/lineage", json=dataset_event)
    assert r.status_code == 201 and r.json()["inputs"] == ["bigquery/proj.sales.orders@1"]
    job_event = {"eventTime": "2026-01-01T00:00:00Z", "producer": PRODUCER,
                 "job": {"namespace": "dbt", "name": "models.orders"},
                 "inputs": [ds("bigquery", "proj.sales.orders")],
                 "outputs": [ds("bigquery", "proj.sales.orders_daily")]}
    r = c.post(f"{API}/lineage", json=job_event)
    assert r.status_code == 201 and r.json()["job"] == "dbt/models.orders"
    assert c.post(f"{API}/lineage", json=job_event).json()["status"] == "duplicate"


@pytest.mark.parametrize("mutate", [
    lambda e: e["run"].update(runId="not-a-uuid"),
    lambda e: e.pop("eventTime"),
    lambda e: e.update(eventTime="yesterday"),
    lambda e: e.update(eventType="EXPLODED"),
    lambda e: e["job"].update(name=""),
    lambda e: e.update(inputs=[{"namespace": "x"}]),
    lambda e: e.pop("producer"),
])
def test_malformed_events_are_422(sqlite_catalog: Catalog, mutate: Any) -> None:
    event = spark_event("COMPLETE", str(uuid.uuid4()), time="2026-01-01T00:00:00Z")
    mutate(event)
    with TestClient(create_app(sqlite_catalog), base_url="http://localhost") as c:
        r = c.post(f"{API}/lineage", json=event)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"]


def test_hostile_facets_never_break_ingestion(sqlite_catalog: Catalog) -> None:
    weird: list[Any] = [None, [], "x", 1e309, -5, 2**80, {"fields": "nope"},
                        {"identifiers": [{"namespace": "headwater", "name": "../../etc"}]},
                        {"datasetVersion": {"nested": True}, "digest": "zz"}]
    with TestClient(create_app(sqlite_catalog), base_url="http://localhost") as c:
        for n, value in enumerate(weird):
            facets = {k: value for k in ("schema", "symlinks", "version", "dataQualityMetrics")}
            event = spark_event("COMPLETE", str(uuid.uuid4()), time=f"2026-01-01T00:00:{n:02d}Z",
                                inputs=[{"namespace": "n", "name": f"in{n}", "facets": facets}],
                                outputs=[{"namespace": "n", "name": f"out{n}", "facets": facets,
                                          "outputFacets": {"outputStatistics": value}}],
                                run_facets={"parent": value, "nominalTime": value,
                                            "errorMessage": value,
                                            "headwater_provenance": value})
            r = c.post(f"{API}/lineage", json=json.loads(json.dumps(event).replace(
                "Infinity", "1e308")))
            assert r.status_code == 201, (value, r.text)


def test_concurrent_redeliveries_ingest_once(catalog: Catalog) -> None:
    event = spark_event("COMPLETE", str(uuid.uuid4()), time="2026-01-01T00:00:00Z",
                        inputs=[ds("s3://b", "in", "1")], outputs=[ds("s3://b", "out", "1")])
    statuses: list[str] = []
    app = create_app(catalog)

    def send() -> None:
        with TestClient(app, base_url="http://localhost") as c:
            statuses.append(c.post(f"{API}/lineage", json=event).json()["status"])

    threads = [threading.Thread(target=send) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(statuses) == ["duplicate"] * 5 + ["ingested"]
    with catalog.session() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Version)) == 2
        assert s.scalar(sa.select(sa.func.count()).select_from(RunInput)) == 1

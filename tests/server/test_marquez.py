"""``GET /api/v1/lineage`` answers in Marquez's graph shape for a graph of known shape."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi.testclient import TestClient

from headwater import Catalog
from headwater.server.app import create_app
from tests.server.test_ingest import ds, spark_event

API = "/api/v1"
NODE_KEYS = ["id", "type", "data", "inEdges", "outEdges"]


def _job(c: TestClient, name: str, ins: list[str], outs: list[str], n: int) -> None:
    r = c.post(f"{API}/lineage", json=spark_event(
        "COMPLETE", str(uuid.uuid4()), time=f"2026-01-01T00:00:{n:02d}Z", job=name,
        inputs=[ds("warehouse", i) for i in ins], outputs=[ds("warehouse", o) for o in outs]))
    assert r.status_code == 201, r.text


def test_marquez_graph_of_known_shape(catalog: Catalog) -> None:
    """a →job1→ b →job2→ c, b →job3→ d; and an unrelated x →job4→ y."""
    with TestClient(create_app(catalog), base_url="http://localhost") as c:
        _job(c, "job1", ["a"], ["b"], 1)
        _job(c, "job2", ["b"], ["c"], 2)
        _job(c, "job3", ["b"], ["d"], 3)
        _job(c, "job4", ["x"], ["y"], 4)
        body = c.get(f"{API}/lineage", params={"nodeId": "dataset:warehouse:b",
                                               "depth": 20}).json()
        near = c.get(f"{API}/lineage", params={"nodeId": "dataset:warehouse:c",
                                               "depth": 1}).json()
        by_catalog_name = c.get(f"{API}/lineage", params={"nodeId": "dataset:warehouse:b"}).json()
    assert list(body) == ["graph"]
    nodes = {n["id"]: n for n in body["graph"]}
    assert set(nodes) == {f"dataset:warehouse:{d}" for d in "abcd"} | {
        f"job:spark-prod:job{i}" for i in (1, 2, 3)}
    for n in body["graph"]:
        assert list(n) == NODE_KEYS
        assert n["type"] == ("DATASET" if n["id"].startswith("dataset:") else "JOB")
    edges = {(e["origin"], e["destination"]) for n in body["graph"] for e in n["outEdges"]}
    d, j = "dataset:warehouse:", "job:spark-prod:"
    assert edges == {
        (d + "a", j + "job1"), (j + "job1", d + "b"),
        (d + "b", j + "job2"), (j + "job2", d + "c"),
        (d + "b", j + "job3"), (j + "job3", d + "d"),
    }
    in_edges = {(e["origin"], e["destination"]) for n in body["graph"] for e in n["inEdges"]}
    assert in_edges == edges
    b = nodes["dataset:warehouse:b"]
    assert b["inEdges"] == [{"origin": "job:spark-prod:job1", "destination": "dataset:warehouse:b"}]
    data: dict[str, Any] = b["data"]
    assert data["id"] == {"namespace": "warehouse", "name": "b"}
    for key in ("type", "name", "physicalName", "createdAt", "updatedAt", "namespace",
                "sourceName", "fields", "facets", "tags", "lastModifiedAt", "description"):
        assert key in data
    job2 = nodes["job:spark-prod:job2"]["data"]
    assert job2["id"] == {"namespace": "spark-prod", "name": "job2"} and job2["type"] == "BATCH"
    assert job2["inputs"] == [{"namespace": "warehouse", "name": "b"}]
    assert job2["outputs"] == [{"namespace": "warehouse", "name": "c"}]
    assert job2["latestRun"]["state"] == "COMPLETED"
    for key in ("simpleName", "parentJobName", "createdAt", "updatedAt", "namespace",
                "location", "description"):
        assert key in job2
    assert {n["id"] for n in near["graph"]} == {
        "dataset:warehouse:b", "dataset:warehouse:c", "job:spark-prod:job2"}
    assert len(by_catalog_name["graph"]) == 7  # default depth 20 (Marquez's default)


def test_marquez_ids_of_our_own_datasets(small: Catalog) -> None:
    """Never-ingested catalog datasets get the ids our emitter gives them in Marquez."""
    store = small.store.url
    with TestClient(create_app(small), base_url="http://localhost") as c:
        body = c.get(f"{API}/lineage", params={"nodeId": "dataset:t:summary"}).json()
        ids = {n["id"] for n in body["graph"]}
        physical = next(i for i in ids if i.endswith("/datasets/t/users"))
        again = c.get(f"{API}/lineage", params={"nodeId": physical}).json()
    assert physical.startswith("dataset:file:") and store.rstrip("/").split("://")[-1] in physical
    assert "job:t:derive" in ids and "job:t:log.users" in ids
    assert {n["id"] for n in again["graph"]} == ids

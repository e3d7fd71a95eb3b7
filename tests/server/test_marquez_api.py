"""Marquez 0.50's REST API, driven by Marquez's own Python client (``marquez-python`` 0.50.0)
against a real uvicorn server fed with real OpenLineage events; every answer is checked against
Marquez's published OpenAPI document (tests/server/data/marquez-openapi.yml)."""

from __future__ import annotations

import copy
import dataclasses
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pyarrow as pa
import pytest
import requests
import yaml
from fastapi.testclient import TestClient
from marquez_client import MarquezClient

from headwater import Catalog
from headwater.lineage import columns
from headwater.lineage.facets import stored_event
from headwater.lineage.record import to_record
from headwater.server.app import create_app
from tests.lineage.rich_events import rich_events
from tests.lineage.support import OLValidator
from tests.server.conftest import served
from tests.server.test_ingest import PRODUCER, airflow_events, ds, spark_event

SPEC = Path(__file__).parent / "data" / "marquez-openapi.yml"
API = "/api/v1"


def _normalise(node: Any) -> Any:
    """The OpenAPI 3.0 document as JSON Schema: ``type: enum`` and empty ``type`` dropped, every
    typed value nullable (Marquez writes ``null`` for absent values, as its examples show),
    ``$ref`` made local to the document."""
    if isinstance(node, list):
        return [_normalise(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _normalise(v) for k, v in node.items() if k not in ("example", "discriminator")}
    if out.get("type") in ("enum", None):
        out.pop("type", None)
    elif isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if "enum" in out:
        out["enum"] = [*out["enum"], None]
    if isinstance(out.get("$ref"), str):
        out["$ref"] = out["$ref"].replace("#/components/schemas/", "#/$defs/")
    return out


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    doc = yaml.safe_load(SPEC.read_text())
    defs = _normalise(doc["components"]["schemas"])
    # Where the document contradicts itself (DatasetVersion's tags typed as a string while
    # Dataset's are an array, as Marquez returns them), the Dataset form is taken.
    dv = defs["DatasetVersion"]["properties"]
    dv["tags"] = copy.deepcopy(defs["Dataset"]["properties"]["tags"])
    dv["fields"] = copy.deepcopy(defs["Dataset"]["properties"]["fields"])
    # GraphNode.data is chosen by its discriminator (``type``), which JSON Schema does not know:
    # ``anyOf`` here, and check() validates each node's data against the one it names.
    data = defs["GraphNode"]["properties"]["data"]
    data["anyOf"] = data.pop("oneOf")
    return {"$defs": defs}


def check(spec: dict[str, Any], schema: str, body: Any) -> Any:
    jsonschema.Draft202012Validator({"$ref": f"#/$defs/{schema}", **spec}).validate(body)
    if schema == "LineageGraph":
        for node in body["graph"]:
            check(spec, {"DATASET": "Dataset", "JOB": "Job"}[node["type"]], node["data"])
    return body


def _column_lineage(ns: str, name: str, field: str) -> dict[str, Any]:
    return {"_producer": PRODUCER, "_schemaURL":
            "https://openlineage.io/spec/facets/1-2-0/ColumnLineageDatasetFacet.json",
            "fields": {"total": {"inputFields": [
                {"namespace": ns, "name": name, "field": field,
                 "transformations": [{"type": "DIRECT", "subtype": "AGGREGATION"}]}]}}}


def our_events() -> list[dict[str, Any]]:
    """The rich events as our builder delivers them, for a run of the ``despam`` step."""
    out = []
    for e in rich_events()[:2]:
        e = dataclasses.replace(e, engine={**e.engine, "task_id": "despam", "dag_id": "ref"})
        out.append(stored_event(to_record(e)))
    return out


@pytest.fixture
def server(small: Catalog) -> Iterator[str]:
    with served(create_app(small)) as url:
        for event in [*airflow_events(), *our_events()]:
            r = requests.post(f"{url}{API}/lineage", json=event, timeout=30)
            assert r.status_code in (200, 201), r.text
        run = str(uuid.uuid4())
        foreign = spark_event(
            "COMPLETE", run, time="2026-11-30T10:00:00Z", job="etl.orders_totals",
            inputs=[ds("warehouse", "orders", "v42",
                       schema={"_producer": PRODUCER, "_schemaURL": "x",
                               "fields": [{"name": "amount", "type": "double"}]})],
            outputs=[ds("warehouse", "totals", "v7",
                        schema={"_producer": PRODUCER, "_schemaURL": "x",
                                "fields": [{"name": "total", "type": "double"}]},
                        columnLineage=_column_lineage("warehouse", "orders", "amount"))],
            run_facets={"parent": {"_producer": PRODUCER, "_schemaURL": "x",
                                   "run": {"runId": str(uuid.uuid4())},
                                   "job": {"namespace": "spark-prod", "name": "etl"}}})
        r = requests.post(f"{url}{API}/lineage", json=foreign, timeout=30)
        assert r.status_code == 201, r.text
        yield url


def test_our_events_carry_valid_column_lineage() -> None:
    complete = our_events()[1]
    OLValidator().validate(complete)
    lineage = complete["outputs"][0]["facets"]["columnLineage"]["fields"]
    assert lineage["id"]["inputFields"][0]["field"] == "id"
    assert lineage["id"]["transformationType"] == "IDENTITY"


def test_marquez_client_calls_answer_in_marquez_shapes(server: str, spec: dict[str, Any]
                                                       ) -> None:
    mq = MarquezClient(url=server)
    namespaces = check(spec, "NamespaceList", mq.list_namespaces())
    names = {n["name"] for n in namespaces["namespaces"]}
    assert {"t", "warehouse", "spark-prod"} <= names
    assert namespaces["totalCount"] == len(names)
    check(spec, "Namespace", mq.get_namespace("warehouse"))
    check(spec, "Namespace", mq.create_namespace("made_by_client", "me", "from the client"))
    sources = check(spec, "SourceList", mq.list_sources())
    check(spec, "Source", mq.get_source(sources["sources"][0]["name"]))

    listed = check(spec, "DatasetList", mq.list_datasets("warehouse", limit=1))
    assert listed["totalCount"] == 2 and len(listed["datasets"]) == 1
    orders = check(spec, "Dataset", mq.get_dataset("warehouse", "orders"))
    assert orders["id"] == {"namespace": "warehouse", "name": "orders"}
    versions = check(spec, "DatasetVersionList", mq.list_dataset_versions("warehouse", "orders"))
    v42 = versions["versions"][0]
    assert v42["facets"]["version"]["datasetVersion"] == "v42"
    assert v42["headwater"]["datasetVersion"] == "v42"
    for selector in ("v42", v42["version"], "1"):
        got = check(spec, "DatasetVersion",
                    mq.get_dataset_version("warehouse", "orders", selector))
        assert got["version"] == v42["version"]
    # our own datasets by catalog name, and as Marquez names them
    users = check(spec, "Dataset", mq.get_dataset("t", "users"))
    check(spec, "Dataset", mq.get_dataset(users["namespace"], users["name"]))
    check(spec, "Dataset", mq.tag_dataset("t", "users", "PII"))
    tagged = check(spec, "Dataset", mq.tag_dataset_field("t", "users", "x", "SENSITIVE"))
    assert tagged["tags"] == ["PII"]
    assert {f["name"]: f["tags"] for f in tagged["fields"]}["x"] == ["SENSITIVE"]
    check(spec, "TagList", mq.create_tag("GOLD", "curated"))
    assert {t["name"] for t in check(spec, "TagList", mq.list_tags())["tags"]} == {
        "PII", "SENSITIVE", "GOLD"}

    jobs = check(spec, "JobList", mq.list_jobs("spark-prod"))
    assert jobs["totalCount"] == 1
    job = check(spec, "Job", mq.get_job("spark-prod", "etl.orders_totals"))
    assert job["parentJobName"] == "etl"
    latest = job["latestRun"]
    assert [v["facets"]["version"]["datasetVersion"]
            for v in latest["inputDatasetVersions"]] == ["v42"]
    assert latest["inputDatasetVersions"][0]["datasetVersionId"]["version"] == v42["version"]
    runs = check(spec, "RunList", mq.list_job_runs("spark-prod", "etl.orders_totals"))
    check(spec, "IncompleteRun", mq.get_job_run(runs["runs"][0]["id"]))
    events = mq.list_events()
    assert events["totalCount"] >= 6 and all("eventTime" in e for e in events["events"])

    totals = check(spec, "Dataset", mq.get_dataset("warehouse", "totals"))
    assert totals["columnLineage"] == [{
        "name": "total", "inputFields": [{"namespace": "warehouse", "dataset": "orders",
                                          "field": "amount"}],
        "transformationDescription": None, "transformationType": None}]
    column = mq.get_column_lineage_by_dataset("warehouse", "totals")
    ids = {n["id"] for n in column["graph"]}
    assert ids == {"datasetField:warehouse:totals:total", "datasetField:warehouse:orders:amount"}
    by_field = mq.get_column_lineage_by_dataset_field("warehouse", "orders", "amount",
                                                      with_downstream=True)
    assert "datasetField:warehouse:totals:total" in {n["id"] for n in by_field["graph"]}
    by_job = mq.get_column_lineage_by_job("spark-prod", "etl.orders_totals")
    assert {n["id"] for n in by_job["graph"]} == ids


def test_marquez_paths_the_client_does_not_call(server: str, spec: dict[str, Any]) -> None:
    def get(path: str, **params: Any) -> Any:
        r = requests.get(f"{server}{API}{path}", params=params, timeout=30)
        assert r.status_code == 200, (path, r.text)
        return r.json()

    job = "etl.orders_totals"
    versions = check(spec, "JobVersionList", get(f"/namespaces/spark-prod/jobs/{job}/versions"))
    one = versions["versions"][0]
    check(spec, "JobVersion", get(f"/namespaces/spark-prod/jobs/{job}/versions/{one['version']}"))
    check(spec, "JobList", get("/jobs"))
    found = check(spec, "SearchResultList", get("/search", q="order%"))
    assert {r["nodeId"] for r in found["results"]} >= {"dataset:warehouse:orders",
                                                       "job:spark-prod:etl.orders_totals"}
    events = get("/events/lineage", limit=2, sortDirection="asc")
    assert len(events["events"]) == 2 and events["totalCount"] >= 6
    run_id = get(f"/namespaces/spark-prod/jobs/{job}/runs")["runs"][0]["id"]
    assert "parent" in get(f"/jobs/runs/{run_id}/facets")["facets"]
    graph = check(spec, "LineageGraph", get("/lineage", nodeId="dataset:warehouse:orders"))
    nodes = {n["id"]: n for n in graph["graph"]}
    assert nodes["dataset:warehouse:orders"]["data"]["facets"]["version"][
        "datasetVersion"] == "v42"
    node = nodes[f"job:spark-prod:{job}"]
    assert node["data"]["parentJobName"] == "etl"
    assert node["data"]["latestRun"]["inputDatasetVersions"][0]["facets"]["version"][
        "datasetVersion"] == "v42"
    missing = requests.get(f"{server}{API}/namespaces/warehouse/datasets/nope", timeout=30)
    assert missing.status_code == 404
    assert set(missing.json()) >= {"code", "message"} and missing.json()["code"] == 404


def test_column_lineage_of_our_own_step(server: str) -> None:
    """The despam run's COMPLETE event carried a columnLineage facet; it is stored and served
    in Marquez's shape and in the UI's JSON."""
    r = requests.get(f"{server}{API}/versions/prod/users_clean/latest/column-lineage",
                     timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["source"] == "event"
    assert {f["field"]: [i["field"] for i in f["inputs"]] for f in body["fields"]} == {
        "id": ["id"], "text": ["text"]}
    graph = requests.get(f"{server}{API}/column-lineage", params={"nodeId": body["nodeId"]},
                         timeout=30).json()["graph"]
    dest = {n["id"]: n for n in graph}
    out = next(i for i in dest if i.endswith(":id") and "users_clean" in i)
    (inp,) = [e["destination"] for e in dest[out]["inEdges"]]  # Marquez: edges start at the node
    assert dest[out]["inEdges"][0]["origin"] == out
    assert dest[inp]["outEdges"] == [{"origin": inp, "destination": out}]


def test_airflow_job_id_finds_the_job_our_operator_recorded(small: Catalog,
                                                            spec: dict[str, Any]) -> None:
    """Airflow names a task ``default`` + ``<dag>.<task>``; our operator records the job under
    its own namespace. The node id Airflow's UI links to must still answer (it was a 404)."""
    with small.run("ref_dag.clean", inputs=["t/users@2"], namespace="reference",
                   engine={"name": "airflow", "dag_id": "ref_dag", "task_id": "clean"},
                   parent={"namespace": "default", "job": "ref_dag",
                           "run_id": str(uuid.uuid4())}) as run:
        run.log_output(pa.table({"id": [1, 2], "x": ["a", "b"]}), name="t/users_clean",
                       type="table")
    with TestClient(create_app(small), base_url="http://localhost") as c:
        r = c.get(f"{API}/lineage", params={"nodeId": "job:default:ref_dag.clean"})
        assert r.status_code == 200, r.text
        nodes = {n["id"]: n for n in check(spec, "LineageGraph", r.json())["graph"]}
        job = nodes["job:reference:ref_dag.clean"]["data"]
        assert job["parentJobName"] == "ref_dag"
        got = check(spec, "Job", c.get(f"{API}/namespaces/default/jobs/ref_dag.clean").json())
        assert got["id"] == {"namespace": "reference", "name": "ref_dag.clean"}


def test_column_lineage_derived_for_a_run_recorded_without_an_event(small: Catalog) -> None:
    """A run of the ``clean`` step recorded straight into the catalog (no server ingestion):
    the server derives its column lineage with the same function the event builder uses."""
    with small.run("ref_dag.clean", inputs=["t/users@2"], namespace="reference",
                   engine={"name": "airflow", "dag_id": "ref_dag", "task_id": "clean"}) as run:
        run.log_output(pa.table({"id": [1, 2], "x": ["a", "b"], "extra": [1, 2]}),
                       name="t/users_clean", type="table")
    with TestClient(create_app(small), base_url="http://localhost") as c:
        body = c.get(f"{API}/versions/t/users_clean/latest/column-lineage").json()
        assert body["source"] == "derived"
        fields = {f["field"]: f for f in body["fields"]}
        assert set(fields) == {"id", "x"}  # "extra" comes from no input column we know of
        assert fields["x"]["transformationType"] == "TRANSFORMATION"
        assert fields["x"]["inputs"][0]["dataset"] == "t/users"
        graph = c.get(f"{API}/column-lineage",
                      params={"nodeId": "datasetField:t:users_clean:x"}).json()["graph"]
        ids = {n["id"] for n in graph}
        assert len(ids) == 2 and any(i.endswith(":x") and "users_clean" not in i for i in ids)
        down = c.get(f"{API}/column-lineage", params={
            "nodeId": "datasetField:t:users:id", "withDownstream": "true"}).json()["graph"]
        assert any("users_clean" in n["id"] and n["id"].endswith(":id") for n in down)
        bad = c.get(f"{API}/column-lineage", params={"nodeId": "nope"})
        assert bad.status_code == 400 and bad.json()["code"] == 400


def test_step_column_table() -> None:
    src = columns.Source("file", "/s/datasets/p/users", ("record_id", "signup_text", "email"))
    despam = columns.field_lineage("despam", {"score_column": "p_spam"}, [src],
                                   ["record_id", "signup_text", "email", "p_spam"])
    assert [f["field"] for f in despam["p_spam"]["inputFields"]] == ["signup_text"]
    assert despam["email"]["transformationType"] == "IDENTITY"
    merged = columns.field_lineage("id_merge", {}, [src], ["record_id", "user_id"])
    assert [f["field"] for f in merged["user_id"]["inputFields"]] == ["record_id", "email"]
    split = columns.field_lineage("split", {}, [src], ["record_id", "split"])
    assert [f["field"] for f in split["split"]["inputFields"]] == ["record_id"]
    assert columns.field_lineage("unknown", {}, [src], ["email"]) == {}
    assert columns.step_of({"task_id": "group.despam"}) == "despam"
    assert columns.step_of({"name": "airflow", "task_id": "derive"}) is None

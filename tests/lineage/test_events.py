"""What the events say: OpenLineage run events for every run, valid against the vendored spec."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from headwater import Catalog
from headwater.lineage.facets import event_identity
from headwater.lineage.naming import (
    LOGICAL_NAMESPACE,
    catalog_dataset,
    manifest_relpath,
    store_location,
    version_dataset,
)
from headwater.lineage.outbox import OutboxRecorder
from headwater.lineage.provenance import FACET_KEY, PRODUCER, SCHEMA_ID, SCHEMA_URL, load_schema
from headwater.store.objects import ObjectStore
from tests.lineage.support import MemoryTransport, OLValidator

PARENT = {
    "namespace": "airflow-test",
    "job": "etl_dag.despam",
    "run_id": "0190c1c2-7e4a-7b1c-9d3e-3f2a1b0c9d8e",
    "root": {
        "namespace": "airflow-test",
        "job": "etl_dag",
        "run_id": "0190c1c2-7e4a-7b1c-9d3e-000000000001",
    },
}


def _by(events: list[dict[str, Any]], run_id: str) -> dict[str, dict[str, Any]]:
    return {e["eventType"]: e for e in events if e["run"]["runId"] == run_id}


def _all_facets(event: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return list(OLValidator.facets_of(event))


def test_run_events_carry_the_run_and_its_versions(
    catalog_mem: tuple[Catalog, OutboxRecorder], memory: MemoryTransport
) -> None:
    cat, recorder = catalog_mem
    raw = cat.log(pa.table({"id": [1, 2, 3], "text": ["a", None, "c"]}), name="prod/users")
    nominal = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)
    with cat.run(
        "despam",
        inputs=[raw],
        params={"threshold": 0.5},
        code="step-v1",
        engine={"name": "airflow", "version": "3.3.2", "source_location": "https://git.x/r.git"},
        parent=PARENT,
        nominal_time=nominal,
        namespace="prod",
        job_type="task",
    ) as run:
        run.log_output(pa.table({"id": [1, 3]}), name="prod/users_clean")
    assert recorder.join(5)
    out = run.outputs[0]
    events = _by(memory.events, run.id)
    assert set(events) == {"START", "COMPLETE"}
    start, complete = events["START"], events["COMPLETE"]

    # run id = catalog run id (a UUIDv7); job from the run
    assert complete["run"]["runId"] == run.id and uuid.UUID(run.id).version == 7
    assert complete["job"] == {**complete["job"], "namespace": "prod", "name": "despam"}
    assert complete["producer"] == PRODUCER

    rf = complete["run"]["facets"]
    assert rf["parent"]["run"]["runId"] == PARENT["run_id"]
    assert rf["parent"]["job"] == {
        "namespace": "airflow-test",
        "name": "etl_dag.despam",
        "facets": {},
    }
    assert rf["parent"]["root"]["job"]["name"] == "etl_dag"
    assert rf["nominalTime"]["nominalStartTime"].startswith("2026-11-01T03:00:00")
    assert rf["processing_engine"]["name"] == "airflow"
    assert rf["processing_engine"]["version"] == "3.3.2"
    prov = rf[FACET_KEY]
    assert prov["_schemaURL"] == SCHEMA_URL
    assert prov["cacheKey"] == run.cache_key and prov["codeFingerprint"] == "step-v1"
    assert prov["parameters"] == {"threshold": 0.5}
    assert prov["inputs"] == [
        {
            "name": "prod/users",
            "version": 1,
            "digest": raw.digest,
            "tableFingerprint": raw.table_fingerprint,
        }
    ]
    assert prov["outputs"][0]["digest"] == out.digest and prov["outputs"][0]["created"] is True

    jf = complete["job"]["facets"]
    assert jf["jobType"]["processingType"] == "BATCH"
    assert jf["jobType"]["integration"] == "HEADWATER"
    assert jf["jobType"]["jobType"] == "TASK"
    assert jf["sourceCodeLocation"]["url"] == "https://git.x/r.git"

    # inputs on both events, outputs once they exist
    assert len(start["inputs"]) == 1 and start["outputs"] == []
    (inp,) = complete["inputs"]
    (outp,) = complete["outputs"]
    store = ObjectStore(cat.settings.store_url)
    assert inp["namespace"] == "file"
    assert inp["name"] == f"{store.root}/datasets/{raw.namespace}/{raw.dataset}"
    assert outp["name"] == f"{store.root}/datasets/{out.namespace}/{out.dataset}"
    assert inp["facets"]["version"] == {
        **inp["facets"]["version"],
        "datasetVersion": "1",
        "digest": raw.digest,
    }
    assert inp["facets"]["symlinks"]["identifiers"] == [
        {"namespace": LOGICAL_NAMESPACE, "name": "prod/users", "type": "DATASET"}
    ]
    assert [f["name"] for f in inp["facets"]["schema"]["fields"]] == ["id", "text"]
    assert inp["facets"]["dataSource"]["name"] == "file"
    assert inp["facets"]["dataSource"]["uri"].startswith("file:///")
    dq = inp["inputFacets"]["dataQualityMetrics"]
    assert dq["columnMetrics"]["text"]["nullCount"] == 1 and dq["rowCount"] == 3
    stats = outp["outputFacets"]["outputStatistics"]
    assert stats == {**stats, "rowCount": 2, "size": out.size, "fileCount": out.file_count}
    assert outp["facets"]["dataQualityMetrics"]["columnMetrics"]["id"]["nullCount"] == 0

    # producer= is explicit on every facet Headwater builds (the client adds its own tags facet)
    for where, facet in _all_facets(complete) + _all_facets(start):
        if where != "run.tags":
            assert facet["_producer"] == PRODUCER, where


def test_log_is_a_run_with_defaults(
    catalog_mem: tuple[Catalog, OutboxRecorder], memory: MemoryTransport, tmp_path: Path
) -> None:
    cat, recorder = catalog_mem
    (tmp_path / "f.txt").write_text("hello")
    v = cat.log(tmp_path / "f.txt", name="notes")
    recorder.join(5)
    events = _by(memory.events, v.run_id or "")
    complete = events["COMPLETE"]
    assert complete["job"]["name"] == "log.notes"
    assert complete["job"]["facets"]["jobType"]["jobType"] == "LOG"
    assert complete["run"]["facets"]["processing_engine"]["name"] == "headwater"
    assert "parent" not in complete["run"]["facets"]
    (outp,) = complete["outputs"]
    assert "schema" not in outp["facets"] and "dataQualityMetrics" not in outp["facets"]
    assert outp["outputFacets"]["outputStatistics"]["size"] == 5


def test_failed_run_has_error_message(
    catalog_mem: tuple[Catalog, OutboxRecorder], memory: MemoryTransport
) -> None:
    cat, recorder = catalog_mem
    with pytest.raises(ZeroDivisionError), cat.run("divide") as run:
        run.log_output(pa.table({"x": [1]}), name="never")
        1 / 0  # noqa: B018
    recorder.join(5)
    fail = _by(memory.events, run.id)["FAIL"]
    err = fail["run"]["facets"]["errorMessage"]
    assert err["message"] == "ZeroDivisionError: division by zero"
    assert err["programmingLanguage"] == "python" and "Traceback" in err["stackTrace"]
    assert fail["outputs"] == []


def test_malformed_parent_is_left_out_and_the_step_stays_green(
    catalog_mem: tuple[Catalog, OutboxRecorder], memory: MemoryTransport
) -> None:
    cat, recorder = catalog_mem
    with cat.run("odd", parent={"namespace": "x", "job": "y", "run_id": "not-a-uuid"}) as run:
        pass
    recorder.join(5)
    assert all("parent" not in e["run"]["facets"] for e in _by(memory.events, run.id).values())


def test_custom_facet_schema_is_published_and_versioned() -> None:
    schema = load_schema()
    assert schema["$id"] == SCHEMA_ID and SCHEMA_URL.startswith(SCHEMA_ID + "#/$defs/")
    assert "/1-0-0/" in SCHEMA_ID  # immutable: a changed shape gets a new version and URL
    assert "HeadwaterProvenanceRunFacet" in schema["$defs"]
    packaged = Path(__file__).resolve().parents[2] / "src/headwater/lineage/schemas"
    assert (packaged / "HeadwaterProvenanceRunFacet.json").is_file()


def test_validator_rejects_a_broken_facet(ol_validator: OLValidator) -> None:
    from jsonschema import ValidationError

    event = {
        "eventType": "START",
        "eventTime": "2026-11-01T00:00:00+00:00",
        "producer": PRODUCER,
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {
            "runId": str(uuid.uuid4()),
            "facets": {FACET_KEY: {"_producer": PRODUCER, "_schemaURL": SCHEMA_URL, "runId": "x"}},
        },
        "job": {"namespace": "n", "name": "j"},
    }
    with pytest.raises(ValidationError, match=FACET_KEY):
        ol_validator.validate(event)


@pytest.mark.parametrize(
    ("store_url", "namespace", "name"),
    [
        ("/srv/store", "file", "/srv/store/objects/ab/cd"),
        ("file:///srv/store/", "file", "/srv/store/objects/ab/cd"),
        ("s3://bucket/pre/fix", "s3://bucket", "pre/fix/objects/ab/cd"),
        ("s3://bucket", "s3://bucket", "objects/ab/cd"),
        ("gs://bkt/p", "gs://bkt", "p/objects/ab/cd"),
        ("memory://x/y", "memory://x", "y/objects/ab/cd"),
    ],
)
def test_dataset_naming(store_url: str, namespace: str, name: str) -> None:
    ident = version_dataset(store_url, "abcd")
    assert (ident.namespace, ident.name) == (namespace, name)
    assert store_location(store_url).namespace == namespace
    stable = catalog_dataset(store_url, "prod", "users")
    assert stable.namespace == namespace
    assert stable.name == name.replace("objects/ab/cd", "datasets/prod/users")


def test_manifest_path_matches_the_store_layout(tmp_path: Path) -> None:
    store = ObjectStore(str(tmp_path / "s"))
    digest = "0f" * 32
    assert store.object_path(digest) == f"{store.root}/{manifest_relpath(digest)}"


def test_event_identity_is_deterministic() -> None:
    a = event_identity("r", "START", "2026-01-01T00:00:00+00:00")
    assert a == event_identity("r", "START", "2026-01-01T00:00:00+00:00")
    assert a != event_identity("r", "COMPLETE", "2026-01-01T00:00:00+00:00")


def test_every_shape_of_event_validates(
    open_catalog: Callable[..., tuple[Catalog, OutboxRecorder]],
    sqlite_db_url: str,
    ol_validator: OLValidator,
) -> None:
    """Events straight off the recorder (no transport), including the DQ 1-0-1 skew."""
    mem = MemoryTransport()
    cat, recorder = open_catalog(sqlite_db_url, mem)
    v = cat.log(pa.table({"a": [1, None]}), name="t")
    with cat.run("x", inputs=[v], parent=PARENT, nominal_time=datetime.now(UTC)) as run:
        run.log_output(pa.table({"a": [None]}), name="u")
    recorder.join(5)
    dq_urls = {
        e["outputs"][0]["facets"]["dataQualityMetrics"]["_schemaURL"]
        for e in mem.events
        if e["outputs"]
    }
    assert any("1-0-1/DataQualityMetricsDatasetFacet" in u for u in dq_urls)
    for e in mem.events:
        ol_validator.validate(e)

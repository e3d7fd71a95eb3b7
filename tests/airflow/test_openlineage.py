"""Airflow's own openlineage provider emits our inputs, outputs and version facets; Headwater
then emits nothing itself for those task runs (no duplicate events)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import sqlalchemy as sa

from tests.airflow.conftest import AirflowEnv
from tests.lineage.support import OLValidator

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("airflow")]


def validate_known_facets(validator: OLValidator, event: dict) -> list[str]:
    """Core schema, plus every facet whose schema is in the vendored spec or ours; Airflow's
    vendor facets (``airflow``, ``airflowDagRun``…) point at Airflow's own schemas."""
    validator._core.validate(event)
    checked = []
    for where, facet in validator.facets_of(event):
        url = facet["_schemaURL"]
        if url.split("#", 1)[0] not in validator.known:
            continue
        errors = list(jsonschema.Draft202012Validator(
            {"$ref": url}, registry=validator.registry).iter_errors(facet))
        assert not errors, f"{where}: {errors[0].message}"
        checked.append(where)
    return checked


def test_airflow_openlineage_events_carry_our_version_facets(
        airflow_env: AirflowEnv, hw_home: Path, tmp_path: Path) -> None:
    log = tmp_path / "ol-events.jsonl"
    transport = {"type": "file", "log_file_path": str(log), "append": True}
    airflow_env.dags_test("hw_generic", hw_home=hw_home, conf={"n": 6, "alias": "latest"},
                          extra_env={"AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(transport)})
    events = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    ours = [e for e in events if e["job"]["name"] in ("hw_generic.produce", "hw_generic.even")
            and e["eventType"] == "COMPLETE"]
    assert len(ours) == 2, [(e["eventType"], e["job"]["name"]) for e in events]
    validator = OLValidator()
    for event in events:
        validate_known_facets(validator, event)
    even = next(e for e in ours if e["job"]["name"] == "hw_generic.even")
    (out,) = even["outputs"]
    assert out["name"].endswith("/datasets/test/even")
    assert out["facets"]["version"]["datasetVersion"] == "1"
    assert out["facets"]["symlinks"]["identifiers"][0]["name"] == "test/even"
    (inp,) = even["inputs"]
    assert inp["name"].endswith("/datasets/test/numbers")
    provenance = even["run"]["facets"]["headwater_provenance"]
    assert provenance["outputs"][0]["name"] == "test/even"
    assert provenance["cacheKey"] and provenance["codeFingerprint"]
    checked = validate_known_facets(validator, even)
    assert "run.headwater_provenance" in checked and "outputs[0].facets.version" in checked
    # the rule: Airflow's provider is active, so Headwater's own outbox stays empty
    engine = sa.create_engine(f"sqlite:///{hw_home / 'catalog.db'}")
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from lineage_outbox")).scalar() == 0
    engine.dispose()


def test_reference_dag_emits_start_and_complete_for_every_task_without_phantom_datasets(
        airflow_env: AirflowEnv, hw_home: Path, tmp_path: Path) -> None:
    """Under ``airflow dags test`` every task of the reference DAG gets a START and a COMPLETE
    event (the START hook used to hang on ``get_connection()`` in the listener's forked process
    and lose the event), and no event names a dataset by its Airflow Asset (``headwater://``):
    a Headwater server would turn those into empty external datasets next to the real ones."""
    log = tmp_path / "ol-events.jsonl"
    transport = {"type": "file", "log_file_path": str(log), "append": True}
    airflow_env.dags_test("headwater_reference_pipeline", hw_home=hw_home,
                          conf={"n_users": 300},
                          extra_env={"AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(transport)})
    events = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    tasks = {t for (t,) in airflow_env.query(
        "select task_id from task_instance where dag_id = 'headwater_reference_pipeline'")}
    assert len(tasks) == 7
    seen = {(e["job"]["name"], e["eventType"]) for e in events}
    missing = sorted((f"headwater_reference_pipeline.{t}", state) for t in tasks
                     for state in ("START", "COMPLETE")
                     if (f"headwater_reference_pipeline.{t}", state) not in seen)
    assert not missing, missing
    phantom = [(e["eventType"], e["job"]["name"], d["namespace"], d["name"]) for e in events
               for d in [*e.get("inputs", []), *e.get("outputs", [])]
               if d["namespace"].startswith("headwater://")]
    assert not phantom, phantom
    # the task runs carry the DAG run as parent, as Airflow's own events do
    starts = [e for e in events if e["eventType"] == "START" and "." in e["job"]["name"]]
    assert all(e["run"]["facets"]["parent"]["job"]["name"] == "headwater_reference_pipeline"
               for e in starts)

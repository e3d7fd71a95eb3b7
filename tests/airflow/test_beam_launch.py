"""A Headwater Beam pipeline launched from an Airflow task (a BashOperator, through
``headwater_beam_pre_execute``) under ``airflow dags test``:
the Beam run's parent is the Airflow task run (the ids of Airflow's own OpenLineage events), its
root the DAG run; it uses the task's Headwater connection and delivers its events through the
task's lineage transport; once Airflow's events are ingested the lineage graph shows
task → pipeline → writes."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from headwater import Catalog
from headwater.catalog.models import Run
from headwater.lineage import NullLineage
from headwater.server.ingest import Ingestor
from headwater.server.ol_models import RunEventIn
from tests.airflow.conftest import AirflowEnv

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("airflow")]

SCRIPT = Path(__file__).resolve().parents[1] / "beam" / "tiny_pipeline.py"
DAG_ID = "hw_beam_launch"


def test_beam_pipeline_launched_from_a_task_is_the_task_runs_child(
        airflow_env: AirflowEnv, hw_home: Path, tmp_path: Path) -> None:
    # the task's Headwater connection names a catalog other than HEADWATER_HOME's: the Beam
    # subprocess must use the connection's
    conn_home = tmp_path / "conn"
    catalog_url = f"sqlite:///{conn_home / 'catalog.db'}"
    store_url = str(conn_home / "store")
    conn_home.mkdir()
    with Catalog.open(catalog_url, store_url=store_url, lineage=NullLineage()) as cat:
        cat.log(pa.table({"n": list(range(10))}), name="numbers")
    log = tmp_path / "ol-events.jsonl"
    transport = {"type": "file", "log_file_path": str(log), "append": True}
    conn = json.dumps({"conn_type": "headwater",
                       "extra": {"catalog_url": catalog_url, "store_url": store_url}})
    airflow_env.dags_test(DAG_ID, hw_home=hw_home, conf={"script": str(SCRIPT)}, extra_env={
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(transport),
        "AIRFLOW_CONN_HEADWATER_DEFAULT": conn})
    assert not (hw_home / "catalog.db").exists()  # nothing went to HEADWATER_HOME

    events = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    airflow_runs = {e["job"]["name"]: e for e in events
                    if e["eventType"] == "START" and e["job"]["name"].startswith(f"{DAG_ID}.")}
    with Catalog.open(catalog_url, store_url=store_url, lineage=NullLineage()) as cat:
        for task_id, output in (("beam_bash", "bash_out"),):
            task_event = airflow_runs[f"{DAG_ID}.{task_id}"]
            dag_run = task_event["run"]["facets"]["parent"]["run"]["runId"]
            version = cat.get(f"{output}@latest").info()
            (pipeline,) = cat.runs(job=f"{output}_tiny")
            with cat.session() as s:
                parent = s.get(Run, pipeline.id).parent
            assert parent == {
                "namespace": task_event["job"]["namespace"], "job": f"{DAG_ID}.{task_id}",
                "run_id": task_event["run"]["runId"],
                "root": {"namespace": task_event["job"]["namespace"], "job": DAG_ID,
                         "run_id": dag_run}}, task_id
            # the write hangs under the pipeline run, rooted at the DAG run
            assert cat.get_run(version.run_id or "").engine["pipeline_run_id"] == pipeline.id
            # the launch record names the script, so a rebuild can run it again
            assert pipeline.engine["launch"]["script"] == str(SCRIPT)
            # the Beam subprocess delivered its own events through the task's transport
            ours = [e for e in events if e["job"]["name"] == f"{output}_tiny"]
            assert {e["eventType"] for e in ours} == {"START", "COMPLETE"}, task_id
            assert all(e["run"]["facets"]["parent"]["run"]["runId"] == task_event["run"]["runId"]
                       for e in ours)

        # a Headwater server ingesting Airflow's events knows the task run: the lineage graph
        # then links task -> pipeline -> write
        ingest = Ingestor(cat)
        for e in events:
            if e["job"]["name"].startswith(f"{DAG_ID}."):
                ingest.ingest(RunEventIn.model_validate(e))
        task_run = airflow_runs[f"{DAG_ID}.beam_bash"]["run"]["runId"]
        version = cat.get("bash_out@latest").info()
        (pipeline,) = cat.runs(job="bash_out_tiny")
        up = cat.lineage(version, direction="up")
        assert {(a, b) for a, b, k in up.edges if k == "run_parent"} == {
            (f"run:{task_run}", f"run:{pipeline.id}"),
            (f"run:{pipeline.id}", f"run:{version.run_id}")}

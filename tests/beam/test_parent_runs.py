"""A Beam pipeline launched under a parent run (an Airflow task) records it as its parent, and the
lineage graph links parent → pipeline → writes with ``run_parent`` edges."""

from __future__ import annotations

from pathlib import Path

import apache_beam as beam
import pyarrow as pa
from apache_beam.options.pipeline_options import PipelineOptions
from headwater_beam import HeadwaterPipeline, ReadVersion, WriteVersion

from headwater import Catalog
from headwater.catalog.models import Run
from tests.beam.conftest import FNAPI, settings_for


def test_lineage_links_the_launching_run_to_the_pipeline_and_its_writes(tmp_path: Path) -> None:
    settings = settings_for(f"sqlite:///{tmp_path / 'catalog.db'}", tmp_path)
    with Catalog.open(settings=settings) as cat:
        numbers = cat.log(pa.table({"n": list(range(20))}), name="numbers").info()
        # the launching task's run, as a Headwater server records it from Airflow's events
        with cat.run("dag.launch_beam", namespace="airflow") as task:
            pass
    options = PipelineOptions([*FNAPI, "--job_name=tiny",
                               "--headwater_parent_namespace=airflow",
                               "--headwater_parent_job=dag.launch_beam",
                               f"--headwater_parent_run_id={task.id}"])
    ctx = HeadwaterPipeline(options, settings=settings, job="tiny",
                            entry_point="tests.beam.tiny", argv=[])
    with ctx as p:
        _ = (p | ReadVersion("numbers@latest") | beam.Map(lambda r: {"n": r["n"] * 2})
             | WriteVersion("doubled"))
    assert ctx.report is not None
    with Catalog.open(settings=settings) as cat:
        with cat.session() as s:
            parent = s.get(Run, ctx.report.run_id).parent
        assert {k: parent[k] for k in ("namespace", "job", "run_id")} == {
            "namespace": "airflow", "job": "dag.launch_beam", "run_id": task.id}
        doubled = cat.get("doubled@latest").info()
        up = cat.lineage(doubled, direction="up")
        edges = {(a, b) for a, b, kind in up.edges if kind == "run_parent"}
        assert edges == {(f"run:{task.id}", f"run:{ctx.report.run_id}"),
                         (f"run:{ctx.report.run_id}", f"run:{doubled.run_id}")}
        assert up.nodes[f"run:{task.id}"]["job"] == "airflow/dag.launch_beam"
        # downward walks link runs already in the graph, and add no run that read nothing
        down = cat.lineage(numbers, direction="down")
        assert {(a, b) for a, b, k in down.edges if k == "run_parent"} == {
            (f"run:{ctx.report.run_id}", f"run:{doubled.run_id}")}
        assert f"run:{task.id}" not in down.nodes

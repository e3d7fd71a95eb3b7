"""The reference pipeline on each runner: the same table as the steps' table path (what the
Airflow DAG runs), reconciled counts, dead letters with reasons, runs and lineage events."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import apache_beam as beam
import pyarrow as pa
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from headwater_beam import HeadwaterPipeline, ReadVersion, WriteVersion
from headwater_beam.pipeline import run as run_reference
from sqlalchemy import select

from headwater import Catalog
from headwater.catalog.models import LineageOutbox
from headwater.lineage.facets import stored_event
from headwater.steps.clean import CleanStep
from headwater.steps.despam import DespamStep
from headwater.steps.id_merge import IdMergeStep
from headwater.steps.spam_model import SpamModel
from headwater.steps.split import SplitStep
from headwater.tables import table_fingerprint
from headwater.tables.fingerprint import same_rows
from tests.beam.conftest import RUNNERS, settings_for
from tests.lineage.support import OLValidator
from tests.table_rows import sorted_rows


def _table_path(raw: pa.Table, model: SpamModel) -> dict[str, Any]:
    """The four steps on whole tables, one after another: the Airflow DAG's path."""
    despam = DespamStep(model=model).run_table(raw)
    merged = IdMergeStep().run_table(despam.output)
    clean = CleanStep().run_table(merged.output)
    split = SplitStep().run_table(clean.output)
    return {"split": split.output, "spam": despam.side_outputs["spam"],
            "id_mapping": merged.side_outputs["mapping"], "clean_dead": clean.dead_letter}


def _outbox(cat: Catalog) -> list[dict[str, Any]]:
    with cat.session() as s:
        return [stored_event(row.event)
                for row in s.scalars(select(LineageOutbox).order_by(LineageOutbox.id))]


@pytest.mark.parametrize("runner", [
    "fnapi",
    pytest.param("multiprocess", marks=pytest.mark.slow),
    pytest.param("portable", marks=pytest.mark.slow),
])
def test_reference_pipeline_equals_table_path(
    runner: str, tmp_path: Path, users: pa.Table, spam_model_dir: Path
) -> None:
    settings = settings_for(f"sqlite:///{tmp_path / 'catalog.db'}", tmp_path)
    with Catalog.open(settings=settings) as cat:
        raw = cat.log(users, name="raw_users")
        model = cat.log(str(spam_model_dir), name="spam_model", type="model")
    report, versions = run_reference([
        "--input-ref", "raw_users@latest", "--model-ref", "spam_model@latest",
        "--output-prefix", "users", "--job_name", "users-beam", *RUNNERS[runner],
        f"--headwater_catalog_url={settings.catalog_url}",
        f"--headwater_store_url={settings.store_url}",
    ])
    expected = _table_path(users, SpamModel.load(spam_model_dir))

    # equivalence: same input version + parameters -> the same rows (sorted) and so the same
    # table fingerprints
    with Catalog.open(settings=settings) as cat:
        for name in ("split", "spam", "id_mapping"):
            assert versions[name].row_count == expected[name].num_rows, name
            assert sorted_rows(cat.read_table(versions[name])) == sorted_rows(expected[name]), name
            assert same_rows(versions[name].table_fingerprint or "",
                             table_fingerprint(expected[name])), name

    # counts reconcile, step by step and overall
    c: Counter[str] = Counter(  # a counter never incremented is not reported: 0
        {k.split("headwater.", 1)[1]: v for k, v in report.counters.items()})
    assert c["despam/records_in"] == users.num_rows
    assert c["despam/records_in"] == (c["despam/records_out"] + c["despam/spam_dropped"]
                                      + c["despam/dead_lettered"])
    assert c["id_merge/records_in"] == c["despam/records_out"]
    assert c["id_merge/records_in"] == c["id_merge/records_out"] + c["id_merge/dead_lettered"]
    assert c["clean/records_in"] == c["clean/records_out"] + c["clean/dead_lettered"]
    assert c["split/records_out"] == c["clean/records_out"] == versions["split"].row_count
    dead_total = sum(v for k, v in c.items() if k.endswith("/dead_lettered"))
    assert versions["dead_letter"].row_count == dead_total > 0
    assert users.num_rows == (versions["split"].row_count + versions["spam"].row_count
                              + versions["dead_letter"].row_count)

    with Catalog.open(settings=settings) as cat:
        # dead letters carry their step and reason, as the table path gives them
        dead = cat.get(versions["dead_letter"].ref).to_arrow()
        got = Counter((s, r.split(" (")[0]) for s, r in
                      zip(dead["step"].to_pylist(), dead["reason"].to_pylist(), strict=True))
        want = Counter(("clean", r.split(" (")[0])
                       for r in expected["clean_dead"]["reason"].to_pylist())
        assert got == want

        # runs: the pipeline's, with every version read; one child run per write
        pipeline_run = cat.get_run(report.run_id)
        assert pipeline_run.state == "COMPLETED"
        assert set(pipeline_run.inputs) == {raw.ref, model.ref}
        for v in versions.values():
            write_run = cat.get_run(v.run_id or "")
            assert write_run.state == "COMPLETED"
            assert raw.ref in write_run.inputs
            assert write_run.params["write_id"].startswith(report.run_id + "/")
        assert model.ref in cat.get_run(versions["split"].run_id or "").inputs
        assert set(cat.get_run(versions["split"].run_id or "").params["steps"]) == {
            "Despam", "IdMerge", "Clean", "Split"}

        # OpenLineage: pipeline run under the Beam job, writes under the pipeline run
        events = _outbox(cat)
    by_run: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        by_run.setdefault(e["run"]["runId"], []).append(e)
    mine = by_run[report.run_id]
    assert [e["eventType"] for e in mine] == ["START", "COMPLETE"]
    parent = mine[0]["run"]["facets"]["parent"]
    assert (parent["job"]["namespace"], parent["job"]["name"]) == ("beam", "users-beam")
    for v in versions.values():
        write_events = by_run[v.run_id or ""]
        assert [e["eventType"] for e in write_events] == ["START", "COMPLETE"]
        facet = write_events[-1]["run"]["facets"]["parent"]
        assert facet["run"]["runId"] == report.run_id
        assert facet["root"]["job"]["name"] == "users-beam"
        assert facet["root"]["run"]["runId"] == parent["run"]["runId"]
    validator = OLValidator()
    for e in events:
        validator.validate(e)


def test_failed_pipeline_records_a_failed_run(tmp_path: Path, users: pa.Table) -> None:
    settings = settings_for(f"sqlite:///{tmp_path / 'catalog.db'}", tmp_path)
    with Catalog.open(settings=settings) as cat:
        raw = cat.log(users.slice(0, 20), name="raw")

    def explode(record: dict[str, Any]) -> dict[str, Any]:
        raise ValueError("bad record")

    ctx = HeadwaterPipeline(PipelineOptions(RUNNERS["fnapi"]), settings=settings, job="doomed")
    with pytest.raises(Exception, match="bad record"), ctx as p:
        _ = p | ReadVersion(raw.ref) | beam.Map(explode) | WriteVersion("never")
    with Catalog.open(settings=settings) as cat:
        run = cat.get_run(ctx.run_id)
        assert run.state == "FAILED" and "bad record" in (run.error or "")
        assert run.inputs == (raw.ref,)
        assert [d.name for d in cat.datasets()] == ["raw"]
        assert [e["eventType"] for e in _outbox(cat) if e["run"]["runId"] == ctx.run_id] == [
            "START", "FAIL"]

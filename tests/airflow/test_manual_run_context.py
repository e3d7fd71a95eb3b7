"""Airflow 3 manual and Asset-triggered DAG runs have no logical date: a task run of such a DAG
run must still record the DAG run as its parent and a nominal time (``run_after``), with the
same parent run id Airflow's openlineage listener derives (it falls back to ``run_after`` too).

The operator's ``execute`` is fed the Task SDK's own ``DagRun`` model exactly as the task
runner puts it in the context of a manual run (``logical_date=None``); a ``dags test`` run always
has a logical date, so it cannot reach this path."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

pytest.importorskip("airflow")


def _numbers() -> object:
    import pyarrow as pa

    return pa.table({"n": [1, 2, 3]})


def test_manual_run_without_logical_date_keeps_parent_and_nominal_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.providers.openlineage.plugins.adapter import OpenLineageAdapter
    from airflow.sdk.api.datamodels._generated import DagRun, DagRunState, DagRunType
    from headwater_airflow.operators.versioned import VersionedStepOperator

    monkeypatch.setenv("HEADWATER_HOME", str(tmp_path / "hw"))
    monkeypatch.delenv("AIRFLOW__OPENLINEAGE__TRANSPORT", raising=False)
    run_after = datetime(2026, 11, 30, 20, 1, 2, tzinfo=UTC)
    dag_run = DagRun(
        dag_id="manual_dag", run_id="manual__2026-11-30T20:01:02+00:00", logical_date=None,
        data_interval_start=None, data_interval_end=None, run_after=run_after,
        start_date=run_after, end_date=None, clear_number=0, run_type=DagRunType.MANUAL,
        state=DagRunState.RUNNING, consumed_asset_events=[], partition_key=None)
    ti = SimpleNamespace(dag_id="manual_dag", task_id="make", run_id=dag_run.run_id,
                         try_number=1, map_index=-1)
    op = VersionedStepOperator(task_id="make", python_callable=_numbers,
                               outputs=["test/manual_numbers"])
    (record,) = op.execute({"ti": ti, "dag_run": dag_run, "logical_date": None})  # type: ignore[arg-type]

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'hw' / 'catalog.db'}")
    with engine.connect() as conn:
        parent, nominal, eng = conn.execute(
            sa.text("select parent, nominal_time, engine from runs where id = :id"),
            {"id": record["run_id"]}).one()
    engine.dispose()
    import json

    parent = json.loads(parent) if isinstance(parent, str) else parent
    eng = json.loads(eng) if isinstance(eng, str) else eng
    expected = str(OpenLineageAdapter.build_dag_run_id(
        dag_id="manual_dag", logical_date=run_after, clear_number=0))
    assert parent is not None, "task run of a manual DAG run lost its DAG-run parent"
    assert parent["job"] == "manual_dag" and parent["run_id"] == expected
    assert nominal is not None and str(nominal).startswith("2026-11-30 20:01:02")
    assert eng["run_id"] == dag_run.run_id and eng["logical_date"] is None

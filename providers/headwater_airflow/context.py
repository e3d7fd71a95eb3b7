"""Turning an Airflow task context into what the core records about a run.

Engine ids (dag_id, task_id, run_id, try_number, map_index, logical date) go on the catalog run;
the OpenLineage parent is the DAG run, with the run id Airflow's own openlineage provider would
give it, so both producers agree on the parent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

AIRFLOW_OL_NAMESPACE_DEFAULT = "default"


def _airflow_version() -> str:
    try:
        from airflow import __version__

        return str(__version__)
    except ImportError:  # pragma: no cover
        return "unknown"


def logical_date_of(context: Any) -> datetime | None:
    dr = context.get("dag_run")
    value = context.get("logical_date") or (getattr(dr, "logical_date", None) if dr else None)
    return value if isinstance(value, datetime) else None


def nominal_time_of(context: Any) -> datetime | None:
    """The run's nominal time: the logical date, else the DAG run's ``run_after``.

    Airflow 3 manual and Asset-triggered DAG runs have no logical date; ``run_after`` is the
    time Airflow's own openlineage provider falls back to for those runs, so both producers
    derive the same DAG-run parent id from it."""
    logical = logical_date_of(context)
    if logical is not None:
        return logical
    dr = context.get("dag_run")
    value = getattr(dr, "run_after", None) if dr is not None else None
    return value if isinstance(value, datetime) else None


def engine_ids(context: Any) -> dict[str, Any]:
    ti = context["ti"]
    logical = logical_date_of(context)
    return {
        "name": "airflow",
        "version": _airflow_version(),
        "dag_id": ti.dag_id,
        "task_id": ti.task_id,
        "run_id": ti.run_id,
        "try_number": ti.try_number,
        "map_index": getattr(ti, "map_index", -1),
        "logical_date": logical.isoformat() if logical else None,
    }


def attempt_ids(context: Any) -> dict[str, Any]:
    """The engine ids every try of this task instance shares (``engine_ids`` without the try
    number): a new try aborts earlier tries still RUNNING and records the last as ``retry_of``.
    Airflow starts try N only once try N-1 is over (failed, or its process lost), so an earlier
    try still RUNNING in the catalog is a try whose process was killed."""
    ids = engine_ids(context)
    return {k: ids[k] for k in ("name", "dag_id", "task_id", "run_id", "map_index")}


def openlineage_namespace() -> str:
    try:
        from airflow.providers.openlineage.conf import namespace

        return str(namespace())
    except ImportError:  # pragma: no cover - openlineage provider not installed
        return AIRFLOW_OL_NAMESPACE_DEFAULT


def parent_run(context: Any) -> dict[str, Any] | None:
    """The DAG run as OpenLineage parent (``{"namespace","job","run_id"}``); for runs without a
    logical date the id is built from ``run_after``, as Airflow's openlineage listener does."""
    ti = context["ti"]
    nominal = nominal_time_of(context)
    dr = context.get("dag_run")
    try:
        from airflow.providers.openlineage.plugins.adapter import OpenLineageAdapter
    except ImportError:  # pragma: no cover
        return None
    if nominal is None:
        return None
    run_id = OpenLineageAdapter.build_dag_run_id(
        dag_id=ti.dag_id, logical_date=nominal,
        clear_number=getattr(dr, "clear_number", 0) or 0)
    return {"namespace": openlineage_namespace(), "job": ti.dag_id, "run_id": str(run_id)}


def airflow_openlineage_active() -> bool:
    """True when Airflow's openlineage provider will emit events for our tasks."""
    try:
        from airflow.providers.openlineage.conf import is_disabled
    except ImportError:
        return False
    return not is_disabled()

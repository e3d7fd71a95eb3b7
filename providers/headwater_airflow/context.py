"""Turning an Airflow task context into what the core records about a run.

Engine ids (dag_id, task_id, run_id, try_number, map_index, logical date) go on the catalog run;
the OpenLineage parent is the DAG run, with the run id Airflow's own openlineage provider would
give it, so both producers agree on the parent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
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


#: the DAG-run conf key holding a rebuild's input pins (``headwater.rebuild.CONF_KEY``)
PINS_CONF_KEY = "headwater_pins"


def dag_run_conf(context: Any) -> dict[str, Any]:
    """The DAG run's conf (``{}`` when none, or not JSON-serialisable)."""
    dr = context.get("dag_run")
    conf = getattr(dr, "conf", None) if dr is not None else None
    if not isinstance(conf, Mapping):
        return {}
    try:
        return dict(json.loads(json.dumps(dict(conf))))
    except (TypeError, ValueError):
        return {}


def pins_of(context: Any) -> Mapping[str, str] | str | None:
    """The input pins a rebuild put in the DAG run's conf (``conf["headwater_pins"]``), else
    None (the run then applies ``HEADWATER_PINS``, if any)."""
    pins = dag_run_conf(context).get(PINS_CONF_KEY)
    return pins if isinstance(pins, Mapping | str) and pins else None


def engine_ids(context: Any) -> dict[str, Any]:
    """What the catalog run records about the task instance. ``run_id`` is the DAG run id and
    ``conf`` the DAG run's conf: a rebuild triggers a new DAG run of ``dag_id`` with that conf
    plus its pins (headwater/rebuild/plan.py)."""
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
        "conf": dag_run_conf(context),
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

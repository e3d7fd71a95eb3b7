"""Running a rebuild plan: Airflow DAG runs through the api-server, Beam pipelines relaunched.

Entries run in the plan's order; when there are several, each waits for the ones before it (a
later entry may read what an earlier one rebuilds, e.g. a DAG reading another DAG's output by
``@latest``). ``wait`` also waits for the last one, then reports the new versions: the latest
version of every affected dataset that changed since the plan was made.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from headwater.catalog import rebuild as queries
from headwater.errors import InvalidArgument, RunFailed
from headwater.rebuild.airflow_api import AirflowApi
from headwater.rebuild.plan import RebuildPlan

if TYPE_CHECKING:
    from headwater.api import Catalog


@dataclass
class Launched:
    """One engine run the rebuild started (or, when it could not, the command to run)."""

    label: str
    engine: str
    dag_id: str | None = None
    dag_run_id: str | None = None
    state: str | None = None
    command: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class RebuildResult:
    plan: RebuildPlan
    launched: list[Launched] = field(default_factory=list)
    #: the new latest versions of affected datasets (only with ``wait``)
    new_versions: list[str] = field(default_factory=list)
    waited: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"plan": self.plan.to_dict(), "launched": [x.to_dict() for x in self.launched],
                "waited": self.waited, "new_versions": self.new_versions}


def _latest(catalog: Catalog, datasets: list[str]) -> dict[str, int]:
    with catalog.session() as s:
        return {k: v.number for k, v in queries.latest_committed(s, datasets).items()}


def check_runnable(plan: RebuildPlan, airflow: AirflowApi | None) -> None:
    """Raise ``InvalidArgument`` if the plan cannot run as given (Airflow entries, no API)."""
    if plan.replacement is None and not plan.empty:
        raise InvalidArgument(plan.problem or f"nothing replaces {plan.root}")
    if any(e.engine == "airflow" for e in plan.entries) and airflow is None:
        raise InvalidArgument(
            "the plan triggers Airflow DAG runs: give the api-server with --airflow-url or "
            "HEADWATER_AIRFLOW_URL (and HEADWATER_AIRFLOW_USER / HEADWATER_AIRFLOW_PASSWORD), "
            "or run the commands `headwater rebuild --dry-run` prints")


def run_plan(catalog: Catalog, plan: RebuildPlan, *, airflow: AirflowApi | None,
             wait: bool, timeout: float = 3600) -> RebuildResult:
    """Execute ``plan`` (see the module docstring). Raises ``InvalidArgument`` when the plan has
    Airflow entries and no api-server was given, ``RunFailed`` when a rebuilt run fails."""
    result = RebuildResult(plan=plan, waited=wait)
    if plan.empty:
        return result
    check_runnable(plan, airflow)
    before = _latest(catalog, sorted(plan.datasets))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    pending: list[Launched] = []

    def finish(items: list[Launched]) -> None:
        for item in items:
            if item.engine == "airflow" and airflow is not None and item.dag_id \
                    and item.dag_run_id:
                item.state = airflow.wait(item.dag_id, item.dag_run_id, timeout=timeout)
                if item.state != "success":
                    raise RunFailed(f"rebuild DAG run {item.dag_id}/{item.dag_run_id} ended "
                                    f"{item.state}; see it in Airflow")
        items.clear()

    for i, entry in enumerate(plan.entries):
        if pending:
            finish(pending)
        if entry.engine == "airflow" and airflow is not None and entry.dag_id:
            if entry.conf is None and entry.dag_run_id:
                entry.conf = dict(airflow.dag_run(entry.dag_id, entry.dag_run_id).get("conf")
                                  or {})
            got = airflow.trigger(
                entry.dag_id, conf=entry.trigger_conf(),
                run_id=f"headwater_rebuild__{stamp}__{i}",
                note=f"headwater rebuild {plan.root} with {plan.replacement} "
                     f"(was {entry.dag_run_id})")
            item = Launched(label=entry.label(), engine="airflow", dag_id=entry.dag_id,
                            dag_run_id=str(got["dag_run_id"]), state=str(got.get("state")))
            pending.append(item)
        elif entry.engine == "beam":
            from headwater.rebuild.beam import rerun

            state, command = rerun(entry)
            item = Launched(label=entry.label(), engine="beam", state=state, command=command)
            if state is not None and state.upper() not in ("DONE", "SUCCESS", "COMPLETED"):
                raise RunFailed(f"rebuild of {entry.label()} ended {state}")
        else:
            item = Launched(label=entry.label(), engine=entry.engine, command=(
                f"rerun job {', '.join(entry.jobs)} with HEADWATER_PINS="
                f"'{_json(entry.pins)}' in its environment"))
        result.launched.append(item)
    if wait:
        finish(pending)
        after = _latest(catalog, sorted(plan.datasets))
        result.new_versions = sorted(f"{name}@{n}" for name, n in after.items()
                                     if before.get(name) != n)
    return result


def _json(value: Any) -> str:
    import json

    return json.dumps(value, sort_keys=True)

"""Runs: what executed, with which engine, parameters and code, reading and writing which versions.

Why the server lists runs itself: ingested runs have foreign (random) UUIDs, so the newest runs
are found by start time, not by id order as the CLI does for our time-ordered UUIDv7s.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from headwater.catalog import listings as queries
from headwater.catalog.models import Run
from headwater.errors import VersionNotFound
from headwater.server.deps import CatalogDep, Limit, Offset, Read

router = APIRouter(tags=["runs"])
COUNT_CAP = 10_000
RunIdP = Annotated[str, Path(min_length=1, max_length=64, description="Run id (a UUID)")]


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def run_summary(run: Run, *, inputs: int | None = None, outputs: int | None = None
                ) -> dict[str, Any]:
    duration = ((run.ended_at - run.started_at).total_seconds()
                if run.ended_at and run.started_at else None)
    engine = run.engine or {}
    return {
        "id": run.id, "namespace": run.job.namespace.name, "job": run.job.name,
        "job_full_name": f"{run.job.namespace.name}/{run.job.name}", "state": run.state,
        "engine": engine, "ingested": bool(engine.get("ingested")),
        "started_at": _iso(run.started_at), "ended_at": _iso(run.ended_at),
        "duration_seconds": duration, "error": run.error,
        **({"inputs": inputs} if inputs is not None else {}),
        **({"outputs": outputs} if outputs is not None else {}),
    }


@router.get("/runs", dependencies=[Read], summary="List runs (newest first)")
def list_runs(
    catalog: CatalogDep,
    job: Annotated[str | None, Query(max_length=256, description="Job name")] = None,
    namespace: Annotated[str | None, Query(max_length=128)] = None,
    state: Annotated[str | None, Query(max_length=16)] = None,
    limit: Limit = 50, offset: Offset = 0,
) -> dict[str, Any]:
    with catalog.session() as s:
        total, runs, counts = queries.run_page(s, job=job, namespace=namespace, state=state,
                                               limit=limit, offset=offset, count_cap=COUNT_CAP)
        items = [run_summary(r, **counts[r.id]) for r in runs]
    return {"total": min(total, COUNT_CAP), "total_capped": total > COUNT_CAP, "runs": items}


@router.get("/runs/{run_id}", dependencies=[Read], summary="One run with its inputs and outputs")
def get_run(catalog: CatalogDep, run_id: RunIdP) -> dict[str, Any]:
    with catalog.session() as s:
        run = s.get(Run, run_id.lower()) or s.get(Run, run_id)
        if run is None:
            raise VersionNotFound(f"no run with id {run_id}")
        out = run_summary(run)
        out.update({
            "params": run.params or {}, "code_fingerprint": run.code_fingerprint,
            "cache_key": run.cache_key, "parent": run.parent,
            "nominal_time": _iso(run.nominal_time), "reused_run_id": run.reused_run_id,
            "retry_of": run.retry_of, "owner": {
                "host": run.owner_host, "pid": run.owner_pid,
                "heartbeat_at": _iso(run.heartbeat_at), "lease_until": _iso(run.lease_until),
            } if run.owner_host else None,
            "events": queries.run_events(s, run.id),
            **queries.run_edges(s, run.id),
        })
    return out

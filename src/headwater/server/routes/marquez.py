"""Marquez 0.50's REST API paths (``/api/v1/namespaces/...``, ``/sources``, ``/jobs``,
``/events/lineage``, ``/tags``, ``/search``, ``/column-lineage``) and Headwater's per-version
column lineage for the web UI.

Why one catch-all route per prefix: Marquez names (``s3://bucket``, ``/srv/store/...``) hold
``/``, which clients send encoded as ``%2F``; the path segments are split on the raw path and
decoded one by one. Errors on these paths answer Marquez's body ``{"code", "message"}`` (plus our
``detail``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from urllib.parse import unquote

from fastapi import APIRouter, Body, FastAPI, Query, Request
from fastapi.responses import JSONResponse

from headwater.server.deps import CatalogDep, NameP, NamespaceP, Read, SelectorP, Write
from headwater.server.marquez import columns, service
from headwater.server.ol_models import parse_event_time
from headwater.server.redact import redact

router = APIRouter(tags=["marquez"])
API = "/api/v1"
MLimit = Annotated[int, Query(ge=1, le=10_000)]
MOffset = Annotated[int, Query(ge=0, le=10_000_000)]


class MarquezNotFound(LookupError):
    """A Marquez path that names nothing."""


def _segments(request: Request, prefix: str) -> list[str]:
    raw = request.scope.get("raw_path") or request.url.path.encode()
    path = raw.decode("latin-1").split("?", 1)[0]
    rest = path.split(prefix, 1)[1] if prefix in path else ""
    return [unquote(p) for p in rest.strip("/").split("/")] if rest.strip("/") else []


def _time(value: str | None) -> datetime | None:
    return parse_event_time(value) if value else None


@router.get("/namespaces", dependencies=[Read], summary="Marquez: list namespaces")
def list_namespaces(catalog: CatalogDep, limit: MLimit = 100,
                    offset: MOffset = 0) -> dict[str, Any]:
    with catalog.session() as s:
        return service.namespaces(s, limit, offset)


@router.get("/namespaces/{rest:path}", dependencies=[Read],
            summary="Marquez: a namespace, its datasets, dataset versions, jobs, job versions "
                    "and runs")
def get_under_namespace(request: Request, catalog: CatalogDep, rest: str,
                        limit: MLimit = 100, offset: MOffset = 0) -> dict[str, Any]:
    seg = _segments(request, "/namespaces/")
    with catalog.session() as s:
        match seg:
            case [ns]:
                return service.namespace(s, ns)
            case [ns, "datasets"]:
                return service.datasets(s, ns, limit, offset)
            case [ns, "datasets", ds]:
                return service.dataset(s, ns, ds)
            case [ns, "datasets", ds, "versions"]:
                return service.dataset_versions(s, ns, ds, limit, offset)
            case [ns, "datasets", ds, "versions", v]:
                return service.dataset_version(s, ns, ds, v)
            case [ns, "jobs"]:
                return service.jobs(s, ns, limit, offset)
            case [ns, "jobs", job]:
                return service.job(s, ns, job)
            case [ns, "jobs", job, "versions"]:
                return service.job_versions(s, ns, job, limit, offset)
            case [ns, "jobs", job, "versions", v]:
                return service.job_version(s, ns, job, v)
            case [ns, "jobs", job, "runs"]:
                return service.runs(s, ns, job, limit, offset)
    raise MarquezNotFound(f"HTTP 404 Not Found: {request.url.path}")


@router.put("/namespaces/{rest:path}", dependencies=[Write], summary="Marquez: create a namespace")
def put_namespace(request: Request, catalog: CatalogDep, rest: str,
                  body: Annotated[dict[str, Any] | None, Body()] = None) -> dict[str, Any]:
    seg = _segments(request, "/namespaces/")
    if len(seg) != 1:
        raise MarquezNotFound(f"HTTP 404 Not Found: {request.url.path}")
    body = body or {}
    with catalog.session() as s:
        return service.put_namespace(s, seg[0], body.get("ownerName"), body.get("description"))


@router.post("/namespaces/{rest:path}", dependencies=[Write],
             summary="Marquez: tag a dataset or one of its fields")
def post_tag(request: Request, catalog: CatalogDep, rest: str) -> dict[str, Any]:
    seg = _segments(request, "/namespaces/")
    with catalog.session() as s:
        match seg:
            case [ns, "datasets", ds, "tags", tag]:
                return service.tag_dataset(s, ns, ds, tag)
            case [ns, "datasets", ds, "fields", field, "tags", tag]:
                return service.tag_dataset(s, ns, ds, tag, field)
    raise MarquezNotFound(f"HTTP 404 Not Found: {request.url.path}")


@router.get("/sources", dependencies=[Read], summary="Marquez: list sources")
def list_sources(catalog: CatalogDep, limit: MLimit = 100, offset: MOffset = 0) -> dict[str, Any]:
    with catalog.session() as s:
        return service.sources(s, limit, offset)


@router.get("/sources/{rest:path}", dependencies=[Read], summary="Marquez: a source")
def get_source(request: Request, catalog: CatalogDep, rest: str) -> dict[str, Any]:
    seg = _segments(request, "/sources/")
    with catalog.session() as s:
        return service.source(s, "/".join(seg))


@router.get("/jobs", dependencies=[Read], summary="Marquez: list jobs of every namespace")
def list_all_jobs(catalog: CatalogDep, limit: MLimit = 100, offset: MOffset = 0) -> dict[str, Any]:
    with catalog.session() as s:
        return service.jobs(s, None, limit, offset)


@router.get("/jobs/runs/{run_id}", dependencies=[Read], summary="Marquez: a run")
def get_run(catalog: CatalogDep, run_id: str) -> dict[str, Any]:
    with catalog.session() as s:
        return service.run(s, run_id)


@router.get("/jobs/runs/{run_id}/facets", dependencies=[Read], summary="Marquez: run facets")
def get_run_facets(catalog: CatalogDep, run_id: str,
                   type: Annotated[str, Query(pattern="^(run|job)$")] = "run") -> dict[str, Any]:
    with catalog.session() as s:
        return service.run_facets(s, run_id, type)


def _events(catalog: Any, limit: int, offset: int, before: str | None, after: str | None,
            sort: str, namespace: str | None = None) -> dict[str, Any]:
    with catalog.session() as s:
        return service.events(s, limit=limit, offset=offset, before=_time(before),
                              after=_time(after), ascending=sort.lower() == "asc",
                              namespace=namespace)


@router.get("/events/lineage", dependencies=[Read], summary="Marquez: ingested lineage events")
def list_events(catalog: CatalogDep, limit: MLimit = 100, offset: MOffset = 0,
                before: str | None = None, after: str | None = None,
                sortDirection: Annotated[str, Query(pattern="^(asc|desc|ASC|DESC)$")] = "desc",
                ) -> dict[str, Any]:
    return _events(catalog, limit, offset, before, after, sortDirection)


@router.get("/events", dependencies=[Read], summary="Marquez (client path): lineage events")
def list_events_client(catalog: CatalogDep, limit: MLimit = 100,
                       offset: MOffset = 0) -> dict[str, Any]:
    return _events(catalog, limit, offset, None, None, "desc")


@router.get("/events/{namespace}", dependencies=[Read],
            summary="Marquez (client path): lineage events of a job namespace")
def list_events_of(catalog: CatalogDep, namespace: str, limit: MLimit = 100,
                   offset: MOffset = 0) -> dict[str, Any]:
    return _events(catalog, limit, offset, None, None, "desc", namespace)


@router.get("/tags", dependencies=[Read], summary="Marquez: list tags")
def list_tags(catalog: CatalogDep, limit: MLimit | None = None,
              offset: MOffset | None = None) -> dict[str, Any]:
    with catalog.session() as s:
        return service.tags(s, limit, offset)


@router.put("/tags/{tag}", dependencies=[Write], summary="Marquez: create a tag")
def put_tag(catalog: CatalogDep, tag: str,
            body: Annotated[dict[str, Any] | None, Body()] = None) -> dict[str, Any]:
    description = (body or {}).get("description")
    with catalog.session() as s:
        return service.put_tag(s, tag[:256], description if isinstance(description, str)
                               else None)


@router.get("/search", dependencies=[Read], summary="Marquez: search datasets and jobs")
def search(catalog: CatalogDep, q: Annotated[str, Query(min_length=1, max_length=1024)],
           filter: Annotated[str | None, Query(max_length=16)] = None,
           sort: Annotated[str | None, Query(max_length=16)] = None,
           limit: MLimit = 10) -> dict[str, Any]:
    with catalog.session() as s:
        return service.search(s, q, filter, sort, limit)


@router.get("/column-lineage", dependencies=[Read], summary="Marquez: column-level lineage")
def column_lineage(catalog: CatalogDep,
                   nodeId: Annotated[str, Query(min_length=3, max_length=8192)],
                   depth: Annotated[int, Query(ge=0, le=columns.MAX_DEPTH)] = 20,
                   withDownstream: bool = False) -> dict[str, Any]:
    with catalog.session() as s:
        return columns.graph(s, nodeId, depth, withDownstream)


@router.get("/versions/{namespace}/{name}/{selector}/column-lineage", dependencies=[Read],
            summary="Column lineage of one version: each field and the input fields it comes "
                    "from (for the web UI)")
def version_column_lineage(catalog: CatalogDep, namespace: NamespaceP, name: NameP,
                           selector: SelectorP) -> dict[str, Any]:
    from headwater.server.deps import version_ref

    info = catalog.get(version_ref(namespace, name, selector)).info()
    with catalog.session() as s:
        return columns.for_version(s, info.namespace, info.dataset, info.number)


def install(app: FastAPI) -> None:
    """Marquez's error body on Marquez's paths: ``{"code", "message"}`` (and our ``detail``)."""

    @app.exception_handler(MarquezNotFound)
    async def not_found(request: Request, exc: MarquezNotFound) -> JSONResponse:
        message = redact(str(exc))
        return JSONResponse({"code": 404, "message": message, "detail": message},
                            status_code=404)


MARQUEZ_PATHS = tuple(f"{API}/{p}" for p in (
    "namespaces", "sources", "jobs", "events", "tags", "search", "column-lineage", "lineage"))


def is_marquez_path(path: str) -> bool:
    return path.startswith(MARQUEZ_PATHS)


def marquez_body(status: int, detail: Any) -> dict[str, Any]:
    """Marquez's error body (``code``, ``message``) beside our ``detail``."""
    message = detail if isinstance(detail, str) else "; ".join(
        f"{d.get('loc')}: {d.get('msg')}" if isinstance(d, dict) else str(d) for d in detail)
    return {"code": status, "message": message, "detail": detail}


__all__ = ["install", "is_marquez_path", "marquez_body", "router"]

"""Marquez's read endpoints over the catalog: each function takes a session and answers the JSON
Marquez 0.50 answers (lists as ``{"<items>": [...], "totalCount": n}`` paged by limit/offset).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from headwater.catalog import job_graph, listings, marquez_rows, repo
from headwater.catalog.models import Dataset, Job, Run
from headwater.errors import DatasetNotFound, VersionNotFound
from headwater.server.marquez.idents import (
    dataset_or_404,
    find_version,
    job_or_404,
    job_version_uuid,
)
from headwater.server.marquez.shapes import Shapes, iso

OWNER = "headwater"


def _page(items: list[Any], limit: int, offset: int) -> list[Any]:
    return items[offset:offset + limit]


def _latest_runs(s: Session, jobs: list[Job]) -> dict[int, Run]:
    return job_graph.latest_runs(s, {j.id for j in jobs})


# -- namespaces and sources --------------------------------------------------------------------
def _named_datasets(s: Session) -> tuple[Shapes, list[tuple[Dataset, str, str]]]:
    """Every dataset with its Marquez ``(namespace, name)``."""
    shapes = Shapes(s)
    datasets = marquez_rows.all_datasets(s)
    shapes.preload([d.id for d in datasets])
    return shapes, [(d, *shapes.ident(d.id)) for d in datasets]


def _namespace_rows(s: Session) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for ns in listings.namespaces(s):
        out[ns["name"]] = {"name": ns["name"], "createdAt": ns["created_at"],
                           "updatedAt": ns["created_at"], "ownerName": OWNER,
                           "description": None, "isHidden": False,
                           "headwater": {"catalogNamespace": True, "datasets": ns["datasets"],
                                         "jobs": ns["jobs"]}}
    for d, name, _ in _named_datasets(s)[1]:
        row = out.setdefault(name, {"name": name, "createdAt": iso(d.created_at),
                                    "updatedAt": iso(d.created_at), "ownerName": OWNER,
                                    "description": None, "isHidden": False,
                                    "headwater": {"catalogNamespace": False}})
        row["updatedAt"] = max(row["updatedAt"] or "", iso(d.created_at) or "") or None
    return out


def _listed(key: str, rows: dict[str, dict[str, Any]], limit: int,
            offset: int) -> dict[str, Any]:
    """``{key: a page of rows by name, "totalCount": n}``."""
    ordered = [rows[name] for name in sorted(rows)]
    return {key: _page(ordered, limit, offset), "totalCount": len(ordered)}


def _one(what: str, rows: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    row = rows.get(name)
    if row is None:
        raise DatasetNotFound(f"{what} '{name}' not found.")
    return row


def namespaces(s: Session, limit: int, offset: int) -> dict[str, Any]:
    return _listed("namespaces", _namespace_rows(s), limit, offset)


def namespace(s: Session, name: str) -> dict[str, Any]:
    return _one("Namespace", _namespace_rows(s), name)


def put_namespace(s: Session, name: str, owner: str | None,
                  description: str | None) -> dict[str, Any]:
    repo.ensure_namespace(s, name)
    row = namespace(s, name)
    return {**row, "ownerName": owner or OWNER, "description": description}


def _sources(s: Session) -> dict[str, dict[str, Any]]:
    """A source per Marquez dataset namespace (a store root, a warehouse, a bucket)."""
    out: dict[str, dict[str, Any]] = {}
    for d, ns, _ in _named_datasets(s)[1]:
        out.setdefault(ns, {"type": ns.split("://", 1)[0].upper() if "://" in ns else "FILE",
                            "name": ns, "createdAt": iso(d.created_at),
                            "updatedAt": iso(d.created_at), "connectionUrl": ns,
                            "description": None})
    return out


def sources(s: Session, limit: int, offset: int) -> dict[str, Any]:
    return _listed("sources", _sources(s), limit, offset)


def source(s: Session, name: str) -> dict[str, Any]:
    return _one("Source", _sources(s), name)


# -- datasets ----------------------------------------------------------------------------------
def datasets(s: Session, ns: str, limit: int, offset: int) -> dict[str, Any]:
    """The datasets Marquez names in ``ns``, and those of the catalog namespace ``ns``."""
    shapes, named = _named_datasets(s)
    found = [d for d, d_ns, _ in sorted(named, key=lambda x: x[2])
             if d_ns == ns or d.namespace.name == ns]
    page = _page(found, limit, offset)
    latest = job_graph.latest_versions(s, {d.id for d in page})
    return {"datasets": [shapes.dataset(d, latest.get(d.id)) for d in page],
            "totalCount": len(found)}


def _dataset(s: Session, ns: str, name: str) -> Dataset:
    ds = s.get(Dataset, dataset_or_404(s, ns, name))
    if ds is None:  # pragma: no cover - found a moment ago in the same transaction
        raise DatasetNotFound(f"Dataset '{name}' not found in namespace '{ns}'.")
    return ds


def dataset(s: Session, ns: str, name: str) -> dict[str, Any]:
    """One dataset, with its ``columnLineage`` as Marquez fills it for a single dataset."""
    from headwater.server.marquez.columns import marquez_column_lineage

    d = _dataset(s, ns, name)
    latest = job_graph.latest_versions(s, {d.id}).get(d.id)
    shapes = Shapes(s)
    out = shapes.dataset(d, latest)
    if latest is not None:
        out["columnLineage"] = marquez_column_lineage(s, shapes, latest)
    return out


def dataset_versions(s: Session, ns: str, name: str, limit: int, offset: int) -> dict[str, Any]:
    d = _dataset(s, ns, name)
    total, versions = marquez_rows.versions_page(s, d.id, limit, offset)
    runs = marquez_rows.runs_by_id(s, {v.run_id for v in versions if v.run_id})
    shapes = Shapes(s)
    return {"versions": [shapes.dataset_version(v, runs.get(v.run_id or ""))
                         for v in versions], "totalCount": total}


def dataset_version(s: Session, ns: str, name: str, selector: str) -> dict[str, Any]:
    d = _dataset(s, ns, name)
    v = find_version(marquez_rows.all_versions(s, d.id), selector)
    if v is None:
        raise VersionNotFound(f"Dataset version '{selector}' not found for dataset '{name}'.")
    run = s.get(Run, v.run_id) if v.run_id else None
    return Shapes(s).dataset_version(v, run)


def tag_dataset(s: Session, ns: str, name: str, tag: str, field: str = "") -> dict[str, Any]:
    d = _dataset(s, ns, name)
    marquez_rows.tag_dataset(s, d.id, tag, field)
    return dataset(s, ns, name)


# -- jobs and runs -----------------------------------------------------------------------------
def jobs(s: Session, ns: str | None, limit: int, offset: int) -> dict[str, Any]:
    found = [j for j in marquez_rows.all_jobs(s) if ns is None or j.namespace.name == ns]
    found.sort(key=lambda j: (j.namespace.name, j.name))
    page = _page(found, limit, offset)
    latest = _latest_runs(s, page)
    shapes = Shapes(s)
    return {"jobs": [shapes.job(j, latest.get(j.id)) for j in page], "totalCount": len(found)}


def _job(s: Session, ns: str, name: str) -> Job:
    j = s.get(Job, job_or_404(s, ns, name))
    if j is None:  # pragma: no cover
        raise DatasetNotFound(f"Job '{name}' not found in namespace '{ns}'.")
    return j


def job(s: Session, ns: str, name: str) -> dict[str, Any]:
    j = _job(s, ns, name)
    return Shapes(s).job(j, _latest_runs(s, [j]).get(j.id))


def runs(s: Session, ns: str, name: str, limit: int, offset: int) -> dict[str, Any]:
    j = _job(s, ns, name)
    total, rows = marquez_rows.runs_page(s, j.id, limit, offset)
    ins, outs = marquez_rows.run_edges(s, [r.id for r in rows])
    shapes = Shapes(s)
    return {"runs": [shapes.run(r, (ins.get(r.id, []), outs.get(r.id, []))) for r in rows],
            "totalCount": total}


def run(s: Session, run_id: str) -> dict[str, Any]:
    r = s.get(Run, run_id.lower())
    if r is None:
        raise DatasetNotFound(f"Run '{run_id}' not found.")
    return Shapes(s).run(r)


def run_facets(s: Session, run_id: str, kind: str) -> dict[str, Any]:
    r = s.get(Run, run_id.lower())
    if r is None:
        raise DatasetNotFound(f"Run '{run_id}' not found.")
    if kind == "job":
        facets: dict[str, Any] = {}
        for event in marquez_rows.run_facet_events(s, r.id):
            got = (event.get("job") or {}).get("facets") if isinstance(event, dict) else None
            if isinstance(got, dict):
                facets.update(got)
        return {"runId": r.id, "facets": facets}
    return {"runId": r.id, "facets": Shapes(s).run_facets(r)}


def _job_versions(s: Session, j: Job) -> list[dict[str, Any]]:
    rows = marquez_rows.all_runs(s, j.id)
    by_code: dict[str | None, list[Run]] = {}
    for r in rows:
        by_code.setdefault(r.code_fingerprint, []).append(r)
    shapes = Shapes(s)
    job_shape = shapes.job(j, rows[0] if rows else None)
    out = []
    for code, group in by_code.items():
        newest, oldest = group[0], group[-1]
        uid = job_version_uuid(j.id, code)
        out.append({
            "id": {"namespace": j.namespace.name, "name": j.name, "version": uid},
            "name": j.name, "version": uid, "createdAt": iso(oldest.started_at),
            "updatedAt": iso(newest.started_at), "namespace": j.namespace.name,
            "location": job_shape["location"], "inputs": job_shape["inputs"],
            "outputs": job_shape["outputs"], "context": {}, "facets": {},
            "latestRun": shapes.run(newest),
            "headwater": {"codeFingerprint": code, "runs": len(group)},
        })
    out.sort(key=lambda v: v["updatedAt"] or "", reverse=True)
    return out


def job_versions(s: Session, ns: str, name: str, limit: int, offset: int) -> dict[str, Any]:
    found = _job_versions(s, _job(s, ns, name))
    return {"versions": _page(found, limit, offset), "totalCount": len(found)}


def job_version(s: Session, ns: str, name: str, version: str) -> dict[str, Any]:
    for v in _job_versions(s, _job(s, ns, name)):
        if v["version"] == version.lower():
            return v
    raise VersionNotFound(f"Job version '{version}' not found for job '{name}'.")


# -- events, tags, search ----------------------------------------------------------------------
def events(s: Session, *, limit: int, offset: int, before: datetime | None,
           after: datetime | None, ascending: bool, namespace: str | None = None
           ) -> dict[str, Any]:
    total, rows = marquez_rows.events_page(s, limit=limit if namespace is None else 100_000,
                                           offset=offset if namespace is None else 0,
                                           before=before, after=after, ascending=ascending)
    found = [e.event for e in rows]
    if namespace is not None:
        found = [e for e in found if isinstance(e, dict)
                 and (e.get("job") or {}).get("namespace") == namespace]
        total, found = len(found), _page(found, limit, offset)
    return {"events": found, "totalCount": total}


def tags(s: Session, limit: int | None = None, offset: int | None = None) -> dict[str, Any]:
    rows = [{"name": t.name, "description": t.description} for t in marquez_rows.tags(s)]
    if limit is not None:
        rows = _page(rows, limit, offset or 0)
    return {"tags": rows}


def put_tag(s: Session, name: str, description: str | None) -> dict[str, Any]:
    marquez_rows.put_tag(s, name, description)
    return tags(s)


def _like(pattern: str) -> re.Pattern[str]:
    """Marquez's search: case-insensitive substring, ``%`` any run, ``_`` one character."""
    body = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.compile(body, re.IGNORECASE | re.DOTALL)


def search(s: Session, q: str, kind: str | None, sort: str | None, limit: int) -> dict[str, Any]:
    rx = _like(q)
    results: list[dict[str, Any]] = []
    if kind in (None, "", "dataset", "DATASET"):
        _, named = _named_datasets(s)
        latest = job_graph.latest_versions(s, {d.id for d, _, _ in named})
        for d, ns, name in named:
            if rx.search(name) or rx.search(f"{d.namespace.name}/{d.name}"):
                v = latest.get(d.id)
                results.append({"type": "DATASET", "name": name, "namespace": ns,
                                "updatedAt": iso(v.created_at if v else d.created_at),
                                "nodeId": f"dataset:{ns}:{name}"})
    if kind in (None, "", "job", "JOB"):
        all_jobs = marquez_rows.all_jobs(s)
        latest_runs = _latest_runs(s, all_jobs)
        for j in all_jobs:
            if rx.search(j.name):
                r = latest_runs.get(j.id)
                results.append({"type": "JOB", "name": j.name, "namespace": j.namespace.name,
                                "updatedAt": iso(r.started_at if r else j.created_at),
                                "nodeId": f"job:{j.namespace.name}:{j.name}"})
    if sort in ("updated_at", "UPDATE_AT", "updatedAt"):
        results.sort(key=lambda r: r["updatedAt"] or "", reverse=True)
    else:
        results.sort(key=lambda r: (r["name"], r["namespace"]))
    return {"totalCount": len(results), "results": results[:limit]}


__all__ = ["dataset", "dataset_version", "dataset_versions", "datasets", "events", "job",
           "job_version", "job_versions", "jobs", "namespace", "namespaces", "put_namespace",
           "put_tag", "run", "run_facets", "runs", "search", "source", "sources", "tag_dataset",
           "tags"]

"""Marquez's lineage graph shape, so existing Marquez clients can read our lineage.

``GET /api/v1/lineage?nodeId=dataset:{namespace}:{name}&depth=N`` answers
``{"graph": [{id, type, data, inEdges, outEdges}]}`` with ``DATASET`` and ``JOB`` nodes and
``{origin, destination}`` edges, as Marquez does (its ``Node``/``Edge``/``DatasetData``/``JobData``
models). Like Marquez, the graph is at dataset/job granularity and is the connected neighbourhood
of the start node up to ``depth`` job hops, in both directions. Version-exact lineage stays in our
own API (``/api/v1/versions/.../lineage``).

Node ids use OpenLineage names: the name an OpenLineage dataset arrived under (``ol_datasets``),
else the name our own emitter gives a catalog dataset (``{store}/datasets/{ns}/{name}`` in the
store's namespace). A start node may also be given by catalog name (``dataset:prod:users``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from headwater.catalog import stores
from headwater.catalog.models import (
    Dataset,
    Job,
    Namespace,
    OpenLineageDataset,
    Run,
    RunInput,
    RunOutput,
    Version,
)
from headwater.errors import DatasetNotFound, InvalidArgument
from headwater.lineage.naming import LOGICAL_NAMESPACE, catalog_dataset
from headwater.server.ol_names import catalog_part, dataset_key, job_name

MAX_DEPTH = 100
MAX_NODES = 5000
CHUNK = 5000
_PART = r"([A-Za-z0-9][A-Za-z0-9_.\-]*)"
_NATIVE = re.compile(rf"(?:^|/)datasets/{_PART}/{_PART}$")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _chunks(items: Iterable[Any]) -> Iterable[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch


def _splits(text: str) -> Iterable[tuple[str, str]]:
    """Every ``namespace:name`` split of ``text`` (namespaces may hold ``://`` and ports)."""
    for i, ch in enumerate(text):
        if ch == ":" and 0 < i < len(text) - 1:
            yield text[:i], text[i + 1:]


def _find_dataset(s: Session, ns: str, name: str) -> int | None:
    found = s.scalar(select(OpenLineageDataset.dataset_id)
                     .where(OpenLineageDataset.key == dataset_key(ns, name)))
    if found is not None:
        return int(found)
    candidates = []
    if ns == LOGICAL_NAMESPACE and "/" in name:
        candidates.append(tuple(name.split("/", 1)))
    native = _NATIVE.search(name)
    if native:
        candidates.append((native.group(1), native.group(2)))
    candidates.append((ns, name))
    for c_ns, c_name in candidates:
        ds_id = s.scalar(select(Dataset.id).join(Namespace, Dataset.namespace_id == Namespace.id)
                         .where(Namespace.name == c_ns, Dataset.name == c_name))
        if ds_id is not None:
            return int(ds_id)
    return None


def _find_job(s: Session, ns: str, name: str) -> int | None:
    for c_ns, c_name in ((ns, name), (catalog_part(ns), job_name(name))):
        job_id = s.scalar(select(Job.id).join(Namespace, Job.namespace_id == Namespace.id)
                          .where(Namespace.name == c_ns, Job.name == c_name))
        if job_id is not None:
            return int(job_id)
    return None


def resolve_node(s: Session, node_id: str) -> tuple[str, int]:
    """``("dataset"|"job", catalog id)`` for a Marquez node id, or a clear error."""
    kind, sep, rest = node_id.partition(":")
    if not sep or kind not in ("dataset", "job") or ":" not in rest:
        raise InvalidArgument(
            f"nodeId {node_id[:200]!r} must be 'dataset:<namespace>:<name>' or "
            "'job:<namespace>:<name>'"
        )
    finder = _find_dataset if kind == "dataset" else _find_job
    for ns, name in list(_splits(rest))[:200]:
        found = finder(s, ns, name)
        if found is not None:
            return kind, found
    raise DatasetNotFound(f"no {kind} matches nodeId {node_id[:200]!r}")


@dataclass
class _Walk:
    datasets: set[int] = field(default_factory=set)
    jobs: set[int] = field(default_factory=set)
    reads: set[tuple[int, int]] = field(default_factory=set)  # (dataset, job)
    writes: set[tuple[int, int]] = field(default_factory=set)  # (job, dataset)
    truncated: bool = False


def _touching(s: Session, ids: set[int], walk: _Walk, *, from_jobs: bool) -> set[int]:
    """Read and write edges of the given datasets (or jobs); returns the jobs (or datasets)
    at their other end."""
    found: set[int] = set()
    for batch in _chunks(ids):
        where = Run.job_id.in_(batch) if from_jobs else Version.dataset_id.in_(batch)
        for ds_id, job_id in s.execute(
            select(Version.dataset_id, Run.job_id).distinct()
            .join(RunInput, RunInput.version_id == Version.id)
            .join(Run, Run.id == RunInput.run_id).where(where)
        ):
            walk.reads.add((ds_id, job_id))
            found.add(ds_id if from_jobs else job_id)
        for job_id, ds_id in s.execute(
            select(Run.job_id, Version.dataset_id).distinct()
            .join(RunOutput, RunOutput.run_id == Run.id)
            .join(Version, Version.id == RunOutput.version_id).where(where)
        ):
            walk.writes.add((job_id, ds_id))
            found.add(ds_id if from_jobs else job_id)
    return found


def _jobs_touching(s: Session, dataset_ids: set[int], walk: _Walk) -> set[int]:
    return _touching(s, dataset_ids, walk, from_jobs=False)


def _datasets_touching(s: Session, job_ids: set[int], walk: _Walk) -> set[int]:
    return _touching(s, job_ids, walk, from_jobs=True)


def walk(s: Session, kind: str, start: int, depth: int) -> _Walk:
    """The neighbourhood of the start node, up to ``depth`` job hops in both directions."""
    w = _Walk()
    if kind == "dataset":
        w.datasets.add(start)
        frontier_jobs = _jobs_touching(s, {start}, w)
    else:
        frontier_jobs = {start}
    for _ in range(max(depth, 1) if kind == "job" else depth):
        frontier_jobs -= w.jobs
        if not frontier_jobs:
            break
        w.jobs |= frontier_jobs
        new_ds = _datasets_touching(s, frontier_jobs, w) - w.datasets
        w.datasets |= new_ds
        if len(w.datasets) + len(w.jobs) > MAX_NODES:
            w.truncated = True
            break
        frontier_jobs = _jobs_touching(s, new_ds, w) if new_ds else set()
    w.reads = {(d, j) for d, j in w.reads if d in w.datasets and j in w.jobs}
    w.writes = {(j, d) for j, d in w.writes if d in w.datasets and j in w.jobs}
    return w


def _dataset_ids(s: Session, ids: set[int]) -> dict[int, tuple[str, str]]:
    """OpenLineage ``(namespace, name)`` of each catalog dataset."""
    out: dict[int, tuple[str, str]] = {}
    for batch in _chunks(ids):
        first = (select(OpenLineageDataset.dataset_id, func.min(OpenLineageDataset.id).label("m"))
                 .where(OpenLineageDataset.dataset_id.in_(batch))
                 .group_by(OpenLineageDataset.dataset_id).subquery())
        for m in s.scalars(select(OpenLineageDataset).join(first, OpenLineageDataset.id ==
                                                           first.c.m)):
            out[m.dataset_id] = (m.namespace, m.name)
    return out


def _latest(s: Session, dataset_ids: set[int]) -> dict[int, Version]:
    out: dict[int, Version] = {}
    for batch in _chunks(dataset_ids):
        top = (select(Version.dataset_id, func.max(Version.number).label("n"))
               .where(Version.dataset_id.in_(batch)).group_by(Version.dataset_id).subquery())
        for v in s.scalars(select(Version).join(top, and_(Version.dataset_id == top.c.dataset_id,
                                                          Version.number == top.c.n))):
            out[v.dataset_id] = v
    return out


def _latest_runs(s: Session, job_ids: set[int]) -> dict[int, Run]:
    out: dict[int, Run] = {}
    for batch in _chunks(job_ids):
        top = (select(Run.job_id, func.max(Run.started_at).label("t"))
               .where(Run.job_id.in_(batch)).group_by(Run.job_id).subquery())
        for r in s.scalars(select(Run).join(top, and_(Run.job_id == top.c.job_id,
                                                      Run.started_at == top.c.t))):
            out.setdefault(r.job_id, r)
    return out


def _run_data(r: Run | None) -> dict[str, Any] | None:
    if r is None:
        return None
    duration = (int((r.ended_at - r.started_at).total_seconds() * 1000)
                if r.ended_at and r.started_at else None)
    return {
        "id": r.id, "createdAt": _iso(r.started_at), "updatedAt": _iso(r.ended_at or r.started_at),
        "nominalStartTime": _iso(r.nominal_time), "nominalEndTime": None, "state": r.state,
        "startedAt": _iso(r.started_at), "endedAt": _iso(r.ended_at), "durationMs": duration,
        "args": {str(k): str(v) for k, v in (r.params or {}).items()}, "facets": {},
    }


def graph(s: Session, node_id: str, depth: int) -> dict[str, Any]:
    """Marquez's ``{"graph": [...]}`` for ``node_id``."""
    if depth < 0 or depth > MAX_DEPTH:
        raise InvalidArgument(f"depth must be between 0 and {MAX_DEPTH}, not {depth}")
    kind, start = resolve_node(s, node_id)
    w = walk(s, kind, start, depth)
    datasets = {d.id: d for batch in _chunks(w.datasets)
                for d in s.scalars(select(Dataset).where(Dataset.id.in_(batch)))}
    jobs = {j.id: j for batch in _chunks(w.jobs)
            for j in s.scalars(select(Job).where(Job.id.in_(batch)))}
    mapped = _dataset_ids(s, w.datasets)
    latest = _latest(s, w.datasets)
    runs = _latest_runs(s, w.jobs)

    def ds_ident(ds_id: int) -> tuple[str, str]:
        if ds_id in mapped:
            return mapped[ds_id]
        d, v = datasets[ds_id], latest.get(ds_id)
        if v is not None and v.kind != "external":
            ident = catalog_dataset(stores.resolved(v.store_url, stores.catalog_url_of(s)),
                                    d.namespace.name, d.name)
            return ident.namespace, ident.name
        return LOGICAL_NAMESPACE, f"{d.namespace.name}/{d.name}"

    ds_node = {i: "dataset:{}:{}".format(*ds_ident(i)) for i in datasets}
    job_node = {i: f"job:{j.namespace.name}:{j.name}" for i, j in jobs.items()}
    in_edges: dict[str, list[dict[str, str]]] = {}
    out_edges: dict[str, list[dict[str, str]]] = {}
    for d, j in w.reads:
        edge = {"origin": ds_node[d], "destination": job_node[j]}
        out_edges.setdefault(ds_node[d], []).append(edge)
        in_edges.setdefault(job_node[j], []).append(edge)
    for j, d in w.writes:
        edge = {"origin": job_node[j], "destination": ds_node[d]}
        out_edges.setdefault(job_node[j], []).append(edge)
        in_edges.setdefault(ds_node[d], []).append(edge)

    nodes: list[dict[str, Any]] = []
    for i, ds in datasets.items():
        ns, name = ds_ident(i)
        v = latest.get(i)
        nodes.append({"id": ds_node[i], "type": "DATASET", "data": {
            "id": {"namespace": ns, "name": name}, "type": "DB_TABLE", "name": name,
            "physicalName": name, "createdAt": _iso(ds.created_at),
            "updatedAt": _iso(v.created_at if v else ds.created_at), "namespace": ns,
            "sourceName": ns,
            "fields": [{"name": str(c.get("name")), "type": c.get("type"), "tags": [],
                        "description": None} for c in (v.schema or [] if v else [])],
            "facets": {}, "tags": [], "lastModifiedAt": _iso(v.created_at if v else None),
            "lastLifecycleState": None, "description": ds.description,
            "headwater": {"dataset": f"{ds.namespace.name}/{ds.name}", "type": ds.type,
                          "latestVersion": v.number if v else None,
                          "latestDigest": v.digest if v else None},
        }, "inEdges": _sorted(in_edges.get(ds_node[i])),
            "outEdges": _sorted(out_edges.get(ds_node[i]))})
    for i, job in jobs.items():
        ns = job.namespace.name
        r = runs.get(i)
        nodes.append({"id": job_node[i], "type": "JOB", "data": {
            "id": {"namespace": ns, "name": job.name}, "type": "BATCH", "name": job.name,
            "simpleName": job.name.rsplit(".", 1)[-1], "parentJobName": None,
            "parentJobUuid": None, "createdAt": _iso(job.created_at),
            "updatedAt": _iso(r.started_at if r else job.created_at), "namespace": ns,
            "inputs": [dict(zip(("namespace", "name"), ds_ident(d), strict=True))
                       for d, jj in sorted(w.reads) if jj == i],
            "outputs": [dict(zip(("namespace", "name"), ds_ident(d), strict=True))
                        for jj, d in sorted(w.writes) if jj == i],
            "location": _location(r),
            "description": job.description, "latestRun": _run_data(r),
        }, "inEdges": _sorted(in_edges.get(job_node[i])),
            "outEdges": _sorted(out_edges.get(job_node[i]))})
    nodes.sort(key=lambda n: n["id"])
    out: dict[str, Any] = {"graph": nodes}
    if w.truncated:
        out["truncated"] = True
    return out


def _location(r: Run | None) -> str | None:
    loc = (r.engine or {}).get("source_location") if r is not None else None
    if isinstance(loc, dict):
        loc = loc.get("url")
    return loc if isinstance(loc, str) else None


def _sorted(edges: list[dict[str, str]] | None) -> list[dict[str, str]]:
    return sorted(edges or [], key=lambda e: (e["origin"], e["destination"]))


__all__ = ["graph", "resolve_node", "walk"]

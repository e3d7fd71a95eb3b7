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
A job's ``latestRun`` carries ``inputDatasetVersions``/``outputDatasetVersions`` with each
version's facets: a producer's DatasetVersion (``v42``) is visible there and on the dataset
node's ``version`` facet.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from headwater.catalog import job_graph
from headwater.catalog.job_graph import walk
from headwater.errors import InvalidArgument
from headwater.server.marquez.idents import resolve_node
from headwater.server.marquez.shapes import Shapes, iso, location, parent_job

MAX_DEPTH = 100


def graph(s: Session, node_id: str, depth: int) -> dict[str, Any]:
    """Marquez's ``{"graph": [...]}`` for ``node_id``."""
    if depth < 0 or depth > MAX_DEPTH:
        raise InvalidArgument(f"depth must be between 0 and {MAX_DEPTH}, not {depth}")
    kind, start = resolve_node(s, node_id)
    w = job_graph.walk(s, kind, start, depth)
    datasets = job_graph.datasets_by_id(s, w.datasets)
    jobs = job_graph.jobs_by_id(s, w.jobs)
    latest = job_graph.latest_versions(s, w.datasets)
    runs = job_graph.latest_runs(s, w.jobs)
    shapes = Shapes(s)
    shapes.preload(sorted(w.datasets))
    ds_ident = shapes.ident

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
        data = shapes.dataset(ds, latest.get(i))
        nodes.append({"id": ds_node[i], "type": "DATASET", "data": data,
                      "inEdges": _sorted(in_edges.get(ds_node[i])),
                      "outEdges": _sorted(out_edges.get(ds_node[i]))})
    for i, job in jobs.items():
        ns = job.namespace.name
        r = runs.get(i)
        nodes.append({"id": job_node[i], "type": "JOB", "data": {
            "id": {"namespace": ns, "name": job.name}, "type": "BATCH", "name": job.name,
            "simpleName": job.name.rsplit(".", 1)[-1], "parentJobName": parent_job(r),
            "parentJobUuid": None, "createdAt": iso(job.created_at),
            "updatedAt": iso(r.started_at if r else job.created_at), "namespace": ns,
            "inputs": [dict(zip(("namespace", "name"), ds_ident(d), strict=True))
                       for d, jj in sorted(w.reads) if jj == i],
            "outputs": [dict(zip(("namespace", "name"), ds_ident(d), strict=True))
                        for jj, d in sorted(w.writes) if jj == i],
            "location": location(r),
            "description": job.description, "latestRun": shapes.run(r) if r is not None else None,
        }, "inEdges": _sorted(in_edges.get(job_node[i])),
            "outEdges": _sorted(out_edges.get(job_node[i]))})
    nodes.sort(key=lambda n: n["id"])
    out: dict[str, Any] = {"graph": nodes}
    if w.truncated:
        out["truncated"] = True
    return out


def _sorted(edges: list[dict[str, str]] | None) -> list[dict[str, str]]:
    return sorted(edges or [], key=lambda e: (e["origin"], e["destination"]))


__all__ = ["graph", "resolve_node", "walk"]  # walk: catalog/job_graph.py

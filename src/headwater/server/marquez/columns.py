"""Column-level lineage: Marquez's ``GET /api/v1/column-lineage`` graph and Headwater's per-version
JSON for the web UI (``GET /api/v1/versions/{ns}/{name}/{selector}/column-lineage``).

A version's column lineage is the ``columnLineage`` facet a producer sent for it (stored by
ingestion), else, for an output of one of our own steps, the mapping
:func:`headwater.lineage.columns.field_lineage` derives from the run (the same function the event
builder uses). Field nodes are ``datasetField:<namespace>:<dataset>:<field>``. Edges are written
as Marquez's ``ColumnLineageService`` writes them, each starting at the node that lists it: an
input field's ``outEdges`` hold ``{origin: input, destination: output}`` and the output field's
``inEdges`` hold ``{origin: output, destination: input}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from headwater.catalog import external, job_graph, marquez_rows
from headwater.catalog.models import Run, Version
from headwater.errors import DatasetNotFound, InvalidArgument, VersionNotFound
from headwater.lineage import columns
from headwater.server.marquez.idents import (
    find_dataset,
    find_job,
    find_version,
    splits,
    version_uuid,
)
from headwater.server.marquez.shapes import Shapes

MAX_DEPTH = 100


@dataclass
class VersionColumns:
    version: Version
    fields: dict[str, Any]
    source: str | None  # "event" | "derived" | None
    types: dict[str, Any] = field(default_factory=dict)


def version_columns(s: Session, shapes: Shapes, v: Version) -> VersionColumns:
    types = {str(c.get("name")): c.get("type") for c in (v.schema or [])}
    stored = marquez_rows.column_lineage_of(s, [v.id]).get(v.id)
    if stored:
        return VersionColumns(v, stored, "event", types)
    run = s.get(Run, v.run_id) if v.run_id else None
    step = columns.step_of(run.engine) if run is not None else None
    if run is None or step is None or not v.schema:
        return VersionColumns(v, {}, None, types)
    ins, _ = marquez_rows.run_edges(s, [run.id])
    sources = [columns.Source(*shapes.ident(i.dataset_id),
                              tuple(str(c.get("name")) for c in i.schema))
               for i in ins.get(run.id, []) if i.schema]
    derived = columns.field_lineage(step, run.params or {}, sources, list(types))
    return VersionColumns(v, derived, "derived" if derived else None, types)


class _Graph:
    def __init__(self, s: Session) -> None:
        self.s = s
        self.shapes = Shapes(s)
        self.nodes: dict[str, dict[str, Any]] = {}
        self.edges: set[tuple[str, str]] = set()
        self._cols: dict[int, VersionColumns | None] = {}
        self._resolved: dict[tuple[str, str], int | None] = {}

    def cols(self, ds_id: int, pinned: Version | None = None) -> VersionColumns | None:
        if pinned is not None:
            self._cols[ds_id] = version_columns(self.s, self.shapes, pinned)
        if ds_id not in self._cols:
            v = job_graph.latest_versions(self.s, {ds_id}).get(ds_id)
            self._cols[ds_id] = version_columns(self.s, self.shapes, v) if v else None
        return self._cols[ds_id]

    def resolve(self, ns: str, name: str) -> int | None:
        if (ns, name) not in self._resolved:
            self._resolved[(ns, name)] = find_dataset(self.s, ns, name)
        return self._resolved[(ns, name)]

    def node(self, ds_id: int | None, ns: str, name: str, fname: str) -> str:
        if ds_id is not None:
            ns, name = self.shapes.ident(ds_id)
        node_id = f"datasetField:{ns}:{name}:{fname}"
        if node_id not in self.nodes:
            vc = self.cols(ds_id) if ds_id is not None else None
            spec = vc.fields.get(fname, {}) if vc else {}
            self.nodes[node_id] = {
                "namespace": ns, "dataset": name,
                "datasetVersion": version_uuid(vc.version) if vc else None,
                "field": fname, "fieldType": vc.types.get(fname) if vc else None,
                "transformationDescription": spec.get("transformationDescription"),
                "transformationType": spec.get("transformationType"),
                "inputFields": [self._input(f) for f in spec.get("inputFields") or []
                                if isinstance(f, dict)],
            }
        return node_id

    def _input(self, f: dict[str, Any]) -> dict[str, Any]:
        ns, name = str(f.get("namespace")), str(f.get("name"))
        ds_id = self.resolve(ns, name)
        if ds_id is not None:
            ns, name = self.shapes.ident(ds_id)
        vc = self.cols(ds_id) if ds_id is not None else None
        first = (f.get("transformations") or [{}])[0]
        return {"namespace": ns, "dataset": name,
                "datasetVersion": version_uuid(vc.version) if vc else None,
                "field": str(f.get("field")),
                "transformationDescription": first.get("description")
                if isinstance(first, dict) else None,
                "transformationType": first.get("type") if isinstance(first, dict) else None,
                "transformations": f.get("transformations") or []}

    def link(self, ds_id: int, out_field: str, spec: dict[str, Any]) -> list[tuple[int, str]]:
        """Nodes and edges of one output field; the upstream (dataset, field) pairs."""
        ns, name = self.shapes.ident(ds_id)
        dest = self.node(ds_id, ns, name, out_field)
        upstream = []
        for f in spec.get("inputFields") or []:
            if not isinstance(f, dict):
                continue
            in_ns, in_name, in_field = str(f.get("namespace")), str(f.get("name")), str(
                f.get("field"))
            in_ds = self.resolve(in_ns, in_name)
            self.edges.add((self.node(in_ds, in_ns, in_name, in_field), dest))
            if in_ds is not None:
                upstream.append((in_ds, in_field))
        return upstream

    def up(self, start: dict[int, set[str] | None], depth: int) -> None:
        frontier, seen = dict(start), set()
        for _ in range(depth):
            nxt: dict[int, set[str] | None] = {}
            for ds_id, wanted in frontier.items():
                vc = self.cols(ds_id)
                for out_field, spec in (vc.fields if vc else {}).items():
                    if (wanted is not None and out_field not in wanted) or (
                            (ds_id, out_field) in seen):
                        continue
                    seen.add((ds_id, out_field))
                    for in_ds, in_field in self.link(ds_id, out_field, spec):
                        got = nxt.setdefault(in_ds, set())
                        if got is not None:
                            got.add(in_field)
            if not nxt:
                break
            frontier = nxt

    def down(self, start: dict[int, set[str] | None], depth: int) -> None:
        frontier, seen = dict(start), set()
        for _ in range(depth):
            nxt: dict[int, set[str] | None] = {}
            for ds_id, wanted in frontier.items():
                w = job_graph.walk(self.s, "dataset", ds_id, 1)
                readers = {j for d, j in w.reads if d == ds_id}
                for child in sorted({d for j, d in w.writes if j in readers} - {ds_id}):
                    vc = self.cols(child)
                    for out_field, spec in (vc.fields if vc else {}).items():
                        hits = [f for f in spec.get("inputFields") or [] if isinstance(f, dict)
                                and self.resolve(str(f.get("namespace")),
                                                 str(f.get("name"))) == ds_id
                                and (wanted is None or str(f.get("field")) in wanted)]
                        if hits and (child, out_field) not in seen:
                            seen.add((child, out_field))
                            self.link(child, out_field, spec)
                            got = nxt.setdefault(child, set())
                            if got is not None:
                                got.add(out_field)
            if not nxt:
                break
            frontier = nxt

    def result(self) -> dict[str, Any]:
        ins: dict[str, list[dict[str, str]]] = {}
        outs: dict[str, list[dict[str, str]]] = {}
        for source, dest in sorted(self.edges):  # as Marquez: each edge starts at its node
            outs.setdefault(source, []).append({"origin": source, "destination": dest})
            ins.setdefault(dest, []).append({"origin": dest, "destination": source})
        return {"graph": [{"id": i, "type": "DATASET_FIELD", "data": self.nodes[i],
                           "inEdges": ins.get(i, []), "outEdges": outs.get(i, [])}
                          for i in sorted(self.nodes)]}


def _parse(s: Session, node_id: str) -> tuple[dict[int, set[str] | None], Version | None]:
    text, _, version = node_id.partition("#")
    kind, sep, rest = text.partition(":")
    if not sep or kind not in ("dataset", "datasetField", "job"):
        raise InvalidArgument(f"nodeId {node_id[:200]!r} must be 'dataset:<namespace>:<name>', "
                              "'datasetField:<namespace>:<name>:<field>' or "
                              "'job:<namespace>:<name>' (optionally '#<version>')")
    fname = None
    if kind == "datasetField":
        rest, _, fname = rest.rpartition(":")
    if kind == "job":
        for ns, name in list(splits(rest))[:200]:
            job = find_job(s, ns, name)
            if job is not None:
                w = job_graph.walk(s, "job", job, 1)
                return {d: None for j, d in w.writes if j == job}, None
        raise DatasetNotFound(f"no job matches nodeId {node_id[:200]!r}")
    for ns, name in list(splits(rest))[:200]:
        ds_id = find_dataset(s, ns, name)
        if ds_id is not None:
            pinned = None
            if version:
                pinned = find_version(marquez_rows.all_versions(s, ds_id), version)
                if pinned is None:
                    raise VersionNotFound(f"no version {version!r} of {ns}:{name}")
            return {ds_id: {fname} if fname else None}, pinned
    raise DatasetNotFound(f"no dataset matches nodeId {node_id[:200]!r}")


def graph(s: Session, node_id: str, depth: int, with_downstream: bool) -> dict[str, Any]:
    """Marquez's column-lineage graph around ``node_id``."""
    if depth < 0 or depth > MAX_DEPTH:
        raise InvalidArgument(f"depth must be between 0 and {MAX_DEPTH}, not {depth}")
    start, pinned = _parse(s, node_id)
    g = _Graph(s)
    if pinned is not None:
        g.cols(pinned.dataset_id, pinned)
    g.up(start, max(depth, 1))
    if with_downstream:
        g.down(start, max(depth, 1))
    return g.result()


def marquez_column_lineage(s: Session, shapes: Shapes, v: Version) -> list[dict[str, Any]] | None:
    """A dataset's ``columnLineage`` in Marquez's Dataset (None: no column lineage known)."""
    vc = version_columns(s, shapes, v)
    if not vc.fields:
        return None
    return [{"name": fname, "inputFields": [
                {"namespace": f.get("namespace"), "dataset": f.get("name"),
                 "field": f.get("field")}
                for f in spec.get("inputFields") or [] if isinstance(f, dict)],
             "transformationDescription": spec.get("transformationDescription"),
             "transformationType": spec.get("transformationType")}
            for fname, spec in vc.fields.items()]


def for_version(s: Session, namespace: str, name: str, number: int) -> dict[str, Any]:
    """Headwater's JSON of one version's column lineage (for the web UI)."""
    ds_id = job_graph.dataset_id(s, namespace, name)
    v = external.version_by_number(s, ds_id, number) if ds_id is not None else None
    if v is None:
        raise VersionNotFound(f"no version {namespace}/{name}@{number}")
    shapes = Shapes(s)
    vc = version_columns(s, shapes, v)
    out_fields = []
    for fname, spec in vc.fields.items():
        inputs = []
        for f in spec.get("inputFields") or []:
            if not isinstance(f, dict):
                continue
            in_ds = find_dataset(s, str(f.get("namespace")), str(f.get("name")))
            cat = job_graph.datasets_by_id(s, [in_ds]).get(in_ds) if in_ds is not None else None
            inputs.append({"namespace": f.get("namespace"), "name": f.get("name"),
                           "field": f.get("field"),
                           "dataset": f"{cat.namespace.name}/{cat.name}" if cat else None,
                           "transformations": f.get("transformations") or []})
        out_fields.append({"field": fname, "type": vc.types.get(fname),
                           "transformationType": spec.get("transformationType"),
                           "transformationDescription": spec.get("transformationDescription"),
                           "inputs": inputs})
    ns, mname = shapes.ident(v.dataset_id)
    return {"dataset": f"{namespace}/{name}", "version": v.number, "source": vc.source,
            "nodeId": f"dataset:{ns}:{mname}", "fields": out_fields}


__all__ = ["VersionColumns", "for_version", "graph", "marquez_column_lineage",
           "version_columns"]

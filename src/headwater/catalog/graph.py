"""Lineage walks over the catalog: versions and runs, upstream or downstream of a version.

Edges come from three tables: ``run_inputs`` (version → run), the producing run of each version
(run → version, ``versions.run_id``; downstream walks also follow ``run_outputs`` so a run whose
output was deduplicated still leads to it) and ``version_parents`` (parent → child); plus
``run_parent`` (parent run → child run, from ``runs.parent``: :func:`add_parent_runs`).

:func:`walk` finds every version within ``depth`` hops with one recursive CTE (a hop is version →
run → version, or parent → child), then reads the edges of the versions it expands and the rows of
the nodes in a few set-based queries: a constant number of round trips whatever the depth (a
depth-20 walk over a million-edge catalog on PostgreSQL: ~20-40 ms, against ~160-260 ms for one
batched query per hop, see ``bench/server_lineage.py``). :func:`walk_bfs`, the hop-by-hop walk,
gives the same graph and stays as the reference the tests compare against.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import BigInteger, Integer, String, any_, bindparam, column, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from headwater.catalog.models import (
    Job,
    Namespace,
    Run,
    RunInput,
    RunOutput,
    UTCDateTime,
    Version,
    VersionParent,
)

MAX_DEPTH = 10_000


def version_node_id(ns: str, name: str, number: int) -> str:
    return f"version:{ns}/{name}@{number}"


@dataclass
class LineageGraph:
    root: str
    direction: str
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    edges: set[tuple[str, str, str]] = field(default_factory=set)

    def versions(self) -> list[str]:
        return sorted(n["ref"] for n in self.nodes.values() if n["type"] == "version")

    def runs(self) -> list[dict[str, Any]]:
        return [n for n in self.nodes.values() if n["type"] == "run"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "direction": self.direction,
            "nodes": sorted(self.nodes.values(), key=lambda n: n["id"]),
            "edges": [{"from": a, "to": b, "kind": k} for a, b, k in sorted(self.edges)],
        }


def _version_node(v: Version) -> dict[str, Any]:
    ns, name = v.dataset.namespace.name, v.dataset.name
    return {
        "id": version_node_id(ns, name, v.number),
        "type": "version",
        "ref": f"{ns}/{name}@{v.number}",
        "dataset": f"{ns}/{name}",
        "dataset_type": v.dataset.type,
        "number": v.number,
        "digest": v.digest,
        "created_at": v.created_at.isoformat(),
        "run_id": v.run_id,
        "rows": v.row_count,
    }


def _run_node(r: Run) -> dict[str, Any]:
    return {
        "id": f"run:{r.id}",
        "type": "run",
        "run_id": r.id,
        "job": f"{r.job.namespace.name}/{r.job.name}",
        "state": r.state,
        "started_at": r.started_at.isoformat(),
        "engine": r.engine or {},
    }


def walk_bfs(
    session: Session, root_id: int, *, direction: str, depth: int | None
) -> LineageGraph:
    """The same graph as :func:`walk`, one batched query per hop (the reference walk)."""
    root = session.get(Version, root_id)
    if root is None:
        raise LookupError(root_id)
    graph = LineageGraph(root=_version_node(root)["id"], direction=direction)
    graph.nodes[graph.root] = _version_node(root)
    directions = ("up", "down") if direction == "both" else (direction,)
    for d in directions:
        _walk_one(session, graph, root, up=(d == "up"), depth=depth)
    add_parent_runs(session, graph)
    return graph


def _walk_one(
    session: Session, graph: LineageGraph, root: Version, *, up: bool, depth: int | None
) -> None:
    seen: dict[int, Version] = {root.id: root}
    frontier = [root]
    limit = MAX_DEPTH if depth is None else depth
    hops = 0
    while frontier and hops < limit:
        hops += 1
        ids = [v.id for v in frontier]
        node_of = {v.id: _version_node(v)["id"] for v in frontier}
        found: list[Version] = []
        if up:
            run_ids = {v.run_id for v in frontier if v.run_id}
            runs = _runs(session, run_ids)
            for v in frontier:
                if v.run_id in runs:
                    graph.edges.add((f"run:{v.run_id}", node_of[v.id], "output"))
            pairs = (
                session.execute(
                    select(RunInput.run_id, Version)
                    .join(Version, RunInput.version_id == Version.id)
                    .where(RunInput.run_id.in_(run_ids))
                ).all()
                if run_ids
                else []
            )
            for run_id, v in pairs:
                graph.edges.add((_version_node(v)["id"], f"run:{run_id}", "input"))
                found.append(v)
            for child_id, parent in session.execute(
                select(VersionParent.child_id, Version)
                .join(Version, VersionParent.parent_id == Version.id)
                .where(VersionParent.child_id.in_(ids))
            ).all():
                graph.edges.add((_version_node(parent)["id"], node_of[child_id], "parent"))
                found.append(parent)
        else:
            consumer_rows = session.execute(
                select(RunInput.version_id, RunInput.run_id).where(RunInput.version_id.in_(ids))
            ).all()
            run_ids = {r for _, r in consumer_rows}
            runs = _runs(session, run_ids)
            for vid, run_id in consumer_rows:
                graph.edges.add((node_of[vid], f"run:{run_id}", "input"))
            for run_id, v in (
                session.execute(
                    select(RunOutput.run_id, Version)
                    .join(Version, RunOutput.version_id == Version.id)
                    .where(RunOutput.run_id.in_(run_ids))
                ).all()
                if run_ids
                else []
            ):
                graph.edges.add((f"run:{run_id}", _version_node(v)["id"], "output"))
                found.append(v)
            for parent_id, child in session.execute(
                select(VersionParent.parent_id, Version)
                .join(Version, VersionParent.child_id == Version.id)
                .where(VersionParent.parent_id.in_(ids))
            ).all():
                graph.edges.add((node_of[parent_id], _version_node(child)["id"], "parent"))
                found.append(child)
        for r in runs.values():
            graph.nodes.setdefault(f"run:{r.id}", _run_node(r))
        frontier = []
        for v in found:
            node = _version_node(v)
            graph.nodes.setdefault(node["id"], node)
            if v.id not in seen:
                seen[v.id] = v
                frontier.append(v)


def _runs(session: Session, run_ids: set[str]) -> dict[str, Run]:
    if not run_ids:
        return {}
    return {r.id: r for r in session.scalars(select(Run).where(Run.id.in_(run_ids))).all()}


# -- one recursive query ---------------------------------------------------------------------
#: One hop of each walk as ``(table joins, hop expression, condition on reach.version_id)``:
#: upstream, a version's producing run's inputs and its explicit parents; downstream, the outputs
#: of the runs that read it and its explicit children.
_HOPS = {
    "up": [("versions v JOIN run_inputs ri ON ri.run_id = v.run_id", "ri.version_id", "v.id"),
           ("version_parents vp", "vp.parent_id", "vp.child_id")],
    "down": [("run_inputs ri JOIN run_outputs ro ON ro.run_id = ri.run_id", "ro.version_id",
              "ri.version_id"),
             ("version_parents vp", "vp.child_id", "vp.parent_id")],
}
_SEED = "SELECT CAST(:root AS INTEGER), CAST(0 AS INTEGER)"
#: The reached versions with what their graph nodes show, in the same round trip.
_TAIL = (
    "SELECT r.version_id, r.depth, n.name, d.name, d.type, v.number, v.digest, v.created_at, "
    "v.run_id, v.row_count FROM (SELECT version_id, min(depth) AS depth FROM reach "
    "GROUP BY version_id) r JOIN versions v ON v.id = r.version_id "
    "JOIN datasets d ON d.id = v.dataset_id JOIN namespaces n ON n.id = d.namespace_id"
)
_COLUMNS = (
    column("version_id", Integer), column("depth", Integer), column("ns", String),
    column("dataset", String), column("dataset_type", String), column("number", Integer),
    column("digest", String), column("created_at", UTCDateTime()), column("run_id", String),
    column("rows", BigInteger),
)


def _reach_sql(direction: str, dialect: str) -> str:
    """The recursive query of versions within ``:limit`` hops of ``:root``.

    PostgreSQL allows one recursive reference, so both kinds of hop go in a LATERAL subquery
    (index lookups per frontier row); SQLite has no LATERAL but allows several recursive SELECTs.
    """
    hops = _HOPS[direction]
    if dialect == "postgresql":
        inner = " UNION ALL ".join(
            f"SELECT {expr} AS id FROM {joins} WHERE {cond} = reach.version_id"
            for joins, expr, cond in hops)
        step = (f"SELECT nxt.id, reach.depth + 1 FROM reach CROSS JOIN LATERAL ({inner}) nxt "
                "WHERE reach.depth < :limit")
    else:
        step = " UNION ".join(
            f"SELECT {expr}, reach.depth + 1 FROM reach, {joins} "
            f"WHERE {cond} = reach.version_id AND reach.depth < :limit"
            for joins, expr, cond in hops)
    return f"WITH RECURSIVE reach(version_id, depth) AS ({_SEED} UNION {step}) {_TAIL}"


_CHUNK = 5000


def _member(pg: bool, col: Any, ids: Iterable[Any], kind: Any) -> list[Any]:
    """``col IN ids`` as one array parameter (PostgreSQL) or chunks of an IN list (SQLite)."""
    values = list(ids)
    if pg:
        return [col == any_(bindparam(None, values, type_=ARRAY(kind)))] if values else []
    return [col.in_(values[i:i + _CHUNK]) for i in range(0, len(values), _CHUNK)]


def walk(session: Session, root_id: int, *, direction: str, depth: int | None) -> LineageGraph:
    """Versions and runs upstream (``up``), downstream (``down``) or ``both`` of a version."""
    dialect = session.get_bind().dialect.name
    pg = dialect == "postgresql"
    limit = MAX_DEPTH if depth is None else depth
    versions: dict[int, dict[str, Any]] = {}
    run_ids: set[str] = set()
    edges: set[tuple[Any, Any, str]] = set()  # (from, to, kind): ints are versions, strs runs
    for d in ("up", "down") if direction == "both" else (direction,):
        expanded: list[int] = []
        producers: dict[str, list[int]] = {}
        query = text(_reach_sql(d, dialect)).columns(*_COLUMNS)
        for vid, hops, ns, name, dtype, number, digest, created, run_id, rows in session.execute(
                query, {"root": root_id, "limit": limit}):
            versions[vid] = {
                "id": version_node_id(ns, name, number), "type": "version",
                "ref": f"{ns}/{name}@{number}", "dataset": f"{ns}/{name}",
                "dataset_type": dtype, "number": number, "digest": digest,
                "created_at": created.isoformat(), "run_id": run_id, "rows": rows,
            }
            if hops < limit:
                expanded.append(vid)
                if d == "up" and run_id is not None:
                    producers.setdefault(run_id, []).append(vid)
        if d == "up":
            for cond in _member(pg, RunInput.run_id, producers, String):
                for rid, vid in session.execute(select(RunInput.run_id, RunInput.version_id)
                                                .where(cond)):
                    edges.add((vid, rid, "input"))
            for rid, outs in producers.items():
                run_ids.add(rid)
                edges.update((rid, vid, "output") for vid in outs)
            expanded_side = VersionParent.child_id  # parents of the expanded versions
        else:
            for cond in _member(pg, RunInput.version_id, expanded, Integer):
                for vid, rid, out in session.execute(
                    select(RunInput.version_id, RunInput.run_id, RunOutput.version_id)
                    .outerjoin(RunOutput, RunOutput.run_id == RunInput.run_id).where(cond)
                ):
                    run_ids.add(rid)
                    edges.add((vid, rid, "input"))
                    if out is not None:
                        edges.add((rid, out, "output"))
            expanded_side = VersionParent.parent_id  # children of the expanded versions
        for cond in _member(pg, expanded_side, expanded, Integer):
            for parent, child in session.execute(
                    select(VersionParent.parent_id, VersionParent.child_id).where(cond)):
                edges.add((parent, child, "parent"))
    if root_id not in versions:
        raise LookupError(root_id)
    runs = _run_nodes(session, run_ids, pg)
    graph = LineageGraph(root=versions[root_id]["id"], direction=direction)
    for node in [*versions.values(), *runs.values()]:
        graph.nodes[node["id"]] = node
    for a, b, kind in edges:
        src = runs.get(a) if isinstance(a, str) else versions.get(a)
        dst = runs.get(b) if isinstance(b, str) else versions.get(b)
        if src is not None and dst is not None:
            graph.edges.add((src["id"], dst["id"], kind))
    add_parent_runs(session, graph)
    return graph


def add_parent_runs(session: Session, graph: LineageGraph) -> None:
    """``run_parent`` edges (parent run → child run) for runs whose OpenLineage parent is a run
    in the catalog: a Beam write under its pipeline run, a Beam pipeline under the Airflow task
    that launched it (once Airflow's events are ingested). Upward walks also add the parent runs
    themselves, up the chain (task → pipeline → writes); downward walks only link runs already
    in the graph, so impact and rebuild plans see no runs that did not read the version."""
    pg = session.get_bind().dialect.name == "postgresql"
    add_nodes = graph.direction in ("up", "both")
    todo = {n["run_id"] for n in graph.nodes.values() if n["type"] == "run"}
    seen = set(todo)
    while todo:
        parents: dict[str, str] = {}
        for cond in _member(pg, Run.id, todo, String):
            for rid, parent in session.execute(select(Run.id, Run.parent).where(cond)):
                pid = parent.get("run_id") if isinstance(parent, dict) else None
                if pid and str(pid) != rid:
                    parents[rid] = str(pid)
        missing = {p for p in parents.values() if f"run:{p}" not in graph.nodes}
        found = _run_nodes(session, missing, pg) if add_nodes and missing else {}
        for node in found.values():
            graph.nodes[node["id"]] = node
        for child, pid in parents.items():
            if f"run:{pid}" in graph.nodes:
                graph.edges.add((f"run:{pid}", f"run:{child}", "run_parent"))
        todo = set(found) - seen
        seen |= todo


def _run_nodes(session: Session, ids: set[str], pg: bool) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for cond in _member(pg, Run.id, ids, String):
        for rid, ns, job, state, started, engine in session.execute(
            select(Run.id, Namespace.name, Job.name, Run.state, Run.started_at, Run.engine)
            .join(Job, Run.job_id == Job.id).join(Namespace, Job.namespace_id == Namespace.id)
            .where(cond)
        ):
            out[rid] = {
                "id": f"run:{rid}", "type": "run", "run_id": rid, "job": f"{ns}/{job}",
                "state": state, "started_at": started.isoformat(), "engine": engine or {},
            }
    return out


__all__ = ["LineageGraph", "add_parent_runs", "walk", "walk_bfs"]

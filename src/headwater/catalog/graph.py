"""Lineage walks over the catalog: versions and runs, upstream or downstream of a version.

Edges come from three tables: ``run_inputs`` (version → run), the producing run of each version
(run → version, ``versions.run_id``; downstream walks also follow ``run_outputs`` so a run whose
output was deduplicated still leads to it) and ``version_parents`` (parent → child). The walk is
breadth-first, one batched query per hop and table, so its cost grows with the size of the answer,
not of the catalog.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from headwater.catalog.models import Run, RunInput, RunOutput, Version, VersionParent

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


def walk(session: Session, root_id: int, *, direction: str, depth: int | None) -> LineageGraph:
    root = session.get(Version, root_id)
    if root is None:
        raise LookupError(root_id)
    graph = LineageGraph(root=_version_node(root)["id"], direction=direction)
    graph.nodes[graph.root] = _version_node(root)
    directions = ("up", "down") if direction == "both" else (direction,)
    for d in directions:
        _walk_one(session, graph, root, up=(d == "up"), depth=depth)
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


__all__ = ["LineageGraph", "walk"]

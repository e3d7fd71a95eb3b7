"""Impact analysis: everything derived from a version, and the tasks that would rebuild it.

"The spam corpus was mislabelled — what came from it?" The answer is the downstream lineage of
that version, grouped by dataset, plus the engine tasks (Airflow dag/task, Beam pipeline) whose
runs produced each affected version. What to run again, where and with which input pinned is the
rebuild plan's job (headwater/rebuild/plan.py, ``headwater rebuild``, docs/rebuild.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from headwater.catalog.graph import LineageGraph


@dataclass(frozen=True)
class AffectedTask:
    engine: str
    job: str
    dag_id: str | None = None
    task_id: str | None = None

    def label(self) -> str:
        if self.dag_id and self.task_id:
            return f"{self.engine}: {self.dag_id}.{self.task_id}"
        return f"{self.engine or 'headwater'}: {self.job}"


@dataclass
class ImpactReport:
    root: str
    versions: dict[str, list[str]] = field(default_factory=dict)  # dataset -> refs
    tasks: list[AffectedTask] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "datasets": {k: v for k, v in sorted(self.versions.items())},
            "tasks": [t.__dict__ | {"label": t.label()} for t in self.tasks],
        }


def impact_of(graph: LineageGraph) -> ImpactReport:
    """Summarise a downstream lineage graph rooted at the bad version."""
    report = ImpactReport(root=graph.root)
    producers: dict[str, str] = {}
    for src, dst, kind in graph.edges:
        if kind == "output" and src.startswith("run:"):
            producers[dst] = src
    tasks: dict[tuple[str, str, str | None, str | None], AffectedTask] = {}
    for node in graph.nodes.values():
        if node["type"] != "version" or node["id"] == graph.root:
            continue
        report.versions.setdefault(node["dataset"], []).append(node["ref"])
        run = graph.nodes.get(producers.get(node["id"], ""))
        if run is None:
            continue
        engine = run.get("engine") or {}
        key = (engine.get("name", ""), run["job"], engine.get("dag_id"), engine.get("task_id"))
        tasks.setdefault(key, AffectedTask(*key))
    for refs in report.versions.values():
        refs.sort(key=lambda r: int(r.rsplit("@", 1)[1]))
    report.tasks = sorted(tasks.values(), key=lambda t: (t.dag_id or "", t.job))
    return report

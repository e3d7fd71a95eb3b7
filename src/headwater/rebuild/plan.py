"""The rebuild plan: which engine runs must run again, and with which input pinned.

From the downstream lineage of a bad version ``REF`` (:meth:`Catalog.lineage`, the graph
``headwater impact`` summarises), a dataset still needs rebuilding when its latest committed version
is derived from ``REF`` and no completed run outside that lineage also produced it (a rebuild whose
output was identical deduplicates to the old version). Every run that produced an affected version
of such a dataset becomes part of one plan entry:

* one entry per **Airflow DAG run** (``dag_id``, ``dag_run_id`` from the run's ``engine`` record),
  with the task ids to recompute; executed by triggering a new DAG run whose conf is the original
  run's conf plus ``{"headwater_pins": PINS}`` (docs/rebuild.md says why not clearing);
* one entry per **Beam pipeline run** (``pipeline_run_id``), relaunched from its recorded launch;
* one entry per job for runs of no known engine (Python, ``headwater run``): rerun by hand with
  ``HEADWATER_PINS``.

The pins (:func:`headwater.refs.parse_pins`, the one substitution mechanism) map the bad version's
dataset to ``--with NEWREF``, or, without it, to the target of the alias the runs read it through
(if it moved) or the latest version that is not retracted (:func:`catalog.rebuild.substitute_for`).
Nothing left to rebuild gives an empty plan: a second rebuild is a no-op.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from headwater.catalog import rebuild as queries
from headwater.catalog.status import retracted_ids, status_of
from headwater.errors import InvalidArgument

if TYPE_CHECKING:
    from headwater.api import Catalog

#: the key of a DAG run's conf the Airflow operators read pins from
CONF_KEY = "headwater_pins"


@dataclass
class PlanEntry:
    """What runs again in one engine run (a DAG run, a Beam pipeline run, a job)."""

    engine: str
    #: ``airflow``: the DAG and the DAG run that produced affected versions
    dag_id: str | None = None
    dag_run_id: str | None = None
    #: ``beam``: the pipeline run id and job name; ``launch`` is its recorded launch
    pipeline_run_id: str | None = None
    job_name: str | None = None
    launch: dict[str, Any] | None = None
    task_ids: list[str] = field(default_factory=list)
    jobs: list[str] = field(default_factory=list)
    #: Headwater run ids whose outputs are affected
    runs: list[str] = field(default_factory=list)
    #: the affected versions this entry supersedes
    rebuilds: list[str] = field(default_factory=list)
    pins: dict[str, str] = field(default_factory=dict)
    #: Airflow: the conf of the new DAG run (the original conf plus the pins); ``None`` when
    #: the original conf was not recorded (the executor reads it from the api-server)
    conf: dict[str, Any] | None = None
    #: 0-based order: an entry runs after the entries whose outputs it reads
    order: int = 0

    def label(self) -> str:
        if self.engine == "airflow":
            return f"Airflow DAG {self.dag_id}, run {self.dag_run_id}"
        if self.engine == "beam":
            return f"Beam pipeline {self.job_name or '?'}, run {self.pipeline_run_id or '?'}"
        return f"job {', '.join(self.jobs)}"

    def trigger_conf(self) -> dict[str, Any]:
        """The conf a new DAG run gets: the recorded conf with the pins merged in."""
        conf = dict(self.conf or {})
        conf[CONF_KEY] = {**dict(conf.get(CONF_KEY) or {}), **self.pins}
        return conf

    def commands(self) -> list[str]:
        """What a user pastes to run this entry by hand."""
        if self.engine == "airflow" and self.dag_id:
            conf = shlex.quote(json.dumps(self.trigger_conf(), sort_keys=True))
            return [f"airflow dags trigger {shlex.quote(self.dag_id)} --conf {conf}"]
        if self.engine == "beam":
            from headwater.rebuild.beam import rerun_command

            cmd = rerun_command(self)
            return [cmd] if cmd else []
        return []

    def local_command(self) -> str | None:
        """Airflow without a scheduler: the DAG run in this process (``airflow dags test``)."""
        if self.engine != "airflow" or not self.dag_id:
            return None
        conf = shlex.quote(json.dumps(self.trigger_conf(), sort_keys=True))
        return f"airflow dags test {shlex.quote(self.dag_id)} --conf {conf}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "engine": self.engine, "label": self.label(), "order": self.order,
            "task_ids": self.task_ids, "jobs": self.jobs, "runs": self.runs,
            "rebuilds": self.rebuilds, "pins": self.pins, "commands": self.commands(),
        }
        if self.engine == "airflow":
            out.update(dag_id=self.dag_id, dag_run_id=self.dag_run_id,
                       conf=self.trigger_conf(), conf_recorded=self.conf is not None,
                       local_command=self.local_command())
        elif self.engine == "beam":
            out.update(pipeline_run_id=self.pipeline_run_id, job_name=self.job_name,
                       launch=self.launch)
        return out


@dataclass
class RebuildPlan:
    """Everything ``headwater rebuild REF`` would run, reviewable before it runs."""

    root: str
    #: the version read instead of ``root``; ``None``: nothing to substitute yet (see ``problem``)
    replacement: str | None
    pins: dict[str, str]
    entries: list[PlanEntry] = field(default_factory=list)
    #: affected dataset -> {"latest": ref, "status": ..., "rebuild": bool}
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)
    problem: str | None = None

    @property
    def empty(self) -> bool:
        return not self.entries

    def commands(self) -> list[str]:
        """Paste-able commands: the rebuild itself, then each entry's by-hand command (none
        while nothing replaces the bad version: ``problem`` says what to do first)."""
        if self.empty or self.replacement is None:
            return []
        head = f"headwater rebuild {shlex.quote(self.root)}"
        if self.replacement:
            head += f" --with {shlex.quote(self.replacement)}"
        return [head] + [c for e in self.entries for c in e.commands()]

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": self.root, "replacement": self.replacement, "pins": self.pins,
            "problem": self.problem, "datasets": self.datasets,
            "entries": [e.to_dict() for e in self.entries], "commands": self.commands(),
        }


def _engine_key(run: Mapping[str, Any]) -> tuple[str, str, str]:
    engine = run.get("engine") or {}
    name = str(engine.get("name") or "").lower()
    if name == "airflow" and engine.get("dag_id"):
        return ("airflow", str(engine["dag_id"]), str(engine.get("run_id") or ""))
    if name == "beam":  # the pipeline run and its write runs (and model training) share it
        return ("beam", str(engine.get("pipeline_run_id") or run["run_id"]), "")
    return ("", str(run["job"]), "")


def _depths(root: str, edges: Iterable[tuple[str, str, str]]) -> dict[str, int]:
    """Hops from ``root`` to every node (runs and versions) it reaches over ``edges``."""
    out_edges: dict[str, list[str]] = {}
    for src, dst, _kind in edges:
        out_edges.setdefault(src, []).append(dst)
    depth = {root: 0}
    frontier = [root]
    while frontier:
        nxt = []
        for node in frontier:
            for dst in out_edges.get(node, ()):
                if dst not in depth:
                    depth[dst] = depth[node] + 1
                    nxt.append(dst)
        frontier = nxt
    return depth


def plan_rebuild(catalog: Catalog, ref: str, *, with_ref: str | None = None,
                 require_replacement: bool = True) -> RebuildPlan:
    """The plan for rebuilding what version ``ref`` fed (see the module docstring).

    Raises ``VersionNotFound`` for unknown references and ``InvalidArgument`` when ``with_ref``
    names another dataset or the same version, or when nothing can replace ``ref`` and
    ``require_replacement`` (``impact`` passes False and shows the problem instead)."""
    graph = catalog.lineage(ref, direction="down")
    root_ref = graph.nodes[graph.root]["ref"]
    with catalog.session() as s:
        # a state read (a step's own previous output) does not carry staleness downstream
        state = {(f"version:{v}", f"run:{r}")
                 for v, r in queries.state_reads(s, (n["run_id"] for n in graph.runs()))}
    edges = [e for e in graph.edges if e[2] != "input" or (e[0], e[1]) not in state]
    depth = _depths(graph.root, edges)
    producers: dict[str, set[str]] = {}
    for src, dst, kind in edges:
        if kind == "output" and src.startswith("run:") and src in depth:
            producers.setdefault(dst, set()).add(src)
    affected = {n["ref"]: n for n in graph.nodes.values()
                if n["type"] == "version" and n["id"] != graph.root and n["id"] in depth}
    graph_runs = {n["run_id"] for n in graph.runs() if n["id"] in depth}

    with catalog.session() as s:
        svc = catalog.service(s)
        root = svc.resolve(root_ref)
        dataset = f"{root.dataset.namespace.name}/{root.dataset.name}"
        replacement, problem = None, None
        if with_ref is not None:
            new = svc.resolve(with_ref)
            new_ref = f"{new.dataset.namespace.name}/{new.dataset.name}@{new.number}"
            if new.dataset_id != root.dataset_id:
                raise InvalidArgument(f"--with {with_ref} is {new_ref}, another dataset than "
                                      f"{root_ref}: name a version of {dataset}")
            if new.id == root.id:
                raise InvalidArgument(f"--with {with_ref} is {root_ref} itself: name the "
                                      "corrected version")
            if new.id in retracted_ids(s, [new.id]):
                raise InvalidArgument(f"--with {new_ref} is retracted: name a good version")
            replacement = new_ref
        else:
            sub = queries.substitute_for(s, root)
            if sub is not None:
                replacement = f"{dataset}@{sub.number}"
            else:
                problem = (f"nothing replaces {root_ref} yet: log the corrected data as a new "
                           f"version of {dataset}, then `headwater rebuild {root_ref} --with "
                           f"{dataset}@N`")
        latest = queries.latest_committed(s, {n["dataset"] for n in affected.values()})
        elsewhere = queries.derived_elsewhere(s, [v.id for v in latest.values()], graph_runs)
        statuses = {st.ref: st for st in status_of(s, version_ids=[v.id for v in latest.values()])}

    plan = RebuildPlan(root=root_ref, replacement=replacement,
                       pins={dataset: replacement} if replacement else {}, problem=problem)
    stale: set[str] = set()
    for name, v in sorted(latest.items()):
        lref = f"{name}@{v.number}"
        todo = lref in affected and v.id not in elsewhere
        st = statuses.get(lref)
        plan.datasets[name] = {"latest": lref, "status": st.status if st else "fresh",
                               "rebuild": todo}
        if todo:
            stale.add(name)
    entries: dict[tuple[str, str, str], PlanEntry] = {}
    # upstream first: task ids and superseded versions come in the order they are rebuilt
    for vref, node in sorted(affected.items(), key=lambda kv: (depth.get(kv[1]["id"], 0), kv[0])):
        if node["dataset"] not in stale:
            continue
        for run_node_id in sorted(producers.get(node["id"], ())):
            run = graph.nodes[run_node_id]
            key = _engine_key(run)
            engine = run.get("engine") or {}
            entry = entries.get(key)
            if entry is None:
                entry = entries[key] = _new_entry(key, engine, plan.pins, job=run["job"])
                entry.order = depth.get(run_node_id, 0)
            entry.order = min(entry.order, depth.get(run_node_id, 0))
            task = engine.get("task_id")
            for lst, item in ((entry.task_ids, task), (entry.jobs, run["job"]),
                              (entry.runs, run["run_id"]), (entry.rebuilds, vref)):
                if item and item not in lst:
                    lst.append(item)
    plan.entries = sorted(entries.values(), key=lambda e: (e.order, e.label()))
    for i, e in enumerate(plan.entries):
        e.order = i
    if plan.entries and replacement is None and require_replacement:
        raise InvalidArgument(problem or f"nothing replaces {root_ref}")
    return plan


def _new_entry(key: tuple[str, str, str], engine: Mapping[str, Any],
               pins: Mapping[str, str], *, job: str) -> PlanEntry:
    kind, name, run_id = key
    if kind == "airflow":
        conf = engine.get("conf")
        return PlanEntry(engine="airflow", dag_id=name, dag_run_id=run_id or None,
                         pins=dict(pins),
                         conf=dict(conf) if isinstance(conf, Mapping) else None)
    if kind == "beam":
        launch = engine.get("launch")
        return PlanEntry(engine="beam", job_name=str(engine.get("job_name") or job),
                         pipeline_run_id=name, pins=dict(pins),
                         launch=dict(launch) if isinstance(launch, Mapping) else None)
    return PlanEntry(engine="headwater", pins=dict(pins))

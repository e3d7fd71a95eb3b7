"""The dataset/job-granularity lineage graph (what Marquez's ``/lineage`` shows): walks over run
edges, batch lookups by id, latest versions and runs.

Why in ``catalog/``: queries live in one layer (ADR 0004); ``headwater.server.marquez`` turns
these rows into Marquez's JSON and resolves Marquez node ids. Version-exact lineage is
:mod:`headwater.catalog.graph`. Functions take an open session and never write.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

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

#: Most datasets plus jobs one walk returns (``truncated`` beyond).
MAX_NODES = 5000
#: Ids per ``IN (...)`` batch.
CHUNK = 5000


def chunks(items: Iterable[Any]) -> Iterable[list[Any]]:
    """``items`` in lists of at most :data:`CHUNK` (an ``IN (...)`` per list)."""
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass
class Walk:
    """The datasets and jobs a walk reached and the read/write edges between them."""

    datasets: set[int] = field(default_factory=set)
    jobs: set[int] = field(default_factory=set)
    reads: set[tuple[int, int]] = field(default_factory=set)  # (dataset, job)
    writes: set[tuple[int, int]] = field(default_factory=set)  # (job, dataset)
    truncated: bool = False


def _touching(s: Session, ids: set[int], walk: Walk, *, from_jobs: bool) -> set[int]:
    """Read and write edges of the given datasets (or jobs); returns the jobs (or datasets)
    at their other end."""
    found: set[int] = set()
    for batch in chunks(ids):
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


def _jobs_touching(s: Session, dataset_ids: set[int], walk: Walk) -> set[int]:
    return _touching(s, dataset_ids, walk, from_jobs=False)


def _datasets_touching(s: Session, job_ids: set[int], walk: Walk) -> set[int]:
    return _touching(s, job_ids, walk, from_jobs=True)


def walk(s: Session, kind: str, start: int, depth: int) -> Walk:
    """The neighbourhood of the start node, up to ``depth`` job hops in both directions."""
    w = Walk()
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


def openlineage_names(s: Session, ids: set[int]) -> dict[int, tuple[str, str]]:
    """OpenLineage ``(namespace, name)`` of each catalog dataset."""
    out: dict[int, tuple[str, str]] = {}
    for batch in chunks(ids):
        first = (select(OpenLineageDataset.dataset_id, func.min(OpenLineageDataset.id).label("m"))
                 .where(OpenLineageDataset.dataset_id.in_(batch))
                 .group_by(OpenLineageDataset.dataset_id).subquery())
        for m in s.scalars(select(OpenLineageDataset).join(first, OpenLineageDataset.id ==
                                                           first.c.m)):
            out[m.dataset_id] = (m.namespace, m.name)
    return out


def latest_versions(s: Session, dataset_ids: set[int]) -> dict[int, Version]:
    out: dict[int, Version] = {}
    for batch in chunks(dataset_ids):
        top = (select(Version.dataset_id, func.max(Version.number).label("n"))
               .where(Version.dataset_id.in_(batch)).group_by(Version.dataset_id).subquery())
        for v in s.scalars(select(Version).join(top, and_(Version.dataset_id == top.c.dataset_id,
                                                          Version.number == top.c.n))):
            out[v.dataset_id] = v
    return out


def latest_runs(s: Session, job_ids: set[int]) -> dict[int, Run]:
    out: dict[int, Run] = {}
    for batch in chunks(job_ids):
        top = (select(Run.job_id, func.max(Run.started_at).label("t"))
               .where(Run.job_id.in_(batch)).group_by(Run.job_id).subquery())
        for r in s.scalars(select(Run).join(top, and_(Run.job_id == top.c.job_id,
                                                      Run.started_at == top.c.t))):
            out.setdefault(r.job_id, r)
    return out


def datasets_by_id(s: Session, ids: Iterable[int]) -> dict[int, Dataset]:
    return {d.id: d for batch in chunks(ids)
            for d in s.scalars(select(Dataset).where(Dataset.id.in_(batch)))}


def jobs_by_id(s: Session, ids: Iterable[int]) -> dict[int, Job]:
    return {j.id: j for batch in chunks(ids)
            for j in s.scalars(select(Job).where(Job.id.in_(batch)))}


def mapped_dataset_id(s: Session, key: str) -> int | None:
    """The catalog dataset the OpenLineage dataset key ``key`` maps to (``ol_datasets``)."""
    found = s.scalar(select(OpenLineageDataset.dataset_id).where(OpenLineageDataset.key == key))
    return None if found is None else int(found)


def dataset_id(s: Session, namespace: str, name: str) -> int | None:
    found = s.scalar(select(Dataset.id).join(Namespace, Dataset.namespace_id == Namespace.id)
                     .where(Namespace.name == namespace, Dataset.name == name))
    return None if found is None else int(found)


def job_id(s: Session, namespace: str, name: str) -> int | None:
    found = s.scalar(select(Job.id).join(Namespace, Job.namespace_id == Namespace.id)
                     .where(Namespace.name == namespace, Job.name == name))
    return None if found is None else int(found)


__all__ = ["CHUNK", "MAX_NODES", "Walk", "chunks", "dataset_id", "datasets_by_id", "job_id",
           "jobs_by_id", "latest_runs", "latest_versions", "mapped_dataset_id",
           "openlineage_names", "walk"]

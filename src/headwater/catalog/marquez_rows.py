"""Catalog rows behind the Marquez-compatible API (``headwater.server.marquez``): datasets, their
versions, jobs and their runs, run edges, ingested events, tags and column-level lineage.

Why in ``catalog/``: queries live in one layer (ADR 0004); the server turns these rows into
Marquez's JSON. Functions take an open session; only the ``put_*``/``tag_*``/``record_*``
functions write, and none commits.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from headwater.catalog.job_graph import chunks
from headwater.catalog.models import (
    ColumnLineage,
    Dataset,
    DatasetTag,
    Job,
    OpenLineageEvent,
    Run,
    RunInput,
    RunOutput,
    Tag,
    Version,
    utcnow,
)

#: Most rows a listing loads to page in memory (identities are computed per dataset).
MAX_ROWS = 100_000


def all_datasets(s: Session) -> list[Dataset]:
    return list(s.scalars(select(Dataset).order_by(Dataset.id).limit(MAX_ROWS)))


def all_jobs(s: Session) -> list[Job]:
    return list(s.scalars(select(Job).order_by(Job.id).limit(MAX_ROWS)))


def jobs_named(s: Session, name: str) -> list[Job]:
    """Jobs of that name in any namespace (an Airflow ``<dag>.<task>`` sent under ``default``
    names the job our operator recorded under its own namespace)."""
    return list(s.scalars(select(Job).where(Job.name == name).order_by(Job.id)))


def versions_page(s: Session, dataset_id: int, limit: int,
                  offset: int) -> tuple[int, list[Version]]:
    """Newest first."""
    total = int(s.scalar(select(func.count()).select_from(Version)
                         .where(Version.dataset_id == dataset_id)) or 0)
    rows = s.scalars(select(Version).where(Version.dataset_id == dataset_id)
                     .order_by(Version.number.desc()).limit(limit).offset(offset))
    return total, list(rows)


def all_versions(s: Session, dataset_id: int) -> list[Version]:
    return list(s.scalars(select(Version).where(Version.dataset_id == dataset_id)
                          .order_by(Version.number.desc()).limit(MAX_ROWS)))


def runs_page(s: Session, job_id: int, limit: int, offset: int) -> tuple[int, list[Run]]:
    """Newest first."""
    total = int(s.scalar(select(func.count()).select_from(Run)
                         .where(Run.job_id == job_id)) or 0)
    rows = s.scalars(select(Run).where(Run.job_id == job_id)
                     .order_by(Run.started_at.desc(), Run.id).limit(limit).offset(offset))
    return total, list(rows)


def all_runs(s: Session, job_id: int) -> list[Run]:
    return list(s.scalars(select(Run).where(Run.job_id == job_id)
                          .order_by(Run.started_at.desc(), Run.id).limit(MAX_ROWS)))


def run_edges(s: Session, run_ids: Iterable[str]
              ) -> tuple[dict[str, list[Version]], dict[str, list[Version]]]:
    """``(inputs, outputs)``: the versions each run read and wrote."""
    inputs: dict[str, list[Version]] = {}
    outputs: dict[str, list[Version]] = {}
    for batch in chunks(run_ids):
        for run_id, v in s.execute(select(RunInput.run_id, Version)
                                   .join(Version, Version.id == RunInput.version_id)
                                   .where(RunInput.run_id.in_(batch))):
            inputs.setdefault(run_id, []).append(v)
        for run_id, v in s.execute(select(RunOutput.run_id, Version)
                                   .join(Version, Version.id == RunOutput.version_id)
                                   .where(RunOutput.run_id.in_(batch))):
            outputs.setdefault(run_id, []).append(v)
    for edges in (inputs, outputs):
        for vs in edges.values():
            vs.sort(key=lambda v: (v.dataset_id, v.number))
    return inputs, outputs


def run_facet_events(s: Session, run_id: str) -> list[dict[str, Any]]:
    """The ingested events of a run, oldest first (their facets are the run's facets)."""
    return [e.event for e in s.scalars(select(OpenLineageEvent)
                                       .where(OpenLineageEvent.run_id == run_id)
                                       .order_by(OpenLineageEvent.event_time,
                                                 OpenLineageEvent.id).limit(1000))]


def events_page(s: Session, *, limit: int, offset: int, before: datetime | None,
                after: datetime | None, ascending: bool) -> tuple[int, list[OpenLineageEvent]]:
    q = select(OpenLineageEvent)
    if before is not None:
        q = q.where(OpenLineageEvent.event_time < before)
    if after is not None:
        q = q.where(OpenLineageEvent.event_time > after)
    total = int(s.scalar(select(func.count()).select_from(q.subquery())) or 0)
    order = (OpenLineageEvent.event_time.asc() if ascending
             else OpenLineageEvent.event_time.desc())
    rows = s.scalars(q.order_by(order, OpenLineageEvent.id).limit(limit).offset(offset))
    return total, list(rows)


# -- tags --------------------------------------------------------------------------------------
def tags(s: Session) -> list[Tag]:
    return list(s.scalars(select(Tag).order_by(Tag.name)))


def put_tag(s: Session, name: str, description: str | None) -> Tag:
    tag = s.scalar(select(Tag).where(Tag.name == name))
    if tag is None:
        tag = Tag(name=name, description=description, created_at=utcnow(), updated_at=utcnow())
        s.add(tag)
    else:
        tag.description, tag.updated_at = description, utcnow()
    s.flush()
    return tag


def tag_dataset(s: Session, dataset_id: int, tag: str, field: str = "") -> None:
    """Put ``tag`` on the dataset (``field`` empty) or on one of its fields; creates the tag."""
    if s.scalar(select(Tag.id).where(Tag.name == tag)) is None:
        put_tag(s, tag, None)
    if s.scalar(select(DatasetTag.id).where(DatasetTag.dataset_id == dataset_id,
                                            DatasetTag.field == field,
                                            DatasetTag.tag == tag)) is None:
        s.add(DatasetTag(dataset_id=dataset_id, field=field, tag=tag, created_at=utcnow()))
        s.flush()


def dataset_tags(s: Session, dataset_ids: Iterable[int]) -> dict[int, dict[str, list[str]]]:
    """``{dataset_id: {field ("" for the dataset): [tags]}}``."""
    out: dict[int, dict[str, list[str]]] = {}
    for batch in chunks(dataset_ids):
        for t in s.scalars(select(DatasetTag).where(DatasetTag.dataset_id.in_(batch))
                           .order_by(DatasetTag.tag)):
            out.setdefault(t.dataset_id, {}).setdefault(t.field, []).append(t.tag)
    return out


# -- column-level lineage ----------------------------------------------------------------------
def record_column_lineage(s: Session, version_id: int, run_id: str | None,
                          fields: dict[str, Any], producer: str | None) -> None:
    """Keep the ``columnLineage`` facet ``fields`` a run gave an output version (the newest
    facet of the same run replaces an earlier one)."""
    row = s.scalar(select(ColumnLineage).where(ColumnLineage.version_id == version_id,
                                               ColumnLineage.run_id == run_id))
    if row is None:
        s.add(ColumnLineage(version_id=version_id, run_id=run_id, fields=fields,
                            producer=producer, created_at=utcnow()))
    else:
        row.fields, row.producer = fields, producer
    s.flush()


def column_lineage_of(s: Session, version_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """The recorded column lineage of each version (the newest row when several runs gave one)."""
    out: dict[int, dict[str, Any]] = {}
    for batch in chunks(version_ids):
        for row in s.scalars(select(ColumnLineage).where(ColumnLineage.version_id.in_(batch))
                             .order_by(ColumnLineage.id)):
            out[row.version_id] = dict(row.fields or {})
    return out


def runs_by_id(s: Session, run_ids: Iterable[str]) -> dict[str, Run]:
    return {r.id: r for batch in chunks(run_ids)
            for r in s.scalars(select(Run).where(Run.id.in_(batch)))}


__all__ = ["MAX_ROWS", "all_datasets", "all_jobs", "all_runs", "all_versions",
           "column_lineage_of", "dataset_tags", "events_page", "jobs_named", "put_tag",
           "record_column_lineage", "run_edges", "run_facet_events", "runs_by_id", "runs_page",
           "tag_dataset", "tags", "versions_page"]

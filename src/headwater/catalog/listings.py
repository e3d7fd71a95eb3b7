"""Set-based read queries for listings (the server's pages and JSON) that the Python API answers
one row at a time.

Why in ``catalog/``: queries live in one layer (ADR 0004); the server's routes call these (this
was ``server/queries.py``). Why set-based: ``Catalog.datasets()`` issues a few queries per
dataset, fine for a CLI listing and too slow for a page of thousands under 200 concurrent
readers. These are a handful of set-based queries per page (latest versions, counts, aliases,
producing jobs), read-only, on the same models.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session, aliased

from headwater.catalog.models import (
    Alias,
    Dataset,
    Job,
    Namespace,
    OpenLineageDataset,
    OpenLineageEvent,
    Report,
    Run,
    RunInput,
    RunOutput,
    Version,
)
from headwater.catalog.repo import current_annotation
from headwater.catalog.reports import reports_of
from headwater.catalog.status import retracted_aliases, retracted_ids


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def namespaces(s: Session) -> list[dict[str, Any]]:
    ds_counts = dict(s.execute(select(Dataset.namespace_id, func.count())
                               .group_by(Dataset.namespace_id)).all())
    job_counts = dict(s.execute(select(Job.namespace_id, func.count())
                                .group_by(Job.namespace_id)).all())
    return [
        {"name": ns.name, "created_at": _iso(ns.created_at),
         "datasets": int(ds_counts.get(ns.id, 0)), "jobs": int(job_counts.get(ns.id, 0))}
        for ns in s.scalars(select(Namespace).order_by(Namespace.name)).all()
    ]


def _dataset_filter(q: Any, namespace: str | None, search: str | None,
                    type_: str | None, dataset_id: int | None = None) -> Any:
    if dataset_id is not None:
        q = q.where(Dataset.id == dataset_id)
    if namespace:
        q = q.where(Namespace.name == namespace)
    if type_:
        q = q.where(Dataset.type == type_)
    if search:
        needle = search.strip()
        if "/" in needle:
            ns_part, _, name_part = needle.partition("/")
            q = q.where(Namespace.name.contains(ns_part, autoescape=True),
                        Dataset.name.contains(name_part, autoescape=True))
        else:
            q = q.where(or_(Dataset.name.contains(needle, autoescape=True),
                            Namespace.name.contains(needle, autoescape=True)))
    return q


def dataset_summaries(
    s: Session, *, namespace: str | None = None, search: str | None = None,
    type_: str | None = None, limit: int = 100, offset: int = 0, dataset_id: int | None = None,
) -> tuple[int, list[dict[str, Any]]]:
    """A page of datasets with type, latest version, aliases and last producer."""
    base = select(Dataset.id).join(Namespace, Dataset.namespace_id == Namespace.id)
    base = _dataset_filter(base, namespace, search, type_, dataset_id)
    total = int(s.scalar(select(func.count()).select_from(base.subquery())) or 0)
    rows = s.execute(
        _dataset_filter(
            select(Dataset, Namespace.name).join(Namespace, Dataset.namespace_id == Namespace.id),
            namespace, search, type_, dataset_id,
        ).order_by(Namespace.name, Dataset.name).limit(limit).offset(offset)
    ).all()
    ids = [d.id for d, _ in rows]
    if not ids:
        return total, []
    # the latest version is number ``version_count`` (numbers are gap-free): one index lookup
    latest: dict[int, tuple[Version | None, int, str | None]] = {}
    producer_job = aliased(Job)
    for row, count, job_name, job_ns in s.execute(
        select(Version, Dataset.version_count, producer_job.name, Namespace.name)
        .join(Dataset, and_(Version.dataset_id == Dataset.id,
                            Version.number == Dataset.version_count))
        .outerjoin(Run, Version.run_id == Run.id)
        .outerjoin(producer_job, Run.job_id == producer_job.id)
        .outerjoin(Namespace, producer_job.namespace_id == Namespace.id)
        .where(Dataset.id.in_(ids))
    ).all():
        latest[row.dataset_id] = (row, int(count), f"{job_ns}/{job_name}" if job_name else None)
    aliases: dict[int, dict[str, int]] = {i: {} for i in ids}
    for ds_id, name, number in s.execute(
        select(Alias.dataset_id, Alias.name, Version.number)
        .join(Version, Alias.version_id == Version.id)
        .where(Alias.dataset_id.in_(ids)).order_by(Alias.name)
    ).all():
        aliases[ds_id][name] = number
    flagged = retracted_aliases(s, ids)
    out = []
    for d, ns_name in rows:
        v, count, producer = latest.get(d.id, (None, 0, None))
        out.append({
            "namespace": ns_name, "name": d.name, "full_name": f"{ns_name}/{d.name}",
            "type": d.type, "description": d.description, "created_at": _iso(d.created_at),
            "versions": count,
            "latest": None if v is None else {
                "number": v.number, "digest": v.digest, "kind": v.kind, "rows": v.row_count,
                "size": v.size, "created_at": _iso(v.created_at), "run_id": v.run_id},
            "aliases": aliases[d.id],
            #: aliases pointing at a retracted version (docs/retract-status.md)
            "retracted_aliases": sorted(a for i, a in flagged if i == d.id),
            "last_producer": producer,
        })
    return total, out


def dataset_summary(s: Session, dataset_id: int) -> dict[str, Any]:
    return dataset_summaries(s, dataset_id=dataset_id, limit=1)[1][0]


def version_rows(s: Session, dataset_id: int, *, limit: int, offset: int,
                 newest_first: bool = True) -> list[dict[str, Any]]:
    """The versions table of a dataset: numbers, digests, sizes, producing runs, aliases."""
    order = Version.number.desc() if newest_first else Version.number
    rows = s.execute(
        select(Version, Job.name, Namespace.name)
        .outerjoin(Run, Version.run_id == Run.id)
        .outerjoin(Job, Run.job_id == Job.id)
        .outerjoin(Namespace, Job.namespace_id == Namespace.id)
        .where(Version.dataset_id == dataset_id)
        .order_by(order).limit(limit).offset(offset)
    ).all()
    ids = [v.id for v, _, _ in rows]
    aliases: dict[int, list[str]] = {i: [] for i in ids}
    for vid, name in s.execute(select(Alias.version_id, Alias.name)
                               .where(Alias.version_id.in_(ids)).order_by(Alias.name)).all():
        aliases[vid].append(name)
    retracted = retracted_ids(s, ids)
    reports: dict[int, int] = dict(s.execute(
        select(Report.version_id, func.count()).where(Report.version_id.in_(ids))
        .group_by(Report.version_id)).all()) if ids else {}
    return [version_row(v, job=f"{ns}/{job}" if job else None, aliases=aliases[v.id],
                        reports=int(reports.get(v.id, 0))) | {"retracted": v.id in retracted}
            for v, job, ns in rows]


def version_row(v: Version, *, job: str | None, aliases: Sequence[str],
                reports: int = 0) -> dict[str, Any]:
    ds = v.dataset
    return {
        "ref": f"{ds.namespace.name}/{ds.name}@{v.number}",
        "dataset": f"{ds.namespace.name}/{ds.name}", "number": v.number, "digest": v.digest,
        "kind": v.kind, "size": v.size, "file_count": v.file_count, "rows": v.row_count,
        "label": v.label, "created_at": _iso(v.created_at), "run_id": v.run_id,
        "producer": job, "aliases": list(aliases), "stats": v.stats or {},
        "metadata": v.meta or {}, "state": v.state, "reports": reports,
    }


def annotation(s: Session, version_id: int) -> dict[str, Any] | None:
    row = current_annotation(s, version_id)
    if row is None:
        return None
    return {"description": row.description, "properties": row.properties or {},
            "updated_at": _iso(row.created_at), "actor": row.actor}


def report_rows(s: Session, version_id: int) -> list[dict[str, Any]]:
    """Reports logged with a version, newest first (read from the table; payloads stay in the
    store and are served by ``/reports/{id}/payload``)."""
    return [
        {"id": r.id, "name": r.name, "kind": r.kind, "media_type": r.media_type,
         "size": r.size, "digest": r.digest, "body": r.body or {},
         "created_at": _iso(r.created_at), "run_id": r.run_id,
         "has_payload": bool(r.digest and r.store_url)}
        for r in reports_of(s, version_id)
    ]


def version_kinds(s: Session, digests: Sequence[str]) -> dict[str, str]:
    """``digest -> kind`` of the versions with these root digests (the first 5,000 asked)."""
    return dict(s.execute(select(Version.digest, Version.kind)
                          .where(Version.digest.in_(list(digests)[:5000]))).all())


def run_page(
    s: Session, *, job: str | None, namespace: str | None, state: str | None, limit: int,
    offset: int, count_cap: int,
) -> tuple[int, Sequence[Run], dict[str, dict[str, int]]]:
    """A page of runs, newest first: ``(total, runs, {run id: input/output counts})``. The
    total is counted up to ``count_cap + 1`` only: an exact count of millions of runs costs
    more than the page."""
    q = select(Run.id)
    if job or namespace:
        q = q.join(Job, Run.job_id == Job.id)
    if namespace:
        q = q.join(Namespace, Job.namespace_id == Namespace.id).where(
            Namespace.name == namespace)
    if job:
        q = q.where(Job.name == job)
    if state:
        q = q.where(Run.state == state.upper())
    total = int(s.scalar(select(func.count()).select_from(
        q.limit(count_cap + 1).subquery())) or 0)
    page = q.order_by(Run.started_at.desc(), Run.id.desc()).limit(limit).offset(offset)
    runs = s.scalars(select(Run).where(Run.id.in_(page.scalar_subquery()))
                     .order_by(Run.started_at.desc(), Run.id.desc())).all()
    ids = [r.id for r in runs]
    counts: dict[str, dict[str, int]] = {i: {"inputs": 0, "outputs": 0} for i in ids}
    for key, model in (("inputs", RunInput), ("outputs", RunOutput)):
        for rid, n in s.execute(select(model.run_id, func.count())
                                .where(model.run_id.in_(ids)).group_by(model.run_id)):
            counts[rid][key] = int(n)
    return total, runs, counts


def run_edges(s: Session, run_id: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for key, model in (("inputs", RunInput), ("outputs", RunOutput)):
        rows = s.execute(select(Version, model).join(model, model.version_id == Version.id)
                         .where(model.run_id == run_id).order_by(Version.id)).all()
        out[key] = [
            {"ref": f"{v.dataset.namespace.name}/{v.dataset.name}@{v.number}",
             "dataset": f"{v.dataset.namespace.name}/{v.dataset.name}", "number": v.number,
             "digest": v.digest, "kind": v.kind, "rows": v.row_count, "size": v.size,
             **({"created": edge.created} if isinstance(edge, RunOutput) else {})}
            for v, edge in rows
        ]
    return out


def run_events(s: Session, run_id: str) -> list[dict[str, Any]]:
    return [
        {"event_type": e.event_type, "event_time": _iso(e.event_time), "producer": e.producer,
         "received_at": _iso(e.received_at), "openlineage_run_id": e.ol_run_id}
        for e in s.scalars(select(OpenLineageEvent).where(OpenLineageEvent.run_id == run_id)
                           .order_by(OpenLineageEvent.id).limit(200)).all()
    ]


def openlineage_names(s: Session, dataset_id: int) -> list[dict[str, str]]:
    return [{"namespace": m.namespace, "name": m.name}
            for m in s.scalars(select(OpenLineageDataset)
                               .where(OpenLineageDataset.dataset_id == dataset_id)
                               .order_by(OpenLineageDataset.id).limit(20)).all()]


__all__ = [
    "annotation",
    "dataset_summaries",
    "dataset_summary",
    "namespaces",
    "openlineage_names",
    "report_rows",
    "run_edges",
    "run_events",
    "run_page",
    "version_kinds",
    "version_row",
    "version_rows",
]

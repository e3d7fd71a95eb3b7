"""External versions (recorded from OpenLineage), the ``ol_*`` rows of ingestion, and the
rule that decides which datasets are Headwater's own (native).

Why in ``catalog/``: the server's ingestion (``headwater.server.ingest``) decides what an event
means; the queries that read and move these rows are catalog queries and live here, beside the
service that creates the versions (ADR 0004). Functions take an open session and never commit.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from headwater.catalog.models import (
    ColumnLineage,
    Dataset,
    OpenLineageDataset,
    OpenLineageEvent,
    OpenLineageRun,
    RunInput,
    RunOutput,
    Version,
)

#: ``Version.kind`` of a version recorded from OpenLineage: no objects in any store of ours.
EXTERNAL = "external"
#: ``Dataset.meta["origin"]`` of datasets created by ingestion (they may take external versions).
ORIGIN = "openlineage"


def is_native(s: Session, ds: Dataset) -> bool:
    """Whether ``ds`` is Headwater's own: it holds a version that is not external, or ingestion
    did not create it. Datasets ingested before the ``origin`` mark existed hold only external
    versions, so they stay foreign."""
    if s.scalar(select(Version.id).where(Version.dataset_id == ds.id, Version.kind != EXTERNAL)
                .limit(1)) is not None:
        return True
    if (ds.meta or {}).get("origin") == ORIGIN:
        return False
    return s.scalar(select(Version.id).where(Version.dataset_id == ds.id).limit(1)) is None


def version_by_digest(s: Session, dataset_id: int, digest: str) -> Version | None:
    """The version of dataset ``dataset_id`` with root digest ``digest`` (ingestion keeps one
    per digest)."""
    return s.scalar(select(Version).where(Version.dataset_id == dataset_id,
                                          Version.digest == digest).limit(1))


def version_by_number(s: Session, dataset_id: int, number: int) -> Version | None:
    return s.scalar(select(Version).where(Version.dataset_id == dataset_id,
                                          Version.number == number))


def event_seen(s: Session, event_id: str) -> bool:
    """Whether the event ``event_id`` was ingested already (redeliveries change nothing)."""
    return s.scalar(select(OpenLineageEvent.id)
                    .where(OpenLineageEvent.event_id == event_id)) is not None


def mapped_dataset(s: Session, key: str) -> OpenLineageDataset | None:
    """The ``ol_datasets`` row of the OpenLineage dataset key ``key``."""
    return s.scalar(select(OpenLineageDataset).where(OpenLineageDataset.key == key))


def fold_run(s: Session, src: str, dst: str) -> None:
    """Move every edge, version, event and mapping of run ``src`` onto run ``dst`` (the caller
    deletes ``src``): an edge ``dst`` already has is kept once."""
    for inp in s.scalars(select(RunInput).where(RunInput.run_id == src)).all():
        if s.get(RunInput, (dst, inp.version_id)) is None:
            s.add(RunInput(run_id=dst, version_id=inp.version_id))
    for out in s.scalars(select(RunOutput).where(RunOutput.run_id == src)).all():
        if s.get(RunOutput, (dst, out.version_id)) is None:
            s.add(RunOutput(run_id=dst, version_id=out.version_id, created=out.created))
    s.flush()
    s.execute(delete(RunInput).where(RunInput.run_id == src))
    s.execute(delete(RunOutput).where(RunOutput.run_id == src))
    s.execute(update(Version).where(Version.run_id == src).values(run_id=dst))
    s.execute(update(OpenLineageEvent).where(OpenLineageEvent.run_id == src).values(run_id=dst))
    s.execute(update(OpenLineageRun).where(OpenLineageRun.run_id == src).values(run_id=dst))
    s.execute(update(ColumnLineage).where(ColumnLineage.run_id == src).values(run_id=dst))


def delete_events_before(s: Session, cutoff: datetime) -> int:
    """Delete the ingested events received before ``cutoff`` (their retention); how many."""
    result = s.execute(delete(OpenLineageEvent).where(OpenLineageEvent.received_at < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)


__all__ = ["EXTERNAL", "ORIGIN", "delete_events_before", "event_seen", "fold_run", "is_native",
           "mapped_dataset", "version_by_digest", "version_by_number"]

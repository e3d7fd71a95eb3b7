"""ORM models of the catalog (ML Metadata's artifact/execution/event model, renamed).

``Version`` is MLMD's artifact, ``Run`` its execution, ``RunInput``/``RunOutput`` its events.
Versions are immutable once inserted: only aliases move, and they keep a history of moves.
Every schema change goes through an Alembic migration in ``migrations/versions``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

JSONType = JSON().with_variant(JSONB(), "postgresql")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Namespace(Base):
    __tablename__ = "namespaces"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Dataset(Base):
    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("namespace_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    namespace_id: Mapped[int] = mapped_column(ForeignKey("namespaces.id"))
    name: Mapped[str] = mapped_column(String(128))
    type: Mapped[str] = mapped_column(String(32), default="raw_data")
    description: Mapped[str | None] = mapped_column(Text, default=None)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    #: Highest version number handed out. Incremented in the transaction that inserts the
    #: version, under a row lock, so numbers are gap-free even with concurrent writers.
    version_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    namespace: Mapped[Namespace] = relationship(lazy="joined")


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (UniqueConstraint("namespace_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    namespace_id: Mapped[int] = mapped_column(ForeignKey("namespaces.id"))
    name: Mapped[str] = mapped_column(String(256))
    description: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    namespace: Mapped[Namespace] = relationship(lazy="joined")


class Run(Base):
    __tablename__ = "runs"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # UUIDv7
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), index=True)
    state: Mapped[str] = mapped_column(String(16), default="RUNNING")
    params: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    code_fingerprint: Mapped[str | None] = mapped_column(String(128), default=None)
    cache_key: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    #: ``{"name": "airflow", "version": "3.3.2", "dag_id": ..., "task_id": ..., ...}``
    engine: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    #: Parent run for OpenLineage's ParentRunFacet: ``{"namespace", "job", "run_id"}``.
    parent: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=None)
    nominal_time: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    #: Run whose outputs this run reused instead of recomputing (skip-if-unchanged).
    reused_run_id: Mapped[str | None] = mapped_column(String(36), default=None)
    #: Owner of a RUNNING run (migration 0009): host name, pid, and a token naming the process
    #: on its machine (boot id, pid namespace, start time) so a reused pid is not mistaken for it.
    owner_host: Mapped[str | None] = mapped_column(String(255), default=None)
    owner_pid: Mapped[int | None] = mapped_column(Integer, default=None)
    owner_token: Mapped[str | None] = mapped_column(String(128), default=None)
    #: Last heartbeat of the owning process, and until when that heartbeat vouches for the run:
    #: a RUNNING run past ``lease_until`` is reaped (catalog/leases.py).
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    #: The earlier try this run retries (an Airflow try N+1 names the dead try N it replaced).
    retry_of: Mapped[str | None] = mapped_column(String(36), default=None)

    job: Mapped[Job] = relationship(lazy="joined")


class Version(Base):
    __tablename__ = "versions"
    __table_args__ = (
        UniqueConstraint("dataset_id", "number"),
        UniqueConstraint("dataset_id", "label", name="uq_versions_dataset_id_label"),
        Index("ix_versions_digest", "digest"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"))
    number: Mapped[int] = mapped_column(Integer)
    digest: Mapped[str] = mapped_column(String(64))
    store_url: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16), default="files")  # files | table | reference
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    file_count: Mapped[int] = mapped_column(Integer, default=0)
    row_count: Mapped[int | None] = mapped_column(BigInteger, default=None)
    schema: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType, default=None)
    table_fingerprint: Mapped[str | None] = mapped_column(String(64), default=None)
    stats: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    state: Mapped[str] = mapped_column(String(16), default="committed")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    run_id: Mapped[str | None] = mapped_column(ForeignKey("runs.id"), default=None, index=True)
    #: Immutable human label, unique in the dataset (``1.0-kaggle``); usable as a reference.
    label: Mapped[str | None] = mapped_column(String(128), default=None)

    dataset: Mapped[Dataset] = relationship(lazy="joined")


class VersionParent(Base):
    """Explicit parent versions (a merge of several versions has several)."""

    __tablename__ = "version_parents"
    child_id: Mapped[int] = mapped_column(ForeignKey("versions.id"), primary_key=True)
    parent_id: Mapped[int] = mapped_column(ForeignKey("versions.id"), primary_key=True, index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)


class Alias(Base):
    __tablename__ = "aliases"
    __table_args__ = (UniqueConstraint("dataset_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"))
    name: Mapped[str] = mapped_column(String(64))
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"), index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AliasMove(Base):
    """History of alias moves; ``from_version_id`` is None when the alias was created."""

    __tablename__ = "alias_moves"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    from_version_id: Mapped[int | None] = mapped_column(ForeignKey("versions.id"), default=None)
    to_version_id: Mapped[int | None] = mapped_column(ForeignKey("versions.id"), default=None)
    moved_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str | None] = mapped_column(String(256), default=None)


class RunInput(Base):
    __tablename__ = "run_inputs"
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"), primary_key=True, index=True)
    #: The reference the step named (``ns/name@production``) and its selector (migration 0010):
    #: ``status`` re-resolves a moving selector (an alias, ``latest``) to see if it moved since.
    ref: Mapped[str | None] = mapped_column(String(400), default=None)
    selector: Mapped[str | None] = mapped_column(String(128), default=None)
    #: A state input (the step's own previous output): never "moved", never propagates staleness.
    is_state: Mapped[bool | None] = mapped_column(Boolean, default=None)


class VersionRetraction(Base):
    """One retract or unretract of a version: who, when, why. Rows are only ever appended; the
    newest row says whether the version is retracted now (docs/retract-status.md)."""

    __tablename__ = "version_retractions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"), index=True)
    action: Mapped[str] = mapped_column(String(16))  # retract | unretract
    actor: Mapped[str | None] = mapped_column(String(256), default=None)
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RunOutput(Base):
    __tablename__ = "run_outputs"
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"), primary_key=True, index=True)
    #: False when the run's output was identical to the dataset's latest version (deduplicated)
    created: Mapped[bool] = mapped_column(Boolean, default=True)


class LineageOutbox(Base):
    """OpenLineage events waiting for (or past) delivery: the transactional outbox.

    A row is inserted in the same transaction as the run state change it describes, so an event
    exists exactly when its run record does. Delivery happens after commit and only updates the
    delivery columns; ``event`` is never rewritten, so a redelivered event is the same event.
    """

    __tablename__ = "lineage_outbox"
    __table_args__ = (Index("ix_lineage_outbox_state_next_attempt_at", "state", "next_attempt_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: Stable identity of the event (UUIDv5 of run id, event type and event time): the same
    #: value every time the event is delivered, so consumers and operators can deduplicate.
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    run_id: Mapped[str] = mapped_column(String(36), index=True)
    event_type: Mapped[str] = mapped_column(String(16))  # START | COMPLETE | FAIL
    event: Mapped[dict[str, Any]] = mapped_column(JSONType)
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending|delivered|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Set while one emitter is delivering the row, so concurrent emitters skip it.
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    #: ``host:pid:token`` of the process holding the claim: a claim of a process that is gone
    #: (same host, pid not alive) is taken over at once by ``headwater lineage flush``.
    claimed_by: Mapped[str | None] = mapped_column(String(200), default=None)


class LineageBackoff(Base):
    """Backoff shared by every process that delivers to one OpenLineage transport.

    Each CLI command and Airflow task is a new process; an in-process circuit breaker would let
    every one of them pay the dead backend's timeout. The row says when the next attempt is due.
    """

    __tablename__ = "lineage_backoff"
    #: fingerprint of the OpenLineage configuration the delivering process sees
    transport_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: what openlineage-python resolved it to (``http http://…``), for messages
    transport: Mapped[str | None] = mapped_column(Text, default=None)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class VersionAnnotation(Base):
    """Description (Markdown) and properties of a version, editable with a history: every edit
    is a new row; the newest row is the current state. The version's content never changes."""

    __tablename__ = "version_annotations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"), index=True)
    description: Mapped[str | None] = mapped_column(Text, default=None)
    properties: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str | None] = mapped_column(String(256), default=None)


class Report(Base):
    """A table, histogram, figure, samples or scalar logged with a version.

    The payload is a content-addressed object in ``store_url``; this row says what it is. Adding a
    report never changes the version's digest; logging a name again keeps both (newest first).
    """

    __tablename__ = "reports"
    __table_args__ = (Index("ix_reports_version_id_name", "version_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"))
    run_id: Mapped[str | None] = mapped_column(ForeignKey("runs.id"), default=None)
    name: Mapped[str] = mapped_column(String(256))
    kind: Mapped[str] = mapped_column(String(16))  # table|histogram|figure|samples|scalar
    digest: Mapped[str | None] = mapped_column(String(64), default=None)
    store_url: Mapped[str | None] = mapped_column(Text, default=None)
    media_type: Mapped[str | None] = mapped_column(String(128), default=None)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    #: small JSON part: axis titles, bins/counts, captions, the scalar value, a Vega-Lite spec…
    body: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OpenLineageDataset(Base):
    """Which catalog dataset an OpenLineage dataset ``(namespace, name)`` is (server ingestion).

    Our own events name a dataset by its store path and carry the logical name in a Symlinks
    facet; foreign producers' datasets get a catalog name derived from theirs. The mapping is
    recorded once, so later events land on the same dataset even if the derivation rule changes
    or two foreign names would derive the same catalog name.
    """

    __tablename__ = "ol_datasets"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: sha256 hex of ``namespace + "\\0" + name``: a fixed-width unique key for names of any length
    key: Mapped[str] = mapped_column(String(64), unique=True)
    namespace: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OpenLineageRun(Base):
    """The catalog run an OpenLineage ``run.runId`` belongs to.

    Usually the same id; an Airflow task's events carry Airflow's run id plus our provenance
    facet naming the catalog run, and both then lead to that one run.
    """

    __tablename__ = "ol_runs"
    ol_run_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OpenLineageEvent(Base):
    """Every OpenLineage event the server ingested, once: ``event_id`` deduplicates redeliveries.

    ``event_id`` is the UUIDv5 of ``runId|eventType|eventTime`` (as the outbox computes it), so an
    at-least-once producer sending an event twice changes nothing the second time.
    """

    __tablename__ = "ol_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    ol_run_id: Mapped[str | None] = mapped_column(String(36), default=None, index=True)
    run_id: Mapped[str | None] = mapped_column(ForeignKey("runs.id"), default=None, index=True)
    event_type: Mapped[str] = mapped_column(String(16))
    event_time: Mapped[datetime] = mapped_column(UTCDateTime)
    producer: Mapped[str | None] = mapped_column(Text, default=None)
    #: Indexed (migration 0006): the server prunes events older than its retention.
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    event: Mapped[dict[str, Any]] = mapped_column(JSONType)


class ColumnLineage(Base):
    """The ``columnLineage`` facet a run gave one output version (migration 0011): which input
    fields each output field came from. Sent by producers, or emitted for our own steps."""

    __tablename__ = "column_lineage"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"), index=True)
    #: The run that wrote it (not a foreign key: placeholder runs are folded, see fold_run).
    run_id: Mapped[str | None] = mapped_column(String(36), default=None, index=True)
    #: The facet's ``fields``: ``{out_field: {"inputFields": [{namespace, name, field,
    #: transformations}], "transformationDescription", "transformationType"}}``
    fields: Mapped[dict[str, Any]] = mapped_column(JSONType)
    producer: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Tag(Base):
    """A named tag (Marquez's ``/tags``), put on datasets and fields through ``DatasetTag``."""

    __tablename__ = "tags"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(256), unique=True)
    description: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DatasetTag(Base):
    """A tag on a dataset (``field`` empty) or on one of its fields."""

    __tablename__ = "dataset_tags"
    __table_args__ = (UniqueConstraint("dataset_id", "field", "tag"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"))
    field: Mapped[str] = mapped_column(String(512), default="")
    tag: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class GcEpoch(Base):
    """How many batches ``gc`` has deleted from one store (ADR 0001, "gc and open runs").

    Bumped in the transaction holding gc's exclusive lock while it deletes; a commit that reads a
    different value than when its run started re-checks its objects before recording.
    """

    __tablename__ = "gc_epochs"
    store_url: Mapped[str] = mapped_column(String(1000), primary_key=True)
    epoch: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


#: Newest runs first (the server's run list; ingested runs have random UUIDs, so id order is not
#: time order). Declared here, next to the server's tables, by migration 0004.
Index("ix_runs_started_at", Run.started_at, Run.id)
#: The reaper's query: RUNNING runs whose lease has expired (migration 0009).
Index("ix_runs_state_lease_until", Run.state, Run.lease_until)

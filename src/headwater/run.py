"""One step execution: resolve inputs → run → stage outputs → commit → record provenance → lineage.

This is the only module that coordinates the catalog, the store and lineage. The commit of a run
is a single database transaction: the versions it created, its lineage edges, its state change
and its lineage events become visible together, or (if anything fails) not at all.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from headwater import _failpoints, reaper
from headwater.catalog import gclock, leases, repo, stores
from headwater.catalog.models import Run, RunInput, RunOutput, Version, utcnow
from headwater.catalog.service import NewVersion
from headwater.errors import HeadwaterError, InvalidArgument, RunFailed
from headwater.fingerprint import cache_key, fingerprint_code
from headwater.lineage.base import RunEvent
from headwater.outputs import OutputSpec
from headwater.refs import DatasetName, apply_pins, check_label, check_name, parse_pins
from headwater.reporting import (
    StoredReport,
    insert_report,
    report_digests,
    store_payload,
    write_annotation,
)
from headwater.reports import build_payload
from headwater.staging import (
    KnownVersions,
    Staged,
    profile_manifest,
    publish_manifest,
    restage,
    stage,
)
from headwater.store.manifest import Manifest, ManifestEntry
from headwater.store.walk import DEFAULT_FOLLOW
from headwater.version import VersionInfo

if TYPE_CHECKING:
    from headwater.api import Catalog
    from headwater.tables.profile import TableProfile
    from headwater.version import Version as VersionHandle

RUNNING, COMPLETED, FAILED = "RUNNING", "COMPLETED", "FAILED"


def new_run_id() -> str:
    """A UUIDv7: time-ordered, so run ids sort by start time in every index."""
    import uuid6

    return str(uuid6.uuid7())


@dataclass(frozen=True)
class RunInfo:
    id: str
    namespace: str
    job: str
    state: str
    params: dict[str, Any]
    code_fingerprint: str | None
    cache_key: str | None
    engine: dict[str, Any]
    started_at: datetime
    ended_at: datetime | None
    error: str | None
    reused_run_id: str | None
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    #: the earlier attempt of the same engine task this run retried (see ``Catalog.run``)
    retry_of: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["started_at"] = self.started_at.isoformat()
        d["ended_at"] = self.ended_at.isoformat() if self.ended_at else None
        d["inputs"], d["outputs"] = list(self.inputs), list(self.outputs)
        return d


@dataclass
class RunContext:
    """``with catalog.run(...) as run:`` — see :meth:`headwater.api.Catalog.run`."""

    catalog: Catalog
    job: str
    namespace: str
    params: dict[str, Any]
    input_refs: Sequence[str]
    code_fingerprint: str | None
    engine: dict[str, Any]
    parent: dict[str, Any] | None
    nominal_time: datetime | None
    job_type: str | None = None
    #: Inputs read as the step's own state (e.g. the previous ID mapping, for stable IDs):
    #: recorded as lineage inputs, optional (skipped if absent), not part of the cache key.
    state_refs: Sequence[str] = ()
    id: str = field(default_factory=new_run_id)
    inputs: list[VersionHandle] = field(default_factory=list)
    state_inputs: list[VersionHandle] = field(default_factory=list)
    outputs: list[VersionHandle] = field(default_factory=list)
    cache_key: str | None = None
    state: str = "NEW"
    _staged: list[Staged] = field(default_factory=list)
    _reports: list[tuple[str, StoredReport]] = field(default_factory=list)
    _reuse: RunInfo | None = None
    #: the store's gc epoch when the run started (see ``_objects_still_there``)
    _gc_epoch: int = 0
    #: engine ids shared by every attempt of this task (see ``Catalog.run``'s ``attempt``)
    attempt: Mapping[str, Any] | None = None
    _heartbeat: leases.Heartbeat | None = None
    #: use retracted inputs anyway (docs/retract-status.md); refused with RetractedInput if not
    allow_retracted: bool = False
    #: ``{"ns/name": "ns/name@N"}``: inputs naming a pinned dataset read the pinned version
    #: instead (a rebuild's substitution; :func:`headwater.refs.parse_pins`)
    pins: Mapping[str, str] = field(default_factory=dict)

    # -- lifecycle ------------------------------------------------------------------------------
    def __enter__(self) -> RunContext:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.state != RUNNING:  # already committed (e.g. by reuse()) or failed
            return
        if exc is None:
            self.commit()
        else:
            self.fail(exc)

    def start(self) -> None:
        check_name(self.namespace, what="namespace")
        cat = self.catalog
        with cat.session() as s:
            svc = cat.service(s)
            self.input_refs = apply_pins(self.input_refs, self.pins,
                                         default_namespace=self.namespace)
            resolved = svc.resolve_inputs(self.input_refs, allow_retracted=self.allow_retracted)
            self.inputs = [cat.handle(svc.version_info(v)) for v in resolved]
            state_rows, state_used = [], []
            for ref in self.state_refs:
                try:
                    state_rows.append(svc.resolve(ref))
                    state_used.append(ref)
                except LookupError:  # state that does not exist yet (first run): none
                    continue
            self.state_inputs = [cat.handle(svc.version_info(v)) for v in state_rows]
            self.cache_key = cache_key(
                job=f"{self.namespace}/{self.job}",
                code_fingerprint=self.code_fingerprint,
                params=self.params,
                inputs=[(v.name, v.digest) for v in self.inputs],
            )
            resolved = resolved + state_rows
            job = repo.ensure_job(s, self.namespace, self.job)
            s.add(
                Run(
                    id=self.id,
                    job_id=job.id,
                    state=RUNNING,
                    params=self.params,
                    code_fingerprint=self.code_fingerprint,
                    cache_key=self.cache_key,
                    engine=self.engine,
                    parent=self.parent,
                    nominal_time=self.nominal_time,
                    started_at=utcnow(),
                    **leases.lease_columns(leases.this_process(),
                                           cat.settings.run_lease_seconds, utcnow()),
                )
            )
            s.flush()
            if self.attempt:
                reaper.supersede(cat, s, s.get_one(Run, self.id), self.attempt)
            self._gc_epoch = gclock.read_epoch(s, cat.store.url)
            svc.record_inputs(self.id, list(zip(self.input_refs, resolved[:len(self.input_refs)],
                                                strict=True)),
                              list(zip(state_used, state_rows, strict=True)))
            cat.recorder.record(s, self._event("START", s))
        self.state = RUNNING
        self._heartbeat = leases.Heartbeat(cat.engine, self.id,
                                           interval=cat.settings.run_heartbeat_seconds,
                                           lease=cat.settings.run_lease_seconds).start()

    def _event(self, state: str, session: Session, *, error: str | None = None) -> RunEvent:
        run = session.get(Run, self.id)
        return RunEvent(
            run_id=self.id,
            job_namespace=self.namespace,
            job_name=self.job,
            state=state,
            event_time=utcnow(),
            params=self.params,
            code_fingerprint=self.code_fingerprint,
            cache_key=self.cache_key,
            engine=self.engine,
            parent=self.parent,
            nominal_time=self.nominal_time,
            inputs=tuple(v.info() for v in [*self.inputs, *self.state_inputs]),
            outputs=tuple(v.info() for v in self.outputs),
            error=error,
            job_type=self.job_type,
            source_location=(run.engine or {}).get("source_location") if run else None,
        )

    # -- outputs --------------------------------------------------------------------------------
    def log_output(
        self,
        data: Any,
        *,
        name: str,
        type: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        stats: Mapping[str, Any] | None = None,
        parents: Iterable[str | VersionInfo] = (),
        reference: bool = False,
        key: Sequence[str] | None = None,
        label: str | None = None,
        description: str | None = None,
        properties: Mapping[str, Any] | None = None,
        follow_symlinks: str = DEFAULT_FOLLOW,
    ) -> Staged:
        """Stage ``data`` as the next version of ``name``; it becomes visible when the run commits.

        ``data`` is a local path (file or directory), a ``file://``/``s3://``/``gs://`` URI, an
        Arrow table or a pandas DataFrame. Table files (Parquet, CSV, JSONL, Arrow) are profiled:
        schema, row count, null counts and a layout-independent fingerprint. In a directory,
        symbolic links to files inside it are followed by default (``follow_symlinks``: ``none``,
        ``inside``, ``all``); links left out and special files are named in a warning.
        """
        spec = OutputSpec(name, type=type, key=key, metadata=metadata or {}, stats=stats or {},
                          parents=tuple(parents), label=label, description=description,
                          properties=properties)
        return self.log_spec(data, spec, reference=reference, follow_symlinks=follow_symlinks)

    def log_spec(
        self, data: Any, spec: OutputSpec, *, reference: bool = False,
        follow_symlinks: str = DEFAULT_FOLLOW,
    ) -> Staged:
        """:meth:`log_output` for an output described by ``spec`` (what adapters build)."""
        self._check_running()
        cat = self.catalog
        ds_name = cat.dataset_name(spec.name)
        snap, profile = stage(
            cat.store,
            data,
            source_options=cat.settings.store_options,
            reference=reference,
            progress=cat.progress,
            known=self._known_versions(),
            follow_symlinks=follow_symlinks,
        )
        return self._add(snap.manifest, profile, spec, name=str(ds_name), reference=reference,
                         new_objects=snap.new_objects, new_bytes=snap.new_bytes,
                         unconfirmed=snap.unconfirmed, committed=snap.known,
                         source=data, follow_symlinks=follow_symlinks)

    def _known_versions(self) -> KnownVersions:
        """Lookups of versions already committed in the catalog's store (see ``KnownVersions``)."""
        cat = self.catalog
        url = cat.store.url
        committed = (stores.in_store(Version.store_url, url, cat.settings.catalog_url),
                     Version.state == "committed",
                     Version.kind != "reference")

        def manifests(digests: set[str]) -> set[str]:
            with cat.session() as s:
                return set(s.scalars(select(Version.digest).where(
                    Version.digest.in_(sorted(digests)), *committed)))

        def profile(digest: str) -> TableProfile | None:
            with cat.session() as s:
                v = s.scalars(select(Version).where(Version.digest == digest, *committed)
                              .order_by(Version.id.desc()).limit(1)).first()
                if v is None or v.kind != "table":
                    return None
                from headwater.tables.profile import TableProfile

                return TableProfile.recorded(rows=v.row_count, schema=v.schema, stats=v.stats,
                                             fingerprint=v.table_fingerprint)

        return KnownVersions(manifests=manifests, profile=profile)

    def log_objects(
        self,
        entries: Iterable[ManifestEntry],
        *,
        name: str,
        type: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        stats: Mapping[str, Any] | None = None,
        parents: Iterable[str | VersionInfo] = (),
        key: Sequence[str] | None = None,
        profile: TableProfile | None = None,
        label: str | None = None,
    ) -> Staged:
        """Stage a version made of objects already written to the catalog's store.

        For distributed writers (Beam workers) that each upload their shard with
        ``ObjectStore.writer()`` and hand back ``ManifestEntry(path, digest, size)``: this builds
        the manifest, checks every object is present, and profiles table shards from the store
        unless a merged ``profile`` is given.
        """
        spec = OutputSpec(name, type=type, key=key, metadata=metadata or {}, stats=stats or {},
                          parents=tuple(parents), label=label)
        return self.log_objects_spec(entries, spec, profile=profile)

    def log_objects_spec(
        self, entries: Iterable[ManifestEntry], spec: OutputSpec, *,
        profile: TableProfile | None = None,
    ) -> Staged:
        """:meth:`log_objects` for an output described by ``spec`` (what adapters build)."""
        self._check_running()
        cat = self.catalog
        manifest = Manifest(entries)
        if profile is None:
            profile = profile_manifest(cat.store, manifest)
        return self._add(manifest, profile, spec, name=str(cat.dataset_name(spec.name)),
                         reference=False, new_objects=0, new_bytes=0)

    def _check_running(self) -> None:
        if self.state != RUNNING:
            raise RunFailed(
                f"run {self.id} is {self.state}; outputs can only be logged while it runs"
            )

    def _add(
        self, manifest: Manifest, profile: TableProfile | None, spec: OutputSpec, *, name: str,
        reference: bool, new_objects: int, new_bytes: int,
        unconfirmed: frozenset[str] | None = None, committed: bool = False,
        source: Any = None, follow_symlinks: str = DEFAULT_FOLLOW,
    ) -> Staged:
        cat = self.catalog
        if spec.label is not None:
            check_label(spec.label)
        parent_refs = tuple(cat.pin(p) for p in spec.parents)
        publish_manifest(cat.store, manifest, unconfirmed=unconfirmed, committed=committed)
        meta = dict(spec.metadata)
        if spec.key is not None:
            meta["key"] = list(spec.key)
        staged = Staged(
            dataset=name, type=spec.type, manifest=manifest, store_url=cat.store.url,
            profile=profile, stats=dict(spec.stats), metadata=meta, parents=parent_refs,
            reference=reference, new_objects=new_objects, new_bytes=new_bytes, label=spec.label,
            description=spec.description,
            properties=dict(spec.properties) if spec.properties else None,
            source=source, follow_symlinks=follow_symlinks,
        )
        self._staged.append(staged)
        return staged

    # -- reports --------------------------------------------------------------------------------
    def report(self, output: str, name: str, kind: str, data: Any = None, **options: Any) -> None:
        """Attach a report to the version this run is logging as ``output``.

        The payload is stored now; the report row is written with the version when the run
        commits (and discarded with it if the run fails). See :meth:`Catalog.report`.
        """
        self._check_running()
        target = str(self.catalog.dataset_name(output))
        if not any(st.dataset == target for st in self._staged):
            raise InvalidArgument(
                f"run {self.id} has not logged {target} yet: log_output it before reporting on it"
            )
        payload = build_payload(name, kind, data, **options)
        self._reports.append((target, store_payload(self.catalog.store, payload)))

    # -- skip-if-unchanged ----------------------------------------------------------------------
    def previous(self) -> RunInfo | None:
        """The latest committed run with this run's cache key whose outputs still exist."""
        return self.catalog.cached_run(self.cache_key, exclude=self.id)

    def reuse(self, previous: RunInfo) -> list[VersionHandle]:
        """Complete this run with ``previous``'s outputs instead of recomputing them."""
        self._reuse = previous
        self.commit()
        return self.outputs

    # -- commit / fail --------------------------------------------------------------------------
    def commit(self) -> None:
        if self.state != RUNNING:
            raise RunFailed(f"run {self.id} is {self.state}; it cannot be committed")
        cat = self.catalog
        try:
            with cat.session() as s:
                run = leases.lock_run(s, self.id)  # a reaper waits for this transaction
                if run is None:
                    raise RunFailed(f"run {self.id} vanished from the catalog")
                if run.state != RUNNING:
                    raise RunFailed(f"run {self.id} is {run.state}, nothing was committed: "
                                    f"{run.error or 'ended by another process'}")
                self._objects_still_there(s)
                svc = cat.service(s)
                rows: list[tuple[Version, bool]] = []
                if self._reuse is not None:
                    run.reused_run_id = self._reuse.id
                    for ref in self._reuse.outputs:
                        rows.append((svc.resolve(ref), False))
                for staged in self._staged:
                    rows.append(self._commit_staged(s, staged))
                for version, created in rows:
                    svc.record_output(self.id, version, created=created)
                by_dataset = {st.dataset: v.id for st, (v, _) in
                              zip(self._staged, rows[len(rows) - len(self._staged):], strict=True)}
                for dataset, stored in self._reports:
                    insert_report(s, by_dataset[dataset], stored, run_id=self.id)
                s.flush()
                self.outputs = [cat.handle(svc.version_info(v, created=c)) for v, c in rows]
                run.state, run.ended_at = COMPLETED, utcnow()
                cat.recorder.record(s, self._event("COMPLETE", s))
                _failpoints.hit("commit.before_db_commit")
        except BaseException as exc:
            self.fail(exc)
            raise
        finally:
            self._stop_heartbeat()
        self.state = COMPLETED

    def _stop_heartbeat(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None

    def _objects_still_there(self, s: Session) -> None:
        """Hold off ``gc`` until this transaction ends; if it deleted anything since the run
        started, check every staged object and write missing ones again from their source.

        Cheap when no gc ran (one shared lock, one row read); see ADR 0001, "gc and open runs".
        Re-staging happens inside the record transaction, under the lock, so what it writes
        cannot be taken before the version row names it.
        """
        cat = self.catalog
        gclock.hold_shared(s)
        if gclock.read_epoch(s, cat.store.url) == self._gc_epoch:
            return
        for staged in self._staged:
            store = cat.store_for(staged.store_url)
            wanted = {e.digest for e in staged.manifest if e.digest is not None}
            missing = store.missing(wanted | {staged.digest})
            if missing:
                restage(store, staged, missing, source_options=cat.settings.store_options,
                        progress=cat.progress)
        payloads = {d for _, r in self._reports for d in report_digests(r.body, r.digest)}
        gone = cat.store.missing(payloads) if payloads else set()
        if gone:
            raise RunFailed(
                f"{len(gone)} report payload object(s) of run {self.id} were deleted by "
                "`headwater gc` while the run was open; nothing was committed — run it again"
            )

    def _commit_staged(self, s: Session, staged: Staged) -> tuple[Version, bool]:
        """The version ``staged`` becomes (numbering, dedup, labels, parents: the catalog
        service's ``create_version``), plus what only a run adds: key columns, annotation."""
        ds = repo.ensure_dataset(
            s, DatasetName.parse(staged.dataset, default_namespace=""), type=staged.type,
            default_type="table" if staged.profile is not None else "raw_data",
        )
        prof = staged.profile
        stats = dict(staged.stats)
        if prof is not None:
            stats.update(prof.stats())
        if staged.reference:
            stats["reference"] = True
        new = NewVersion(
            digest=staged.digest,
            store_url=staged.store_url,
            kind=staged.kind,
            size=staged.manifest.total_size,
            file_count=len(staged.manifest),
            row_count=prof.rows if prof else None,
            schema=prof.schema if prof else None,
            table_fingerprint=prof.fingerprint if prof else None,
            stats=stats,
            meta=staged.metadata,
            label=staged.label,
            run_id=self.id,
        )
        # create_version locks the dataset first: the key below is set under that lock
        v, created = self.catalog.service(s).create_version(
            ds, new, parents=staged.parents, name=staged.dataset)
        if staged.metadata.get("key") and not ds.meta.get("key"):
            ds.meta = {**ds.meta, "key": staged.metadata["key"]}
        self._annotate(s, v.id, staged)
        return v, created

    def _annotate(self, s: Session, version_id: int, staged: Staged) -> None:
        if staged.description is not None or staged.properties:
            write_annotation(s, version_id, description=staged.description,
                             properties=staged.properties, actor=f"run:{self.id}")

    def fail(self, exc: BaseException) -> None:
        """Mark the run failed; nothing it staged becomes visible."""
        self.state = FAILED
        self._stop_heartbeat()
        message = f"{type(exc).__name__}: {exc}"
        trace = "".join(traceback.format_exception(exc))
        try:
            with self.catalog.session() as s:
                run = leases.lock_run(s, self.id)
                if run is None or run.state != RUNNING:  # reaped meanwhile: keep that verdict
                    return
                run.state, run.ended_at, run.error = FAILED, utcnow(), message
                self.outputs = []
                event = self._event("FAIL", s, error=trace)
                self.catalog.recorder.record(s, event)
        except HeadwaterError:
            raise
        except Exception as db_exc:  # the original error matters more; keep it primary
            exc.add_note(f"headwater: could not record run {self.id} as failed: {db_exc}")


def make_run(
    catalog: Catalog,
    job: str,
    *,
    params: Mapping[str, Any] | None,
    inputs: Iterable[str | VersionInfo],
    code: str | Callable[..., Any] | None,
    engine: Mapping[str, Any] | None,
    parent: Mapping[str, Any] | None,
    nominal_time: datetime | None,
    namespace: str | None,
    job_type: str | None,
    state_inputs: Iterable[str | VersionInfo] = (),
    attempt: Mapping[str, Any] | None = None,
    allow_retracted: bool = False,
    pins: Mapping[str, str] | str | None = None,
) -> RunContext:
    if not job or not isinstance(job, str):
        raise InvalidArgument("a run needs a job name, e.g. catalog.run(job='despam')")
    refs = [catalog.pin(i) if isinstance(i, VersionInfo) else i for i in inputs]
    return RunContext(
        catalog=catalog,
        job=job,
        namespace=namespace or catalog.settings.namespace,
        params=dict(params or {}),
        input_refs=refs,
        state_refs=[catalog.pin(i) if isinstance(i, VersionInfo) else i for i in state_inputs],
        code_fingerprint=fingerprint_code(code),
        engine=dict(engine or {}),
        parent=dict(parent) if parent else None,
        nominal_time=nominal_time,
        job_type=job_type,
        attempt=dict(attempt) if attempt else None,
        allow_retracted=allow_retracted,
        pins=(parse_pins(pins, default_namespace=namespace or catalog.settings.namespace)
              if pins is not None else dict(catalog.settings.pins)),
    )


def run_info(session: Session, run: Run) -> RunInfo:
    def refs(model: type[RunInput] | type[RunOutput]) -> tuple[str, ...]:
        rows = session.scalars(
            select(Version)
            .join(model, model.version_id == Version.id)
            .where(model.run_id == run.id)
            .order_by(Version.id)
        ).all()
        return tuple(f"{v.dataset.namespace.name}/{v.dataset.name}@{v.number}" for v in rows)

    return RunInfo(
        id=run.id,
        namespace=run.job.namespace.name,
        job=run.job.name,
        state=run.state,
        params=run.params or {},
        code_fingerprint=run.code_fingerprint,
        cache_key=run.cache_key,
        engine=run.engine or {},
        started_at=run.started_at,
        ended_at=run.ended_at,
        error=run.error,
        reused_run_id=run.reused_run_id,
        inputs=refs(RunInput),
        outputs=refs(RunOutput),
        retry_of=run.retry_of,
    )


__all__ = [
    "COMPLETED",
    "FAILED",
    "RUNNING",
    "RunContext",
    "RunInfo",
    "make_run",
    "new_run_id",
    "run_info",
]

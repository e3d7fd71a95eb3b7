"""The Python API: ``Catalog.open()`` and everything a user does with datasets and versions.

A Catalog is a catalog database plus the default object store. It is cheap to open, holds no
global state, and is safe to use from several threads (each call opens its own session).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from headwater.catalog import db, repo, stores
from headwater.catalog import status as catalog_status
from headwater.catalog.graph import LineageGraph, walk
from headwater.catalog.models import Alias, AliasMove, Dataset, Namespace, Run, Version
from headwater.catalog.service import CatalogService, resolved_store_url, unit_of_work
from headwater.errors import (
    CatalogUnavailable,
    ForeignStore,
    InvalidArgument,
    StoreUnavailable,
    VersionNotFound,
)
from headwater.lineage.base import LineageRecorder, NullLineage
from headwater.outputs import OutputSpec
from headwater.progress import NullProgress, Progress
from headwater.refs import DatasetName, VersionRef, check_name
from headwater.reporting import ReportsMixin
from headwater.run import RunContext, RunInfo, make_run, run_info
from headwater.settings import Settings
from headwater.store.checkout import checkout, open_entry, read_manifest, stream_manifest
from headwater.store.manifest import Manifest
from headwater.store.objects import ObjectStore
from headwater.store.statcache import open_stat_cache
from headwater.store.walk import DEFAULT_FOLLOW
from headwater.tables.detect import table_files
from headwater.version import Version as VersionHandle
from headwater.version import VersionInfo

if TYPE_CHECKING:
    import pyarrow as pa

    from headwater.store.cache import ReadCache


def _default_actor() -> str:
    """Who made a change when the caller did not say: the OS user (kept in histories)."""
    import getpass

    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


@dataclass(frozen=True)
class DatasetInfo:
    namespace: str
    name: str
    type: str
    description: str | None
    metadata: dict[str, Any]
    versions: int
    latest: int | None
    aliases: dict[str, int]
    created_at: datetime
    #: aliases pointing at a retracted version (docs/retract-status.md)
    retracted_aliases: tuple[str, ...] = ()

    @property
    def full_name(self) -> str:
        return f"{self.namespace}/{self.name}"

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["created_at"] = self.created_at.isoformat()
        d["full_name"] = self.full_name
        return d


class Catalog(ReportsMixin):
    """Datasets, versions, aliases, runs and lineage over one database and one default store."""

    def __init__(
        self,
        settings: Settings,
        *,
        engine: Engine | None = None,
        lineage: LineageRecorder | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine or db.create_catalog_engine(settings.catalog_url)
        db.check_schema(self.engine, auto_migrate=settings.auto_migrate)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.recorder: LineageRecorder = lineage or NullLineage()
        self.progress: Progress = progress or NullProgress()
        self._stores: dict[str, ObjectStore] = {}

    @classmethod
    def open(
        cls,
        catalog_url: str | None = None,
        *,
        store_url: str | None = None,
        store_options: Mapping[str, Any] | None = None,
        namespace: str | None = None,
        settings: Settings | None = None,
        lineage: LineageRecorder | None = None,
        progress: Progress | None = None,
    ) -> Catalog:
        """Open the catalog: arguments, then ``HEADWATER_*`` variables, then ``~/.headwater``."""
        settings = settings or Settings.resolve(
            catalog_url=catalog_url,
            store_url=store_url,
            store_options=store_options,
            namespace=namespace,
        )
        if lineage is None:
            from headwater.lineage import default_recorder

            lineage = default_recorder(settings)
        catalog = cls(settings, lineage=lineage, progress=progress)
        from headwater.reaper import reap_on_open

        reap_on_open(catalog)  # runs whose process died: one indexed query (catalog/leases.py)
        return catalog

    def close(self) -> None:
        """Give lineage deliveries in flight a moment, then release the database connections.
        Undelivered events stay in the outbox either way."""
        self.recorder.join(2.0)
        self.engine.dispose()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Catalog({db.safe_url(self.settings.catalog_url)!r}, store={self.store.url!r})"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed on success, rolled back on error."""
        try:
            with self._sessions.begin() as s:
                yield s
        except OperationalError as exc:
            raise CatalogUnavailable(
                f"catalog database error at {db.safe_url(self.settings.catalog_url)}: "
                f"{str(exc.orig).strip().splitlines()[0] if exc.orig else exc}"
            ) from exc

    # -- stores ---------------------------------------------------------------------------------
    @property
    def store(self) -> ObjectStore:
        return self.store_for(self.settings.store_url)

    def store_for(self, url: str) -> ObjectStore:
        """The store a version or report recorded (``"."``: this catalog's own store, see
        :mod:`headwater.catalog.stores`). A local store other than the configured one that is
        not there raises :class:`StoreUnavailable` naming the fix: it was moved, most likely, and
        reading on would only report every object missing."""
        url = self.resolve_store_url(url)
        store = self._stores.get(url)
        if store is None:
            store = ObjectStore(
                url,
                options=self.settings.store_options,
                stat_cache=open_stat_cache(self.settings.stat_cache_path),
                pack={"on": True, "off": False}.get(self.settings.pack),
                cache=self.read_cache,
            )
            if store.local and url != self.settings.store_url \
                    and not os.path.isdir(f"{store.root}/objects"):
                raise StoreUnavailable(
                    f"the store {url} that versions of this catalog are kept in does not exist "
                    f"(moved?); if it moved, run `headwater store relocate {url} NEW_PATH`"
                )
            self._stores[url] = store
        return store

    @property
    def read_cache(self) -> ReadCache | None:
        """This machine's read cache for remote stores (``HEADWATER_CACHE``), None if off."""
        if self.settings.cache_path is None:
            return None
        from headwater.store.cache import ReadCache

        return ReadCache(self.settings.cache_path, self.settings.cache_size)

    def resolve_store_url(self, recorded: str) -> str:
        """The store a recorded ``store_url`` names now (``"."`` is this catalog's own)."""
        return resolved_store_url(recorded, self.settings.catalog_url)

    def relocate_store(self, old: str, new: str) -> dict[str, int]:
        """Point every version and report kept in store ``old`` at ``new`` (where its objects
        are now); returns the rows changed per table. ``new`` must be a store already."""
        target = ObjectStore(new, options=self.settings.store_options)
        if target.local and not os.path.isdir(f"{target.root}/objects"):
            raise InvalidArgument(f"{new} is not a Headwater store (no objects/ directory)")
        with self.session() as s:
            counts = stores.relocate(s, old, target.url, self.settings.catalog_url)
        self._stores.clear()
        return counts

    # -- names ----------------------------------------------------------------------------------
    def dataset_name(self, text: str) -> DatasetName:
        return DatasetName.parse(text, default_namespace=self.settings.namespace)

    def parse_ref(self, text: str) -> VersionRef:
        return VersionRef.parse(text, default_namespace=self.settings.namespace)

    # -- the catalog service (catalog/service.py): this facade delegates to it -----------------
    @contextmanager
    def unit_of_work(self) -> Iterator[CatalogService]:
        """One transaction as a :class:`CatalogService` (committed on success)."""
        with unit_of_work(self._sessions, catalog_url=self.settings.catalog_url,
                          default_namespace=self.settings.namespace) as svc:
            yield svc

    def service(self, s: Session) -> CatalogService:
        """The catalog service over the open session ``s`` (one of :meth:`session`)."""
        return CatalogService(s, catalog_url=self.settings.catalog_url,
                              default_namespace=self.settings.namespace)

    def handle(self, info: VersionInfo) -> VersionHandle:
        """``info`` as a :class:`Version` handle that reads through this catalog."""
        values = {f.name: getattr(info, f.name) for f in fields(VersionInfo)}
        return VersionHandle(**values, _catalog=self)

    def pin(self, ref: str | VersionInfo) -> str:
        """An exact ``ns/name@number`` for ``ref``, resolved now. Raises ``VersionNotFound``."""
        if isinstance(ref, VersionInfo):
            return ref.ref
        with self.unit_of_work() as svc:
            return svc.pin(ref)

    def _resolve_row(self, s: Session, ref: str) -> Version:
        return self.service(s).resolve(ref)

    def _to_version(self, s: Session, v: Version, *, created: bool = True) -> VersionHandle:
        return self.handle(self.service(s).version_info(v, created=created))

    # -- versions -------------------------------------------------------------------------------
    def log(
        self,
        data: Any,
        *,
        name: str,
        type: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        parents: Iterable[str | VersionInfo] = (),
        reference: bool = False,
        key: Sequence[str] | None = None,
        stats: Mapping[str, Any] | None = None,
        label: str | None = None,
        description: str | None = None,
        properties: Mapping[str, Any] | None = None,
        follow_symlinks: str = DEFAULT_FOLLOW,
    ) -> VersionHandle:
        """Log ``data`` as a new version of ``name`` and return it.

        Identical content to the dataset's latest version creates no new version: the latest is
        returned with ``created=False``. Parents are recorded as explicit parents and as inputs
        of the logging run, so lineage walks find them. ``label`` is an immutable human name for
        the new version (``users@1.0-kaggle``); ``description``/``properties`` can be edited
        later with :meth:`annotate`. ``follow_symlinks`` (``none``, ``inside`` — the default —
        or ``all``) says which symbolic links to files of a directory are followed; what is left
        out (other links, links to directories, FIFOs, sockets, devices) is named in a warning
        on the ``headwater.store.snapshot`` logger.
        """
        ds = self.dataset_name(name)
        pinned = [self.pin(p) for p in parents]
        with self.run(
            f"log.{ds.name}", inputs=pinned, namespace=ds.namespace, job_type="log"
        ) as run:
            spec = OutputSpec(str(ds), type=type, key=key, metadata=metadata or {},
                              stats=stats or {}, parents=pinned, label=label,
                              description=description, properties=properties)
            run.log_spec(data, spec, reference=reference, follow_symlinks=follow_symlinks)
        return run.outputs[0]

    def get(self, ref: str | VersionInfo) -> VersionHandle:
        """Resolve a reference (``name``, ``name@latest``, ``@production``, ``@7``, ``@3f9a2c``)."""
        text = ref.ref if isinstance(ref, VersionInfo) else ref
        with self.unit_of_work() as svc:
            return self.handle(svc.version_info(svc.resolve(text)))

    def versions(self, name: str) -> list[VersionHandle]:
        """Every version of dataset ``name``, oldest first. Raises ``VersionNotFound``."""
        ds_name = self.dataset_name(name)
        with self.unit_of_work() as svc:
            return [self.handle(info) for info in svc.versions(ds_name)]

    def datasets(
        self, *, namespace: str | None = None, search: str | None = None
    ) -> list[DatasetInfo]:
        with self.session() as s:
            q = select(Dataset).join(Namespace).order_by(Namespace.name, Dataset.name)
            if namespace:
                q = q.where(Namespace.name == namespace)
            if search:
                # autoescape: "%" and "_" in the search are characters, not LIKE wildcards
                q = q.where(Dataset.name.contains(search, autoescape=True))
            out = []
            for ds in s.scalars(q).all():
                latest = repo.latest_version(s, ds.id)
                aliases = {
                    name: number
                    for name, number in s.execute(
                        select(Alias.name, Version.number)
                        .join(Version, Alias.version_id == Version.id)
                        .where(Alias.dataset_id == ds.id)
                        .order_by(Alias.name)
                    )
                }
                out.append(
                    DatasetInfo(
                        namespace=ds.namespace.name,
                        name=ds.name,
                        type=ds.type,
                        description=ds.description,
                        metadata=ds.meta or {},
                        versions=repo.count_versions(s, ds.id),
                        latest=latest.number if latest else None,
                        aliases=aliases,
                        created_at=ds.created_at,
                        retracted_aliases=tuple(sorted(
                            a for _, a in catalog_status.retracted_aliases(s, [ds.id]))),
                    )
                )
            return out

    # -- aliases --------------------------------------------------------------------------------
    def alias(
        self, ref: str | VersionInfo, alias: str, *, actor: str | None = None
    ) -> VersionHandle:
        """Point ``alias`` (e.g. ``production``) at the version ``ref`` names, atomically."""
        text = ref.ref if isinstance(ref, VersionInfo) else ref
        with self.session() as s:
            v = self._resolve_row(s, text)
            repo.move_alias(s, v, alias, actor=actor)
            s.flush()
            return self._to_version(s, v)

    def unalias(self, name: str, alias: str, *, actor: str | None = None) -> None:
        with self.session() as s:
            repo.remove_alias(s, repo.get_dataset(s, self.dataset_name(name)), alias, actor=actor)

    def alias_history(self, name: str) -> list[dict[str, Any]]:
        with self.session() as s:
            ds = repo.get_dataset(s, self.dataset_name(name))
            numbers = dict(
                s.execute(
                    select(Version.id, Version.number).where(Version.dataset_id == ds.id)
                ).all()
            )
            moves = s.scalars(
                select(AliasMove).where(AliasMove.dataset_id == ds.id).order_by(AliasMove.id)
            ).all()
            return [
                {
                    "alias": m.name,
                    "from": numbers.get(m.from_version_id or -1),
                    "to": numbers.get(m.to_version_id or -1),
                    "moved_at": m.moved_at.isoformat(),
                    "actor": m.actor,
                }
                for m in moves
            ]

    # -- reading --------------------------------------------------------------------------------
    def _read_store(self, version: VersionInfo, allow_foreign_store: bool) -> ObjectStore:
        """The store to read ``version`` from. An external version (recorded from an
        OpenLineage event) names a store its producer chose, and the digest too, so the digest
        check proves nothing: read it only from the catalog's own store unless asked."""
        store = self.store_for(version.store_url)
        if version.kind == "external" and not allow_foreign_store and store.url != self.store.url:
            raise ForeignStore(
                f"{version.ref} is an external version recorded from OpenLineage, kept in "
                f"{store.url}, not this catalog's store; pass allow_foreign_store=True "
                "(CLI: --allow-foreign-store) to read it anyway"
            )
        return store

    def manifest_of(self, version: VersionInfo, *, allow_foreign_store: bool = False) -> Manifest:
        return read_manifest(
            self._read_store(version, allow_foreign_store), version.digest,
            context=f"manifest of {version.ref}",
        )

    def checkout(
        self, version: VersionInfo, dest: str | Path, *, allow_foreign_store: bool = False
    ) -> Path:
        store = self._read_store(version, allow_foreign_store)
        return checkout(
            store,  # the manifest parsed as it is written out, not held as entries (issue 18)
            stream_manifest(store, version.digest, context=f"manifest of {version.ref}"),
            dest,
            options=self.settings.store_options,
            context=version.ref,
            progress=self.progress,
        )

    def open_file(
        self, version: VersionInfo, relpath: str, *, allow_foreign_store: bool = False
    ) -> BinaryIO:
        entry = self.manifest_of(version, allow_foreign_store=allow_foreign_store
                                 ).by_path().get(relpath)
        if entry is None:
            raise VersionNotFound(f"{version.ref} has no file {relpath!r}")
        return open_entry(
            self._read_store(version, allow_foreign_store),
            entry,
            options=self.settings.store_options,
            context=version.ref,
        )

    def read_table(
        self, version: VersionInfo, *, columns: Sequence[str] | None = None,
        allow_foreign_store: bool = False,
    ) -> pa.Table:
        from headwater.tables.formats import concat, read_table

        manifest = self.manifest_of(version, allow_foreign_store=allow_foreign_store)
        fmt, entries = table_files(manifest)
        if fmt is None:
            raise InvalidArgument(f"{version.ref} holds no table files")
        parts = []
        for entry in entries:
            with self.open_file(version, entry.path, allow_foreign_store=allow_foreign_store) as f:
                parts.append(read_table(f, fmt))
        table = concat(parts)
        return table.select(list(columns)) if columns else table

    def table_fingerprint(
        self, ref: str | VersionInfo, *, allow_foreign_store: bool = False
    ) -> str | None:
        """``ref``'s table fingerprint in the current algorithm (None if it is not a table).

        The stored one when the current algorithm made it; otherwise (a version logged before
        algorithm 2, issue 14) recomputed from the stored data, so it can be compared with
        fingerprints made today. See docs/adr/0003-table-fingerprint.md.
        """
        from headwater.staging import profile_manifest
        from headwater.tables.fingerprint_version import is_current

        version = ref if isinstance(ref, VersionInfo) else self.get(ref)
        if version.kind != "table":
            return None
        if is_current(version.table_fingerprint):
            return version.table_fingerprint
        store = self._read_store(version, allow_foreign_store)
        prof = profile_manifest(store, self.manifest_of(version,
                                                        allow_foreign_store=allow_foreign_store))
        return prof.fingerprint if prof is not None else None

    def same_table(self, a: str | VersionInfo, b: str | VersionInfo) -> bool:
        """Whether two table versions hold the same rows (as a multiset: order, file split,
        format and physical types aside), by their fingerprints in the current algorithm.

        Raises ``InvalidArgument`` if either is not a table.
        """
        from headwater.tables.fingerprint_version import same_rows

        fps = []
        for ref in (a, b):
            fp = self.table_fingerprint(ref)
            if fp is None:
                raise InvalidArgument(f"{ref if isinstance(ref, str) else ref.ref} is not a table")
            fps.append(fp)
        return same_rows(fps[0], fps[1])

    # -- runs and lineage -----------------------------------------------------------------------
    def run(
        self,
        job: str,
        *,
        params: Mapping[str, Any] | None = None,
        inputs: Iterable[str | VersionInfo] = (),
        code: str | Callable[..., Any] | None = None,
        engine: Mapping[str, Any] | None = None,
        parent: Mapping[str, Any] | None = None,
        nominal_time: datetime | None = None,
        namespace: str | None = None,
        job_type: str | None = None,
        state_inputs: Iterable[str | VersionInfo] = (),
        attempt: Mapping[str, Any] | None = None,
        allow_retracted: bool = False,
        pins: Mapping[str, str] | str | None = None,
    ) -> RunContext:
        """A run of ``job``: ``with catalog.run("despam", inputs=["users@3"]) as run: ...``.

        Inputs are resolved to exact versions when the block starts. Outputs logged with
        ``run.log_output`` become visible together when the block exits normally; if it raises,
        the run is recorded as FAILED and none of them is visible. ``state_inputs`` are read as
        the step's own state (the previous ID mapping, say): optional, recorded in lineage, but
        not part of the cache key.

        ``attempt``: the ``engine`` ids every attempt of this engine task shares (Airflow: dag
        id, run id, task id, map index, without the try number). Earlier attempts still RUNNING
        are aborted when this one starts (the engine would not start a new attempt of a live
        one) and the run records the latest earlier attempt as ``retry_of``.

        While the block is open a daemon thread renews the run's lease every
        ``settings.run_heartbeat_seconds``; a run whose process died is aborted by the next
        command (see :mod:`headwater.catalog.leases`).

        A retracted input raises ``RetractedInput`` when the block starts, unless this run opts
        in with ``allow_retracted=True`` (docs/retract-status.md).

        ``pins`` (``{"ns/name": "ns/name@N"}``, default ``settings.pins`` from
        ``HEADWATER_PINS``): inputs naming a pinned dataset read the pinned version; the run
        records the pinned reference. This is how ``headwater rebuild`` substitutes a version.
        """
        return make_run(
            self,
            job,
            params=params,
            inputs=inputs,
            code=code,
            engine=engine,
            parent=parent,
            nominal_time=nominal_time,
            namespace=namespace,
            job_type=job_type,
            state_inputs=state_inputs,
            attempt=attempt,
            allow_retracted=allow_retracted,
            pins=pins,
        )

    # -- retractions and status (docs/retract-status.md) ----------------------------------------
    def retract(
        self, ref: str | VersionInfo, *, reason: str, actor: str | None = None
    ) -> VersionHandle:
        """Record that the version ``ref`` names is bad: an append-only entry (who, when, why).
        Runs then refuse it as input unless they opt in; everything derived from it is stale."""
        return self._retraction(ref, reason=reason, actor=actor, undo=False)

    def unretract(
        self, ref: str | VersionInfo, *, reason: str, actor: str | None = None
    ) -> VersionHandle:
        """Undo a retraction by appending an unretract entry (the history keeps both)."""
        return self._retraction(ref, reason=reason, actor=actor, undo=True)

    def _retraction(
        self, ref: str | VersionInfo, *, reason: str, actor: str | None, undo: bool
    ) -> VersionHandle:
        text = ref.ref if isinstance(ref, VersionInfo) else ref
        with self.unit_of_work() as svc:
            v = svc.retract(text, reason=reason, actor=actor or _default_actor(), undo=undo)
            return self.handle(svc.version_info(v))

    def retractions(self, ref: str | VersionInfo) -> list[dict[str, Any]]:
        """Every retract/unretract entry of the version ``ref`` names, oldest first."""
        text = ref.ref if isinstance(ref, VersionInfo) else ref
        with self.unit_of_work() as svc:
            return catalog_status.retraction_history(svc.session, svc.resolve(text).id)

    def status(
        self, target: str | VersionInfo | None = None, *, all_versions: bool = False
    ) -> list[catalog_status.VersionStatus]:
        """Fresh, stale or retracted, with causes: of the version ``target`` names when it is a
        reference (has ``@``), else of the latest version of every dataset in namespace
        ``target`` (or everywhere); every version with ``all_versions``."""
        with self.unit_of_work() as svc:
            if isinstance(target, VersionInfo) or (target is not None and "@" in target):
                text = target.ref if isinstance(target, VersionInfo) else target
                return catalog_status.status_of(svc.session, version_ids=[svc.resolve(text).id])
            if target is not None and "/" in target:
                v = svc.resolve(target)
                return catalog_status.status_of(svc.session, version_ids=[v.id])
            if target is not None:
                check_name(target, what="namespace")
            found = catalog_status.status_of(
                svc.session, namespace=target, all_versions=all_versions
            )
            if target is not None and not found:  # no such namespace: a dataset name?
                return catalog_status.status_of(svc.session, version_ids=[svc.resolve(target).id])
            return found

    def retracted_aliases(self, name: str) -> set[str]:
        """Aliases of dataset ``name`` that point at a retracted version."""
        with self.session() as s:
            ds = repo.get_dataset(s, self.dataset_name(name))
            return {a for _, a in catalog_status.retracted_aliases(s, [ds.id])}

    def runs(
        self, *, limit: int = 50, job: str | None = None, state: str | None = None
    ) -> list[RunInfo]:
        from headwater.catalog.models import Job

        with self.session() as s:
            q = select(Run).join(Job).order_by(Run.id.desc()).limit(limit)
            if job:
                q = q.where(Job.name == job)
            if state:
                q = q.where(Run.state == state.upper())
            return [run_info(s, r) for r in s.scalars(q).all()]

    def get_run(self, run_id: str) -> RunInfo:
        """The run with id ``run_id`` or a unique prefix of one."""
        with self.session() as s:
            return run_info(s, repo.find_run(s, run_id))

    def cached_run(self, key: str | None, *, exclude: str) -> RunInfo | None:
        """The latest completed run with cache key ``key`` (other than run ``exclude``)."""
        if key is None:
            return None
        with self.unit_of_work() as svc:
            run = svc.cached_run(key, exclude=exclude)
            return run_info(svc.session, run) if run is not None else None

    def lineage(
        self, ref: str | VersionInfo, *, direction: str = "up", depth: int | None = None
    ) -> LineageGraph:
        """Versions and runs upstream (``up``) or downstream (``down``) of a version."""
        if direction not in ("up", "down", "both"):
            raise InvalidArgument(f"direction must be 'up', 'down' or 'both', not {direction!r}")
        if depth is not None and depth < 0:
            raise InvalidArgument(f"depth must be >= 0, not {depth}")
        text = ref.ref if isinstance(ref, VersionInfo) else ref
        with self.session() as s:
            root = self._resolve_row(s, text)
            return walk(s, root.id, direction=direction, depth=depth)

    def impact(self, ref: str | VersionInfo) -> Any:
        """Every version derived from ``ref`` and the engine tasks that produced them."""
        from headwater.impact import impact_of

        return impact_of(self.lineage(ref, direction="down"))

    def diff(
        self, a: str | VersionInfo, b: str | VersionInfo, *, key: Sequence[str] | None = None,
        sample: int | None = None, strict: bool = True,
    ) -> Any:
        """Files added/removed/changed from ``a`` to ``b``; rows too for keyed tables, with up to
        ``sample`` (default 5) added, removed and changed rows of each."""
        from headwater.diff import SAMPLE, diff_versions

        return diff_versions(self, self.get(a), self.get(b), key=key,
                             sample=SAMPLE if sample is None else sample, strict=strict)

    def stats(self) -> dict[str, int]:
        with self.session() as s:
            return {
                "datasets": int(s.scalar(select(func.count()).select_from(Dataset)) or 0),
                "versions": int(s.scalar(select(func.count()).select_from(Version)) or 0),
                "runs": int(s.scalar(select(func.count()).select_from(Run)) or 0),
            }

    # -- maintenance ----------------------------------------------------------------------------
    def gc(self, *, grace_seconds: float | None = None, dry_run: bool = False) -> Any:
        """Delete store objects no committed version refers to (older than the grace period)."""
        from headwater.maintenance import DEFAULT_GRACE_SECONDS, gc
        from headwater.reaper import reap_dead_runs

        reap_dead_runs(self)  # a dead run's block will never commit: end it first
        grace = DEFAULT_GRACE_SECONDS if grace_seconds is None else grace_seconds
        return gc(self, grace_seconds=grace, dry_run=dry_run)

    def verify(self, ref: str | None = None, *, repair_from: str | Path | None = None) -> Any:
        """Re-hash the objects of one version (or of every version) and report problems.

        ``repair_from``: a directory holding the data; missing or corrupted objects found in it
        are written back (a :class:`~headwater.maintenance.RepairReport` is returned).
        """
        from headwater.maintenance import repair, verify

        if ref is not None:
            targets: list[VersionInfo] = [self.get(ref)]
        else:
            targets = [v for d in self.datasets() for v in self.versions(d.full_name)]
        if repair_from is not None:
            return repair(self, targets, repair_from)
        return verify(self, targets)

"""The catalog service: one unit of work (a session) and the operations on versions in it.

Why a service: reference resolution, version info, pinning, cached-run lookup and version
creation (numbering, dedup, labels, parents, run edges) used to live as private methods of the
``Catalog`` facade that ``run.py`` called from outside, plus copies in the OpenLineage ingestion.
Two copies of "make a version" drift (issue 14, section 9). Here each is written once, over an
open session, so a run's commit, ``Catalog.log``, the server and the CLI share it and a caller
composes several operations in one transaction. See docs/adr/0004-catalog-service.md.

It imports nothing above ``catalog/`` except the plain value type :class:`VersionInfo`: turning
that into a ``Version`` handle bound to a ``Catalog`` is the facade's job (``Catalog.handle``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from headwater.catalog import db, external, repo, status, stores
from headwater.catalog.models import (
    Dataset,
    Run,
    RunInput,
    RunOutput,
    Version,
    VersionParent,
    utcnow,
)
from headwater.errors import CatalogUnavailable, InvalidArgument, StoreUnavailable
from headwater.refs import DatasetName, VersionRef
from headwater.version import VersionInfo

__all__ = ["CatalogService", "NewVersion", "resolved_store_url", "unit_of_work"]


def resolved_store_url(recorded: str, catalog_url: str) -> str:
    """The store a recorded ``store_url`` names now (``"."`` is the catalog's own store)."""
    try:
        return stores.resolved(recorded, catalog_url)
    except ValueError as exc:
        raise StoreUnavailable(f"{exc}; run `headwater store relocate . STORE`") from exc


@dataclass(frozen=True)
class NewVersion:
    """The columns of a version to create that its creator decides (numbering, dedup and the
    dataset are the service's). ``store_url`` is the store as a URL; the service records it."""

    digest: str
    store_url: str
    kind: str
    size: int
    file_count: int
    row_count: int | None = None
    schema: list[dict[str, Any]] | None = None
    table_fingerprint: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    label: str | None = None
    run_id: str | None = None


@contextmanager
def unit_of_work(
    sessions: sessionmaker[Session], *, catalog_url: str, default_namespace: str
) -> Iterator[CatalogService]:
    """One transaction as a :class:`CatalogService`: committed on success, rolled back on error.

    Raises :class:`CatalogUnavailable` when the database cannot be reached or fails.
    """
    try:
        with sessions.begin() as s:
            yield CatalogService(s, catalog_url=catalog_url, default_namespace=default_namespace)
    except OperationalError as exc:
        raise CatalogUnavailable(
            f"catalog database error at {db.safe_url(catalog_url)}: "
            f"{str(exc.orig).strip().splitlines()[0] if exc.orig else exc}"
        ) from exc


class CatalogService:
    """The catalog operations on versions, within the one open session ``session``."""

    def __init__(self, session: Session, *, catalog_url: str, default_namespace: str) -> None:
        self.session = session
        self.catalog_url = catalog_url
        self.default_namespace = default_namespace

    # -- references -----------------------------------------------------------------------------
    def resolve(self, ref: str) -> Version:
        """The version row ``ref`` names (``name@latest``, an alias, a number, a label or a
        digest prefix). Raises ``VersionNotFound`` or ``InvalidArgument`` (a malformed ref)."""
        return repo.resolve(
            self.session, VersionRef.parse(ref, default_namespace=self.default_namespace)
        )

    def pin(self, ref: str | VersionInfo) -> str:
        """An exact ``ns/name@number`` for ``ref``, resolved now."""
        if isinstance(ref, VersionInfo):
            return ref.ref
        v = self.resolve(ref)
        return f"{v.dataset.namespace.name}/{v.dataset.name}@{v.number}"

    # -- version info ---------------------------------------------------------------------------
    def version_info(self, v: Version, *, created: bool = True) -> VersionInfo:
        """Everything a user sees of version ``v``: its row, aliases, parents, annotation."""
        s = self.session
        ds = v.dataset
        aliases = repo.aliases_of(s, [v.id])[v.id]
        parents = tuple(
            f"{p.dataset.namespace.name}/{p.dataset.name}@{p.number}"
            for p in repo.parents_of(s, v.id)
        )
        note = repo.current_annotation(s, v.id)
        return VersionInfo(
            namespace=ds.namespace.name, dataset=ds.name, type=ds.type, number=v.number,
            digest=v.digest, store_url=resolved_store_url(v.store_url, self.catalog_url),
            kind=v.kind, size=v.size,
            file_count=v.file_count, row_count=v.row_count, schema=v.schema,
            table_fingerprint=v.table_fingerprint, stats=v.stats or {}, metadata=v.meta or {},
            created_at=v.created_at, run_id=v.run_id, aliases=tuple(aliases), parents=parents,
            id=v.id, created=created, label=v.label,
            description=note.description if note else None,
            properties=dict(note.properties or {}) if note else {},
            retracted=bool(status.retracted_ids(s, [v.id])),
        )

    def versions(self, name: DatasetName) -> list[VersionInfo]:
        """Every version of dataset ``name``, oldest first. Raises ``VersionNotFound``."""
        ds = repo.get_dataset(self.session, name)
        rows = self.session.scalars(
            select(Version).where(Version.dataset_id == ds.id).order_by(Version.number)
        ).all()
        return [self.version_info(v) for v in rows]

    # -- runs -----------------------------------------------------------------------------------
    def cached_run(self, key: str | None, *, exclude: str) -> Run | None:
        """The latest completed run with cache key ``key`` other than run ``exclude``."""
        if key is None:
            return None
        return self.session.scalars(
            select(Run)
            .where(Run.cache_key == key, Run.state == "COMPLETED", Run.id != exclude)
            .order_by(Run.id.desc())
            .limit(1)
        ).first()

    def record_output(self, run_id: str, version: Version, *, created: bool) -> None:
        """The run → version edge (once: a reused or repeated output adds none)."""
        if self.session.get(RunOutput, (run_id, version.id)) is None:
            self.session.add(RunOutput(run_id=run_id, version_id=version.id, created=created))

    def record_input(self, run_id: str, version: Version) -> None:
        """The version → run edge of an input read without a reference (OpenLineage ingestion:
        the producer named a dataset, not a ``ref``), once. Runs of ours use
        :meth:`record_inputs`, which keeps the reference for ``status``."""
        if self.session.get(RunInput, (run_id, version.id)) is None:
            self.session.add(RunInput(run_id=run_id, version_id=version.id))

    # -- retractions and status (catalog/status.py) ----------------------------------------------
    def retract(self, ref: str, *, reason: str, actor: str | None, undo: bool = False) -> Version:
        """Append a retract (``undo``: unretract) entry to the version ``ref`` names."""
        v = self.resolve(ref)
        status.add_retraction(
            self.session, v, status.UNRETRACT if undo else status.RETRACT,
            reason=reason, actor=actor,
        )
        return v

    def resolve_inputs(
        self, refs: Sequence[str], *, allow_retracted: bool = False
    ) -> list[Version]:
        """The versions ``refs`` name; a retracted one raises ``RetractedInput`` unless the run
        opts in with ``allow_retracted``."""
        rows = [self.resolve(ref) for ref in refs]
        status.refuse_retracted(self.session, rows, refs, allow=allow_retracted)
        return rows

    def record_inputs(
        self, run_id: str, inputs: Sequence[tuple[str, Version]],
        state: Sequence[tuple[str, Version]] = (),
    ) -> None:
        """The run -> input edges with the reference each was resolved from."""
        status.record_inputs(self.session, run_id, inputs, state,
                             default_namespace=self.default_namespace)

    # -- version creation -----------------------------------------------------------------------
    def create_version(
        self, dataset: Dataset, new: NewVersion, *, parents: Sequence[str] = (),
        name: str | None = None,
    ) -> tuple[Version, bool]:
        """The next version of ``dataset`` holding ``new``, or its latest version when that has
        the same digest (``created`` False: logging identical content again makes nothing).

        Locks the dataset first, so concurrent writers get distinct, gap-free numbers. ``name``
        is the dataset's name in messages. Raises ``InvalidArgument`` when ``new.label`` would
        land on a version that is not new, is taken, or equals an alias of the dataset.
        """
        s = self.session
        name = name or f"{dataset.namespace.name}/{dataset.name}"
        ds = repo.lock_dataset(s, dataset.id)
        latest = repo.latest_version(s, ds.id)
        if latest is not None and latest.digest == new.digest:
            if new.label is not None and new.label != latest.label:
                raise InvalidArgument(
                    f"cannot label {name}: its content is identical to "
                    f"{name}@{latest.number} (label {latest.label or 'none'}), so no "
                    "new version is made; labels are given when a version is created"
                )
            return latest, False
        if new.label is not None:
            holder = repo.label_taken(s, ds.id, new.label)
            if holder is not None:
                raise InvalidArgument(
                    f"label {new.label!r} is already on {name}@{holder.number}; "
                    "labels are unique in a dataset and never move (aliases do)"
                )
            if repo.alias_exists(s, ds.id, new.label):
                raise InvalidArgument(
                    f"{new.label!r} is an alias of {name}; a label of the same name "
                    "would make references ambiguous"
                )
        return self.insert_version(ds, new, parents=parents), True

    def external_version(self, dataset: Dataset, new: NewVersion, *, who: str) -> Version:
        """The version of ``dataset`` with digest ``new.digest``, created (an external
        version) if it has none: OpenLineage ingestion's rule, one version per digest.

        Locks the dataset first, then looks again (a concurrent event may have created it) and
        refuses a native dataset under the lock: a foreign event never adds a version to a
        dataset Headwater wrote (issue 14, section 6). ``who`` names the asker in the error.
        Raises ``InvalidArgument``.
        """
        s = self.session
        ds = repo.lock_dataset(s, dataset.id)
        again = external.version_by_digest(s, ds.id, new.digest)
        if again is not None:
            return again
        if external.is_native(s, ds):
            raise InvalidArgument(
                f"{who} may not add versions to {ds.namespace.name}/{ds.name}, a "
                "dataset Headwater wrote"
            )
        return self.insert_version(ds, new)

    def insert_version(
        self, dataset: Dataset, new: NewVersion, *, parents: Sequence[str] = ()
    ) -> Version:
        """Number and insert a version of ``dataset`` (locked by the caller) with its explicit
        parents, in order. No dedup: for callers with a rule of their own (OpenLineage
        ingestion keeps one version per digest); most want :meth:`create_version`."""
        s = self.session
        v = Version(
            dataset_id=dataset.id,
            number=repo.next_number(s, dataset),
            digest=new.digest,
            # an external version's URL is where its producer says the data is, not a store of
            # ours: recorded as given, never as this catalog's own (".") store
            store_url=new.store_url if new.kind == external.EXTERNAL
            else stores.recorded(new.store_url, self.catalog_url),
            kind=new.kind,
            size=new.size,
            file_count=new.file_count,
            row_count=new.row_count,
            schema=new.schema,
            table_fingerprint=new.table_fingerprint,
            stats=new.stats,
            meta=new.meta,
            state="committed",
            created_at=utcnow(),
            run_id=new.run_id,
            label=new.label,
        )
        s.add(v)
        s.flush()
        for pos, ref in enumerate(parents):
            parent = self.resolve(ref)
            s.add(VersionParent(child_id=v.id, parent_id=parent.id, position=pos))
        return v

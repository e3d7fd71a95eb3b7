"""Garbage collection and verification of the store against the catalog.

``gc`` deletes objects no committed version refers to (data objects, manifests and the payloads
of reports on versions), but only those older than a grace period, so a run that is staging
right now keeps its objects. ``verify`` re-hashes every object of the chosen versions and
reports missing or corrupted ones by version.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import select

from headwater.catalog import stores
from headwater.catalog.models import Report, Version
from headwater.errors import HeadwaterError
from headwater.reporting import report_digests
from headwater.store.checkout import open_reference, read_manifest
from headwater.store.hashing import CHUNK

if TYPE_CHECKING:
    from headwater.api import Catalog
    from headwater.version import VersionInfo

DEFAULT_GRACE_SECONDS = 3600.0


@dataclass
class GcReport:
    live_objects: int = 0
    deleted: list[str] = field(default_factory=list)
    deleted_bytes: int = 0
    kept_young: int = 0
    staging_removed: int = 0
    dry_run: bool = False


@dataclass
class VerifyProblem:
    version: str
    path: str
    digest: str | None
    problem: str


@dataclass
class VerifyReport:
    versions: int = 0
    objects: int = 0
    problems: list[VerifyProblem] = field(default_factory=list)
    #: External versions (recorded from OpenLineage): no objects of ours, so not verified.
    skipped: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No problem found (``skipped`` versions were not checked: say so separately)."""
        return not self.problems


def live_digests(cat: Catalog, store_url: str) -> set[str]:
    """Every object digest referenced by a committed version kept in ``store_url``."""
    with cat.session() as s:
        # in_store: rows of the catalog's own store record ".", not the path (catalog/stores.py)
        where = cat.settings.catalog_url
        roots = s.scalars(select(Version.digest)
                          .where(stores.in_store(Version.store_url, store_url, where))).all()
        reports = s.execute(select(Report.body, Report.digest)
                            .where(stores.in_store(Report.store_url, store_url, where))).all()
    store = cat.store_for(store_url)
    live: set[str] = {d for body, digest in reports for d in report_digests(body or {}, digest)}
    for root in set(roots):
        live.add(root)
        manifest = read_manifest(store, root)
        live.update(e.digest for e in manifest if e.digest is not None)
    return live


def gc(
    cat: Catalog, *, grace_seconds: float = DEFAULT_GRACE_SECONDS, dry_run: bool = False
) -> GcReport:
    store = cat.store
    live = live_digests(cat, store.url)
    report = GcReport(live_objects=len(live), dry_run=dry_run)
    cutoff = time.time() - grace_seconds
    for obj in store.iter_objects():
        if obj.digest in live:
            continue
        if obj.modified is not None and obj.modified > cutoff:
            report.kept_young += 1
            continue
        report.deleted.append(obj.digest)
        report.deleted_bytes += obj.size
        if not dry_run:
            store.delete(obj.digest)
    for path, mtime in store.iter_staging():
        if mtime <= cutoff:
            report.staging_removed += 1
            if not dry_run:
                path.unlink(missing_ok=True)
    return report


def verify(cat: Catalog, versions: list[VersionInfo]) -> VerifyReport:
    report = VerifyReport()
    for v in versions:
        if v.kind == "external":  # ingested from a foreign producer: no objects of ours
            report.skipped.append(v.ref)
            continue
        report.versions += 1
        store = cat.store_for(v.store_url)
        try:
            manifest = read_manifest(store, v.digest, context=f"manifest of {v.ref}")
        except HeadwaterError as exc:
            report.problems.append(VerifyProblem(v.ref, "<manifest>", v.digest, str(exc)))
            continue
        for entry in manifest:
            report.objects += 1
            try:
                if entry.digest is None:
                    with open_reference(entry, cat.settings.store_options) as f:
                        while f.read(CHUNK):
                            pass
                else:
                    store.verify(entry.digest, context=f"{v.ref} {entry.path}")
            except (HeadwaterError, OSError) as exc:
                report.problems.append(VerifyProblem(v.ref, entry.path, entry.digest, str(exc)))
    return report

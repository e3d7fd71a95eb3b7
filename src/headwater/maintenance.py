"""Garbage collection and verification of the store against the catalog.

``gc`` deletes objects no committed version refers to (data objects, manifests and the payloads
of reports on versions), but only those older than a grace period, so a run that is staging
right now keeps its objects. ``verify`` re-hashes every object of the chosen versions and
reports missing or corrupted ones by version.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from headwater import _failpoints
from headwater.catalog import gclock
from headwater.errors import HeadwaterError, InvalidArgument
from headwater.reporting import report_digests
from headwater.store.checkout import open_reference, read_manifest
from headwater.store.hashing import CHUNK, hash_bytes
from headwater.store.objects import ObjectStore, StoredObject
from headwater.store.packs import (
    PACK_TARGET,
    PackWriter,
    index_relpath,
    loaded_index_entries,
    pack_relpath,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

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
    #: unreferenced when scanned, referenced by a version committed before their batch: kept
    kept_referenced: int = 0
    #: manifests that could not be read ("digest: why"); gc went on without them
    damaged: list[str] = field(default_factory=list)
    #: packs (ADR 0005) deleted whole (nothing live left, or an orphan without an index)
    packs_deleted: int = 0
    #: packs whose live objects were copied to a new pack before they were deleted
    packs_repacked: int = 0
    #: bytes of pack files deleted
    pack_bytes_freed: int = 0


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


def live_digests(
    cat: Catalog, store_url: str, *, damaged: list[str] | None = None,
    seen: set[str] | None = None,
) -> set[str]:
    """Every object digest referenced by a committed version kept in ``store_url``.

    ``damaged`` given: a manifest that cannot be read is listed there instead of stopping
    everything (see :func:`_add_manifest`). ``seen`` collects the roots read, for :func:`gc`'s
    re-read under its lock.
    """
    with cat.session() as s:
        # the same reads gc repeats under its lock (catalog/gclock.py); rows of the catalog's own
        # store record ".", not the path, and these find them (catalog/stores.py)
        where = cat.settings.catalog_url
        roots = gclock.version_roots(s, store_url, where)
        reports = gclock.report_rows(s, store_url, where)
    store = cat.store_for(store_url)
    live: set[str] = {d for _id, body, digest in reports for d in report_digests(body, digest)}
    for root in roots:
        _add_manifest(store, root, live, damaged)
        if seen is not None:
            seen.add(root)
    return live


_HEX64 = re.compile(rb"[0-9a-f]{64}")


def _add_manifest(store: ObjectStore, root: str, live: set[str],
                  damaged: list[str] | None) -> None:
    """Add ``root`` and the objects its manifest names to ``live``.

    A damaged manifest (``damaged`` given) does not stop gc: a corrupted one keeps every digest
    found anywhere in its bytes (never less than it names); a missing one names nothing we can
    read, so it is listed and its objects are unknown (``verify --repair`` or a re-log brings it
    back). Without ``damaged`` the error propagates.
    """
    live.add(root)
    try:
        manifest = read_manifest(store, root)
    except HeadwaterError as exc:
        if damaged is None:
            raise
        damaged.append(f"{root}: {exc}")
        # reading it may have moved it to quarantine/ (a corrupted object): read it there
        for path in (store.object_path(root), f"{store.root}/quarantine/{root}"):
            try:
                raw = store.fs.cat_file(path)
            except (FileNotFoundError, OSError):
                continue
            live.update(m.decode() for m in _HEX64.findall(raw))
            return
        return
    live.update(e.digest for e in manifest if e.digest is not None)


#: Objects deleted per gc batch: each batch holds the gc lock (commits wait) while it deletes.
GC_BATCH = 500


def gc(
    cat: Catalog, *, grace_seconds: float = DEFAULT_GRACE_SECONDS, dry_run: bool = False
) -> GcReport:
    """Delete the store's objects no version or report refers to, older than ``grace_seconds``.

    The scan runs without locks; each deletion batch then runs in one catalog transaction that
    holds the gc lock exclusively, re-reads the roots committed since the scan (their objects
    become live) and bumps the store's gc epoch, so an open run re-checks its objects before it
    commits (ADR 0001, "gc and open runs"). A manifest that cannot be read is skipped and
    reported in ``damaged``.
    """
    store = cat.store
    report = GcReport(dry_run=dry_run)
    seen: set[str] = set()
    live = live_digests(cat, store.url, damaged=report.damaged, seen=seen)
    report.live_objects = len(live)
    cutoff = time.time() - grace_seconds
    doomed: list[StoredObject] = []
    for obj in store.iter_objects():
        if obj.digest in live:
            continue
        if obj.modified is not None and obj.modified > cutoff:
            report.kept_young += 1
            continue
        doomed.append(obj)
    if dry_run:
        report.deleted = [o.digest for o in doomed]
        report.deleted_bytes = sum(o.size for o in doomed)
    for start in range(0, 0 if dry_run else len(doomed), GC_BATCH):
        _delete_batch(cat, store, doomed[start:start + GC_BATCH], live, seen, report)
    _gc_packs(cat, store, live, seen, report, cutoff, dry_run)
    for path, mtime in store.iter_staging():
        if mtime <= cutoff:
            report.staging_removed += 1
            if not dry_run:
                path.unlink(missing_ok=True)
    if not dry_run:  # a remote store's staging: unfinished multipart pack uploads (ADR 0005)
        report.staging_removed += store.abort_stale_uploads(cutoff)
    return report


def _locked_live(cat: Catalog, s: Session, store: ObjectStore, live: set[str], seen: set[str],
                 report: GcReport) -> None:
    """Take the gc lock exclusively in ``s`` and add to ``live`` what versions committed since
    the scan (roots not in ``seen``) and every report refer to."""
    gclock.hold_exclusive(s)
    where = cat.settings.catalog_url
    for root in gclock.version_roots(s, store.url, where) - seen:
        _add_manifest(store, root, live, report.damaged)
        seen.add(root)
    for _id, body, digest in gclock.report_rows(s, store.url, where):
        live.update(report_digests(body, digest))


def _delete_batch(cat: Catalog, store: ObjectStore, batch: list[StoredObject], live: set[str],
                  seen: set[str], report: GcReport) -> None:
    """Delete ``batch`` under the exclusive gc lock, sparing what became referenced since."""
    with cat.session() as s:
        _locked_live(cat, s, store, live, seen, report)
        gclock.bump_epoch(s, store.url)
        _failpoints.reached("gc.locked")
        for obj in batch:
            if obj.digest in live:
                report.kept_referenced += 1
                continue
            store.delete(obj.digest)
            report.deleted.append(obj.digest)
            report.deleted_bytes += obj.size


#: A pack whose live bytes fall below this fraction of its size is repacked by ``gc``.
REPACK_BELOW = 0.5


def _gc_packs(cat: Catalog, store: ObjectStore, live: set[str], seen: set[str],
              report: GcReport, cutoff: float, dry_run: bool) -> None:
    """Packs (ADR 0005): delete orphans (a pack no index names, from a crashed writer) and
    packs with nothing live, repack those mostly dead. Young packs (newer than the grace
    period) are left alone, as young loose objects are. A repack writes the live objects to a
    new pack first (visible once its index is); the old index and pack are then deleted under
    the gc lock, after the roots committed meanwhile were re-read, unless an object being
    dropped became live — the same rule, and the same epoch bump, as for loose objects."""
    files = list(store.iter_pack_files())
    if not files:
        return
    packs = {d: (size, mtime) for kind, d, size, mtime in files if kind == "pack"}
    indexes = [(d, mtime) for kind, d, _size, mtime in files if kind == "idx"]
    store.packs.refresh()
    named: set[str] = set()
    victims: list[tuple[str | None, str, list[tuple[str, int, int]], set[str]]] = []
    sizes: dict[str, int] = {}
    for idx, mtime in indexes:
        try:
            pack, size, entries = loaded_index_entries(store, idx)
        except HeadwaterError as exc:
            report.damaged.append(f"pack index {idx}: {exc}")
            continue
        named.add(pack)
        sizes.update((d, n) for d, _off, n in entries)
        if pack not in packs:  # its pack is gone: the index only hides that objects are lost
            victims.append((idx, pack, [], set()))
            continue
        pack_mtime = packs[pack][1]
        if any(m is not None and m > cutoff for m in (mtime, pack_mtime)):
            report.kept_young += 1
            continue
        void = store.packs.void
        keep = [(d, off, n) for d, off, n in entries if d in live and d not in void]
        dropped = {d for d, _off, _n in entries} - {d for d, _o, _n in keep}
        if not dropped:
            continue
        if keep and sum(n for _d, _o, n in keep) >= REPACK_BELOW * size:
            continue
        victims.append((idx, pack, keep, dropped))
    for pack, (_size, mtime) in packs.items():
        if pack not in named and (mtime is None or mtime <= cutoff):
            victims.append((None, pack, [], set()))  # an orphan: written, never indexed
    if dry_run:
        report.deleted.extend(sorted(d for v in victims for d in v[3]))
        report.packs_deleted += sum(1 for v in victims if not v[2])
        report.packs_repacked += sum(1 for v in victims if v[2])
        return
    for index, pack, keep, dropped in victims:
        if keep and not _repack(store, pack, keep, report):
            continue
        with cat.session() as s:
            _locked_live(cat, s, store, live, seen, report)
            if dropped & live:  # referenced by a version committed since the scan: keep it
                report.kept_referenced += len(dropped & live)
                continue
            gclock.bump_epoch(s, store.url)
            _failpoints.reached("gc.locked")
            if index is not None:  # the index first: a crash then leaves an orphan pack
                store.delete_aux(index_relpath(index))
            store.delete_aux(pack_relpath(pack))
        report.pack_bytes_freed += packs.get(pack, (0, None))[0]
        # the objects that left the store with it (those of ``keep`` live on in the new pack)
        report.deleted.extend(sorted(dropped))
        report.deleted_bytes += sum(sizes.get(d, 0) for d in dropped)
        if keep:
            report.packs_repacked += 1
        else:
            report.packs_deleted += 1
    store.packs.refresh()


def _repack(store: ObjectStore, pack: str, keep: list[tuple[str, int, int]],
            report: GcReport) -> bool:
    """Write ``keep`` (entries of ``pack``) into a new pack; False (nothing written) if the
    pack cannot be read or one of them does not hash to its digest."""
    try:
        blob = store.read_range(pack, 0, max(off + n for _d, off, n in keep))
    except (FileNotFoundError, OSError) as exc:
        report.damaged.append(f"pack {pack}: {exc}")
        return False
    pieces = [(d, blob[off:off + n]) for d, off, n in sorted(keep, key=lambda e: e[1])]
    bad = [d for d, data in pieces if hash_bytes(data) != d]
    if bad:
        report.damaged.append(f"pack {pack}: {len(bad)} object(s) corrupted; not repacked")
        return False
    with PackWriter(store, target=PACK_TARGET * 4) as writer:
        for d, data in pieces:
            writer.add(d, data)
    return True


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


@dataclass
class RepairReport:
    """What ``verify --repair SOURCE`` did: problems before, objects written, problems left."""

    before: VerifyReport
    after: VerifyReport
    written: int = 0
    manifests: int = 0


def repair(cat: Catalog, versions: list[VersionInfo], source: str | Path) -> RepairReport:
    """Restore the missing or corrupted objects of ``versions`` from the files under ``source``.

    For when re-logging is impossible (the version came from another step, or its name moved
    on): ``verify`` first (which quarantines corrupted objects), then every file under
    ``source`` is hashed and the objects the store lacks are written, whatever their paths; a
    version whose manifest was lost gets it back if ``source`` holds exactly its tree. Then
    ``verify`` again: what it still finds was not in ``source``.
    """
    from headwater.store.snapshot import snapshot_local

    root = Path(source).expanduser()
    if not root.exists():
        raise InvalidArgument(f"repair source {str(root)!r} does not exist")
    before = verify(cat, versions)
    report = RepairReport(before=before, after=before)
    if before.ok:
        return report
    bad_refs = {p.version for p in before.problems}
    for url in sorted({v.store_url for v in versions if v.ref in bad_refs}):
        store = cat.store_for(url)
        snap = snapshot_local(store, root)
        report.written += snap.new_objects
        body = snap.manifest.to_bytes()
        for v in versions:
            if v.ref in bad_refs and v.store_url == url and v.digest == snap.manifest.digest \
                    and store.damaged({v.digest: len(body)}):
                store.put_bytes(body)
                report.manifests += 1
    report.after = verify(cat, versions)
    return report

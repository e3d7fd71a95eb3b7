"""Stage a version's content in the store: objects first, then the manifest, then verification.

Staging makes the bytes durable and content-addressed but *visible to nobody*: a version exists
only once :mod:`headwater.commit` inserts its catalog row. A crash before that leaves orphaned
objects, which ``gc`` reclaims; it never leaves a half-written version.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from headwater import _failpoints
from headwater.errors import InvalidArgument, RunFailed
from headwater.progress import Progress
from headwater.store import backends
from headwater.store.checkout import open_entry
from headwater.store.manifest import Manifest
from headwater.store.objects import ObjectStore
from headwater.store.snapshot import (
    CommittedLookup,
    Snapshot,
    snapshot_local,
    snapshot_reference,
    snapshot_remote,
)
from headwater.store.walk import DEFAULT_FOLLOW
from headwater.tables.detect import detect_format, one_format, table_files

if TYPE_CHECKING:
    from headwater.tables.profile import TableProfile

TABLE_FILE = "part-00000.parquet"


@dataclass(frozen=True)
class Staged:
    """Content staged in the store, ready to be committed as a version of ``dataset``."""

    dataset: str
    type: str | None  # None: the existing dataset's type, or inferred when it is created
    manifest: Manifest
    store_url: str
    profile: TableProfile | None
    stats: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    parents: tuple[str, ...] = ()
    reference: bool = False
    new_objects: int = 0
    new_bytes: int = 0
    label: str | None = None
    description: str | None = None
    properties: dict[str, Any] | None = None
    #: what was logged (path, URI or in-memory table): the commit writes objects again from it
    #: if ``gc`` took them while the run was open (None: nothing to write them from)
    source: Any = field(default=None, compare=False, repr=False)
    follow_symlinks: str = DEFAULT_FOLLOW

    @property
    def digest(self) -> str:
        return self.manifest.digest

    @property
    def kind(self) -> str:
        return "table" if self.profile is not None else "files"


@dataclass(frozen=True)
class KnownVersions:
    """What the catalog can say about content already committed in the store being written.

    A snapshot whose manifest is a committed version's needs no existence check and no table
    profile: the objects are there (``gc`` keeps what committed versions refer to) and the
    profile is in the catalog row. Re-logging unchanged data therefore costs the walk alone.
    """

    manifests: CommittedLookup
    profile: Callable[[str], TableProfile | None]


def _is_dataframe(obj: object) -> bool:
    return type(obj).__name__ == "DataFrame" and hasattr(obj, "to_parquet")


def _is_arrow_table(obj: object) -> bool:
    # without importing pyarrow (~0.15 s): if nobody imported it, obj cannot be one of its tables
    pa = sys.modules.get("pyarrow")
    return pa is not None and isinstance(obj, pa.Table)


def _profile(
    manifest: Manifest,
    opener: Callable[[str], BinaryIO],
    formats: frozenset[str | None] | None = None,
) -> TableProfile | None:
    """Profile the table files of ``manifest``; ``formats`` (the formats of its data files, if
    the snapshot already knows them) spares a pass over every path."""
    fmt = one_format(formats) if formats is not None else detect_format(e.path for e in manifest)
    if fmt is None or len(manifest) == 0:
        return None
    _, entries = table_files(manifest, fmt)
    import pyarrow as pa

    from headwater.tables.formats import iter_batches
    from headwater.tables.profile import TableProfiler

    profiler = TableProfiler(fmt)
    for entry in entries:
        with opener(entry.path) as f:
            try:
                for batch in iter_batches(f, fmt):
                    profiler.update(batch)
            except (pa.ArrowInvalid, ValueError) as exc:
                raise InvalidArgument(
                    f"{entry.path!r} looks like {fmt} but cannot be read as a table: {exc}"
                ) from exc
    return profiler.result()


def stage(
    store: ObjectStore,
    data: Any,
    *,
    source_options: Mapping[str, Any],
    reference: bool = False,
    progress: Progress | None = None,
    known: KnownVersions | None = None,
    follow_symlinks: str = DEFAULT_FOLLOW,
) -> tuple[Snapshot, TableProfile | None]:
    """Write ``data`` (path, URI, Arrow table or DataFrame) into ``store``; profile tables.

    ``known`` lets a local snapshot skip existence checks and profiling for content the catalog
    has already committed. ``follow_symlinks``: which symbolic links of a local directory are
    followed (:data:`headwater.store.walk.FOLLOW_CHOICES`).
    """
    if _is_arrow_table(data) or _is_dataframe(data):
        import pyarrow as pa
        import pyarrow.parquet as pq

        from headwater.tables.profile import TableProfiler

        if reference:
            raise InvalidArgument(
                "reference mode tracks existing files; an in-memory table "
                "has none — log it without reference=True"
            )
        table = (
            data if isinstance(data, pa.Table) else pa.Table.from_pandas(data, preserve_index=False)
        )
        with tempfile.TemporaryDirectory(prefix="hw-table-") as tmp:
            path = Path(tmp) / TABLE_FILE
            pq.write_table(table, path)
            snap = snapshot_local(store, path, progress=progress)
        profiler = TableProfiler("parquet")
        profiler.update(table)
        return snap, profiler.result()
    if not isinstance(data, str | Path):
        raise InvalidArgument(
            f"cannot log a {data.__class__.__name__}: give a path, a URI, an Arrow table or a "
            "pandas DataFrame"
        )
    text = str(data)
    protocol = backends.protocol_of(text)
    if reference:
        snap = snapshot_reference(text, options=source_options)
    elif protocol == "file":
        local = Path(text.removeprefix("file://")).expanduser()
        if not local.exists():
            raise InvalidArgument(f"path {str(local)!r} does not exist")
        snap = snapshot_local(store, local, progress=progress, stat_cache=store.stat_cache,
                              committed=known.manifests if known is not None else None,
                              follow_symlinks=follow_symlinks)
        _failpoints.hit("stage.after_objects")
        if snap.known and known is not None:
            from headwater.tables.fingerprint_version import is_current

            recorded = known.profile(snap.manifest.digest)
            # a profile recorded by an older fingerprint algorithm is not copied: profile again
            if recorded is None or is_current(recorded.fingerprint):
                return snap, recorded
        root = local if local.is_dir() else local.parent
        profile = _profile(snap.manifest, lambda rel: open(root / rel, "rb"), snap.formats)  # noqa: SIM115 - closed by _profile
        return snap, profile
    else:
        snap = snapshot_remote(store, text, options=source_options, progress=progress)
    _failpoints.hit("stage.after_objects")
    profile = _profile(
        snap.manifest,
        lambda rel: open_entry(store, snap.manifest.by_path()[rel], options=source_options),
    )
    return snap, profile


def profile_manifest(store: ObjectStore, manifest: Manifest) -> TableProfile | None:
    """Profile the table files of a manifest whose objects are in ``store`` (None if no table)."""
    by_path = manifest.by_path()
    return _profile(manifest, lambda rel: open_entry(store, by_path[rel], options={}))


def publish_manifest(
    store: ObjectStore, manifest: Manifest, *, unconfirmed: frozenset[str] | None = None,
    committed: bool = False,
) -> None:
    """Verify the objects are present, then write the manifest object (stage → verify → publish).

    ``unconfirmed``: the only digests that need the check (the snapshot published or proved
    safe all the others, see :class:`~headwater.store.snapshot.Snapshot`); None checks all.
    ``committed``: the manifest is a committed version's (kept for callers; its object is still
    checked for, since it may have been deleted or damaged since).
    """
    if unconfirmed is None:
        digests = {e.digest for e in manifest if e.digest is not None}
    else:
        digests = set(unconfirmed)
    missing = store.missing(digests)
    if missing:
        raise RunFailed(
            f"{len(missing)} object(s) of manifest {manifest.digest[:12]} are not in the store "
            f"(e.g. {sorted(missing)[0]}); nothing was committed — log the data again"
        )
    _failpoints.hit("stage.before_manifest")
    # even a committed version's manifest is checked (one stat): a deleted or damaged manifest
    # is written again, so re-logging the data repairs it (issue 14)
    body = manifest.to_bytes()
    if store.damaged({manifest.digest: len(body)}):
        store.quarantine(manifest.digest)
        store.put_bytes(body)
    _failpoints.hit("stage.after_manifest")


def restage(
    store: ObjectStore, staged: Staged, missing: set[str], *,
    source_options: Mapping[str, Any], progress: Progress | None = None,
) -> None:
    """Write ``staged``'s ``missing`` objects (and manifest) again from its source.

    Called by a commit that finds objects gone (``gc`` ran while its run was open). The source
    is snapshotted again with nothing taken on trust (no committed-version shortcut), which
    publishes whatever the store lacks; the source must still hash to the staged manifest.
    """
    what = f"{len(missing)} object(s) of {staged.dataset} (e.g. {sorted(missing)[0][:12]})"
    if staged.source is None:
        raise RunFailed(
            f"{what} were deleted by `headwater gc` while the run was open, and the run has no "
            "source to write them from; nothing was committed — log the data again"
        )
    try:
        snap, _ = stage(store, staged.source, source_options=source_options,
                        reference=staged.reference, progress=progress,
                        follow_symlinks=staged.follow_symlinks)
    except (InvalidArgument, OSError) as exc:
        raise RunFailed(
            f"{what} were deleted by `headwater gc` while the run was open, and its source "
            f"cannot be read again ({exc}); nothing was committed — log the data again"
        ) from exc
    if snap.manifest.digest != staged.digest:
        raise RunFailed(
            f"{what} were deleted by `headwater gc` while the run was open, and its source "
            "changed since it was logged; nothing was committed — log the data again"
        )
    publish_manifest(store, snap.manifest)

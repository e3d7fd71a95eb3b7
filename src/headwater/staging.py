"""Stage a version's content in the store: objects first, then the manifest, then verification.

Staging makes the bytes durable and content-addressed but *visible to nobody*: a version exists
only once :mod:`headwater.commit` inserts its catalog row. A crash before that leaves orphaned
objects, which ``gc`` reclaims; it never leaves a half-written version.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from headwater import _failpoints
from headwater.errors import InvalidArgument, RunFailed
from headwater.progress import Progress
from headwater.store import backends
from headwater.store.checkout import open_entry
from headwater.store.manifest import Manifest
from headwater.store.objects import ObjectStore
from headwater.store.snapshot import (
    Snapshot,
    snapshot_local,
    snapshot_reference,
    snapshot_remote,
)
from headwater.tables.formats import detect_format, format_of, is_data_file, iter_batches
from headwater.tables.profile import TableProfile, TableProfiler

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

    @property
    def digest(self) -> str:
        return self.manifest.digest

    @property
    def kind(self) -> str:
        return "table" if self.profile is not None else "files"


def _is_dataframe(obj: object) -> bool:
    return type(obj).__name__ == "DataFrame" and hasattr(obj, "to_parquet")


def _profile(manifest: Manifest, opener: Callable[[str], BinaryIO]) -> TableProfile | None:
    fmt = detect_format(e.path for e in manifest)
    if fmt is None or len(manifest) == 0:
        return None
    profiler = TableProfiler(fmt)
    for entry in manifest:
        if not is_data_file(entry.path) or format_of(entry.path) != fmt:
            continue
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
) -> tuple[Snapshot, TableProfile | None]:
    """Write ``data`` (path, URI, Arrow table or DataFrame) into ``store``; profile tables."""
    if isinstance(data, pa.Table) or _is_dataframe(data):
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
        snap = snapshot_local(store, local, progress=progress, stat_cache=store.stat_cache)
        _failpoints.hit("stage.after_objects")
        root = local if local.is_dir() else local.parent
        profile = _profile(snap.manifest, lambda rel: open(root / rel, "rb"))  # noqa: SIM115 - closed by _profile
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


def publish_manifest(store: ObjectStore, manifest: Manifest) -> None:
    """Verify every object is present, then write the manifest object (stage → verify → publish)."""
    digests = {e.digest for e in manifest if e.digest is not None}
    missing = store.missing(digests)
    if missing:
        raise RunFailed(
            f"{len(missing)} object(s) of manifest {manifest.digest[:12]} are not in the store "
            f"(e.g. {sorted(missing)[0]}); nothing was committed — log the data again"
        )
    _failpoints.hit("stage.before_manifest")
    store.put_bytes(manifest.to_bytes())
    _failpoints.hit("stage.after_manifest")

"""Turning data on disk or in a bucket into a manifest, uploading only objects that are new.

Three modes:

* local path (file or directory): hash files in threads, ask the store which digests it lacks
  (one listing per digest prefix), upload only those;
* remote URI, copy mode: stream each object through a hashing writer into the store;
* remote or local URI, reference mode: record each object's URI and content fingerprint
  (ETag/generation/size+mtime) and copy nothing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from headwater.errors import InvalidArgument
from headwater.progress import NullProgress, Progress
from headwater.store import backends
from headwater.store.hashing import CHUNK, hash_file
from headwater.store.manifest import Manifest, ManifestEntry, ReferenceSource
from headwater.store.objects import ObjectStore

HASH_WORKERS = 4
UPLOAD_WORKERS = 8


@dataclass(frozen=True)
class Snapshot:
    manifest: Manifest
    new_objects: int
    new_bytes: int


def list_local(source: Path) -> list[tuple[str, Path]]:
    """``(relative POSIX path, absolute path)`` of every file under ``source``, sorted."""
    if source.is_file():
        return [(source.name, source)]
    if not source.is_dir():
        raise InvalidArgument(f"path {str(source)!r} does not exist")
    out: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(source):
        dirnames.sort()
        base = Path(dirpath)
        rel = base.relative_to(source).as_posix()
        for name in filenames:
            p = base / name
            if p.is_file():
                out.append((name if rel == "." else f"{rel}/{name}", p))
    out.sort()
    return out


def snapshot_local(
    store: ObjectStore, source: Path, *, progress: Progress | None = None
) -> Snapshot:
    files = list_local(source)
    progress = progress or NullProgress()
    progress.start(f"hashing {source}", len(files))

    def hash_one(item: tuple[str, Path]) -> ManifestEntry:
        rel, path = item
        digest, size = hash_file(path)
        progress.advance()
        return ManifestEntry(rel, digest, size)

    try:
        with ThreadPoolExecutor(max_workers=HASH_WORKERS) as pool:
            entries = list(pool.map(hash_one, files))
    finally:
        progress.stop()
    by_digest: dict[str, Path] = {}
    for entry, (_, path) in zip(entries, files, strict=True):
        if entry.digest is not None:
            by_digest.setdefault(entry.digest, path)
    missing = store.missing(by_digest)
    new_bytes = _upload(store, {d: by_digest[d] for d in missing}, progress)
    return Snapshot(Manifest(entries), len(missing), new_bytes)


def _upload(store: ObjectStore, todo: Mapping[str, Path], progress: Progress) -> int:
    if not todo:
        return 0
    progress.start("uploading", len(todo))

    def put(item: tuple[str, Path]) -> int:
        digest, path = item
        store.put_file(path, digest)
        progress.advance()
        return path.stat().st_size

    try:
        with ThreadPoolExecutor(max_workers=UPLOAD_WORKERS) as pool:
            return sum(pool.map(put, todo.items()))
    finally:
        progress.stop()


def _list_remote(
    uri: str, options: Mapping[str, Any]
) -> tuple[Any, str, dict[str, dict[str, Any]]]:
    fs, path = backends.open_filesystem(uri, options)
    fs.invalidate_cache(path)
    try:
        info = fs.info(path)
    except FileNotFoundError:
        raise InvalidArgument(f"{uri!r} does not exist") from None
    if info.get("type") == "file":
        return fs, path.rsplit("/", 1)[0], {path: info}
    found = fs.find(path, detail=True)
    if not found:
        raise InvalidArgument(f"{uri!r} holds no files")
    return fs, path, dict(found)


def _relative(base: str, path: str) -> str:
    return path[len(base) :].lstrip("/") if path.startswith(base) else path.rsplit("/", 1)[-1]


def snapshot_remote(
    store: ObjectStore, uri: str, *, options: Mapping[str, Any], progress: Progress | None = None
) -> Snapshot:
    """Copy every object under ``uri`` into the store, hashing as it streams."""
    fs, base, found = _list_remote(uri, options)
    progress = progress or NullProgress()
    progress.start(f"copying {uri}", len(found))

    def copy(path: str) -> ManifestEntry:
        with fs.open(path, "rb") as src, store.writer() as w:
            while chunk := src.read(CHUNK):
                w.write(chunk)
        progress.advance()
        return ManifestEntry(_relative(base, path), w.digest, w.size)

    try:
        with ThreadPoolExecutor(max_workers=UPLOAD_WORKERS) as pool:
            entries = list(pool.map(copy, sorted(found)))
    finally:
        progress.stop()
    # every byte was streamed through; objects that already existed were not re-published
    return Snapshot(Manifest(entries), len(entries), sum(e.size for e in entries))


def snapshot_reference(uri: str, *, options: Mapping[str, Any]) -> Snapshot:
    """Track the objects under ``uri`` in place: URI + content fingerprint, nothing copied."""
    fs, base, found = _list_remote(uri, options)
    entries = []
    for path, info in sorted(found.items()):
        source = ReferenceSource(
            uri=fs.unstrip_protocol(path), fingerprint=backends.content_fingerprint(fs, info)
        )
        entries.append(
            ManifestEntry(_relative(base, path), None, int(info.get("size") or 0), source=source)
        )
    return Snapshot(Manifest(entries), 0, 0)

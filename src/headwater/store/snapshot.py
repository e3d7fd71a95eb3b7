"""Turning data on disk or in a bucket into a manifest, uploading only objects that are new.

Three modes:

* local path (file or directory): see :func:`snapshot_local`;
* remote URI, copy mode: stream each object through a hashing writer into the store;
* remote or local URI, reference mode: record each object's URI and content fingerprint
  (ETag/generation/size+mtime) and copy nothing.

Logging a local directory costs what is new, not what is there (issue 7). The tree is walked in
manifest order, streamed (one directory listing per level in memory, never a list of every path);
each file's ``stat`` is looked up in the stat cache, so an unchanged file is not read at all; the
others are hashed by a pool of threads in batches, overlapping the walk. Into a local store a
small file is read once: hashed from memory and, if its digest is new, written from the same
bytes. Large files are hashed by BLAKE3's own threads, and copied (re-hashed on the way) only if
new. Into a remote store files are hashed first; one batched existence check (a LIST per digest
prefix) then says which to upload, and those are uploaded in parallel, re-hashed as they stream.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from stat import S_ISREG
from typing import Any, NamedTuple

from headwater.errors import InvalidArgument, RunFailed
from headwater.progress import NullProgress, Progress
from headwater.store import backends
from headwater.store.hashing import CHUNK, hash_bytes, hash_open_file, read_file
from headwater.store.manifest import Manifest, ManifestEntry, ReferenceSource
from headwater.store.objects import ObjectStore
from headwater.store.statcache import RECENT_NS, NullStatCache, StatCache

HASH_WORKERS = 4
UPLOAD_WORKERS = 16
#: Files walked (and looked up in the stat cache) per batch handed to the hashing threads.
BATCH = 1024
#: Files up to this size are read whole: hashed and published from one buffer.
SMALL_MAX = 4 * CHUNK


@dataclass(frozen=True)
class Snapshot:
    manifest: Manifest
    new_objects: int
    new_bytes: int


class LocalFile(NamedTuple):
    """A regular file found by :func:`scan_local`, with the ``stat`` the stat cache keys on."""

    rel: str
    path: str
    size: int
    mtime_ns: int
    inode: int


def _children(directory: str) -> list[tuple[str, os.DirEntry[str], bool]]:
    """A directory's entries sorted so that a depth-first walk yields paths in sorted order.

    Sorting a directory by ``name + "/"`` (and files by ``name``) orders it exactly as the full
    paths under it sort as strings, so the walk needs no global sort.
    """
    out = []
    with os.scandir(directory) as it:
        for entry in it:
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                continue
            out.append((entry.name + "/" if is_dir else entry.name, entry, is_dir))
    out.sort(key=itemgetter(0))
    return out


def scan_local(source: Path | str) -> Iterator[LocalFile]:
    """Every regular file under ``source`` (or ``source`` itself), in ascending path order.

    Streams: memory holds one sorted directory listing per level of the tree. Symbolic links to
    files are followed, links to directories are not descended (as ``os.walk`` does); a file that
    disappears during the walk is skipped.
    """
    top = os.path.abspath(source)
    if os.path.isfile(top):
        st = os.stat(top)
        yield LocalFile(os.path.basename(top), top, st.st_size, st.st_mtime_ns, st.st_ino)
        return
    if not os.path.isdir(top):
        raise InvalidArgument(f"path {str(source)!r} does not exist")
    stack: list[tuple[str, Iterator[tuple[str, os.DirEntry[str], bool]]]] = [
        ("", iter(_children(top)))
    ]
    while stack:
        prefix, entries = stack[-1]
        for _, entry, is_dir in entries:
            if is_dir:
                stack.append((f"{prefix}{entry.name}/", iter(_children(entry.path))))
                break
            try:
                st = entry.stat()  # follows a symlink, as is_file() would
            except FileNotFoundError:
                continue
            if S_ISREG(st.st_mode):
                yield LocalFile(prefix + entry.name, entry.path, st.st_size, st.st_mtime_ns,
                                st.st_ino)
        else:
            stack.pop()


def list_local(source: Path) -> list[tuple[str, Path]]:
    """``(relative POSIX path, absolute path)`` of every file under ``source``, sorted."""
    return [(f.rel, Path(f.path)) for f in scan_local(source)]


class _Ingest:
    """Hashes files in worker threads and, into a local store, publishes the new ones at once.

    Into a local store each prefix directory is listed once per snapshot and the listing is then
    kept (and extended) in memory, so a digest is checked and *claimed* with a set lookup: two
    files with the same bytes are published once, whichever thread gets there first.
    """

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self.publish = store.local
        self.new_objects = 0
        self.new_bytes = 0
        self._present: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        self._started = time.time_ns()

    def _claim(self, digest: str) -> bool:
        prefix, name = digest[:2], digest[2:]
        names = self._present.get(prefix)
        if names is None:
            listed = self.store.list_prefix(prefix)
            with self._lock:
                names = self._present.setdefault(prefix, listed)
        with self._lock:
            if name in names:
                return False
            names.add(name)
            return True

    def _count(self, size: int) -> None:
        with self._lock:
            self.new_objects += 1
            self.new_bytes += size

    def __call__(self, path: str, size: int) -> tuple[str, int]:
        """Digest and size of ``path`` (published if new, into a local store)."""
        if size <= SMALL_MAX:
            data = read_file(path, size)
            digest = hash_bytes(data)
            if self.publish and self._claim(digest) and self.store.publish_bytes(data, digest):
                self._count(len(data))
            return digest, len(data)
        fd = os.open(path, os.O_RDONLY)
        try:
            before = os.fstat(fd)
            digest = hash_open_file(fd, before.st_size)
            if self.publish and self._claim(digest):
                # an old mtime that is still the same after the copy means the bytes copied are
                # the bytes hashed (the stat cache's rule), so the kernel may copy them
                recent = before.st_mtime_ns > self._started - RECENT_NS
                if self.store.publish_fd(fd, before.st_size, digest, verify=recent):
                    self._count(before.st_size)
            after = os.fstat(fd)
        finally:
            os.close(fd)
        if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
            raise RunFailed(
                f"{path} changed while it was being logged; nothing was committed — log it "
                "again once it is complete"
            )
        return digest, before.st_size


def _batched(items: Iterable[LocalFile], n: int) -> Iterator[list[LocalFile]]:
    it = iter(items)
    while batch := list(itertools.islice(it, n)):
        yield batch


def snapshot_local(
    store: ObjectStore,
    source: Path,
    *,
    progress: Progress | None = None,
    stat_cache: StatCache | None = None,
) -> Snapshot:
    """Hash every file under ``source`` and put the ones the store lacks into it.

    ``stat_cache`` (default: none) supplies the digests of files unchanged since they were last
    hashed on this machine; their objects are still checked for in the store, in one batch.
    """
    progress = progress or NullProgress()
    cache = stat_cache if stat_cache is not None else NullStatCache()
    root = os.path.abspath(source)
    ingest = _Ingest(store)
    entries: list[ManifestEntry | None] = []
    from_cache: list[int] = []  # entries whose digest the stat cache gave (not read this time)
    progress.start(f"hashing {source}", None)
    try:
        with cache.scan(root) as scan, ThreadPoolExecutor(max_workers=HASH_WORKERS) as pool:
            pending: deque[tuple[list[tuple[int, LocalFile]], list[Future[tuple[str, int]]]]]
            pending = deque()

            def collect() -> None:
                todo, futures = pending.popleft()
                for (i, f), future in zip(todo, futures, strict=True):
                    digest, size = future.result()
                    entries[i] = ManifestEntry.of_local_file(f.rel, digest, size)
                    if size == f.size:  # else it changed while being read: do not cache it
                        scan.record(f.path, f.size, f.mtime_ns, f.inode, digest)
                progress.advance(len(todo))

            for batch in _batched(scan_local(root), BATCH):
                todo = []
                for f in batch:
                    digest = scan.lookup(f.path, f.size, f.mtime_ns, f.inode)
                    if digest is None:
                        todo.append((len(entries), f))
                        entries.append(None)
                    else:
                        from_cache.append(len(entries))
                        entries.append(ManifestEntry.of_local_file(f.rel, digest, f.size))
                progress.advance(len(batch) - len(todo))
                pending.append((todo, [pool.submit(ingest, f.path, f.size) for _, f in todo]))
                if len(pending) > 2:  # keep the pool busy while the walk goes on
                    collect()
            while pending:
                collect()
    finally:
        progress.stop()
    done: list[ManifestEntry] = entries  # type: ignore[assignment]  # every slot was filled
    single = os.path.isfile(root)

    def abs_path(rel: str) -> str:
        return root if single else os.path.join(root, rel)

    # into a local store only the digests the stat cache gave need checking (their objects may
    # have been collected since); into a remote one nothing has been uploaded yet
    check = from_cache if ingest.publish else list(range(len(done)))
    _upload_missing(store, done, check, abs_path, ingest, progress)
    return Snapshot(Manifest(done), ingest.new_objects, ingest.new_bytes)


def _upload_missing(
    store: ObjectStore,
    entries: list[ManifestEntry],
    check: list[int],
    abs_path: Callable[[str], str],
    ingest: _Ingest,
    progress: Progress,
) -> None:
    """Ask the store once which of ``entries[check]`` it lacks; put those, re-hashed.

    A file re-read here that no longer hashes to its digest (it changed, or its stat cache entry
    was stale) is logged with the digest of what was read, which is what gets stored.
    """
    if not check:
        return
    missing = store.missing({entries[i].digest or "" for i in check})
    todo = [i for i in check if entries[i].digest in missing]
    if not todo:
        return
    published: set[str] = set()
    lock = threading.Lock()

    def claim(digest: str) -> bool:
        with lock:
            if digest in published:
                return False
            published.add(digest)
            return True

    progress.start("uploading", len(todo))

    def put(i: int) -> None:
        entry = entries[i]
        digest = entry.digest or ""
        path = abs_path(entry.path)
        if entry.size <= SMALL_MAX:
            data = read_file(path, entry.size)
            actual = hash_bytes(data)
            if actual != digest or len(data) != entry.size:
                entries[i] = ManifestEntry.of_local_file(entry.path, actual, len(data))
            if claim(actual) and store.publish_bytes(data, actual):
                ingest._count(len(data))
        elif claim(digest):
            store.put_file(path, digest, check=False)  # re-hashed; RunFailed if it changed
            ingest._count(entry.size)
        progress.advance()

    def put_batch(batch: list[int]) -> None:
        for i in batch:
            put(i)

    # one task per batch (not per file): a million pending futures would cost ~1 GB
    per_task = 16 if not store.local else BATCH
    batches = [todo[k : k + per_task] for k in range(0, len(todo), per_task)]
    try:
        workers = HASH_WORKERS if store.local else UPLOAD_WORKERS
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for _ in pool.map(put_batch, batches):
                pass
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

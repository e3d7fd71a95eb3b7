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
new. Into a packing store (remote by default, ADR 0005) a small file is read once too: once more
than :data:`PACK_AFTER` need hashing, the store is listed once (loose objects and pack indexes)
and each new small file is appended to a pack from the walk's buffer, whole packs uploading while
the walk goes on. Into a remote store the other files are hashed first; one batched existence
check (a LIST per digest prefix) then says which to upload, and those are uploaded in parallel,
re-hashed as they stream.
"""

from __future__ import annotations

import contextlib
import logging
import marshal
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

from headwater.errors import InvalidArgument, RunFailed
from headwater.progress import NullProgress, Progress
from headwater.store import backends, hashing, walk
from headwater.store.hashing import CHUNK, hash_bytes, hash_open_file, read_file
from headwater.store.layout import split_digest
from headwater.store.manifest import (
    _NEEDS_FULL_CHECK,
    Manifest,
    ManifestEntry,
    ManifestWriter,
    ReferenceSource,
    object_line,
)
from headwater.store.objects import ObjectStore
from headwater.store.packs import PackWriter
from headwater.store.paths import check_relpath
from headwater.store.statcache import (
    RECENT_NS,
    DirRecord,
    NullStatCache,
    StatCache,
    StatScan,
    match,
    pack_digests,
    pack_stats,
)
from headwater.store.walk import FileStat, Listing, list_dir
from headwater.tables.detect import formats_of

HASH_WORKERS = 4
UPLOAD_WORKERS = 16
#: Files per upload task; four times this many walked files may wait for large-file hashes.
BATCH = 1024
#: A tree the stat cache knows to have at least this many directories is listed by two processes.
HELPER_MIN_DIRS = 256
#: A snapshot longer than this has the commit re-check every object: the ones it published first
#: may be older than ``gc``'s grace period (1 h by default) by the time it commits.
RECHECK_ALL_AFTER_S = 1800.0
#: Files up to this size are read whole: hashed and published from one buffer.
SMALL_MAX = 4 * CHUNK
#: Into a packing store, small files hashed (and kept in memory) before the store is listed
#: once: fewer are checked after the walk (a few requests); more start the listing, and from
#: then on each new small file is packed as it is read.
PACK_AFTER = 64


@dataclass(frozen=True)
class Snapshot:
    """What a snapshot staged.

    ``known``: the manifest is that of a version already committed in this store (so its
    objects are there and its profile is in the catalog). ``unconfirmed``: digests the snapshot
    found already present without knowing a committed version refers to them — the only ones a
    concurrent ``gc`` could still take, so the only ones the commit re-checks; None: re-check
    every object. ``formats``: the table formats of the data files (None: not known here).
    """

    manifest: Manifest
    new_objects: int
    new_bytes: int
    known: bool = False
    unconfirmed: frozenset[str] | None = None
    formats: frozenset[str | None] | None = None
    #: objects that were missing or damaged in the store and were written again from the source
    repaired: int = 0


class LocalFile(NamedTuple):
    """A regular file found by :func:`scan_local`, with the ``stat`` the stat cache keys on."""

    rel: str
    path: str
    size: int
    mtime_ns: int
    inode: int


#: Which manifest digests (of a snapshot's and of its stat-cache rows) are committed versions
#: in the store being written: their objects are present and stay present.
CommittedLookup = Callable[[set[str]], set[str]]


class _Dir:
    """One listed directory: its regular files (name order) and, once known, their digests.

    Once its manifest lines are written the directory is :meth:`compact`: its files' stats
    and digests are kept as two ``marshal`` blobs (the stat cache's row format, ~130 bytes a
    file instead of ~450 in tuples, ints and strings: a million files' snapshot held ~1 GB),
    unpacked again one directory at a time by what runs after the walk.
    """

    __slots__ = ("_digests", "_files", "_packed", "digests_blob", "formats", "fresh", "key",
                 "path", "plain", "prefix", "reused", "stats_blob")

    def __init__(self, path: str, prefix: str, key: str, files: list[FileStat]) -> None:
        self.path = path  # absolute directory (or, for a single-file root, that file)
        self.prefix = prefix  # manifest path prefix of its files ("" or "a/b/")
        self.key = key  # stat-cache key
        self._files: list[FileStat] | None = files
        # str, or a Future of (digest, size) while being hashed
        self._digests: list[Any] | None = []
        self._packed: tuple[bytes, bytes] | None = None  # (stats, digests) once compact
        self.reused = False  # the stat-cache row matched as a whole
        #: every file was hashed by the ingest and its object dealt with there (written or
        #: packed by this snapshot, or found present: then in ``_Ingest.existing``)
        self.fresh = False
        self.formats = ""  # the stat cache's formats value, for the row recorded
        self.plain = False  # no '"' in any path: lines need no JSON escaping
        #: pack_stats(files) as listed, and a reused row's digests: its compact form as it is
        self.stats_blob: bytes | None = None
        self.digests_blob: bytes | None = None

    @property
    def files(self) -> list[FileStat]:
        files = self._files
        return files if files is not None else self._unpack()[0]

    @files.setter
    def files(self, value: list[FileStat]) -> None:
        self._files = value

    @property
    def digests(self) -> list[Any]:
        digests = self._digests
        return digests if digests is not None else self._unpack()[1]

    @digests.setter
    def digests(self, value: list[Any]) -> None:
        self._digests = value

    def compact(self, stats: bytes, digests: bytes) -> None:
        """Keep the files' stats and (all known) digests only as these blobs, ``pack_stats``
        and ``pack_digests`` of them; :attr:`files` and :attr:`digests` unpack them."""
        self._packed = (stats, digests)
        self._files = self._digests = None
        self.stats_blob = self.digests_blob = None

    def _unpack(self) -> tuple[list[FileStat], list[Any]]:
        # the directory this thread unpacked last: callers go through them one at a time
        hot = getattr(_HOT, "dir", None)
        if hot is not None and hot[0] is self:
            return hot[1], hot[2]
        assert self._packed is not None
        files, digests = marshal.loads(self._packed[0]), marshal.loads(self._packed[1])
        _HOT.dir = (self, files, digests)
        return files, digests

    def file_path(self, i: int) -> str:
        return self.path if not self.key.endswith("/") else f"{self.path}/{self.files[i][0]}"


#: Per thread, ``dir``: the compact directory it unpacked last, with its files and digests
#: (see :meth:`_Dir._unpack`).
_HOT = threading.local()


class _AllDigests:
    """The digests of every file of ``dirs`` (in order), then ``more``, as often as
    iterated: a stand-in for their list."""

    def __init__(self, dirs: list[_Dir], more: Iterable[str] = ()) -> None:
        self._dirs = dirs
        self._more = more

    def __iter__(self) -> Iterator[str]:
        for d in self._dirs:
            yield from d.digests
        yield from self._more


#: One run of consecutive files of a directory in manifest order: (dir, start, end).
_Run = tuple[_Dir, int, int]


class _Lister:
    """Directory listings for :func:`_walk`: made here, or read from a :class:`walk.Helper`
    process for the subtrees it took (a prefetched whole tree, or the second half of the
    top-level subtrees).

    The walk asks for directories in pre-order, which is the order the helper wrote each
    subtree's listings in; a listing that is not the one expected (or a helper that failed)
    only means this process lists that directory itself.
    """

    def __init__(
        self, helper: walk.Helper | None = None, *, root: str = "",
        follow: str = walk.DEFAULT_FOLLOW, skipped: list[str] | None = None,
    ) -> None:
        self._helper = helper
        self._tops = {top: i for i, top in enumerate(helper.tops)} if helper else {}
        # (subtree top + "/", its file, its records)
        self._reading: tuple[str, BinaryIO, Iterator[tuple[str, Listing, list[str]]]] | None = None
        self.root, self.follow = root, follow
        #: entries left out of the listings (links not followed, special files), for a warning
        self.skipped: list[str] = skipped if skipped is not None else []

    def share(self, root: str, subdirs: list[str]) -> None:
        """Hand the second half of ``root``'s top-level subtrees to a helper process.

        Contiguous halves: the helper's start-up (~20 ms) and work overlap this process's walk
        of the first half, so neither waits for the other until the very end.
        """
        tops = [f"{root}/{d}" for d in subdirs[len(subdirs) // 2 :]]
        if self._helper is not None or not tops:
            return
        try:
            self._helper = walk.Helper(tops, tree=self.root or root, follow=self.follow)
        except OSError:
            return
        self._tops = {top: i for i, top in enumerate(tops)}

    def list(self, path: str) -> Listing:
        i = self._tops.get(path)
        if i is not None and self._helper is not None:
            self._stop_reading()
            stream = self._helper.open(i)
            if stream is not None:
                self._reading = (path + "/", stream, walk.read_listings(stream))
        elif self._reading is not None and not path.startswith(self._reading[0]):
            self._stop_reading()
        if self._reading is not None:
            try:
                found, listing, skipped = next(self._reading[2])
            except (StopIteration, EOFError, ValueError, TypeError):
                found, listing, skipped = None, None, []
            if found == path and listing is not None:
                self.skipped.extend(skipped)
                return listing
            self._stop_reading()
        return list_dir(path, follow=self.follow, root=self.root or None, skipped=self.skipped)

    def _stop_reading(self) -> None:
        if self._reading is not None:
            self._reading[1].close()
            self._reading = None

    def close(self) -> None:
        self._stop_reading()
        if self._helper is not None:
            self._helper.close()
            self._helper = None


def _walk(
    root: str, on_list: Callable[[_Dir], None], *, helper: bool = False,
    prefetched: walk.Helper | None = None, follow: str = walk.DEFAULT_FOLLOW,
    skipped: list[str] | None = None,
) -> Iterator[_Run]:
    """Runs of files under ``root`` in ascending path order; ``on_list`` sees each directory
    when it is listed (in ascending key order), before any of its runs is yielded.

    Streams: memory holds one listing per level of the tree. ``helper``: share the listing
    with a second process; ``prefetched``: a helper already listing ``root`` (see
    :class:`_Lister`).
    """
    if os.path.isfile(root):
        st = os.stat(root)
        d = _Dir(root, "", root, [(os.path.basename(root), st.st_size, st.st_mtime_ns, st.st_ino,
                                    st.st_ctime_ns)])
        on_list(d)
        yield d, 0, 1
        return
    if not os.path.isdir(root):
        if os.path.lexists(root):
            raise InvalidArgument(
                f"path {root!r} is not a regular file or directory (a FIFO, socket, device or "
                "broken link?); only files and directories can be logged"
            )
        raise InvalidArgument(f"path {root!r} does not exist")

    lister = _Lister(prefetched, root=root, follow=follow, skipped=skipped)

    def open_dir(path: str, prefix: str) -> tuple[_Dir, Iterator[int | str], list[int]]:
        if prefix and _NEEDS_FULL_CHECK.search(prefix) is not None:
            check_relpath(prefix[:-1])
        files, order = lister.list(path)
        if not prefix and helper and os.cpu_count() != 1:
            lister.share(path, [s for s in order if isinstance(s, str)])
        d = _Dir(path, prefix, path + "/", files)
        on_list(d)
        return d, iter(order), [0]

    try:
        stack = [open_dir(root, "")]
        while stack:
            d, order, pos = stack[-1]
            for step in order:
                if isinstance(step, str):
                    stack.append(open_dir(f"{d.path}/{step}", f"{d.prefix}{step}/"))
                    break
                yield d, pos[0], pos[0] + step
                pos[0] += step
            else:
                stack.pop()
    finally:
        lister.close()


def scan_local(source: Path | str) -> Iterator[LocalFile]:
    """Every regular file under ``source`` (or ``source`` itself), in ascending path order."""
    for d, start, end in _walk(os.path.abspath(source), lambda d: None):
        for i in range(start, end):
            name, size, mtime_ns, inode = d.files[i][:4]
            yield LocalFile(d.prefix + name, d.file_path(i), size, mtime_ns, inode)


class _Ingest:
    """Hashes files and, into a local store, publishes the new ones at once; into a packing
    store, packs the new small ones at once (see :meth:`_pack`).

    Into a local store each prefix directory is listed once per snapshot and the listing is then
    kept (and extended) in memory, so a digest is checked and *claimed* with a set lookup: two
    files with the same bytes are published once, whichever thread gets there first. A digest
    found already there is remembered as *existing*: nothing committed may refer to it, so the
    commit checks it once more (see :class:`Snapshot`).
    """

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self.publish = store.local and not store.packing
        #: into a packing store, once more than :data:`PACK_AFTER` small files were hashed, the
        #: presence of every object is known from one listing (and one load of the pack indexes)
        #: and each new small file is appended to a pack from the walk's buffer (ADR 0005); the
        #: small files hashed before that wait in memory; large ones are put after the walk
        self.packing = store.packing
        self.packer: PackWriter | None = None
        #: small files hashed before the listing (at most PACK_AFTER): kept, packed in order
        self._waiting: list[tuple[str, bytes]] = []
        self.new_objects = 0
        self.new_bytes = 0
        self.existing: set[str] = set()
        #: per 2-hex prefix, the names listed and claimed, as raw bytes (64 B each, not 112)
        self._present: dict[str, set[bytes]] = {}
        self._checked: set[str] = set()  # existing objects whose content was compared
        self._packs_before = False  # the store held packs when this snapshot listed it
        self._lock = threading.Lock()
        self._started = time.time_ns()

    def _claim(self, digest: str) -> bool:
        prefix, hex_name = split_digest(digest)
        name = bytes.fromhex(hex_name)
        names = self._present.get(prefix)
        if names is None:
            listed = _raw_names(self.store.list_prefix(prefix))
            with self._lock:
                names = self._present.setdefault(prefix, listed)
        with self._lock:
            if name in names:
                self.existing.add(digest)
                return False
            if self.packer is not None:
                # packed before (the indexes were loaded with the listing); a store with no
                # pack yet is not asked, so it builds no table of what this snapshot packs
                if self._packs_before and self.store.packs.find(digest) is not None:
                    self.existing.add(digest)
                    return False
                return True  # the pack writer keeps each object once: no name kept here
            names.add(name)
            return True

    def _start_packing(self) -> None:
        """Know what the store holds (every loose object, every pack index: what
        :meth:`ObjectStore.missing` lists for this many files anyway), open the pack writer and
        pack the files that were waiting for it, in the order they were read."""
        self._present = {p: _raw_names(names) for p, names in self.store.list_loose().items()}
        self.store.packs.refresh()
        self._packs_before = self.store.packs.any()
        self.packer = self.store.pack_writer()
        waiting, self._waiting = self._waiting, []
        for digest, data in waiting:
            self._add(digest, data)

    def _add(self, digest: str, data: bytes | memoryview) -> None:
        assert self.packer is not None
        if self._claim(digest) and self.packer.add(digest, data):
            self._count(len(data))

    def finish(self) -> None:
        """The walk is over: the small files still waiting (too few for a listing) are
        checked with one :meth:`ObjectStore.missing` and the new ones packed. The writer stays
        open for what is put after the walk (:func:`_pack_missing`); :meth:`close` ends it."""
        waiting, self._waiting = self._waiting, []
        # the walk was the last to claim: what was listed is not needed any more (~150 MB
        # of names per million objects)
        self._present, self._checked = {}, set()
        if not waiting:
            return
        absent = self.store.missing({d for d, _ in waiting})
        self.existing.update(d for d, _ in waiting if d not in absent)
        self.packer = self.store.pack_writer()
        for digest, data in waiting:
            if digest in absent and self.packer.add(digest, data):
                self._count(len(data))

    def close(self) -> None:
        """Upload the last pack and wait for every pack's index: only then are the objects
        packed during the walk in the store. Raises the first upload failure."""
        packer, self.packer = self.packer, None
        if packer is not None:
            packer.close()

    def abort(self) -> None:
        packer, self.packer = self.packer, None
        if packer is not None:
            packer.abort()  # packs already up without their index are orphans gc reclaims

    def _pack(self, digest: str, data: bytes | memoryview) -> bool:
        """Whether this small file's object is dealt with by the ingest (packing store): found
        present, or packed from this buffer (now, or once :meth:`_start_packing` or
        :meth:`finish` knows it is new). False (not packable): checked and put after the walk."""
        if not self.store.packable(digest, len(data)):
            return False
        if self.packer is not None:
            self._add(digest, data)
            return True
        self._waiting.append((digest, bytes(data)))
        if len(self._waiting) > PACK_AFTER:
            self._start_packing()
        return True

    def _intact(self, digest: str, data: bytes | memoryview) -> bool:
        """Whether the stored object ``digest`` holds exactly ``data`` (checked once per digest)."""
        with self._lock:
            if digest in self._checked:
                return True
            self._checked.add(digest)
        try:
            return hashing.read_file(self.store.object_path(digest)) == data
        except FileNotFoundError:
            return False

    def _count(self, size: int) -> None:
        with self._lock:
            self.new_objects += 1
            self.new_bytes += size

    def __call__(self, path: str, size: int) -> tuple[str, int, bool]:
        """Digest and size of ``path``, and whether its object is dealt with (published or
        packed if new, found present otherwise) or still to be checked after the walk.

        Small files are ingested by the walk's thread only (a pack is appended to in order)."""
        if size <= SMALL_MAX:
            data = read_file(path, size)
            digest = hash_bytes(data)
            if self.packing:
                return digest, len(data), self._pack(digest, data)
            if self.publish:
                if self._claim(digest):
                    if self.store.publish_bytes(data, digest):
                        self._count(len(data))
                elif not self._intact(digest, data):
                    # a small object is cheap to compare: a damaged copy is replaced, so a new
                    # version never refers to bytes that fail `verify` (issue 14)
                    self.store.quarantine(digest)
                    if self.store.publish_bytes(data, digest):
                        self._count(len(data))
            return digest, len(data), self.publish
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
        return digest, before.st_size, self.publish


def _raw_names(names: Iterable[str]) -> set[bytes]:
    """Object names (hex) as raw bytes; a name that is not hex is no object's."""
    out = set()
    for name in names:
        with contextlib.suppress(ValueError):
            raw = bytes.fromhex(name)
            if raw.hex() == name:  # not "AB..", nor with spaces: no object is named so
                out.add(raw)
    return out


def _formats(names: Iterable[str]) -> str:
    """The stat cache's ``formats`` value: table formats of the data files among ``names``."""
    found = {f or "" for f in formats_of(names)}
    return ",".join(sorted(found)) if found else "-"


class _Build:
    """The state of one :func:`snapshot_local`: manifest lines, counts, what to check later."""

    def __init__(self, store: ObjectStore, scan: StatScan, pool: ThreadPoolExecutor,
                 progress: Progress, committed: CommittedLookup | None, started_ns: int) -> None:
        self.store, self.scan, self.pool, self.progress = store, scan, pool, progress
        #: the "recent" rule's reference time: when the first stat of this snapshot was taken
        self.started_ns = started_ns
        self.committed = committed
        self._sources: dict[str, bool] = {}
        self.ingest = _Ingest(store)
        self.writer = ManifestWriter(tmp_dir=str(store.staging_dir()) if store.local else None)
        self.count = 0
        self.total = 0
        self.formats: set[str] = set()
        #: files whose digest came from a stat-cache row of an uncommitted manifest: checked
        self.unvouched: list[tuple[_Dir, int]] = []
        self.hashed: list[tuple[_Dir, int]] = []  # read this time, into a remote store
        self.pending: deque[_Run] = deque()
        self.pending_files = 0
        #: every directory listed (for the final check that reused objects are intact)
        self.dirs: list[_Dir] = []


    def is_committed(self, source: str) -> bool:
        """Whether ``source`` (a manifest digest) is a committed version in the store; asked
        once per distinct source, which is one query for a typical re-log."""
        ok = self._sources.get(source)
        if ok is None:
            ok = bool(source) and source in _committed(self.committed, {source})
            self._sources[source] = ok
        return ok

    # -- a directory is listed: take what the cache vouches for, hash the rest ------------------
    def listed(self, d: _Dir) -> None:
        if not d.files:
            return
        self.dirs.append(d)
        blob = d.stats_blob = pack_stats(d.files)
        d.plain = '"' not in d.prefix and not any('"' in f[0] for f in d.files)
        row = self.scan.lookup(d.key)
        cached, whole = match(row, d.files, blob, self.started_ns)
        if whole and row is not None:
            d.digests, d.reused = cached, True
            d.digests_blob = row.digests
            if not self.is_committed(row.source):
                self.unvouched.extend((d, i) for i in range(len(cached)))
            self.formats.update(row.formats.split(",") if row.formats != "-" else ())
            self.progress.advance(len(d.files))
            return
        names = [f[0] for f in d.files] if d.key.endswith("/") else [d.files[0][0]]
        formats = _formats(names)
        self.formats.update(formats.split(",") if formats != "-" else ())
        digests: list[Any] = []
        vouched = row is not None and self.is_committed(row.source)
        for i, digest in enumerate(cached):
            if digest is not None:
                digests.append(digest)
                if not vouched:
                    self.unvouched.append((d, i))
                continue
            size = d.files[i][1]
            if size <= SMALL_MAX:  # syscall-bound: inline (threads would only trade the GIL)
                digests.append(self.ingest(d.file_path(i), size))
            else:  # BLAKE3 and the kernel copy run without the GIL: in parallel
                digests.append(self.pool.submit(self.ingest, d.file_path(i), size))
        d.digests = digests
        d.formats = formats
        d.fresh = all(x is None for x in cached)
        self.progress.advance(sum(1 for x in cached if x is not None))

    # -- a run is ready to become manifest lines -------------------------------------------------
    def add_run(self, run: _Run) -> None:
        self.pending.append(run)
        self.pending_files += run[2] - run[1]
        while self.pending and self.pending_files > 4 * BATCH:
            self._emit(self.pending.popleft())

    def flush(self) -> None:
        while self.pending:
            self._emit(self.pending.popleft())

    def _emit(self, run: _Run) -> None:
        d, start, end = run
        self.pending_files -= end - start
        if not d.reused:  # a reused row's digests are all known and its names were checked
            self._resolve(d, start, end)
        files, digests, prefix = d.files[start:end], d.digests[start:end], d.prefix
        if d.plain:
            text = "".join([f'{{"digest":"{dg}","path":"{prefix}{f[0]}","size":{f[1]}}}\n'
                            for f, dg in zip(files, digests, strict=True)])
        else:
            text = "".join([object_line(prefix + f[0], dg, f[1]) + "\n"
                            for f, dg in zip(files, digests, strict=True)])
        self.total += sum([f[1] for f in files])
        self.count += end - start

        try:
            self.writer.write(text.encode("utf-8"))
        except UnicodeEncodeError:
            raise InvalidArgument(
                f"a file name in {d.path!r} is not valid UTF-8; rename it to log this directory"
            ) from None
        if end == len(d.files):  # the directory's last lines: keep it compact from now on
            if not d.reused:
                self._record(d)
            elif d.stats_blob is not None and d.digests_blob is not None:
                d.compact(d.stats_blob, d.digests_blob)

    def damaged(self, key: str) -> set[str]:
        """Objects of the files emitted that are gone, flagged, or (if this snapshot found them
        already there rather than through a committed version) of another size. Local store.

        Objects a committed version vouches for (through the stat cache) are checked by
        listing their prefix directories, not one ``stat`` each: that doubled the time of an
        unchanged re-log of 100k files (0.52 -> 0.90 s); a truncated one is caught by the first
        read or ``verify``, which flag it.
        """
        # Loose objects: every digest, also those this snapshot wrote (the certificate written
        # for ``key`` names them all: a later version's check compares its prefixes' digests
        # with it). Into a packing store, not what this snapshot packed: its packs and indexes
        # are written (closed before this), and looking for a million packed digests held
        # ~230 MB more than the rest of the snapshot (issue 18); the certificate still names
        # every index. Iterated, not held here as one list of strings (~130 MB per million).
        checked = [d for d in self.dirs if not (self.store.packing and d.fresh)]
        more = self.ingest.existing if len(checked) < len(self.dirs) else ()
        bad = self.store.absent_since_checked(_AllDigests(checked, more), key)
        digests = _AllDigests(self.dirs)
        flags = self.store.flagged()
        if flags:
            bad |= {dg for dg in digests if dg in flags}
        found = (self.ingest.existing | {d.digests[i] for d, i in self.unvouched}) - bad
        if found:
            sizes = {dg: f[1] for d in self.dirs
                     for f, dg in zip(d.files, d.digests, strict=True) if dg in found}
            bad |= self.store.wrong_size(sizes)
        return bad

    def _resolve(self, d: _Dir, start: int, end: int) -> None:
        """Wait for the digests of files being hashed; check names that need it."""
        files, digests = d.files, d.digests
        single = not d.key.endswith("/")
        for i in range(start, end):
            name = files[i][0]
            if single or _NEEDS_FULL_CHECK.search(name) is not None:
                check_relpath(d.prefix + name)
            value = digests[i]
            if isinstance(value, str):
                continue
            digest, size, handled = value.result() if isinstance(value, Future) else value
            if size != files[i][1]:  # changed while being read: do not cache its stat
                files[i] = (name, size, files[i][2], -1, files[i][4])
            digests[i] = digest
            if not handled:
                self.hashed.append((d, i))
                d.fresh = False
            self.progress.advance()

    def _record(self, d: _Dir) -> None:
        limit = self.started_ns - RECENT_NS
        digests = [dg if st[2] <= limit and st[3] != -1 else None
                   for st, dg in zip(d.files, d.digests, strict=True)]
        stats, known = pack_stats(d.files), pack_digests(digests)
        self.scan.record(d.key, DirRecord(stats, known, d.formats, ""))
        # the row's blobs are the directory's compact form (the same bytes, held once)
        d.compact(stats, known if None not in digests else pack_digests(d.digests))

    def manifest(self) -> Manifest:
        return self.writer.finish(count=self.count, total_size=self.total)


def snapshot_local(
    store: ObjectStore,
    source: Path,
    *,
    progress: Progress | None = None,
    stat_cache: StatCache | None = None,
    committed: CommittedLookup | None = None,
    follow_symlinks: str = walk.DEFAULT_FOLLOW,
) -> Snapshot:
    """Hash every file under ``source`` and put the ones the store lacks into it.

    ``follow_symlinks`` (:data:`walk.FOLLOW_CHOICES`): which symbolic links to files are
    followed; what is left out (other links, special files) is logged as one warning on the
    ``headwater.store.snapshot`` logger, listing the paths.

    ``stat_cache`` (default: none) supplies the digests of files unchanged since they were last
    hashed on this machine. Their objects are known present when the manifest the cache row was
    written for is a committed version in this store (``committed`` answers that, in one query);
    otherwise they are checked for in one batch, and uploaded again if gone.
    """
    progress = progress or NullProgress()
    cache = stat_cache if stat_cache is not None else NullStatCache()
    root = os.path.abspath(source)
    began = time.monotonic()
    if follow_symlinks not in walk.FOLLOW_CHOICES:
        raise InvalidArgument(f"follow_symlinks must be one of {', '.join(walk.FOLLOW_CHOICES)}, "
                              f"not {follow_symlinks!r}")
    prefetched = walk.take_prefetched(root, follow_symlinks)
    skipped: list[str] = []
    progress.start(f"hashing {source}", None)
    try:
        with cache.scan(root) as scan, ThreadPoolExecutor(max_workers=HASH_WORKERS) as pool:
            started = min(scan.started_ns, prefetched.started_ns if prefetched else scan.started_ns)
            build = _Build(store, scan, pool, progress, committed, started)
            try:
                share = scan.dirs_hint >= HELPER_MIN_DIRS and _helper_allowed()
                for run in _walk(root, build.listed, helper=share, prefetched=prefetched,
                                 follow=follow_symlinks, skipped=skipped):
                    build.add_run(run)
                build.flush()
                build.ingest.finish()
            except BaseException:
                build.ingest.abort()
                build.writer.abort()
                scan.finish("", completed=False)  # keep what was hashed; checked next time
                raise
            manifest = build.manifest()
            known = build.is_committed(manifest.digest)
            corrections: dict[str, tuple[str, int]] = {}
            unconfirmed: set[str] = set(build.ingest.existing)
            try:
                if not known:
                    check = build.unvouched + build.hashed
                    corrections = _upload_missing(store, check, build.ingest, progress,
                                                  unconfirmed)
                    # reused rows of an uncommitted manifest were just checked: re-source them
                    for key in dict.fromkeys(d.key for d, _ in build.unvouched if d.reused):
                        scan.keep(key)
                build.ingest.close()  # every pack of this snapshot and its index are written
            except BaseException:
                build.ingest.abort()
                raise
            # reused objects must be known good (issue 14): present with the right size, or
            # written again from the files; the stat cache never vouches for a lost object
            before = build.ingest.new_objects
            fixed = _repair_damaged(store, build, manifest, progress, unconfirmed)
            repaired = build.ingest.new_objects - before
            corrections.update(fixed)
            if corrections:
                manifest = _corrected(manifest, corrections)
            # a corrected manifest does not hold every digest the rows written above vouch for
            # (the stale ones it replaced): then the rows name no source and are checked next time
            scan.finish("" if corrections else manifest.digest)
    finally:
        progress.stop()
        _HOT.dir = None
        if prefetched is not None:
            prefetched.close()  # normally already closed by the walk
    if skipped:
        _warn_skipped(source, skipped)
    formats = frozenset(f or None for f in build.formats)
    long_ago = time.monotonic() - began > RECHECK_ALL_AFTER_S
    snap = Snapshot(manifest, build.ingest.new_objects, build.ingest.new_bytes,
                    known=known and not corrections,
                    unconfirmed=None if long_ago and not known else frozenset(unconfirmed),
                    formats=formats, repaired=repaired)
    if len(manifest) >= TRIM_AFTER:
        del build
        _give_back_freed_memory()
    return snap


#: A snapshot of at least this many files gives the memory it freed back to the system.
TRIM_AFTER = 200_000


def _give_back_freed_memory() -> None:
    """Return the heap pages the snapshot's objects left free to the system (glibc's
    ``malloc_trim``). The compact directories are ~10,000 blobs of a few KiB: freed, they stay
    resident, and the commit then makes the manifest's bytes (~120 MB per million files) on
    top of them. Linux with glibc only; elsewhere nothing."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return
    trim(0)


def _warn_skipped(source: Path | str, skipped: list[str], shown: int = 20) -> None:
    listed = "; ".join(skipped[:shown]) + (f"; and {len(skipped) - shown} more"
                                           if len(skipped) > shown else "")
    logging.getLogger(__name__).warning(
        "%d entr%s under %s left out of the version: %s", len(skipped),
        "y" if len(skipped) == 1 else "ies", source, listed)


def _helper_allowed() -> bool:
    return os.environ.get("HEADWATER_WALK_HELPER", "on").lower() not in ("0", "off", "false")


def _committed(lookup: CommittedLookup | None, digests: set[str]) -> set[str]:
    digests.discard("")
    return lookup(digests) if lookup is not None and digests else set()


def _corrected(manifest: Manifest, corrections: dict[str, tuple[str, int]]) -> Manifest:
    entries = []
    for e in manifest:
        fix = corrections.get(e.path)
        entries.append(e if fix is None else ManifestEntry(e.path, fix[0], fix[1]))
    return Manifest(entries)


def _repair_damaged(
    store: ObjectStore, build: _Build, manifest: Manifest, progress: Progress,
    unconfirmed: set[str],
) -> dict[str, tuple[str, int]]:
    """Write again, from the files, every object of ``manifest`` that the store lacks or holds
    with another size; a wrong copy is quarantined first. Returns path corrections as
    :func:`_upload_missing` does (a file that no longer hashes to its cached digest)."""
    if store.local:
        bad = build.damaged(manifest.digest)
    else:  # remote: a request per prefix for every object turned a 0.05 s re-log into 4 s
        # only what was found already there (not what this snapshot just uploaded), and
        # flagged objects; sizes from the walk (parsing the manifest cost 4 s per 100k files)
        found = ({d.digests[i] for d, i in build.unvouched + build.hashed} & unconfirmed
                 ) | build.ingest.existing
        flags = store.flagged()
        bad = set()
        if found or flags:
            sizes = {dg: f[1] for d in build.dirs
                     for f, dg in zip(d.files, d.digests, strict=True)}
            bad = (flags & sizes.keys()) | store.wrong_size(
                {d: sizes[d] for d in found if d in sizes})
    if not bad:
        return {}
    for digest in bad:
        store.quarantine(digest)
    files = [(d, i) for d in build.dirs for i, dg in enumerate(d.digests) if dg in bad]
    logging.getLogger(__name__).warning(
        "%d object(s) of this data were missing or damaged in %s: writing them again from the "
        "files", len(bad), store.url)
    return _upload_missing(store, files, build.ingest, progress, unconfirmed)


def _upload_missing(
    store: ObjectStore,
    files: list[tuple[_Dir, int]],
    ingest: _Ingest,
    progress: Progress,
    unconfirmed: set[str],
) -> dict[str, tuple[str, int]]:
    """Ask the store once which of these files' objects it lacks; put those, re-hashed.

    Digests found present are added to ``unconfirmed``. A file re-read here that no longer
    hashes to its digest (it changed, or its stat cache entry was stale) is logged with the
    digest of what was read, which is what gets stored: returned as ``{path: (digest, size)}``.
    """
    if not files:
        return {}
    wanted = {d.digests[i] for d, i in files}
    missing = store.missing(wanted)
    unconfirmed |= wanted - missing
    todo = [(d, i) for d, i in files if d.digests[i] in missing]
    if not todo:
        return {}
    published: set[str] = set()
    corrections: dict[str, tuple[str, int]] = {}
    lock = threading.Lock()

    def claim(digest: str) -> bool:
        with lock:
            if digest in published:
                return False
            published.add(digest)
            return True

    progress.start("uploading", len(todo))
    if store.packing:
        try:
            return _pack_missing(store, todo, ingest, progress, claim, corrections)
        finally:
            progress.stop()

    def put(d: _Dir, i: int) -> None:
        digest, size, path = d.digests[i], d.files[i][1], d.file_path(i)
        if size <= SMALL_MAX:
            data = read_file(path, size)
            actual = hash_bytes(data)
            if actual != digest or len(data) != size:
                with lock:
                    corrections[d.prefix + d.files[i][0]] = (actual, len(data))
            if claim(actual) and store.publish_bytes(data, actual):
                ingest._count(len(data))
        elif claim(digest):
            store.put_file(path, digest, check=False)  # re-hashed; RunFailed if it changed
            ingest._count(size)
        progress.advance()

    def put_batch(batch: list[tuple[_Dir, int]]) -> None:
        for d, i in batch:
            put(d, i)

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
    return corrections


def _pack_missing(
    store: ObjectStore,
    todo: list[tuple[_Dir, int]],
    ingest: _Ingest,
    progress: Progress,
    claim: Callable[[str], bool],
    corrections: dict[str, tuple[str, int]],
) -> dict[str, tuple[str, int]]:
    """Put the objects of ``todo`` into a packing store (ADR 0005): the small files the walk
    did not pack (unchanged files whose stat-cache row is not vouched for, repairs) are read,
    re-hashed and appended to packs here, in manifest order, to the walk's pack writer if it
    has one; whole packs upload in the background, and large files go up as loose objects in a
    pool of :data:`UPLOAD_WORKERS` threads meanwhile. Returns the path corrections, as
    :func:`_upload_missing` does."""
    todo = sorted(todo, key=lambda x: x[0].prefix + x[0].files[x[1]][0])

    def put_large(d: _Dir, i: int) -> None:
        store.put_file(d.file_path(i), d.digests[i], check=False)  # RunFailed if it changed
        ingest._count(d.files[i][1])
        progress.advance()

    # the walk's pack writer if it packed (closed by the caller: one writer, no extra pack)
    writer: contextlib.AbstractContextManager[PackWriter] = (
        store.pack_writer() if ingest.packer is None else contextlib.nullcontext(ingest.packer))
    with ThreadPoolExecutor(max_workers=UPLOAD_WORKERS) as pool, writer as packer:
        futures: deque[Future[None]] = deque()
        for d, i in todo:
            digest, size = d.digests[i], d.files[i][1]
            if size > SMALL_MAX or not store.packable(digest, size):
                if claim(digest):
                    futures.append(pool.submit(put_large, d, i))
                    while len(futures) > 4 * UPLOAD_WORKERS:  # bounded
                        futures.popleft().result()
                else:
                    progress.advance()
                continue
            data = read_file(d.file_path(i), size)
            actual = hash_bytes(data)
            if actual != digest or len(data) != size:
                corrections[d.prefix + d.files[i][0]] = (actual, len(data))
            if not store.packable(actual, len(data)):
                if claim(actual) and store.publish_bytes(data, actual):
                    ingest._count(len(data))
            elif claim(actual) and packer.add(actual, data):
                ingest._count(len(data))
            progress.advance()
        for f in futures:
            f.result()
    return corrections


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

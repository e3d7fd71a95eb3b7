"""Reading versions back: manifests from the store, and checkouts into a local directory.

Every path is re-checked against the destination (a manifest may come from a store someone else
wrote), every object is verified while copied, and a reference entry whose source changed since
it was logged fails with :class:`ReferenceChanged` instead of handing back different bytes.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO, cast

from headwater.errors import ReferenceChanged, UnsafePath
from headwater.progress import NullProgress, Progress
from headwater.store import backends
from headwater.store.hashing import CHUNK
from headwater.store.manifest import Manifest, ManifestEntry, iter_entries
from headwater.store.objects import ObjectStore, write_new_file
from headwater.store.paths import check_relpath, safe_join

WORKERS = 8
#: Remote reads wait on the network, not the disk: more of them in flight.
REMOTE_WORKERS = 32
#: Threads reading a local store's packs: the reads are CPU (pread + verify, ~9 µs an object),
#: and every extra thread holding the GIL delays the writing thread's return from each system
#: call (100k packed files, no fork: 6.3-6.5 s with 2 threads, 8.3-20.7 s with 32).
LOCAL_PACK_WORKERS = 2
#: Entries per task handed to the writer threads.
BATCH = 256
#: Objects up to this size are read whole, verified, and written from one buffer.
SMALL_MAX = 4 * CHUNK
#: A checkout from a local store of at least this many small files writes the second half of
#: them in a forked child process (when the process has no other thread), so that creating
#: the files uses both cores: file creation is system calls, which Python threads cannot
#: share without handing the GIL over on each one.
FORK_MIN = 20_000


def read_manifest(store: ObjectStore, digest: str, *, context: str = "") -> Manifest:
    return Manifest.from_bytes(store.read_bytes(digest, context=context or "manifest"))


def iter_manifest(store: ObjectStore, digest: str, *, context: str = "") -> Iterator[ManifestEntry]:
    """Stream a stored manifest's entries without building the whole list.

    The object is verified as it is read (a corrupted manifest raises once its end is reached,
    so consume the whole stream before trusting a result); entries must be in strictly
    ascending path order, as every manifest Headwater writes is.
    """
    raw = cast(io.RawIOBase, store.open(digest, context=context or "manifest"))
    with io.BufferedReader(raw, CHUNK) as f:
        previous = ""
        for entry in iter_entries(f):
            if entry.path <= previous:
                raise UnsafePath(
                    f"manifest {digest[:12]} is not in path order at {entry.path!r} ({context})"
                )
            previous = entry.path
            yield entry


def open_reference(entry: ManifestEntry, options: Mapping[str, Any]) -> BinaryIO:
    """Open the source of a reference entry after checking it did not change."""
    if entry.source is None:
        raise ValueError(f"{entry.path!r} is not a reference entry")
    fs, path = backends.open_filesystem(entry.source.uri, options)
    fs.invalidate_cache(path)
    try:
        info = fs.info(path)
    except FileNotFoundError:
        raise ReferenceChanged(
            f"{entry.source.uri} (tracked as {entry.path!r}) no longer exists at its source"
        ) from None
    now = backends.content_fingerprint(fs, info)
    if now != dict(entry.source.fingerprint):
        raise ReferenceChanged(
            f"{entry.source.uri} (tracked as {entry.path!r}) changed since it was logged: "
            f"was {dict(entry.source.fingerprint)}, now {now}; log it again for a new version"
        )
    return fs.open(path, "rb")  # type: ignore[no-any-return]


def open_entry(
    store: ObjectStore, entry: ManifestEntry, *, options: Mapping[str, Any], context: str = ""
) -> BinaryIO:
    if entry.source is not None:
        return open_reference(entry, options)
    if entry.digest is None:
        raise ValueError(f"manifest entry {entry.path!r} has neither digest nor source")
    return store.open(entry.digest, context=f"{context} {entry.path}".strip())


class _Destination:
    """Where each manifest path lands under ``root``, refusing any that would escape it.

    Every path is re-checked (:func:`check_relpath`); each distinct parent directory is resolved
    once (symlinks included) and must stay inside ``root``; a leaf that is already a symlink goes
    through :func:`safe_join`. Directories are created once.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.base = root.resolve()
        self._parents: dict[str, str] = {"": str(self.base)}
        self._made: set[str] = {str(self.base)}
        self._lock = threading.Lock()

    def target(self, relpath: str) -> str:
        check_relpath(relpath)
        parent, _, name = relpath.rpartition("/")
        directory = self._parents.get(parent)
        if directory is None:
            resolved = (self.base / parent).resolve()
            if resolved != self.base and self.base not in resolved.parents:
                raise UnsafePath(
                    f"path {relpath!r} resolves outside {self.root} (through a symlink?)"
                )
            directory = str(resolved)
            with self._lock:
                self._parents[parent] = directory
        if directory not in self._made:
            os.makedirs(directory, exist_ok=True)
            with self._lock:
                self._made.add(directory)
        target = os.path.join(directory, name)
        if os.path.islink(target):
            return str(safe_join(self.root, relpath))
        return target


def _part_name(directory: str) -> str:
    """A temporary name in ``directory``: short, because ``.{name}.part`` of a 255-byte name is
    longer than the file system allows (ENAMETOOLONG)."""
    return os.path.join(directory, f".hw-{uuid.uuid4().hex[:12]}.part")


def _write_bytes(target: str, data: bytes) -> None:
    """``target`` holds ``data`` afterwards, and never anything in between."""
    directory, name = os.path.split(target)
    if write_new_file(directory, name, data):
        return
    tmp = _part_name(directory)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _write_stream(target: str, src: BinaryIO) -> None:
    directory = os.path.dirname(target)
    tmp = _part_name(directory)
    try:
        with src, open(tmp, "wb") as out:
            shutil.copyfileobj(src, out, CHUNK)
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def checkout(
    store: ObjectStore,
    manifest: Manifest,
    dest: str | Path,
    *,
    options: Mapping[str, Any],
    context: str = "",
    progress: Progress | None = None,
) -> Path:
    """Write every file of ``manifest`` under ``dest``; each file appears only when verified.

    Small objects of a local store are read whole, checked against their digest and written from
    the same buffer, in this thread; large ones, reference entries and reads from a remote store
    go to a pool of threads in batches, streamed through a verifying reader. Checkouts are
    always copies: nothing in ``dest`` shares an inode with the store, so editing a checked-out
    file cannot alter a version.
    """
    root = Path(dest)
    root.mkdir(parents=True, exist_ok=True)
    where = _Destination(root)
    bar: Progress = progress or NullProgress()
    bar.start(f"checking out to {root}", len(manifest))

    def write(entry: ManifestEntry) -> None:
        target = where.target(entry.path)
        label = f"{context} {entry.path}".strip()
        if entry.source is not None or entry.digest is None:
            _write_stream(target, open_entry(store, entry, options=options, context=context))
        elif entry.size <= SMALL_MAX:
            _write_bytes(target, store.read_bytes(entry.digest, context=label))
        else:
            store.get_file(entry.digest, target, context=label)

    def write_batch(batch: list[ManifestEntry]) -> None:
        small = {e.digest: e for e in batch
                 if e.source is None and e.digest is not None and e.size <= SMALL_MAX}
        if len(small) > 1:
            # packed neighbours come in a few coalesced ranged GETs (ADR 0005); cache hits
            # first; this thread is already one of the pool's
            by_digest: dict[str, list[ManifestEntry]] = {}
            for e in batch:
                if e.digest in small:
                    by_digest.setdefault(e.digest, []).append(e)
            for digest, got in store.read_many(list(by_digest), context=context, workers=1):
                for e in by_digest[digest]:
                    if isinstance(got, BaseException):
                        write(e)  # read again on its own: the error then names the path
                        raise got
                    _write_bytes(where.target(e.path), got)
        for entry in batch:
            if len(small) <= 1 or entry.digest not in small:
                write(entry)
        bar.advance(len(batch))

    def stored_small(e: ManifestEntry) -> bool:
        return e.source is None and e.digest is not None and e.size <= SMALL_MAX

    Fetched = list[tuple[list[ManifestEntry], bytes | BaseException]]

    def fetch(batch: list[ManifestEntry]) -> Fetched:
        """Remote stores, in a pool thread: the verified bytes of the batch's small objects
        (packed neighbours in a few coalesced ranged GETs, or the read cache); the files are
        written by the calling thread (:func:`land`). Large and reference entries are
        streamed to their files here."""
        by_digest: dict[str, list[ManifestEntry]] = {}
        for e in batch:
            if stored_small(e):
                by_digest.setdefault(cast(str, e.digest), []).append(e)
            else:
                write(e)
                bar.advance()
        return [(by_digest[d], got)
                for d, got in store.read_many(list(by_digest), context=context, workers=1)]

    def land(fetched: Fetched) -> None:
        for entries, got in fetched:
            for e in entries:
                if isinstance(got, BaseException):
                    write(e)  # read again on its own: the error then names the path
                    raise got
                _write_bytes(where.target(e.path), got)
            bar.advance(len(entries))

    def inline(entry: ManifestEntry) -> bool:
        # from a local store a small file is a few system calls: in threads each of them hands
        # the GIL over (the snapshot measured 3x slower that way), so they run here; large
        # objects (hashed and copied without the GIL) and remote reads go to the pool
        # (packed ones go in batches too: neighbours are read together, ADR 0005)
        return store.local and entry.digest is not None and entry.source is None \
            and entry.size <= SMALL_MAX and (not packed or store.packs.find(entry.digest) is None)

    if store.local:  # (remote stores: no listing here, the read cache may answer everything)
        store.packs.ensure()
    packed = bool(store.packs.where)
    # remote or packed: threads fetch batches (coalesced ranged reads), this thread writes
    fetching = not store.local or packed
    fetchers = LOCAL_PACK_WORKERS if store.local else REMOTE_WORKERS

    def write_half(entries: list[ManifestEntry]) -> None:
        """The forked child's half: written the same way, without progress output."""
        nonlocal bar
        bar = NullProgress()
        if fetching:
            _remote(entries, fetch, land, fetchers)
        else:
            for entry in entries:
                write(entry)

    child = (_fork_half(manifest, stored_small if fetching else inline, write_half)
             if store.local else None)

    try:
        if fetching:
            _remote(manifest if child is None else child.mine, fetch, land, fetchers)
        else:
            with ThreadPoolExecutor(max_workers=WORKERS) as pool:
                pending: list[Future[None]] = []
                batch: list[ManifestEntry] = []
                for entry in (manifest if child is None else child.mine):
                    if inline(entry):
                        write(entry)
                        bar.advance()
                        continue
                    batch.append(entry)
                    if len(batch) >= BATCH:
                        pending.append(pool.submit(write_batch, batch))
                        batch = []
                    if len(pending) > WORKERS * 4:  # bounded: a million futures cost ~1 GB
                        pending.pop(0).result()
                if batch:
                    pending.append(pool.submit(write_batch, batch))
                for future in pending:
                    future.result()
        if child is not None:
            if not child.wait():  # the child failed: write its half here, raising its error
                for entry in child.theirs:
                    write(entry)
            bar.advance(len(child.theirs))
    finally:
        bar.stop()
        if child is not None:
            child.stop()
        if store.cache is not None:
            store.cache.flush()  # hits and misses, for `headwater cache`
    return root


#: Bytes of fetched small objects waiting to be written, at most (a remote checkout).
REMOTE_PENDING_BYTES = 256 << 20


def _remote(manifest: Iterable[ManifestEntry], fetch: Callable[[list[ManifestEntry]], Any],
            land: Callable[[Any], None], workers: int = REMOTE_WORKERS) -> None:
    """A checkout from a remote store (or a local one with packs, whose neighbours are read
    together): ``workers`` threads fetch batches of
    :data:`BATCH` entries (the network: they wait without the GIL) while this thread writes the
    files of each fetched batch in turn. 32 threads that also wrote their own files were 2-5x
    slower: each file's system calls handed the GIL over (20k files, warm cache: 1.5 s with
    one thread, 2.9-4.0 s with 32)."""
    pending: deque[tuple[Future[Any], int]] = deque()
    waiting = 0
    with ThreadPoolExecutor(max_workers=workers) as pool:
        try:
            batch: list[ManifestEntry] = []
            size = 0
            for entry in manifest:
                batch.append(entry)
                size += entry.size if entry.size <= SMALL_MAX else 0
                if len(batch) >= BATCH:
                    pending.append((pool.submit(fetch, batch), size))
                    waiting += size
                    batch, size = [], 0
                while pending and (len(pending) > 2 * workers
                                   or waiting > REMOTE_PENDING_BYTES):
                    future, n = pending.popleft()
                    land(future.result())
                    waiting -= n
            if batch:
                pending.append((pool.submit(fetch, batch), size))
            while pending:
                land(pending.popleft()[0].result())
        finally:
            for future, _n in pending:
                future.cancel()


class _Child:
    """A forked process writing ``theirs`` (small files from a local store) while this one
    writes ``mine``; it reports nothing but its exit status."""

    def __init__(self, pid: int, mine: list[ManifestEntry], theirs: list[ManifestEntry]) -> None:
        self.pid = pid
        self.mine = mine
        self.theirs = theirs
        self._status: int | None = None

    def wait(self) -> bool:
        """True if the child wrote every file of its half."""
        if self._status is None:
            _, status = os.waitpid(self.pid, 0)
            self._status = os.waitstatus_to_exitcode(status)
        return self._status == 0

    def stop(self) -> None:
        if self._status is None:
            with contextlib.suppress(OSError):
                os.kill(self.pid, signal.SIGKILL)
            self.wait()


def _fork_half(manifest: Manifest, inline: Callable[[ManifestEntry], bool],
               write_half: Callable[[list[ManifestEntry]], None]) -> _Child | None:
    """Fork a child that writes (``write_half``) the second half of the small files that
    ``inline`` selects (loose or packed, from a local store), or None
    when the checkout is small, the process has other threads (a fork copies only the calling
    thread: a lock another thread holds would stay held in the child) or
    ``HEADWATER_CHECKOUT_FORK=off``. The parent writes everything else; a file both write
    (never, but harmless) ends up whole either way: every write is an atomic link or rename."""
    if not hasattr(os, "fork") or len(manifest) < FORK_MIN or threading.active_count() != 1:
        return None
    if os.environ.get("HEADWATER_CHECKOUT_FORK", "on").lower() in ("0", "off", "false"):
        return None
    entries = list(manifest)
    small = [i for i, e in enumerate(entries) if inline(e)]
    if len(small) < FORK_MIN:
        return None
    cut = small[len(small) // 2]
    theirs = [e for e in entries[cut:] if inline(e)]
    mine = entries[:cut] + [e for e in entries[cut:] if not inline(e)]
    pid = os.fork()
    if pid == 0:  # the child: write, then leave at once (no atexit, no buffers, no finally)
        code = 1
        try:
            write_half(theirs)
            code = 0
        finally:
            os._exit(code)
    return _Child(pid, mine, theirs)

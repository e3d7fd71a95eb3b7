"""Reading versions back: manifests from the store, and checkouts into a local directory.

Every path is re-checked against the destination (a manifest may come from a store someone else
wrote), every object is verified while copied, and a reference entry whose source changed since
it was logged fails with :class:`ReferenceChanged` instead of handing back different bytes.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import re
import shutil
import signal
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO, cast

from headwater import _failpoints
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


def stream_manifest(store: ObjectStore, digest: str, *, context: str = "") -> StoredManifest:
    """A stored manifest for a checkout: its verified bytes, parsed as they are iterated."""
    data = store.read_bytes(digest, context=context or "manifest")
    return StoredManifest(data, f"{digest[:12]} ({context})" if context else digest[:12])


#: A plain entry line (see ``manifest._PLAIN_LINE``), matched in the manifest's bytes.
_PLAIN_ENTRY = re.compile(
    rb'\{"digest":"([0-9a-f]{64})","path":"([^"\\\n]*)","size":(0|[1-9][0-9]{0,18})\}\n')


class StoredManifest:
    """The entries of a stored manifest, parsed from its bytes each time they are iterated
    (issue 18: a checkout of a million files holds the ~130 MB of its manifest, not a million
    entry objects of ~290 B each). Iterating checks what :class:`Manifest` checks when built:
    strictly ascending paths (so no duplicates), no file that is also a directory; each path
    is checked (:func:`check_relpath`) where the checkout writes it."""

    def __init__(self, data: bytes, label: str) -> None:
        nl = data.find(b"\n")
        head = data if nl < 0 else data[:nl]
        for _ in iter_entries([head]):  # checks the header line
            pass
        self.data = data
        self.label = label
        self.start = len(data) if nl < 0 else nl + 1
        self._count = data.count(b"\n", self.start) + (not data.endswith(b"\n")
                                                        and len(data) > self.start)

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[ManifestEntry]:
        return in_order(self.part(self.start, len(self.data)), self.label)

    def halves(self) -> tuple[Callable[[], Iterator[ManifestEntry]],
                              Callable[[], Iterator[ManifestEntry]]]:
        """The entries before and after the line starting nearest the middle of the bytes
        (unchecked order: iterate both in turn through :func:`in_order`)."""
        end = len(self.data)
        nl = self.data.find(b"\n", self.start + (end - self.start) // 2)
        mid = end if nl < 0 else nl + 1
        return partial(self.part, self.start, mid), partial(self.part, mid, end)

    def part(self, pos: int, end: int) -> Iterator[ManifestEntry]:
        data = self.data
        match = _PLAIN_ENTRY.match
        entry = ManifestEntry.of_local_file  # the checkout checks every path it writes
        while pos < end:
            m = match(data, pos, end)
            if m is not None:
                pos = m.end()
                yield entry(m[2].decode(), m[1].decode(), int(m[3]))
                continue
            nl = data.find(b"\n", pos, end)
            stop = end if nl < 0 else nl
            line = data[pos:stop].decode()
            pos = stop + 1
            if line.strip():
                yield ManifestEntry.from_json(json.loads(line))


def in_order(entries: Iterable[ManifestEntry], label: str) -> Iterator[ManifestEntry]:
    """``entries``, raising :class:`UnsafePath` once a path is not after the one before it, or
    names a file given earlier as a directory (all the paths between ``a`` and ``a/b`` in
    order start with ``a``: a stack of the earlier paths that prefix the current one finds
    it)."""
    previous = ""
    prefixes: list[str] = []
    for e in entries:
        path = e.path
        if path <= previous:
            raise UnsafePath(f"manifest {label} is not in path order at {path!r}")
        while prefixes and not path.startswith(prefixes[-1]):
            prefixes.pop()
        for p in prefixes:
            if path[len(p)] == "/":
                raise UnsafePath(f"{p!r} is both a file and a directory in manifest {label}")
        prefixes.append(path)
        previous = path
        yield e


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


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


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


#: The hidden directory a checkout builds new top-level names in (:class:`_Fresh`), in ``dest``.
STAGING_PREFIX = ".hw-checkout-"
#: Directory descriptors a checkout keeps open to create files relative to them.
DIR_FDS = 64
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


class _Fresh:
    """The files of a checkout under top-level names that did not exist in the destination
    when it began (all of them when it was missing or empty): each is created whole with
    ``O_EXCL`` (relative to a cached directory descriptor: three system calls, where an
    anonymous file linked under its name takes six) in a hidden directory in the destination,
    ``.hw-checkout-*``, whose top-level entries are renamed into place once every file is
    written (:meth:`publish`). So no file is ever visible under its final name unverified or
    half-written: a crash leaves the hidden directory (only complete files are ever moved out
    of it), an error removes it. A name that appeared meanwhile is merged file by file.
    """

    def __init__(self, base: str, *, empty: bool) -> None:
        self.base = base
        self.empty = empty
        self.staging = os.path.join(base, f"{STAGING_PREFIX}{uuid.uuid4().hex[:12]}")
        self._tops: dict[str, bool] = {}
        self._dirs: dict[str, str] = {}
        self._fds: dict[str, int] = {}

    def takes(self, relpath: str) -> bool:
        """Whether ``relpath`` is written here (its top-level name is new to the destination)."""
        if self.empty:
            return True
        top = relpath.partition("/")[0]
        new = self._tops.get(top)
        if new is None:
            check_relpath(relpath)
            new = self._tops[top] = not os.path.lexists(os.path.join(self.base, top))
        return new

    def _dir(self, parent: str) -> str:
        path = self._dirs.get(parent)
        if path is None:
            if parent:
                check_relpath(parent)
            path = os.path.join(self.staging, parent) if parent else self.staging
            os.makedirs(path, exist_ok=True)  # nobody else makes links in here: no resolve
            self._dirs[parent] = path
        return path

    def target(self, relpath: str) -> str:
        """The staged path of ``relpath``, its directory made (thread-safe)."""
        check_relpath(relpath)
        parent, _, name = relpath.rpartition("/")
        return os.path.join(self._dir(parent), name)

    def write(self, relpath: str, data: bytes) -> None:
        """Create ``relpath`` holding ``data`` (one thread only: the descriptors are shared)."""
        check_relpath(relpath)
        parent, _, name = relpath.rpartition("/")
        dfd = self._fds.get(parent)
        if dfd is None:
            if len(self._fds) >= DIR_FDS:
                self.close()
            dfd = self._fds[parent] = os.open(self._dir(parent), os.O_RDONLY | os.O_DIRECTORY)
        try:
            fd = os.open(name, _CREATE, 0o644, dir_fd=dfd)
        except FileExistsError:
            # the forked child's half written again after it failed (perhaps mid-file)
            _write_bytes(os.path.join(self._dir(parent), name), data)
            return
        try:
            _write_all(fd, data)
        finally:
            os.close(fd)

    def close(self) -> None:
        fds, self._fds = self._fds, {}
        for fd in fds.values():
            os.close(fd)

    def publish(self, where: _Destination) -> None:
        """Move every staged top-level entry into the destination, then drop the staging."""
        self.close()
        try:
            names = os.listdir(self.staging)
        except FileNotFoundError:
            return  # nothing was new
        for name in names:
            staged = os.path.join(self.staging, name)
            try:
                os.rename(staged, os.path.join(self.base, name))
            except OSError:  # it appeared meanwhile (not as an empty directory): merge
                self._merge(staged, name, where)
        shutil.rmtree(self.staging)

    @staticmethod
    def _merge(staged: str, relpath: str, where: _Destination) -> None:
        if not os.path.isdir(staged) or os.path.islink(staged):
            os.replace(staged, where.target(relpath))
            return
        for top, _dirs, files in os.walk(staged):
            rel = os.path.relpath(top, staged)
            for name in files:
                inner = name if rel == "." else f"{rel}/{name}"
                os.replace(os.path.join(top, name), where.target(f"{relpath}/{inner}"))

    def discard(self) -> None:
        self.close()
        shutil.rmtree(self.staging, ignore_errors=True)


def checkout(
    store: ObjectStore,
    manifest: Iterable[ManifestEntry],
    dest: str | Path,
    *,
    options: Mapping[str, Any],
    context: str = "",
    progress: Progress | None = None,
) -> Path:
    """Write every file of ``manifest`` under ``dest``; each file appears only when verified.

    Small objects of a local store are read (packed neighbours with one ``pread``), checked
    against their digest and written from the same buffer, in this thread (and in a forked
    child for the second half of a large checkout); large ones and reference entries go to a
    pool of threads, streamed through a verifying reader. From a remote store threads fetch
    batches and this thread writes them. Files under a name the destination did not hold are
    built in a hidden directory in it and moved into place at the end (:class:`_Fresh`).
    Checkouts are always copies: nothing in ``dest`` shares an inode with the store, so editing
    a checked-out file cannot alter a version.
    """
    root = Path(dest)
    try:
        root.mkdir(parents=True)
        empty = True
    except FileExistsError:
        if not root.is_dir():
            raise
        with os.scandir(root) as listing:
            empty = next(listing, None) is None
    where = _Destination(root)
    fresh = _Fresh(str(where.base), empty=empty)
    bar: Progress = progress or NullProgress()
    bar.start(f"checking out to {root}", len(manifest) if isinstance(manifest, Sized) else 0)

    def target(relpath: str) -> str:
        """Where ``relpath`` is written (any thread; an existing file there is replaced)."""
        return fresh.target(relpath) if fresh.takes(relpath) else where.target(relpath)

    def put(entry: ManifestEntry, data: bytes) -> None:
        """Write verified bytes (this thread, or the forked child's only one)."""
        if fresh.takes(entry.path):
            fresh.write(entry.path, data)
        else:
            _write_bytes(where.target(entry.path), data)

    def write(entry: ManifestEntry) -> None:
        path = target(entry.path)
        label = f"{context} {entry.path}".strip()
        if entry.source is not None or entry.digest is None:
            _write_stream(path, open_entry(store, entry, options=options, context=context))
        elif entry.size <= SMALL_MAX:
            _write_bytes(path, store.read_bytes(entry.digest, context=label))
        else:
            store.get_file(entry.digest, path, context=label)

    def write_each(batch: list[ManifestEntry]) -> None:
        for entry in batch:
            write(entry)
        bar.advance(len(batch))

    def stored_small(e: ManifestEntry) -> bool:
        return e.source is None and e.digest is not None and e.size <= SMALL_MAX

    Fetched = list[tuple[list[ManifestEntry], bytes | BaseException]]

    def fetch(batch: list[ManifestEntry]) -> Fetched:
        """The verified bytes of the batch's small objects (packed neighbours in a few
        coalesced reads, or the read cache), for :func:`land`; large and reference entries
        (remote stores: this runs in a pool thread) are streamed to their files here."""
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
                put(e, got)
            bar.advance(len(entries))

    if store.local:  # (remote stores: no listing here, the read cache may answer everything)
        store.packs.ensure()
    packed = bool(store.packs.where)

    def local(entries: Iterable[ManifestEntry]) -> None:
        """A local store: small objects read, verified and written here (threads beside this
        one take the GIL at each of its system calls: 3x slower in the snapshot, and with 2
        threads reading packs, 100k files, each lstat of the writing thread took 19 us); packed
        neighbours in batches read with one ``pread`` per coalesced range (ADR 0005). Large
        objects (hashed and copied without the GIL) and reference entries go to a pool."""
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            pending: deque[Future[None]] = deque()
            small: list[ManifestEntry] = []
            other: list[ManifestEntry] = []
            for entry in entries:
                if not stored_small(entry):
                    other.append(entry)
                    if len(other) >= 16 or entry.size > SMALL_MAX:  # large: one a task
                        pending.append(pool.submit(write_each, other))
                        other = []
                        if len(pending) > WORKERS * 4:
                            pending.popleft().result()
                elif packed:
                    small.append(entry)
                    if len(small) >= BATCH:
                        land(fetch(small))
                        small = []
                else:
                    put(entry, store.read_bytes(cast(str, entry.digest),
                                                context=f"{context} {entry.path}".strip()))
                    bar.advance()
            if small:
                land(fetch(small))
            if other:
                pending.append(pool.submit(write_each, other))
            while pending:
                pending.popleft().result()

    def write_half(entries: Iterable[ManifestEntry]) -> None:
        """The forked child's half: written the same way, without progress output."""
        nonlocal bar
        bar = NullProgress()
        local(entries)

    child = _fork_half(manifest, stored_small, write_half) if store.local else None
    try:
        if not store.local:
            _remote(manifest, fetch, land, REMOTE_WORKERS)
        elif child is None:
            local(manifest)
        else:
            local(child.mine())
            if not child.wait():  # the child failed: write its half here, raising its error
                for entry in child.theirs():
                    write(entry)
            bar.advance(child.count)
        if child is not None:
            child.stop()
        _failpoints.hit("checkout.before_publish")
        fresh.publish(where)
    except BaseException:
        if child is not None:
            child.stop()  # before its files are removed
        fresh.discard()
        raise
    finally:
        bar.stop()
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
    """A forked process writing the files ``small`` selects in the second half of a manifest
    (``theirs``) while this one writes the rest (``mine``); it reports nothing but its exit
    status. Both iterate the manifest as it is: no list of either half is built."""

    def __init__(self, first: Callable[[], Iterator[ManifestEntry]],
                 second: Callable[[], Iterator[ManifestEntry]],
                 small: Callable[[ManifestEntry], bool], label: str) -> None:
        self.pid = 0
        self.first = first
        self.second = second
        self.small = small
        self.label = label
        #: the first path of the second half (above every path when it is empty)
        self.cut = next((e.path for e in second()), "\U0010ffff")
        #: entries of the child's half, counted by :meth:`mine`
        self.count = 0
        self._status: int | None = None

    def mine(self) -> Iterator[ManifestEntry]:
        """The parent's entries; the order of all of them is checked on the way."""
        for entry in in_order(itertools.chain(self.first(), self.second()), self.label):
            if entry.path < self.cut or not self.small(entry):
                yield entry
            else:
                self.count += 1

    def theirs(self) -> Iterator[ManifestEntry]:
        return (e for e in self.second() if self.small(e))

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


def _fork_half(manifest: Iterable[ManifestEntry], small: Callable[[ManifestEntry], bool],
               write_half: Callable[[Iterable[ManifestEntry]], None]) -> _Child | None:
    """Fork a child that writes (``write_half``) the files ``small`` selects (stored small
    objects of a local store, loose or packed) in the second half of the manifest, or None
    when the checkout is small, the process has other threads (a fork copies only the calling
    thread: a lock another thread holds would stay held in the child) or
    ``HEADWATER_CHECKOUT_FORK=off``. The parent writes everything else (the first half, and
    the large and reference entries of the second: its pool), which about balances the two.
    A file both write (only after the child failed) ends up whole either way."""
    if not hasattr(os, "fork") or not isinstance(manifest, Sized) or len(manifest) < FORK_MIN \
            or threading.active_count() != 1:
        return None
    if os.environ.get("HEADWATER_CHECKOUT_FORK", "on").lower() in ("0", "off", "false"):
        return None
    if isinstance(manifest, StoredManifest):
        first, second = manifest.halves()
        label = manifest.label
    else:
        cut = len(manifest) // 2
        first = partial(itertools.islice, manifest, 0, cut)
        second = partial(itertools.islice, manifest, cut, None)
        label = "being checked out"
    child = _Child(first, second, small, label)
    pid = os.fork()
    if pid == 0:  # the child: write, then leave at once (no atexit, no buffers, no finally)
        code = 1
        try:
            write_half(child.theirs())
            code = 0
        finally:
            os._exit(code)
    child.pid = pid
    return child

"""A local read cache for remote stores: objects by digest, size-bounded, least recently used.

Layout under the cache root (default ``$HEADWATER_HOME/cache``; ``HEADWATER_CACHE=path|off``,
``HEADWATER_CACHE_SIZE`` in bytes or with a K/M/G suffix)::

    objects/ab/cdef…   one verified object per digest (shared by every store: content-addressed)
    ranges/<P>/<S>-<E> bytes S..E of pack P, as one ranged read fetched them (a checkout's
                       batch of packed neighbours: one file instead of one per object)
    aux/<key>          small immutable blobs the store names by content (pack indexes)
    tmp/               files being written, renamed into place when complete
    stats.json         hits and misses, summed over every process that used the cache
    lock               ``flock``-ed by whoever trims or updates the stats

Shared by the processes of one machine without a server: files appear by atomic rename, an
evicted file that a reader has open stays readable to it, and trimming and the stats file are
serialised by an exclusive ``flock``. Every hit is verified (the bytes must hash to the digest;
a bad copy is deleted and the read goes to the store), so a damaged cache costs a download,
never wrong bytes. Recency is the file's mtime, bumped on every hit.

Pack ranges are content-addressed too (a pack's name is its digest, so its bytes never change);
the objects sliced from a range are verified one by one against their digests, and a range that
yields a bad object is deleted. Hits and misses count objects, whichever file held them.
"""

from __future__ import annotations

import atexit
import bisect
import contextlib
import fcntl
import json
import os
import threading
import uuid
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from headwater.store.hashing import hash_bytes, hash_open_file, read_file
from headwater.store.layout import OBJECTS_DIR, object_relpath

DEFAULT_SIZE = 10 << 30
#: A process trims the cache after adding this fraction of its size.
TRIM_EVERY = 0.1
#: Trimming stops once the cache is below this fraction of its size.
TRIM_TO = 0.9
_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """``"500M"``, ``"10G"``, ``"1048576"`` → bytes."""
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = t[-1:] if t[-1:] in _UNITS else ""
    number = t[: len(t) - len(unit)] if unit else t
    try:
        value = float(number)
    except ValueError:
        raise ValueError(f"not a size: {text!r} (give bytes, or a number with K, M, G, T)") \
            from None
    if value < 0:
        raise ValueError(f"not a size: {text!r}")
    return int(value * _UNITS[unit])


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    hit_bytes: int = 0
    miss_bytes: int = 0
    evicted: int = 0

    def add(self, other: CacheStats) -> None:
        for k in ("hits", "misses", "hit_bytes", "miss_bytes", "evicted"):
            setattr(self, k, getattr(self, k) + getattr(other, k))


@dataclass(frozen=True)
class CacheUsage:
    root: str
    max_bytes: int
    #: cached files: objects and pack ranges
    objects: int
    bytes: int
    stats: CacheStats


_OPEN: weakref.WeakSet[ReadCache] = weakref.WeakSet()


@atexit.register
def _flush_all() -> None:
    for cache in list(_OPEN):
        with contextlib.suppress(Exception):
            cache.flush()


class ReadCache:
    """One cache directory. Thread-safe; process-safe through renames and ``flock``."""

    def __init__(self, root: str, max_bytes: int = DEFAULT_SIZE) -> None:
        self.root = os.path.abspath(root)
        self.max_bytes = max_bytes
        self._pending = CacheStats()
        self._added = 0
        self._lock = threading.Lock()
        self._made: set[str] = set()
        #: pack digest -> sorted ``(start, end)`` of its ranges in the cache (listed once)
        self._ranges: dict[str, list[tuple[int, int]]] = {}
        _OPEN.add(self)

    def __repr__(self) -> str:
        return f"ReadCache({self.root!r}, max_bytes={self.max_bytes})"

    # -- paths ----------------------------------------------------------------------------------
    def path_of(self, digest: str) -> str:
        return f"{self.root}/{object_relpath(digest)}"

    def _dir(self, path: str) -> None:
        if path not in self._made:
            os.makedirs(path, exist_ok=True)
            self._made.add(path)

    # -- reading --------------------------------------------------------------------------------
    def get(self, digest: str) -> bytes | None:
        """The cached bytes of ``digest``, verified; None if absent or damaged (then removed)."""
        path = self.path_of(digest)
        try:
            data = read_file(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError:
            return None
        if hash_bytes(data) != digest:
            self._discard(path)
            return None
        self._hit(path, len(data))
        return data

    def open_verified(self, digest: str) -> BinaryIO | None:
        """An open file holding ``digest``'s verified bytes (hashed first), or None."""
        path = self.path_of(digest)
        try:
            f = open(path, "rb")  # noqa: SIM115 - returned to the caller
        except OSError:
            return None
        try:
            size = os.fstat(f.fileno()).st_size
            ok = hash_open_file(f.fileno(), size) == digest
        except OSError:
            ok, size = False, 0
        if not ok:
            f.close()
            self._discard(path)
            return None
        self._hit(path, size)
        return f

    def _hit(self, path: str, size: int) -> None:
        with contextlib.suppress(OSError):
            os.utime(path)
        with self._lock:
            self._pending.hits += 1
            self._pending.hit_bytes += size

    def miss(self, size: int = 0, count: int = 1) -> None:
        with self._lock:
            self._pending.misses += count
            self._pending.miss_bytes += size

    def hit(self, size: int = 0, count: int = 1) -> None:
        with self._lock:
            self._pending.hits += count
            self._pending.hit_bytes += size

    # -- pack ranges ----------------------------------------------------------------------------
    def _range_dir(self, pack: str) -> str:
        return f"{self.root}/ranges/{pack}"

    def _listed_ranges(self, pack: str) -> list[tuple[int, int]]:
        with self._lock:
            known = self._ranges.get(pack)
        if known is not None:
            return known
        found: list[tuple[int, int]] = []
        with contextlib.suppress(OSError):
            for name in os.listdir(self._range_dir(pack)):
                start, sep, end = name.partition("-")
                if sep and start.isdigit() and end.isdigit() and int(start) < int(end):
                    found.append((int(start), int(end)))
        found.sort()
        with self._lock:
            return self._ranges.setdefault(pack, found)

    def covering(self, pack: str, start: int, end: int) -> tuple[int, int] | None:
        """A cached range of ``pack`` holding bytes ``[start, end)``, if there is one."""
        ranges = self._listed_ranges(pack)
        with self._lock:
            i = bisect.bisect_right(ranges, (start, 1 << 62)) - 1
            # the nearest ranges starting at or before ``start`` (overlaps are few)
            for lo, hi in ranges[max(0, i - 3): i + 1]:
                if lo <= start and hi >= end:
                    return lo, hi
        return None

    def get_range(self, pack: str, start: int, end: int) -> bytes | None:
        """The cached bytes ``[start, end)`` of ``pack`` (unverified: the caller checks the
        objects it slices from them), or None."""
        try:
            data = read_file(f"{self._range_dir(pack)}/{start}-{end}")
        except OSError:
            self._forget_range(pack, start, end)
            return None
        if len(data) != end - start:
            self.drop_range(pack, start, end)
            return None
        with contextlib.suppress(OSError):
            os.utime(f"{self._range_dir(pack)}/{start}-{end}")
        return data

    def put_range(self, pack: str, start: int, end: int, data: bytes | memoryview) -> None:
        """Keep bytes ``[start, end)`` of ``pack`` (fetched from the store). Never raises."""
        from headwater.store.objects import write_new_file

        if len(data) != end - start:
            return
        try:
            directory = self._range_dir(pack)
            self._dir(directory)
            if write_new_file(directory, f"{start}-{end}", data, tmp_dir=directory):
                self._grew(len(data))
        except OSError:
            return
        ranges = self._listed_ranges(pack)
        with self._lock:
            if (start, end) not in ranges:
                bisect.insort(ranges, (start, end))

    def drop_range(self, pack: str, start: int, end: int) -> None:
        self._discard(f"{self._range_dir(pack)}/{start}-{end}")
        self._forget_range(pack, start, end)

    def _forget_range(self, pack: str, start: int, end: int) -> None:
        with self._lock:
            ranges = self._ranges.get(pack)
            if ranges is not None and (start, end) in ranges:
                ranges.remove((start, end))

    def _discard(self, path: str) -> None:
        with contextlib.suppress(OSError):
            os.unlink(path)

    # -- writing --------------------------------------------------------------------------------
    def put(self, digest: str, data: bytes | memoryview) -> None:
        """Keep ``data`` (the caller verified it hashes to ``digest``). Never raises."""
        from headwater.store.objects import write_new_file

        try:
            directory, name = os.path.split(self.path_of(digest))
            self._dir(directory)
            # an anonymous inode linked into place (one directory operation; never half
            # written); False: another process cached it first
            if write_new_file(directory, name, data, tmp_dir=directory):
                self._grew(len(data))
        except OSError:
            return

    def tmp_path(self) -> str:
        """A fresh name under ``tmp/`` for a file that :meth:`adopt` will move into place."""
        self._dir(f"{self.root}/tmp")
        return f"{self.root}/tmp/{uuid.uuid4().hex}.part"

    def adopt(self, tmp: str, digest: str) -> str | None:
        """Move the complete, verified file ``tmp`` into place as ``digest``; its path."""
        path = self.path_of(digest)
        try:
            size = os.stat(tmp).st_size
            self._dir(os.path.dirname(path))
            os.replace(tmp, path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            return None
        self._grew(size)
        return path

    def _grew(self, size: int) -> None:
        with self._lock:
            self._added += size
            due = self._added >= self.max_bytes * TRIM_EVERY
            if due:
                self._added = 0
        if due:
            self.trim()

    # -- small named blobs (pack indexes): the caller verifies them -------------------------------
    def get_aux(self, key: str) -> bytes | None:
        try:
            return read_file(f"{self.root}/aux/{key}")
        except OSError:
            return None

    def put_aux(self, key: str, data: bytes) -> None:
        with contextlib.suppress(OSError):
            self._dir(f"{self.root}/aux")
            tmp = self.tmp_path()
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, f"{self.root}/aux/{key}")

    def drop_aux(self, key: str) -> None:
        with contextlib.suppress(OSError):
            os.unlink(f"{self.root}/aux/{key}")

    # -- size and stats -------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self, blocking: bool = True) -> Iterator[bool]:
        self._dir(self.root)
        fd = os.open(f"{self.root}/lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)  # releases the lock

    def _entries(self) -> list[tuple[float, int, str]]:
        """``(mtime, size, path)`` of every cached object and pack range."""
        out: list[tuple[float, int, str]] = []
        for sub in (OBJECTS_DIR, "ranges"):
            base = f"{self.root}/{sub}"
            try:
                prefixes = os.listdir(base)
            except FileNotFoundError:
                continue
            for prefix in prefixes:
                try:
                    with os.scandir(f"{base}/{prefix}") as it:
                        for e in it:
                            with contextlib.suppress(OSError):
                                st = e.stat()
                                out.append((st.st_mtime, st.st_size, e.path))
                except (FileNotFoundError, NotADirectoryError):
                    continue
        return out

    def trim(self, max_bytes: int | None = None) -> int:
        """Evict least recently used objects until the cache fits; returns how many went.
        Skipped when another process is trimming right now."""
        limit = self.max_bytes if max_bytes is None else max_bytes
        evicted = 0
        with self._locked(blocking=False) as got:
            if not got:
                return 0
            entries = self._entries()
            total = sum(e[1] for e in entries)
            if total <= limit:
                return 0
            entries.sort()
            goal = limit * TRIM_TO
            for _mtime, size, path in entries:
                if total <= goal:
                    break
                with contextlib.suppress(OSError):
                    os.unlink(path)
                    total -= size
                    evicted += 1
        with self._lock:
            self._pending.evicted += evicted
            self._ranges.clear()  # listed again when next needed
        return evicted

    def flush(self) -> None:
        """Add this process's hits and misses to ``stats.json``."""
        with self._lock:
            pending, self._pending = self._pending, CacheStats()
        if not (pending.hits or pending.misses or pending.evicted):
            return
        try:
            with self._locked():
                stats = self._read_stats()
                stats.add(pending)
                tmp = self.tmp_path()
                with open(tmp, "w") as f:
                    json.dump(stats.__dict__, f, sort_keys=True)
                os.replace(tmp, f"{self.root}/stats.json")
        except OSError:
            return

    def _read_stats(self) -> CacheStats:
        try:
            with open(f"{self.root}/stats.json") as f:
                raw = json.load(f)
            return CacheStats(**{k: int(v) for k, v in raw.items()
                                 if k in CacheStats.__dataclass_fields__})
        except (OSError, ValueError, TypeError):
            return CacheStats()

    def usage(self) -> CacheUsage:
        self.flush()
        entries = self._entries()
        return CacheUsage(self.root, self.max_bytes, len(entries), sum(e[1] for e in entries),
                          self._read_stats())

    def clear(self) -> int:
        """Delete every cached object, blob and the stats; returns the objects deleted."""
        n = 0
        with self._locked():
            for _m, _s, path in self._entries():
                with contextlib.suppress(OSError):
                    os.unlink(path)
                    n += 1
            for sub in ("aux", "tmp"):
                with contextlib.suppress(OSError):
                    for name in os.listdir(f"{self.root}/{sub}"):
                        with contextlib.suppress(OSError):
                            os.unlink(f"{self.root}/{sub}/{name}")
            with contextlib.suppress(OSError):
                os.unlink(f"{self.root}/stats.json")
        with self._lock:
            self._pending = CacheStats()
            self._ranges.clear()
        return n

"""The stat cache: which digests a directory's files had when they last had these stats.

Logging a big directory again should cost a ``stat`` per file, not a read: a file whose absolute
path, size, ``mtime_ns``, inode and ``ctime_ns`` are what they were when it was hashed is taken to
hold the same bytes (the rule ``git``, DVC and rsync use). The ctime matters: ``os.utime`` can put
an mtime back after a same-size rewrite, but nothing a user can call sets the ctime (any change
makes it "now"), which is why git compares it too. The cache is a small SQLite file on the machine
that reads the files (by default beside a SQLite catalog, else ``$HEADWATER_HOME/statcache.db``); it
is a cache, never a source of truth: deleting it only costs a re-hash, and an error while reading or
writing it is logged and the snapshot goes on without it.

**One row per directory.** A row holds the directory's files as one compact blob (``marshal``
of ``(name, size, mtime_ns, inode, ctime_ns)`` tuples, in name order), their digests (``marshal``
of hex strings, ``""`` for "unknown"), the table formats of its data files, and ``source``: the root
digest of the manifest the row was written for. An unchanged directory is recognised by comparing
one blob (in C), so a re-log of 100k unchanged files does no per-file lookup at all; a changed one
falls back to a per-file match. Because ``source`` names a manifest, the snapshot can ask the
catalog whether that manifest was committed: if so every object the row vouches for is in the
store (``gc`` never collects what a committed version references) and no existence check is
needed.

**Same-tick rewrites.** A file rewritten with the same size within one tick of the filesystem's
clock keeps its mtime. So a file whose mtime is within :data:`RECENT_NS` of the scan's start (or
in the future) is *recent*: it is always hashed and its digest is stored as unknown. Any later
write then lands in a later tick, which changes the mtime. The window is 2 s because FAT-family
filesystems store mtimes with 2 s resolution; ext4, XFS, APFS and NTFS are far finer.

**Scans.** :meth:`SqliteStatCache.scan` opens one scan of a tree. Lookups come in ascending key
order (a directory's key is its absolute path plus ``/``, and the pre-order walk of
:mod:`headwater.store.snapshot` visits directories in exactly that order), so the scan streams the
rows under the root once and merge-joins them: rows it steps over are directories that are gone,
and are deleted. New rows are buffered (a few dozen bytes per file) and written when the scan
finishes, with the manifest digest as their source.

Threads: a scan's connections belong to the thread that opened it; snapshot calls it from one
thread only.
"""

from __future__ import annotations

import logging
import marshal
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import NamedTuple, Protocol

from headwater.store.hashing import HASH_NAME
from headwater.store.walk import FileStat

log = logging.getLogger(__name__)

#: A file modified this recently (relative to the scan's start) is hashed and not cached.
RECENT_NS = 2_000_000_000
#: Rows written (or deleted) per transaction.
WRITE_BATCH = 2_000
#: Rows fetched from SQLite per round trip while merge-joining.
READ_BATCH = 256
SCHEMA_VERSION = 4  # 4: file stats carry the ctime
_TABLE = f"dirs_{HASH_NAME}"
_UNKNOWN = ""



class DirRecord(NamedTuple):
    """What the cache knows of one directory (or single file)."""

    stats: bytes  # marshal.dumps(list[FileStat])
    digests: bytes  # marshal.dumps(list[str]), "" where unknown
    formats: str  # table formats of its data files, comma-separated ("" = not a table file)
    source: str  # root digest of the manifest this row was written for


def pack_stats(files: Sequence[FileStat]) -> bytes:
    # marshal version 2 has no back-references, so equal lists always give equal bytes
    return marshal.dumps(list(files), 2)


def pack_digests(digests: Sequence[str | None]) -> bytes:
    return marshal.dumps([_UNKNOWN if d is None else d for d in digests], 2)


def _unpack_digests(blob: bytes, n: int) -> list[str] | None:
    try:
        out = marshal.loads(blob)
    except (EOFError, ValueError, TypeError):
        return None
    return out if isinstance(out, list) and len(out) == n else None


class StatScan(Protocol):
    def lookup(self, key: str) -> DirRecord | None:
        """The row of ``key`` (a directory's absolute path plus ``/``, or a single file's path);
        keys must be asked for in ascending order."""
        ...

    def record(self, key: str, row: DirRecord) -> None:
        """Remember ``row`` for ``key`` (its ``source`` is set when the scan finishes)."""
        ...

    def keep(self, key: str) -> None:
        """The row of ``key`` was reused as it is; give it the new source when the scan finishes."""
        ...

    def finish(self, source: str, *, completed: bool = True) -> None:
        """Write what was recorded and kept, with ``source`` (the snapshot's manifest digest).

        ``completed=False``: the walk stopped early, so rows it did not reach are not gone.
        """
        ...

    @property
    def started_ns(self) -> int:
        """Wall-clock time the scan started, for the "recent" rule."""
        ...

    @property
    def dirs_hint(self) -> int:
        """How many directories under the root the cache knows (a size estimate, 0: none)."""
        ...


class StatCache(Protocol):
    def scan(self, root: str | Path) -> AbstractContextManager[StatScan]:
        """A scan of the file or directory ``root`` (an absolute path)."""
        ...


def match(row: DirRecord | None, files: Sequence[FileStat], blob: bytes,
          started_ns: int) -> tuple[list[str | None], bool]:
    """Per file of ``files``, the digest the cache vouches for (None: hash it); and whether the
    whole row can be reused unchanged.

    ``blob`` is ``pack_stats(files)``: an unchanged directory costs one bytes comparison.
    """
    if row is None:
        return [None] * len(files), False
    limit = started_ns - RECENT_NS
    if row.stats == blob:
        digests = _unpack_digests(row.digests, len(files))
        if (digests is not None and _UNKNOWN not in digests
                and (not files or max(f[2] for f in files) <= limit)):
            return digests, True  # type: ignore[return-value]  # no "" in it: all str
    try:
        cached = marshal.loads(row.stats)
    except (EOFError, ValueError, TypeError):
        return [None] * len(files), False
    digests = _unpack_digests(row.digests, len(cached)) if isinstance(cached, list) else None
    if digests is None:
        return [None] * len(files), False
    known = {tuple(st): d for st, d in zip(cached, digests, strict=True) if d != _UNKNOWN}
    return [known.get(f) if f[2] <= limit else None for f in files], False


class _NullScan:
    dirs_hint = 0

    def __init__(self) -> None:
        self._t0 = time.time_ns()

    @property
    def started_ns(self) -> int:
        return self._t0

    def lookup(self, key: str) -> DirRecord | None:
        return None

    def record(self, key: str, row: DirRecord) -> None:
        pass

    def keep(self, key: str) -> None:
        pass

    def finish(self, source: str, *, completed: bool = True) -> None:
        pass


class NullStatCache:
    """No stat cache: every file is hashed every time."""

    @contextmanager
    def scan(self, root: str | Path) -> Iterator[StatScan]:
        yield _NullScan()

    def __repr__(self) -> str:
        return "NullStatCache()"


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def _prepare(conn: sqlite3.Connection) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version == SCHEMA_VERSION:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        if conn.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
            for (table,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
            ).fetchall():
                conn.execute(f'DROP TABLE "{table}"')  # an older layout: a cache, so start over
            conn.execute(
                f"CREATE TABLE {_TABLE} (key TEXT PRIMARY KEY, stats BLOB NOT NULL, "
                "digests BLOB NOT NULL, formats TEXT NOT NULL, source TEXT NOT NULL) "
                "WITHOUT ROWID"
            )
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _bounds(root: str) -> tuple[str, str]:
    """``[lo, hi)`` covering the directory ``root`` and every path under it."""
    prefix = root if root.endswith("/") else root + "/"
    return prefix, prefix[:-1] + chr(ord("/") + 1)


def _no_rows(size: int | None = None) -> list[tuple[str, bytes, bytes, str, str]]:
    return []


def _storable(key: str) -> bool:
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes in a name (surrogate escapes): skip it
        return False
    return True


class _SqliteScan:
    """Merge-joins the walk with the rows under one root; buffers writes until it finishes."""

    def __init__(self, db: str, root: str) -> None:
        self._t0 = time.time_ns()
        self._conn = _connect(db)
        _prepare(self._conn)
        columns = f"SELECT key, stats, digests, formats, source FROM {_TABLE}"
        self.dirs_hint = 0
        if os.path.isdir(root):  # a directory's rows are one range of the primary key
            lo, hi = _bounds(root)
            self.dirs_hint = self._conn.execute(
                f"SELECT count(*) FROM {_TABLE} WHERE key >= ? AND key < ?", (lo, hi)
            ).fetchone()[0]
            cursor = self._conn.execute(
                f"{columns} WHERE key >= ? AND key < ? ORDER BY key", (lo, hi))
        else:
            cursor = self._conn.execute(f"{columns} WHERE key = ?", (root,))
        self._rows = cursor.fetchmany
        self._batch: list[tuple[str, bytes, bytes, str, str]] = []
        self._pos = 0
        self._row: tuple[str, bytes, bytes, str, str] | None = None
        self._advance()
        self._new: list[tuple[str, DirRecord]] = []
        self._kept: list[str] = []
        self._gone: list[str] = []

    @property
    def started_ns(self) -> int:
        return self._t0

    def _advance(self) -> None:
        if self._pos >= len(self._batch):
            self._batch = self._rows(READ_BATCH)
            self._pos = 0
            if not self._batch:
                self._row = None
                return
        self._row = self._batch[self._pos]
        self._pos += 1

    def lookup(self, key: str) -> DirRecord | None:
        row = self._row
        while row is not None and row[0] < key:
            self._gone.append(row[0])
            self._advance()
            row = self._row
        if row is None or row[0] != key:
            return None
        self._advance()
        return DirRecord(row[1], row[2], row[3], row[4])

    def record(self, key: str, row: DirRecord) -> None:
        if _storable(key):
            self._new.append((key, row))

    def keep(self, key: str) -> None:
        self._kept.append(key)

    def finish(self, source: str, *, completed: bool = True) -> None:
        if completed:  # the walk saw everything: rows not stepped over yet are gone too
            while self._row is not None:
                self._gone.append(self._row[0])
                self._advance()
        else:
            self._gone = []
        self._rows = _no_rows
        new = [(k, r.stats, r.digests, r.formats, source) for k, r in self._new]
        kept = [(source, k) for k in self._kept]
        gone = [(k,) for k in self._gone]
        self._new, self._kept, self._gone = [], [], []
        conn = self._conn
        for start in range(0, max(len(new), len(kept), len(gone)), WRITE_BATCH):
            conn.execute("BEGIN IMMEDIATE")
            try:
                end = start + WRITE_BATCH
                conn.executemany(f"DELETE FROM {_TABLE} WHERE key = ?", gone[start:end])
                conn.executemany(
                    f"INSERT OR REPLACE INTO {_TABLE} VALUES (?, ?, ?, ?, ?)", new[start:end]
                )
                conn.executemany(f"UPDATE {_TABLE} SET source = ? WHERE key = ?", kept[start:end])
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def close(self) -> None:
        self._conn.close()


class _GuardedScan:
    """Turns any SQLite error of a scan into a warning: the cache never fails a snapshot."""

    def __init__(self, inner: _SqliteScan, path: str) -> None:
        self._inner: _SqliteScan | None = inner
        self._null = _NullScan()
        self._path = path

    @property
    def started_ns(self) -> int:
        return self._inner.started_ns if self._inner is not None else self._null.started_ns

    @property
    def dirs_hint(self) -> int:
        return self._inner.dirs_hint if self._inner is not None else 0

    def _broken(self, exc: sqlite3.Error) -> None:
        log.warning("stat cache %s not used (%s: %s); files will be hashed again next time",
                    self._path, type(exc).__name__, exc)
        if self._inner is not None:
            self._null = _NullScan()
            self._null._t0 = self._inner.started_ns
            self._inner.close()
        self._inner = None

    def lookup(self, key: str) -> DirRecord | None:
        if self._inner is None:
            return None
        try:
            return self._inner.lookup(key)
        except sqlite3.Error as exc:
            self._broken(exc)
            return None

    def record(self, key: str, row: DirRecord) -> None:
        if self._inner is not None:
            self._inner.record(key, row)

    def keep(self, key: str) -> None:
        if self._inner is not None:
            self._inner.keep(key)

    def finish(self, source: str, *, completed: bool = True) -> None:
        if self._inner is None:
            return
        try:
            self._inner.finish(source, completed=completed)
        except sqlite3.Error as exc:
            self._broken(exc)

    def close(self) -> None:
        if self._inner is not None:
            self._inner.close()
            self._inner = None


class SqliteStatCache:
    """The stat cache in a SQLite file at ``path`` (created on first use)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)

    def __repr__(self) -> str:
        return f"SqliteStatCache({self.path!r})"

    @contextmanager
    def scan(self, root: str | Path) -> Iterator[StatScan]:
        try:
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            active = _GuardedScan(_SqliteScan(self.path, str(root)), self.path)
        except (sqlite3.Error, OSError) as exc:
            log.warning("stat cache %s unusable (%s: %s); hashing every file",
                        self.path, type(exc).__name__, exc)
            yield _NullScan()
            return
        try:
            yield active
        finally:
            active.close()

    def files(self) -> dict[str, tuple[int, int, int, str | None]]:
        """Every file the cache knows: absolute path → (size, mtime_ns, inode, digest or None).

        For inspection and tests; a snapshot never loads the whole cache.
        """
        out: dict[str, tuple[int, int, int, str | None]] = {}
        if not os.path.exists(self.path):
            return out
        conn = _connect(self.path)
        try:
            _prepare(conn)
            for key, stats, digests in conn.execute(
                f"SELECT key, stats, digests FROM {_TABLE} ORDER BY key"
            ):
                files = marshal.loads(stats)
                for (name, size, mtime, inode, *_), d in zip(
                    files, _unpack_digests(digests, len(files)) or [""] * len(files), strict=True
                ):
                    path = key + name if key.endswith("/") else key
                    out[path] = (size, mtime, inode, d or None)
        finally:
            conn.close()
        return out


def open_stat_cache(path: str | Path | None) -> StatCache:
    """The SQLite stat cache at ``path``, or the do-nothing cache when ``path`` is None."""
    return NullStatCache() if path is None else SqliteStatCache(path)

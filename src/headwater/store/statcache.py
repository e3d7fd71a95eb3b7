"""The stat cache: which digest a local file had when it last had this size, mtime and inode.

Logging a big directory again should cost a ``stat`` per file, not a read: a file whose absolute
path, size, ``mtime_ns`` and inode are what they were when it was hashed is taken to hold the same
bytes (the rule ``git``, DVC and rsync use). The cache is a small SQLite file on the machine that
reads the files (by default beside a SQLite catalog, else ``$HEADWATER_HOME/statcache.db``); it is
a cache, never a source of truth: deleting it only costs a re-hash, and an error while reading or
writing it is logged and the snapshot goes on without it.

**Same-tick rewrites.** A file rewritten with the same size within one tick of the filesystem's
clock keeps its mtime. So a file whose mtime is within :data:`RECENT_NS` of the scan's start (or
in the future) is *recent*: it is always hashed and never cached. Any later write then lands in a
later tick, which changes the mtime. The window is 2 s because FAT-family filesystems store mtimes
with 2 s resolution; ext4, XFS, APFS and NTFS are far finer.

**Scans.** :meth:`SqliteStatCache.scan` opens one scan of a directory tree. Lookups must come in
ascending path order (the order :func:`headwater.store.snapshot.scan_local` walks in): the scan
streams the cached rows under the root in the same order and merge-joins them, so it needs one
query for the whole tree and no memory per file, and rows it steps over belong to files that are
gone, which it deletes. New digests are written in batches on a second connection (WAL lets it
commit while the first one is still reading), not one transaction per file.

Threads: a scan's connections belong to the thread that opened it; snapshot calls it from one
thread only (the hashing threads never touch it).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Protocol

from headwater.store.hashing import HASH_NAME

log = logging.getLogger(__name__)

#: A file modified this recently (relative to the scan's start) is hashed and not cached.
RECENT_NS = 2_000_000_000
#: Rows written (or deleted) per transaction.
WRITE_BATCH = 20_000
#: Rows fetched from SQLite per round trip while merge-joining.
READ_BATCH = 4_096
SCHEMA_VERSION = 1
_TABLE = f"files_{HASH_NAME}"


class StatScan(Protocol):
    """One scan of one tree: ``lookup`` each file in ascending path order, ``record`` new ones."""

    def lookup(self, path: str, size: int, mtime_ns: int, inode: int) -> str | None:
        """The cached digest of ``path`` if its stat is unchanged and not recent, else None."""
        ...

    def record(self, path: str, size: int, mtime_ns: int, inode: int, digest: str) -> None:
        """Remember ``digest`` for this stat (ignored for recent files)."""
        ...


class StatCache(Protocol):
    def scan(self, root: str | Path) -> AbstractContextManager[StatScan]:
        """A scan of the file or directory ``root`` (an absolute path)."""
        ...


class _NullScan:
    def lookup(self, path: str, size: int, mtime_ns: int, inode: int) -> str | None:
        return None

    def record(self, path: str, size: int, mtime_ns: int, inode: int, digest: str) -> None:
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
            conn.execute(f"DROP TABLE IF EXISTS {_TABLE}")
            conn.execute(
                f"CREATE TABLE {_TABLE} (path TEXT PRIMARY KEY, size INTEGER NOT NULL, "
                "mtime_ns INTEGER NOT NULL, inode INTEGER NOT NULL, digest BLOB NOT NULL) "
                "WITHOUT ROWID"
            )
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _bounds(root: str) -> tuple[str, str]:
    """``[lo, hi)`` covering every path strictly under the directory ``root``."""
    prefix = root if root.endswith("/") else root + "/"
    return prefix, prefix[:-1] + chr(ord("/") + 1)


class _SqliteScan:
    """Merge-joins the walk with the cached rows under one root; buffers writes."""

    def __init__(self, db: str, root: str) -> None:
        self._t0 = time.time_ns()
        self._reader = _connect(db)
        _prepare(self._reader)
        self._writer = _connect(db)
        lo, hi = _bounds(root)
        self._rows = self._reader.execute(
            f"SELECT path, size, mtime_ns, inode, digest FROM {_TABLE} "
            "WHERE path = ? OR (path >= ? AND path < ?) ORDER BY path",
            (root, lo, hi),
        )
        self._batch: list[tuple[str, int, int, int, bytes]] = []
        self._pos = 0
        self._row: tuple[str, int, int, int, bytes] | None = None
        self._advance()
        self._new: list[tuple[str, int, int, int, bytes]] = []
        self._gone: list[tuple[str]] = []
        self._broken = False

    def _advance(self) -> None:
        if self._pos >= len(self._batch):
            self._batch = self._rows.fetchmany(READ_BATCH) if self._rows is not None else []
            self._pos = 0
            if not self._batch:
                self._row = None
                return
        self._row = self._batch[self._pos]
        self._pos += 1

    def _recent(self, mtime_ns: int) -> bool:
        return mtime_ns > self._t0 - RECENT_NS

    def lookup(self, path: str, size: int, mtime_ns: int, inode: int) -> str | None:
        row = self._row
        while row is not None and row[0] < path:
            self._gone.append((row[0],))
            self._advance()
            row = self._row
        if row is None or row[0] != path:
            return None
        self._advance()
        if row[1] != size or row[2] != mtime_ns or row[3] != inode or self._recent(mtime_ns):
            return None
        digest = row[4]
        return digest.hex() if len(digest) == 32 else None

    def record(self, path: str, size: int, mtime_ns: int, inode: int, digest: str) -> None:
        if self._recent(mtime_ns) or not path.isprintable():
            return  # recent: unknown; unprintable (e.g. undecodable bytes): not worth the risk
        self._new.append((path, size, mtime_ns, inode, bytes.fromhex(digest)))
        if len(self._new) >= WRITE_BATCH:
            self._flush()

    def _flush(self) -> None:
        new, gone = self._new, self._gone
        self._new, self._gone = [], []
        if self._broken or not (new or gone):
            return
        try:
            self._writer.execute("BEGIN IMMEDIATE")
            try:
                self._writer.executemany(f"DELETE FROM {_TABLE} WHERE path = ?", gone)
                self._writer.executemany(
                    f"INSERT OR REPLACE INTO {_TABLE} VALUES (?, ?, ?, ?, ?)", new
                )
                self._writer.execute("COMMIT")
            except BaseException:
                self._writer.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            self._broken = True
            log.warning("stat cache not updated (%s: %s); files will be hashed again next time",
                        type(exc).__name__, exc)

    def close(self, *, completed: bool) -> None:
        try:
            if completed:  # the walk saw every file: rows not stepped over yet are gone too
                while self._row is not None:
                    self._gone.append((self._row[0],))
                    self._advance()
            self._rows.close()
            self._flush()
        finally:
            self._reader.close()
            self._writer.close()


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
            active = _SqliteScan(self.path, str(root))
        except (sqlite3.Error, OSError) as exc:
            log.warning("stat cache %s unusable (%s: %s); hashing every file",
                        self.path, type(exc).__name__, exc)
            yield _NullScan()
            return
        completed = False
        try:
            yield active
            completed = True
        finally:
            try:
                active.close(completed=completed)
            except sqlite3.Error as exc:
                log.warning("stat cache %s not updated (%s: %s)", self.path,
                            type(exc).__name__, exc)


def open_stat_cache(path: str | Path | None) -> StatCache:
    """The SQLite stat cache at ``path``, or the do-nothing cache when ``path`` is None."""
    return NullStatCache() if path is None else SqliteStatCache(path)

"""The object store: immutable blobs named by their BLAKE3 digest, on any fsspec filesystem.

Layout under the store root::

    objects/ab/cdef0123…   one blob per digest (data files and manifests alike)
    tmp/                    local stores only: staging area, renamed into objects/ atomically

Writes are stage → verify → publish. On a local disk a blob is written under ``tmp/`` and moved
into place with an atomic rename (on Linux, an anonymous ``O_TMPFILE`` inode linked into place,
which costs one directory operation instead of two and leaves nothing behind after a crash); on S3
and GCS a single PUT is already all-or-nothing, so the blob is uploaded straight to its final key.
Every publish writes bytes that were hashed on their way in (or re-hashed while copied), so a
source file changing between hashing and upload cannot put wrong bytes under a digest.
Publishing is idempotent: an object that exists is never rewritten.
Reads verify: every byte handed out is hashed and compared with the digest at end of stream.

Existence checks list by digest prefix (one LIST per 2-hex prefix touched, in parallel), never one
HEAD per object; a local store answers a handful of digests with one ``stat`` each instead.
"""

from __future__ import annotations

import contextlib
import errno
import io
import itertools
import marshal
import os
import re
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from headwater import _failpoints
from headwater.errors import ObjectCorrupted, ObjectMissing, RunFailed, StoreUnavailable
from headwater.store import backends
from headwater.store.hashing import (
    CHUNK,
    DIGEST_HEX_LEN,
    hash_bytes,
    hash_open_file,
    new_hasher,
    read_file,
)
from headwater.store.layout import object_relpath, prefix_relpath, split_digest
from headwater.store.manifest import check_digest
from headwater.store.packs import (
    PACK_MAX_OBJECT,
    PACKS_DIR,
    PackedAt,
    PackSet,
    PackWriter,
    RangedRead,
    coalesce,
    iter_pack_files,
    pack_relpath,
)
from headwater.store.statcache import NullStatCache, StatCache

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

    from headwater.store.cache import ReadCache

#: A local store answers this many digests or fewer with one ``stat`` each instead of listings.
STAT_LIMIT = 64
#: Parallel prefix listings against a remote store.
LIST_WORKERS = 16
#: Above this many distinct 2-hex prefixes, a remote store is listed in 16 streams instead.
STREAM_ABOVE = 64
#: Backends whose ``find`` takes a key ``prefix`` (one paginated listing, no delimiter).
_PREFIX_FIND = frozenset({"s3", "s3a", "gs", "gcs"})
_O_TMPFILE = getattr(os, "O_TMPFILE", 0) if os.path.isdir("/proc/self/fd") else 0
_TMP_NAMES = itertools.count()


@dataclass(frozen=True)
class StoredObject:
    digest: str
    size: int
    modified: float | None


class ObjectStore:
    """Content-addressed blobs under ``url``. Safe to share between processes and machines."""

    def __init__(
        self,
        url: str,
        *,
        options: Mapping[str, Any] | None = None,
        stat_cache: StatCache | None = None,
        pack: bool | None = None,
        cache: ReadCache | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.options = dict(options or {})
        self._fs: AbstractFileSystem | None = None
        root = None if self.options else _plain_local_root(self.url)
        if root is not None:  # fsspec (~45 ms to import) only once something needs it
            self.root, self.local = root, True
        else:
            self._fs, self.root = backends.open_filesystem(self.url, self.options)
            self.local = backends.is_local(self._fs)
        #: new small objects of a snapshot go into packs (ADR 0005), on every store by default:
        #: remotely one request per object is the cost, locally one inode per object (``pack=
        #: False`` / ``HEADWATER_PACK=off`` keeps them loose). Reads find packed objects whatever
        #: this says (a mixed store).
        self.packing = True if pack is None else pack
        self.packs = PackSet(self)
        #: the machine's read cache (remote stores only: a local store is its own cache)
        self.cache: ReadCache | None = None if self.local else cache
        #: Digests of the local files this machine has hashed before (dvc-data keeps its
        #: ``state`` beside its object database the same way); the store itself never reads it.
        self.stat_cache: StatCache = stat_cache or NullStatCache()
        self._ready = False
        self._dirs: set[str] = set()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ObjectStore({self.url!r})"

    @property
    def fs(self) -> AbstractFileSystem:
        """The fsspec filesystem of the store (of a plain local path: opened on first use; the
        hot paths of a local store use ``os`` directly)."""
        fs = self._fs
        if fs is None:
            fs, _root = backends.open_filesystem(self.url, self.options)
            self._fs = fs
        return fs

    # -- layout ---------------------------------------------------------------------------------
    def object_path(self, digest: str) -> str:
        check_digest(digest)
        return f"{self.root}/{object_relpath(digest)}"

    def object_uri(self, digest: str) -> str:
        path = self.object_path(digest)
        return path if self.local else self.fs.unstrip_protocol(path)

    def _ensure_root(self) -> None:
        if self._ready:
            return
        if self.local:
            try:
                os.makedirs(f"{self.root}/objects", exist_ok=True)
                os.makedirs(f"{self.root}/tmp", exist_ok=True)
            except OSError as exc:
                raise StoreUnavailable(f"cannot create store at {self.url}: {exc}") from exc
        self._ready = True

    def staging_dir(self) -> Path:
        """A local directory for spooling blobs before publish (same filesystem when local)."""
        self._ensure_root()
        if self.local:
            return Path(f"{self.root}/tmp")
        return Path(tempfile.gettempdir())

    # -- existence ------------------------------------------------------------------------------
    def missing(self, digests: Iterable[str]) -> set[str]:
        """The subset of ``digests`` not in the store, found by listing each 2-hex prefix once.

        A remote store answers with one LIST per prefix touched (at most 256, in parallel, each
        paginated by the backend), never one HEAD request per object. A local store answers a
        few digests with one ``stat`` each, many by listing their prefix directories.
        """
        wanted = set(digests)
        _check_digests(wanted)
        if not wanted:
            return set()
        if self.local and len(wanted) <= STAT_LIMIT:
            return self._unpacked({d for d in wanted if not os.path.exists(self.object_path(d))})
        prefixes = sorted({d[:2] for d in wanted})
        lister: Callable[[str], set[str]] = self._list_prefix_digests
        if len(prefixes) > STREAM_ABOVE and backends.protocol_of(self.url) in _PREFIX_FIND:
            # many prefixes: 16 unbounded listings (one per first hex digit) page through the
            # store 1,000 keys a request, fewer requests than 256 listings of a few keys each
            prefixes, lister = sorted({p[0] for p in prefixes}), self._list_stream
        workers = 1 if self.local or len(prefixes) == 1 else LIST_WORKERS
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for present in pool.map(lister, prefixes):
                wanted -= present
        return self._unpacked(wanted)

    def _unpacked(self, digests: set[str]) -> set[str]:
        """Those of ``digests`` (not found loose) that no pack holds either (one listing of
        ``packs/``, plus the indexes not read before)."""
        if not digests:
            return digests
        self.packs.refresh()
        if not self.packs.any():
            return digests
        return self.packs.absent_among(digests)

    def _list_prefix_digests(self, prefix: str) -> set[str]:
        return {prefix + name for name in self.list_prefix(prefix)}

    def _list_stream(self, first: str) -> set[str]:
        """Digests of every object whose digest starts with ``first`` (remote stores)."""
        base = f"{self.root}/objects"
        found = self.fs.find(base, prefix=first, detail=False)
        out = set()
        for path in found:
            parts = str(path).rstrip("/").rsplit("/", 2)
            if len(parts) == 3 and len(parts[1]) == 2 and len(parts[2]) == DIGEST_HEX_LEN - 2:
                out.add(parts[1] + parts[2])
        return out

    def list_prefix(self, prefix: str) -> set[str]:
        """Names (digest minus its 2-hex prefix) of the objects stored under ``prefix``."""
        directory = f"{self.root}/{prefix_relpath(prefix)}"
        if self.local:
            try:
                return {n for n in os.listdir(directory) if len(n) == 62}
            except FileNotFoundError:
                return set()
        self.fs.invalidate_cache(directory)
        try:
            entries = self.fs.ls(directory, detail=False)
        except FileNotFoundError:
            return set()
        return {str(e).rstrip("/").rsplit("/", 1)[-1] for e in entries}

    def list_loose(self) -> dict[str, set[str]]:
        """Every loose object's name (digest minus its prefix), by 2-hex prefix: what
        :meth:`missing` lists for a snapshot touching every prefix, listed the same way (256
        ``listdir`` locally; remotely 16 streamed listings where the backend has them, else
        256 prefix listings in parallel). A prefix with no object maps to an empty set."""
        out: dict[str, set[str]] = {f"{i:02x}": set() for i in range(256)}
        if not self.local and backends.protocol_of(self.url) in _PREFIX_FIND:
            with ThreadPoolExecutor(max_workers=LIST_WORKERS) as pool:
                for found in pool.map(self._list_stream, "0123456789abcdef"):
                    for digest in found:
                        out[digest[:2]].add(digest[2:])
            return out
        workers = 1 if self.local else LIST_WORKERS
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for prefix, names in zip(out, pool.map(self.list_prefix, list(out)), strict=True):
                out[prefix] = names
        return out

    def has(self, digest: str) -> bool:
        return not self.missing([digest])

    def absent(self, digests: Iterable[str]) -> set[str]:
        """Like :meth:`missing` (the digests not in the store), for many digests of a local
        store: one ``listdir`` per prefix, names compared without building digests back."""
        if not self.local:
            return self.missing(digests)
        by_prefix: dict[str, list[str]] = {}
        for d in digests:
            by_prefix.setdefault(d[:2], []).append(d)
        return self._absent_by_prefix(by_prefix)

    def _absent_by_prefix(self, by_prefix: Mapping[str, list[str]]) -> set[str]:
        """:meth:`absent` of digests grouped by their 2-hex prefix (a local store)."""
        out: set[str] = set()
        # one prefix directory's names in memory at a time (all of them: ~110 MB per million)
        for prefix, wanted in by_prefix.items():
            try:
                found = set(os.listdir(f"{self.root}/{prefix_relpath(prefix)}"))
            except FileNotFoundError:
                found = set()
            out.update(d for d in wanted if d[2:] not in found)
        return self._unpacked(out)

    def absent_since_checked(self, digests: Iterable[str], key: str) -> set[str]:
        """:meth:`absent`, answered by ~256 ``stat`` calls when nothing changed since the last
        time these ``digests`` (named ``key``, a manifest digest) were all found present.

        A local store only. After a check that finds everything, the mtimes of the prefix
        directories are kept in ``checks/<key>``; deleting or renaming an object changes its
        directory's mtime, so while they all match no object can have gone. A directory's
        clock ticks coarsely (a few ms on ext4, 1-2 s on others): a deletion in the same tick
        as the change an mtime records would leave it as it was. So the certificate is written
        only if every mtime is older than the filesystem's own clock at the start of the check
        (the mtime of the certificate's temporary file, created then): any later change gets a
        newer mtime. (Before: mtimes older than two seconds by the machine's clock, which left
        the first re-log after a log without a certificate.)

        Digests with no certificate of their own (a new version) are checked prefix by prefix
        against the last certificate written (``checks/last`` names it): a prefix whose
        directory has the mtime it recorded and whose digests are the ones it checked there
        (the hash of them is kept per prefix) is not listed again. A re-log that
        changed a few files lists the few prefixes they touched, not all 256.

        A store with packs keeps its pack indexes and quarantine markers in the certificate too
        (packed objects leave no trace in the prefix mtimes): it holds while every index it
        names is still there and no packed copy was voided since; gc removes the index of a
        pack it deletes or repacks.
        """
        if not self.local:
            return self.missing(digests)
        objects = f"{self.root}/objects"
        checks = f"{self.root}/checks"
        cert = f"{checks}/{key}"
        indexes = sorted(n for n in self.list_dir(PACKS_DIR) if n.endswith(".idx"))
        void = sorted(self._void_markers()) if indexes else []
        with contextlib.suppress(OSError, ValueError, EOFError, TypeError, KeyError):
            with open(cert, "rb") as f:
                kept = marshal.load(f)
            if _certificate_holds(kept, objects, indexes, void):
                return set()
        tmp = f"{cert}.{os.getpid()}.{next(_TMP_NAMES)}.tmp"
        try:
            os.makedirs(checks, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except OSError:
            return self.absent(digests)
        try:
            clock = os.fstat(fd).st_mtime_ns  # the filesystem's time, before any mtime is read
            groups: dict[str, list[str]] = {}
            for d in digests:
                groups.setdefault(d[:2], []).append(d)
            mtimes: dict[str, int] = {}
            for prefix in groups:
                with contextlib.suppress(FileNotFoundError):
                    mtimes[prefix] = os.stat(f"{objects}/{prefix}").st_mtime_ns
            hashes = {p: _group_hash(ds) for p, ds in groups.items()}
            earlier = self._last_certificate(checks, objects, indexes, void)
            out = self._absent_by_prefix({p: ds for p, ds in groups.items()
                                          if earlier.get(p, ()) != (mtimes.get(p), hashes[p])})
            if not out and (mtimes or indexes) and max(mtimes.values(), default=0) < clock:
                kept = {"objects": mtimes, "groups": hashes, "indexes": indexes, "void": void}
                with contextlib.suppress(OSError):
                    _write_all(fd, marshal.dumps(kept))
                    os.close(fd)
                    fd = -1
                    os.replace(tmp, cert)
                    pointer = f"{checks}/last.{os.getpid()}.{next(_TMP_NAMES)}.tmp"
                    try:
                        with open(pointer, "wb") as f:
                            f.write(key.encode())
                        os.replace(pointer, f"{checks}/last")
                    finally:
                        with contextlib.suppress(OSError):
                            os.unlink(pointer)
            return out
        finally:
            if fd != -1:
                os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    def _last_certificate(self, checks: str, objects: str, indexes: list[str],
                          void: list[str]) -> dict[str, tuple[int | None, bytes]]:
        """``prefix -> (mtime, hash of the digests checked there)`` of the last certificate
        written, for the prefixes whose directory still has that mtime (None: there was no
        directory, every digest there was packed); empty if there is none or it no longer
        holds for packed objects (an index gone, a copy voided since)."""
        with contextlib.suppress(OSError, ValueError, EOFError, TypeError, KeyError):
            with open(f"{checks}/last", "rb") as f:
                name = f.read(DIGEST_HEX_LEN + 1).decode("ascii")
            if len(name) != DIGEST_HEX_LEN or not all(c in "0123456789abcdef" for c in name):
                return {}
            with open(f"{checks}/{name}", "rb") as f:
                kept = marshal.load(f)
            if not isinstance(kept, dict) or not isinstance(kept.get("groups"), dict) \
                    or not _packs_unchanged(kept, indexes, void):
                return {}
            mtimes = kept["objects"]
            out: dict[str, tuple[int | None, bytes]] = {}
            for prefix, digest in kept["groups"].items():
                m = mtimes.get(prefix)
                try:
                    now: int | None = os.stat(f"{objects}/{prefix}").st_mtime_ns
                except FileNotFoundError:
                    now = None
                if now == m:
                    out[prefix] = (m, digest)
            return out
        return {}

    def _void_markers(self) -> set[str]:
        return {n for n in self.list_dir("quarantine") if len(n) == DIGEST_HEX_LEN}

    def damaged(self, sizes: Mapping[str, int]) -> set[str]:
        """The digests of ``sizes`` whose object is missing or does not have the size given.

        What a reused object must pass before a new version may refer to it (issue 14): a local
        store answers with one ``stat`` per object (in threads), a remote one with listings of
        the prefixes touched (sizes come with them). The content is not read here.
        """
        if not sizes:
            return set()
        _check_digests(set(sizes))
        flagged = self.flagged() & set(sizes)
        return flagged | self.wrong_size({d: n for d, n in sizes.items() if d not in flagged})

    def wrong_size(self, sizes: Mapping[str, int]) -> set[str]:
        """The digests of ``sizes`` missing from the store or stored with another size."""
        if not sizes:
            return set()
        if self.local:
            by_prefix: dict[str, list[tuple[str, int]]] = {}
            for digest, size in sizes.items():
                by_prefix.setdefault(digest[:2], []).append((digest, size))

            def bad(prefix: str) -> list[str]:
                # one fstatat() of a bare name per object (through the prefix directory's fd)
                try:
                    folder = f"{self.root}/{prefix_relpath(prefix)}"
                    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
                except FileNotFoundError:
                    return [d for d, _ in by_prefix[prefix]]
                out, stat = [], os.stat
                try:
                    for digest, size in by_prefix[prefix]:
                        try:
                            if stat(digest[2:], dir_fd=fd).st_size != size:
                                out.append(digest)
                        except FileNotFoundError:
                            out.append(digest)
                finally:
                    os.close(fd)
                return out

            return self._packed_sizes_ok({d for prefix in by_prefix for d in bad(prefix)}, sizes)
        if len(sizes) > STAT_LIMIT:
            # many: those packed with that size need no listing of their prefix (the indexes
            # say); a few (a manifest) are listed first, and the indexes read only if need be
            self.packs.refresh()
            sizes = {d: n for d, n in sizes.items()
                     if (at := self.packs.find(d)) is None or at.length != n}
            if not sizes:
                return set()
        present: dict[str, int] = {}
        base = f"{self.root}/objects"
        self.fs.invalidate_cache(base)

        def listing(prefix: str) -> list[dict[str, Any]]:
            try:
                return list(self.fs.ls(f"{base}/{prefix}", detail=True))
            except FileNotFoundError:
                return []
            finally:  # never let a later open() trust this listing's ETags (objects get fixed)
                self.fs.invalidate_cache(f"{base}/{prefix}")

        prefixes = sorted({d[:2] for d in sizes})
        with ThreadPoolExecutor(max_workers=min(LIST_WORKERS, len(prefixes))) as pool:
            for prefix, entries in zip(prefixes, pool.map(listing, prefixes), strict=True):
                for e in entries:
                    name = str(e["name"]).rstrip("/").rsplit("/", 1)[-1]
                    present[prefix + name] = int(e.get("size") or 0)
        return self._packed_sizes_ok({d for d, size in sizes.items() if present.get(d) != size},
                                     sizes)

    def _packed_sizes_ok(self, bad: set[str], sizes: Mapping[str, int]) -> set[str]:
        """``bad`` (not found loose with the right size) minus those packed with that size."""
        if not bad:
            return bad
        self.packs.refresh()
        out = set()
        for d in bad:
            at = self.packs.find(d)
            if at is None or at.length != sizes[d]:
                out.add(d)
        return out

    def flag(self, digest: str) -> None:
        """Remember that ``digest``'s object failed its hash or was missing (``flags/<digest>``).

        Called wherever a read finds it so; :meth:`damaged` reports flagged objects, so
        the next write of those bytes (a re-log, ``verify --repair``) replaces the copy. A
        marker in the store itself, so every machine and the catalog-less tools see it.
        """
        check_digest(digest)
        with contextlib.suppress(OSError):
            if self.local:
                os.makedirs(f"{self.root}/flags", exist_ok=True)
                with open(f"{self.root}/flags/{digest}", "wb"):
                    pass
            else:
                self.fs.pipe_file(f"{self.root}/flags/{digest}", b"")

    def flagged(self) -> set[str]:
        """Digests flagged as corrupted and not rewritten since (one listing)."""
        base = f"{self.root}/flags"
        try:
            if self.local:
                names = os.listdir(base)
            else:
                self.fs.invalidate_cache(base)
                names = [str(p).rstrip("/").rsplit("/", 1)[-1]
                         for p in self.fs.ls(base, detail=False)]
        except FileNotFoundError:
            return set()
        return {n for n in names if len(n) == DIGEST_HEX_LEN}

    def quarantine(self, digest: str) -> str | None:
        """Move a bad object aside (``quarantine/<digest>``) and drop its flag, so the caller
        can write it again; returns where it went, None if there was no object.
        """
        with contextlib.suppress(FileNotFoundError):
            if self.local:  # no fsspec on a local add that (re)writes a missing manifest
                os.unlink(f"{self.root}/flags/{digest}")
            else:
                self.fs.rm_file(f"{self.root}/flags/{digest}")
        src = self.object_path(digest)
        dest = f"{self.root}/quarantine/{digest}"
        if self.cache is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.cache.path_of(digest))
        self.packs.ensure()
        if self.packs.find(digest) is not None:
            # a packed copy cannot be moved out of its pack: a marker voids it (ADR 0005), so
            # the object counts as absent and is written again, loose
            with contextlib.suppress(OSError):
                if self.local:
                    os.makedirs(os.path.dirname(dest), exist_ok=True)
                    if not os.path.exists(src):
                        open(dest, "ab").close()
                elif not self.fs.exists(src):
                    self.fs.pipe_file(dest, b"")
            self.packs.void.add(digest)
        try:
            if self.local:
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                os.replace(src, dest)
            else:
                self.fs.mv(src, dest)
                self.fs.invalidate_cache(f"{self.root}/objects")
        except FileNotFoundError:
            return None
        return dest if self.local else self.fs.unstrip_protocol(dest)

    # -- writing --------------------------------------------------------------------------------
    def put_file(
        self, local_path: str | Path, digest: str | None = None, *, check: bool = True
    ) -> str:
        """Publish a local file as an object; returns its digest. Idempotent.

        The bytes are hashed while they are copied: if ``digest`` is given and the file no longer
        hashes to it (it changed since it was hashed), nothing is published and
        :class:`RunFailed` is raised. ``check=False`` skips asking whether the object exists
        (the caller just found it missing).
        """
        if digest is not None and check and not self.missing([digest]):
            return digest
        if self.local or digest is None:
            with self.writer() as w, open(local_path, "rb") as src:
                while chunk := src.read(CHUNK):
                    w.write(chunk)
                if digest is not None and w.hexdigest() != digest:
                    raise _changed(local_path, digest)
            return w.digest
        with open(local_path, "rb") as src:
            self._upload_stream(src, digest, str(local_path))
        return digest

    def _upload_stream(self, src: BinaryIO, digest: str, label: str) -> None:
        """PUT ``src`` to the remote object ``digest``, hashing on the way; abort on mismatch."""
        hasher = new_hasher()
        out = self.fs.open(self.object_path(digest), "wb")
        try:
            while chunk := src.read(CHUNK):
                hasher.update(chunk)
                out.write(chunk)
            if hasher.hexdigest() != digest:
                raise _changed(label, digest)
        except BaseException:
            with contextlib.suppress(Exception):
                out.discard()  # aborts a multipart upload; nothing becomes visible
            raise
        out.close()

    def publish_bytes(self, data: bytes | memoryview, digest: str) -> bool:
        """Publish ``data``, which the caller has just hashed to ``digest``.

        Returns False (and writes nothing) if the object already existed. Local stores write an
        anonymous temporary inode and link it into place; remote stores PUT the final key.
        """
        if not self.local:
            self.fs.pipe_file(self.object_path(digest), bytes(data))
            return True
        self._ensure_root()
        prefix, name = split_digest(digest)
        directory = f"{self.root}/{prefix_relpath(prefix)}"
        if directory not in self._dirs:
            os.makedirs(directory, exist_ok=True)
            self._dirs.add(directory)
        return write_new_file(directory, name, data, tmp_dir=f"{self.root}/tmp")

    def publish_fd(self, fd: int, size: int, digest: str, *, verify: bool) -> bool:
        """Publish the first ``size`` bytes of the open file ``fd``, already hashed to ``digest``.

        ``verify=False`` copies in the kernel: only for a file the caller knows did not change
        since it hashed it (an old mtime, checked again after the copy). ``verify=True`` hashes
        the bytes again as they are copied. Returns False if the object already existed.
        """
        if not self.local:
            with os.fdopen(os.dup(fd), "rb") as src:
                src.seek(0)
                self._upload_stream(src, digest, f"file descriptor {fd}")
            return True
        self._ensure_root()
        prefix, name = split_digest(digest)
        directory = f"{self.root}/{prefix_relpath(prefix)}"
        if directory not in self._dirs:
            os.makedirs(directory, exist_ok=True)
            self._dirs.add(directory)
        expected = digest if verify else None
        return write_new_file(
            directory,
            name,
            lambda dst: copy_fd(fd, dst, size, digest=expected),
            tmp_dir=f"{self.root}/tmp",
        )

    def _publish_local(self, tmp: str, target: str) -> None:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.replace(tmp, target)

    def put_bytes(self, data: bytes) -> str:
        with self.writer() as w:
            w.write(data)
        return w.digest

    def writer(self) -> ObjectWriter:
        """A file-like that hashes while it spools and publishes on close."""
        return ObjectWriter(self)

    def publish_staged(self, staged: Path, digest: str) -> None:
        """Publish a file already in :meth:`staging_dir`, hashed to ``digest``; consumes it."""
        target = self.object_path(digest)
        try:
            # an existing copy is used only if intact by size and not flagged (issue 14): a
            # damaged one is moved aside and replaced by these bytes
            size = staged.stat().st_size
            try:
                if self.local:
                    present = os.stat(target).st_size
                else:
                    self.fs.invalidate_cache(target)
                    present = int(self.fs.info(target).get("size") or 0)
            except FileNotFoundError:
                present = None
            if present is not None and (present != size or digest in self.flagged()):
                self.quarantine(digest)
                present = None
            if present is None:
                if self.local:
                    self._publish_local(str(staged), target)
                else:
                    self.fs.put_file(str(staged), target)
                    self.fs.invalidate_cache(target)
        finally:
            if staged.exists():
                staged.unlink()

    # -- packs and other named files --------------------------------------------------------
    def list_dir(self, rel: str) -> list[str]:
        """Names in the store folder ``rel`` (fresh, never from a listing cache)."""
        directory = f"{self.root}/{rel}"
        try:
            if self.local:
                return os.listdir(directory)
            self.fs.invalidate_cache(directory)
            return [str(p).rstrip("/").rsplit("/", 1)[-1]
                    for p in self.fs.ls(directory, detail=False)]
        except (FileNotFoundError, NotADirectoryError):
            return []

    def write_aux(self, rel: str, data: bytes, *, part_size: int | None = None) -> None:
        """Write the store file ``rel`` whole: an atomic rename locally, one PUT remotely
        (all-or-nothing on S3 and GCS).

        ``part_size``: remotely, ``data`` larger than this goes up in parts of this size (an S3
        multipart upload, a GCS resumable upload), which the backend makes visible only when
        the last part is in; a failure on the way aborts the upload (nothing visible, no parts
        kept). A crashed process's unfinished S3 upload is aborted by ``gc``
        (:meth:`abort_stale_uploads`)."""
        if self.local:  # content-addressed: an existing file already holds these bytes
            self._ensure_root()
            directory, name = os.path.split(f"{self.root}/{rel}")
            os.makedirs(directory, exist_ok=True)
            write_new_file(directory, name, data, tmp_dir=f"{self.root}/tmp")
            return
        path = f"{self.root}/{rel}"
        if part_size is None or len(data) <= part_size:
            self.fs.pipe_file(path, data)
        else:
            self._upload_parts(path, data, part_size)
        self.fs.invalidate_cache(path)

    def _upload_parts(self, path: str, data: bytes, part_size: int) -> None:
        """Upload ``data`` to ``path`` in parts of ``part_size`` bytes through the backend's
        buffered writer (s3fs: one ``UploadPart`` per part, then ``CompleteMultipartUpload``;
        gcsfs: a resumable upload). At most one part is buffered besides ``data``."""
        view = memoryview(data)
        out = self.fs.open(path, "wb", block_size=part_size)
        try:
            for start in range(0, len(view), part_size):
                out.write(view[start:start + part_size])  # a full buffer: one part goes up
                _failpoints.reached("upload.part_written")
            out.close()  # the last part, then the upload is completed: visible from here
        except BaseException:
            with contextlib.suppress(Exception):
                out.discard()  # AbortMultipartUpload / cancel the resumable upload
            out.closed = True  # never completed later by the file object's finaliser
            raise

    def abort_stale_uploads(self, cutoff: float) -> int:
        """Abort the unfinished multipart uploads under ``packs/`` started before ``cutoff``
        (seconds since the epoch): parts a crashed writer left, invisible but stored. S3 only
        (an unfinished GCS resumable upload keeps nothing visible and expires in a week).
        Returns how many were aborted."""
        protocols = (self.fs.protocol,) if isinstance(self.fs.protocol, str) \
            else tuple(self.fs.protocol)
        if not {"s3", "s3a"} & set(protocols):
            return 0
        bucket, _, key = f"{self.root}/{PACKS_DIR}/".partition("/")
        aborted = 0
        marker: dict[str, str] = {}
        while True:
            page = self.fs.call_s3("list_multipart_uploads", Bucket=bucket, Prefix=key,
                                   **marker)
            for up in page.get("Uploads") or []:
                started = backends.modified_time({"created": up.get("Initiated")})
                if started is not None and started > cutoff:
                    continue
                with contextlib.suppress(FileNotFoundError):
                    self.fs.call_s3("abort_multipart_upload", Bucket=bucket, Key=up["Key"],
                                    UploadId=up["UploadId"])
                aborted += 1
            if not page.get("IsTruncated"):
                return aborted
            marker = {"KeyMarker": page.get("NextKeyMarker", ""),
                      "UploadIdMarker": page.get("NextUploadIdMarker", "")}

    def read_aux(self, rel: str, *, cache_key: str | None = None) -> bytes | None:
        """The bytes of the store file ``rel``, None if absent. ``cache_key``: an immutable
        file named by its content (the caller verifies it), kept in the read cache."""
        if cache_key is not None and self.cache is not None:
            data = self.cache.get_aux(cache_key)
            if data is not None:
                return data
        try:
            data = read_file(f"{self.root}/{rel}") if self.local \
                else self.fs.cat_file(f"{self.root}/{rel}")
        except FileNotFoundError:
            return None
        if cache_key is not None and self.cache is not None:
            self.cache.put_aux(cache_key, data)
        return data

    def drop_cached_aux(self, key: str) -> None:
        if self.cache is not None:
            self.cache.drop_aux(key)

    def read_range(self, pack: str, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` of a pack: one ranged GET remotely, one ``pread`` locally."""
        path = f"{self.root}/{pack_relpath(pack)}"
        if self.local:
            fd = os.open(path, os.O_RDONLY)
            try:
                return os.pread(fd, end - start, start)
            finally:
                os.close(fd)
        return bytes(self.fs.cat_file(path, start=start, end=end))

    def pack_writer(self) -> PackWriter:
        """A writer that puts small objects into new packs (see :mod:`headwater.store.packs`)."""
        return PackWriter(self)

    def packable(self, digest: str, size: int) -> bool:
        """Whether a new object of ``size`` bytes goes into a pack here."""
        return self.packing and size <= PACK_MAX_OBJECT and digest not in self.packs.void

    def _find_packed(self, digest: str) -> PackedAt | None:
        """Where a packed object is, for reading it: from the indexes the read cache knows
        (no request) if they name it, else after loading the store's indexes."""
        self.packs.ensure_cached()
        at = self.packs.find(digest)
        if at is None and not self.packs.loaded:
            self.packs.ensure()
            at = self.packs.find(digest)
        return at

    def _from_cached_range(self, digest: str, at: PackedAt,
                           blobs: dict[tuple[int, int], bytes | None] | None = None,
                           *, count: bool = True) -> bytes | None:
        """A packed object from a pack range in the read cache, verified; None if not there
        (or damaged: the range is dropped). ``blobs``: ranges already read, by (start, end),
        for a caller slicing several objects of one pack; ``count``: count the hit here."""
        if self.cache is None:
            return None
        end = at.offset + at.length
        cov = self.cache.covering(at.pack, at.offset, end)
        if cov is None:
            return None
        if blobs is not None and cov in blobs:
            blob = blobs[cov]
        else:
            blob = self.cache.get_range(at.pack, *cov)
            if blobs is not None:
                blobs[cov] = blob
        if blob is None:
            return None
        piece = blob[at.offset - cov[0]: end - cov[0]]
        if hash_bytes(piece) != digest:
            self.cache.drop_range(at.pack, *cov)
            return None
        if count:
            self.cache.hit(len(piece))
        return piece

    def _read_packed(self, digest: str, at: PackedAt, context: str) -> bytes:
        """The verified bytes of a packed object; a pack gone since the index was read (gc
        repacked it) makes one refresh and another try."""
        try:
            data = self.read_range(at.pack, at.offset, at.offset + at.length)
        except FileNotFoundError:
            self.packs.refresh()
            again = self.packs.find(digest)
            if again is None or again == at:
                return self._read_loose(digest, context)
            return self._read_packed(digest, again, context)
        return self._checked(digest, data, context)

    def _checked(self, digest: str, data: bytes, context: str, *, keep: bool = True) -> bytes:
        """``data`` if it hashes to ``digest`` (else flag and raise); ``keep``: counted as a
        read-cache miss and kept there (``read_many`` keeps whole ranges instead)."""
        actual = hash_bytes(data)
        if actual != digest:
            self.flag(digest)
            raise ObjectCorrupted(_corrupted_msg(digest, actual, context))
        if keep and self.cache is not None:
            self.cache.miss(len(data))
            self.cache.put(digest, data)
        return data

    def _read_loose(self, digest: str, context: str) -> bytes:
        try:
            if self.local:
                data = read_file(self.object_path(digest))
            else:
                data = self.fs.cat_file(self.object_path(digest))
        except FileNotFoundError:
            self.flag(digest)
            raise ObjectMissing(_missing_msg(digest, context)) from None
        return self._checked(digest, data, context)

    # -- reading --------------------------------------------------------------------------------
    def open(self, digest: str, *, context: str = "", cached: bool = True) -> BinaryIO:
        """Open an object for reading; the stream raises ObjectCorrupted at EOF on a mismatch.

        From the read cache when it has the object (verified first); a packed object is read
        whole (one ranged GET); a loose remote one streams, and lands in the cache once its
        last byte verified. ``cached=False`` reads the store's own copy (``verify``).
        """
        check_digest(digest)
        if cached and self.cache is not None:
            hit = self.cache.open_verified(digest)
            if hit is not None:
                return hit
        at = self._find_packed(digest)
        if at is not None:
            piece = self._from_cached_range(digest, at) if cached else None
            return io.BytesIO(piece if piece is not None
                              else self._read_packed(digest, at, context))
        path = self.object_path(digest)
        try:
            raw = self.fs.open(path, "rb")
        except FileNotFoundError:
            self.packs.refresh()
            at = self.packs.find(digest)
            if at is not None:
                return io.BytesIO(self._read_packed(digest, at, context))
            self.flag(digest)
            raise ObjectMissing(_missing_msg(digest, context)) from None
        sink = self.cache if cached else None
        return VerifyingReader(raw, digest, context,  # type: ignore[return-value]
                               on_bad=partial(self.flag, digest), cache=sink)

    def read_bytes(self, digest: str, *, context: str = "") -> bytes:
        """The verified bytes of an object (raises ObjectMissing or ObjectCorrupted).

        The read cache first; then the pack that holds it (one ranged GET) or the loose
        object (one GET from a remote store, no HEAD first; one ``read`` from a local one).
        """
        check_digest(digest)
        if self.cache is not None:
            data = self.cache.get(digest)
            if data is not None:
                return data
        at = self._find_packed(digest)
        if at is not None:
            hit = self._from_cached_range(digest, at)
            return hit if hit is not None else self._read_packed(digest, at, context)
        try:
            return self._read_loose(digest, context)
        except ObjectMissing:
            self.packs.refresh()  # packed by another process since our index was read?
            at = self.packs.find(digest)
            if at is None:
                raise
            return self._read_packed(digest, at, context)

    def read_many(self, digests: list[str], *, context: str = "",
                  workers: int = 16) -> Iterator[tuple[str, bytes | BaseException]]:
        """``(digest, verified bytes or the error)`` for each of ``digests``, in any order.

        Packed objects by ranged GETs, neighbours in one pack coalesced
        (:func:`headwater.store.packs.coalesce`), in ``workers`` threads; the rest one by one.
        With a read cache, each range is kept there whole (one file per ranged GET, not one per
        object) and a later read of the same objects slices them from it, sending no request
        (the indexes come from the cache too, :meth:`PackSet.ensure_cached`); objects that are
        not packed are cached one by one.
        """
        todo: list[str] = []
        packed: list[tuple[str, PackedAt]] = []
        if self.cache is not None:
            self.packs.ensure_cached()
        for d in digests:
            at = self.packs.find(d) if self.cache is not None else None
            if at is not None:
                packed.append((d, at))
                continue
            data = self.cache.get(d) if self.cache is not None and self.packs.where else None
            if data is None:
                todo.append(d)
            else:
                yield d, data
        loose: list[str] = []
        if todo:
            self.packs.ensure()
            for d in todo:
                at = self.packs.find(d)
                if at is not None:
                    packed.append((d, at))
                elif self.cache is not None and (data := self.cache.get(d)) is not None:
                    yield d, data
                else:
                    loose.append(d)
        if not packed and not loose:
            return

        def from_cache(group: RangedRead) -> list[tuple[str, bytes | BaseException]] | None:
            assert self.cache is not None
            blobs: dict[tuple[int, int], bytes | None] = {}
            out: list[tuple[str, bytes | BaseException]] = []
            for d, at in group[3]:
                piece = self._from_cached_range(d, at, blobs, count=False)
                if piece is None:
                    return None
                out.append((d, piece))
            self.cache.hit(sum(len(p) for _d, p in out if isinstance(p, bytes)), len(out))
            return out

        def fetch(group: RangedRead) -> list[tuple[str, bytes | BaseException]]:
            pack, start, end, members = group
            if self.cache is not None:
                hit = from_cache(group)
                if hit is not None:
                    return hit
            try:
                blob = self.read_range(pack, start, end)
            except FileNotFoundError:
                return [(d, _get(self.read_bytes, d, context)) for d, _ in members]
            out: list[tuple[str, bytes | BaseException]] = []
            for d, at in members:
                piece = blob[at.offset - start: at.offset - start + at.length]
                try:
                    out.append((d, self._checked(d, piece, context, keep=False)))
                except ObjectCorrupted as exc:
                    out.append((d, exc))
            if self.cache is not None:
                self.cache.miss(sum(at.length for _d, at in members), len(members))
                if all(isinstance(got, bytes) for _d, got in out):
                    self.cache.put_range(pack, start, end, blob)
            return out

        def single(d: str) -> list[tuple[str, bytes | BaseException]]:
            return [(d, _get(self.read_bytes, d, context))]

        jobs: list[Callable[[], list[tuple[str, bytes | BaseException]]]] = []
        jobs.extend(partial(fetch, g) for g in coalesce(packed))
        jobs.extend(partial(single, d) for d in loose)
        if len(jobs) == 1 or self.local or workers <= 1:
            for job in jobs:
                yield from job()
            return
        with ThreadPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
            for result in pool.map(lambda job: job(), jobs):
                yield from result

    def get_file(self, digest: str, dest: str | Path, *, context: str = "") -> None:
        """Copy an object to a local file, verifying it; ``dest`` appears only when complete.

        From a local store the object is hashed first (BLAKE3's threads) and then
        copied by the kernel; from a remote one it streams through a verifying reader (into
        the read cache, and is then copied from there).
        """
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        # a short name: ".{dest.name}…" is longer than NAME_MAX when dest's name is 255 bytes
        tmp = dest.with_name(f".hw-{uuid.uuid4().hex[:12]}.part")
        try:
            if self.local and self._find_packed(digest) is None:
                try:
                    fd = os.open(self.object_path(digest), os.O_RDONLY)
                except FileNotFoundError:
                    self.packs.refresh()
                    if self.packs.find(digest) is not None:
                        with open(tmp, "wb") as out_file:
                            out_file.write(self.read_bytes(digest, context=context))
                        os.replace(tmp, dest)
                        return
                    self.flag(digest)
                    raise ObjectMissing(_missing_msg(digest, context)) from None
                try:
                    size = os.fstat(fd).st_size
                    actual = hash_open_file(fd, size)
                    if actual != digest:
                        self.flag(digest)
                        raise ObjectCorrupted(_corrupted_msg(digest, actual, context))
                    out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                    try:
                        copy_fd(fd, out, size)
                    finally:
                        os.close(out)
                finally:
                    os.close(fd)
            else:
                with self.open(digest, context=context) as src, open(tmp, "wb") as out_file:
                    shutil.copyfileobj(src, out_file, CHUNK)
            os.replace(tmp, dest)
        finally:
            if tmp.exists():
                tmp.unlink()

    def verify(self, digest: str, *, context: str = "") -> None:
        """Raise ObjectMissing or ObjectCorrupted unless the store's copy (loose or packed,
        never the read cache's) hashes to its digest."""
        with self.open(digest, context=context, cached=False) as f:
            while f.read(CHUNK):
                pass

    # -- maintenance ----------------------------------------------------------------------------
    def iter_objects(self) -> Iterator[StoredObject]:
        base = f"{self.root}/objects"
        if not self.local:
            self.fs.invalidate_cache(base)
        try:
            found = self.fs.find(base, detail=True)
        except FileNotFoundError:
            return
        for path, info in found.items():
            parts = str(path).rstrip("/").rsplit("/", 2)
            if len(parts) < 3 or len(parts[1]) != 2:
                continue
            digest = parts[1] + parts[2]
            if len(digest) != 64:
                continue
            yield StoredObject(digest, int(info.get("size") or 0), backends.modified_time(info))

    def iter_pack_files(self) -> Iterator[tuple[str, str, int, float | None]]:
        """``(kind, digest, size, modified)`` of every ``packs/`` file: kind ``pack`` or ``idx``."""
        base = f"{self.root}/{PACKS_DIR}"
        try:
            if self.local:
                found = {e.path: {"size": e.stat().st_size, "mtime": e.stat().st_mtime}
                         for e in os.scandir(base)}
            else:
                self.fs.invalidate_cache(base)
                found = {str(i["name"]): i for i in self.fs.ls(base, detail=True)}
        except (FileNotFoundError, NotADirectoryError):
            return
        for path, info in found.items():
            name = path.rstrip("/").rsplit("/", 1)[-1]
            for kind, digest in iter_pack_files([name]):
                yield kind, digest, int(info.get("size") or 0), backends.modified_time(info)

    def delete_aux(self, rel: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(f"{self.root}/{rel}")

    def iter_staging(self) -> Iterator[tuple[Path, float]]:
        """Leftover staging files of a local store (from crashed writers), with their mtimes."""
        if not self.local:
            return
        tmp = Path(f"{self.root}/tmp")
        if tmp.exists():
            for p in tmp.iterdir():
                try:
                    yield p, p.stat().st_mtime
                except FileNotFoundError:
                    continue

    def delete(self, digest: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self.object_path(digest))


_DIGESTS = re.compile("[0-9a-f]*")


def _plain_local_root(url: str) -> str | None:
    """The root fsspec's local filesystem makes of ``url`` (absolute, ``~`` expanded, no
    trailing slash), computed without importing fsspec; None for anything but a plain POSIX
    path (URLs, ``file:``, anything with a colon), which goes through fsspec."""
    if os.sep != "/" or not url or ":" in url:
        return None
    if url.startswith("/"):
        path = url
    elif url.startswith("~"):
        path = os.path.expanduser(url)
    else:
        rel = url[2:] if url.startswith("./") else "" if url == "." else url
        path = f"{os.getcwd()}/{rel}"
    return path.rstrip("/")


def _group_hash(digests: list[str]) -> bytes:
    """What a certificate keeps of the digests it checked under one prefix."""
    h = new_hasher()
    h.update("".join(sorted(digests)).encode())
    return h.digest()[:16]


def _packs_unchanged(kept: dict[str, Any], indexes: list[str], void: list[str]) -> bool:
    """A certificate's packed objects are still there: every pack index it names is still
    listed and no quarantine marker (a voided packed copy) appeared since it was written."""
    return set(kept["indexes"]) <= set(indexes) and set(void) <= set(kept["void"])


def _certificate_holds(kept: Any, objects: str, indexes: list[str], void: list[str]) -> bool:
    """Whether a certificate of :meth:`ObjectStore.absent_since_checked` still vouches for its
    digests: the prefix directories' mtimes unchanged and, if it was written for a store with
    packs, every index it names still listed (``indexes``) and no quarantine marker new since
    (``void``). Raises KeyError/TypeError/OSError on a malformed one (not trusted)."""
    if not isinstance(kept, dict) or not kept:
        return False
    if "objects" in kept:
        mtimes = kept["objects"]
        if not _packs_unchanged(kept, indexes, void):
            return False
    else:  # written where there were no packs: its objects were all loose
        mtimes = kept
    if not isinstance(mtimes, dict):
        return False
    return all(os.stat(f"{objects}/{p}").st_mtime_ns == m for p, m in mtimes.items())


def _check_digests(digests: set[str]) -> None:
    """Raise on any malformed digest: one regex over all of them, then per digest if one is."""
    joined = "".join(digests)
    if len(joined) != DIGEST_HEX_LEN * len(digests) or _DIGESTS.fullmatch(joined) is None:
        for d in digests:
            check_digest(d)
    if any(len(d) != DIGEST_HEX_LEN for d in digests):
        for d in digests:
            check_digest(d)


def _changed(path: str | Path, digest: str) -> RunFailed:
    return RunFailed(
        f"{path} changed while it was being logged (it no longer hashes to {digest[:12]}); "
        "nothing was committed — log it again once it is complete"
    )


def _corrupted_msg(digest: str, actual: str, context: str) -> str:
    where = f" ({context})" if context else ""
    return (
        f"object {digest} is corrupted{where}: its bytes hash to {actual}; re-log the data "
        "(that writes it again: it is flagged now) or run `headwater verify --repair SOURCE_DIR`"
    )


def _missing_msg(digest: str, context: str) -> str:
    where = f" ({context})" if context else ""
    return (
        f"object {digest} is missing from the store{where}; "
        "run `headwater verify` to list every affected version"
    )


def _get(read: Callable[..., bytes], digest: str, context: str) -> bytes | BaseException:
    try:
        return read(digest, context=context)
    except (ObjectMissing, ObjectCorrupted, OSError) as exc:
        return exc


class VerifyingReader(io.RawIOBase):
    """Hashes what is read and checks the digest once the stream is exhausted.

    ``cache``: the bytes are also written to a file of the read cache, which is moved into
    place once the digest matched (and dropped otherwise).
    """

    def __init__(self, raw: BinaryIO, digest: str, context: str,
                 on_bad: Callable[[], object] | None = None,
                 cache: ReadCache | None = None) -> None:
        super().__init__()
        self._on_bad = on_bad
        self._cache = cache
        self._sink: BinaryIO | None = None
        self._sink_path = ""
        if cache is not None:
            with contextlib.suppress(OSError):
                self._sink_path = cache.tmp_path()
                self._sink = open(self._sink_path, "wb")  # noqa: SIM115 - closed in _check
        self._raw = raw
        self._digest = digest
        self._context = context
        self._hasher = new_hasher()
        self._checked = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        if n:
            self._consume(data)
        else:
            self._check()
        return n

    def _consume(self, data: bytes) -> None:
        self._hasher.update(data)
        if self._sink is not None:
            try:
                self._sink.write(data)
            except OSError:
                self._drop_sink()

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            chunks = []
            while chunk := self.read(CHUNK):
                chunks.append(chunk)
            return b"".join(chunks)
        data = self._raw.read(size)
        if data:
            self._consume(data)
        else:
            self._check()
        return data

    def _drop_sink(self) -> None:
        if self._sink is not None:
            with contextlib.suppress(OSError):
                self._sink.close()
            with contextlib.suppress(OSError):
                os.unlink(self._sink_path)
            self._sink = None

    def _check(self) -> None:
        if self._checked:
            return
        self._checked = True
        actual = self._hasher.hexdigest()
        if actual == self._digest and self._sink is not None and self._cache is not None:
            size = self._sink.tell()
            try:
                self._sink.close()
            except OSError:
                self._drop_sink()
            else:
                self._sink = None
                self._cache.miss(size)
                self._cache.adopt(self._sink_path, self._digest)
        self._drop_sink()
        if actual != self._digest:
            if self._on_bad is not None:
                with contextlib.suppress(OSError):
                    self._on_bad()
            raise ObjectCorrupted(_corrupted_msg(self._digest, actual, self._context))

    def close(self) -> None:
        self._drop_sink()  # not read to the end: nothing verified, nothing cached
        self._raw.close()
        super().close()


class ObjectWriter:
    """Spools written bytes to a staging file while hashing, then publishes on ``close``.

    Used as a context manager; if the block raises, the staging file is removed and nothing is
    published.
    """

    def __init__(self, store: ObjectStore) -> None:
        self._store = store
        self._hasher = new_hasher()
        self.size = 0
        self.digest = ""
        staging = store.staging_dir()
        fd, name = tempfile.mkstemp(prefix="hw-", suffix=".part", dir=staging)
        self._path = Path(name)
        self._file = os.fdopen(fd, "wb")

    def write(self, data: bytes) -> int:
        self._hasher.update(data)
        self.size += len(data)
        return self._file.write(data)

    def hexdigest(self) -> str:
        """The digest of the bytes written so far."""
        return self._hasher.hexdigest()

    def close(self) -> str:
        self._file.close()
        self.digest = self._hasher.hexdigest()
        self._store.publish_staged(self._path, self.digest)
        return self.digest

    def abort(self) -> None:
        self._file.close()
        if self._path.exists():
            self._path.unlink()

    def __enter__(self) -> ObjectWriter:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_new_file(
    directory: str,
    name: str,
    data: bytes | memoryview | Callable[[int], None],
    *,
    tmp_dir: str | None = None,
) -> bool:
    """Create ``directory/name`` holding ``data``, atomically; False if it already exists.

    ``data`` is bytes, or a function that writes the content into the file descriptor it is
    given. The file is never visible half-written: on Linux it is written as an anonymous
    ``O_TMPFILE`` inode and then linked under its name (``EEXIST`` means another writer got there
    first, with the same bytes); elsewhere it is written under a unique temporary name in
    ``tmp_dir`` (default: ``directory``) and renamed unless the name exists by then.
    """
    fill: Callable[[int], None] = data if callable(data) else partial(_write_all, data=data)
    target = os.path.join(directory, name)
    if _O_TMPFILE:
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            try:
                fd = os.open(".", _O_TMPFILE | os.O_WRONLY, 0o644, dir_fd=dfd)
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                    raise
            else:
                try:
                    fill(fd)
                    # linkat(AT_SYMLINK_FOLLOW) of /proc/self/fd/N: a dir fd makes CPython use it
                    os.link(f"/proc/self/fd/{fd}", name, dst_dir_fd=dfd)
                    return True
                except FileExistsError:
                    return False
                finally:
                    os.close(fd)
        finally:
            os.close(dfd)
    if os.path.exists(target):
        return False
    tmp = os.path.join(tmp_dir or directory, f".{os.getpid()}-{next(_TMP_NAMES)}-{name[:16]}.part")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            fill(fd)
        finally:
            os.close(fd)
        if os.path.exists(target):
            return False
        os.replace(tmp, target)
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def copy_fd(src: int, dst: int, size: int, *, digest: str | None = None) -> None:
    """Copy the first ``size`` bytes of ``src`` to ``dst``.

    Without ``digest``: in the kernel (``copy_file_range``/``sendfile``; ten times faster than a
    userspace loop on the development VM). With it: through userspace, hashing on the way, and
    :class:`ObjectCorrupted` if the bytes copied do not hash to ``digest``.
    """
    if digest is None:
        offset = 0
        kernel_copy = getattr(os, "copy_file_range", None)
        while offset < size:
            try:
                if kernel_copy is not None:
                    n = kernel_copy(src, dst, size - offset, offset)
                else:
                    n = os.sendfile(dst, src, offset, size - offset)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                    raise
                kernel_copy = None
                n = os.sendfile(dst, src, offset, size - offset)
            if n == 0:
                raise RunFailed(f"a file shrank while it was being copied ({offset} of {size})")
            offset += n
        return
    hasher = new_hasher()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    offset = 0
    while offset < size:
        n = os.preadv(src, [view[: min(CHUNK, size - offset)]], offset)
        if n == 0:
            raise RunFailed(f"a file shrank while it was being copied ({offset} of {size})")
        hasher.update(view[:n])
        _write_all(dst, view[:n])
        offset += n
    if hasher.hexdigest() != digest:
        raise ObjectCorrupted(_corrupted_msg(digest, hasher.hexdigest(), "while copying"))

"""The object store: immutable blobs named by their BLAKE3 digest, on any fsspec filesystem.

Layout under the store root::

    objects/ab/cdef0123…   one blob per digest (data files and manifests alike)
    tmp/                    local stores only: staging area, renamed into objects/ atomically

Writes are stage → verify → publish. On a local disk a blob is written under ``tmp/`` and moved
into place with an atomic rename; on S3 and GCS a single PUT is already all-or-nothing, so the blob
is uploaded straight to its final key from a local staging file whose digest was computed while
it was written. Publishing is idempotent: an object that exists is never rewritten.
Reads verify: every byte handed out is hashed and compared with the digest at end of stream.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from fsspec import AbstractFileSystem

from headwater.errors import ObjectCorrupted, ObjectMissing, StoreUnavailable
from headwater.store import backends
from headwater.store.hashing import CHUNK, hash_file, new_hasher
from headwater.store.manifest import check_digest


@dataclass(frozen=True)
class StoredObject:
    digest: str
    size: int
    modified: float | None


class ObjectStore:
    """Content-addressed blobs under ``url``. Safe to share between processes and machines."""

    def __init__(self, url: str, *, options: Mapping[str, Any] | None = None) -> None:
        self.url = url.rstrip("/")
        self.options = dict(options or {})
        self.fs: AbstractFileSystem
        self.fs, self.root = backends.open_filesystem(self.url, self.options)
        self.local = backends.is_local(self.fs)
        self._ready = False

    def __repr__(self) -> str:
        return f"ObjectStore({self.url!r})"

    # -- layout ---------------------------------------------------------------------------------
    def object_path(self, digest: str) -> str:
        check_digest(digest)
        return f"{self.root}/objects/{digest[:2]}/{digest[2:]}"

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

        A remote store answers with one LIST per prefix touched (at most 256), never one HEAD
        request per object.
        """
        by_prefix: dict[str, set[str]] = defaultdict(set)
        for d in digests:
            check_digest(d)
            by_prefix[d[:2]].add(d[2:])
        if not by_prefix:
            return set()

        def list_prefix(prefix: str) -> set[str]:
            return {prefix + name for name in self._names_under(prefix)}

        workers = 1 if self.local or len(by_prefix) == 1 else 16
        with ThreadPoolExecutor(max_workers=workers) as pool:
            present = set().union(*pool.map(list_prefix, by_prefix))
        return {p + rest for p, rests in by_prefix.items() for rest in rests} - present

    def _names_under(self, prefix: str) -> set[str]:
        directory = f"{self.root}/objects/{prefix}"
        if self.local:
            try:
                return {n for n in os.listdir(directory) if not n.startswith(".")}
            except FileNotFoundError:
                return set()
        self.fs.invalidate_cache(directory)
        try:
            entries = self.fs.ls(directory, detail=False)
        except FileNotFoundError:
            return set()
        return {str(e).rstrip("/").rsplit("/", 1)[-1] for e in entries}

    def has(self, digest: str) -> bool:
        return not self.missing([digest])

    # -- writing --------------------------------------------------------------------------------
    def put_file(self, local_path: str | Path, digest: str | None = None) -> str:
        """Publish a local file as an object; returns its digest. Idempotent."""
        if digest is None:
            digest, _ = hash_file(local_path)
        self._ensure_root()
        target = self.object_path(digest)
        if self.local:
            if os.path.exists(target):
                return digest
            tmp = f"{self.root}/tmp/{uuid.uuid4().hex}.part"
            try:
                shutil.copyfile(local_path, tmp)
                self._publish_local(tmp, target)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            return digest
        self.fs.put_file(str(local_path), target)
        return digest

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
            if self.local:
                if not os.path.exists(target):
                    self._publish_local(str(staged), target)
            else:
                if self.missing([digest]):
                    self.fs.put_file(str(staged), target)
        finally:
            if staged.exists():
                staged.unlink()

    # -- reading --------------------------------------------------------------------------------
    def open(self, digest: str, *, context: str = "") -> BinaryIO:
        """Open an object for reading; the stream raises ObjectCorrupted at EOF on a mismatch."""
        path = self.object_path(digest)
        try:
            raw = self.fs.open(path, "rb")
        except FileNotFoundError:
            raise ObjectMissing(_missing_msg(digest, context)) from None
        return VerifyingReader(raw, digest, context)  # type: ignore[return-value]

    def read_bytes(self, digest: str, *, context: str = "") -> bytes:
        with self.open(digest, context=context) as f:
            return f.read()

    def get_file(self, digest: str, dest: str | Path, *, context: str = "") -> None:
        """Copy an object to a local file, verifying it; ``dest`` appears only when complete."""
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.part")
        try:
            with self.open(digest, context=context) as src, open(tmp, "wb") as out:
                shutil.copyfileobj(src, out, CHUNK)
            os.replace(tmp, dest)
        finally:
            if tmp.exists():
                tmp.unlink()

    def verify(self, digest: str, *, context: str = "") -> None:
        """Raise ObjectMissing or ObjectCorrupted unless the object hashes to its digest."""
        with self.open(digest, context=context) as f:
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


def _missing_msg(digest: str, context: str) -> str:
    where = f" ({context})" if context else ""
    return (
        f"object {digest} is missing from the store{where}; "
        "run `headwater verify` to list every affected version"
    )


class VerifyingReader(io.RawIOBase):
    """Hashes what is read and checks the digest once the stream is exhausted."""

    def __init__(self, raw: BinaryIO, digest: str, context: str) -> None:
        super().__init__()
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
            self._hasher.update(data)
        else:
            self._check()
        return n

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            chunks = []
            while chunk := self.read(CHUNK):
                chunks.append(chunk)
            return b"".join(chunks)
        data = self._raw.read(size)
        if data:
            self._hasher.update(data)
        else:
            self._check()
        return data

    def _check(self) -> None:
        if self._checked:
            return
        self._checked = True
        actual = self._hasher.hexdigest()
        if actual != self._digest:
            where = f" ({self._context})" if self._context else ""
            raise ObjectCorrupted(
                f"object {self._digest} is corrupted{where}: its bytes hash to {actual}; "
                "restore it from a copy or re-log the data, then run `headwater verify`"
            )

    def close(self) -> None:
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


_STORES: dict[tuple[str, str], ObjectStore] = {}


def open_store(url: str, options: Mapping[str, Any] | None = None) -> ObjectStore:
    """Open (and memoise per process) the store at ``url``."""
    import json

    key = (url.rstrip("/"), json.dumps(dict(options or {}), sort_keys=True, default=str))
    store = _STORES.get(key)
    if store is None:
        store = _STORES[key] = ObjectStore(url, options=options)
    return store

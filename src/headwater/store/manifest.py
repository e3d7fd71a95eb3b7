"""Manifests: the canonical, sorted list of a version's files.

Format (``headwater.manifest`` v1) is JSON Lines, UTF-8, ``\\n``-terminated, compact separators,
sorted keys: a header line, then one entry per file in ascending path order. No timestamps, no
absolute paths, so the same content always gives the same bytes and therefore the same root
digest. A golden-digest test guards it (``tests/test_manifest.py``). Entries are streamable: a
reader never needs the whole list in memory.

A *reference* entry tracks data left in place (``source``: its URI plus the fingerprint its
backend gives, such as an S3 ETag or a GCS generation) instead of a stored object.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from headwater.canonical import canonical_json
from headwater.errors import HeadwaterError, UnsafePath
from headwater.store.hashing import DIGEST_HEX_LEN, HASH_NAME, new_hasher
from headwater.store.paths import check_relpath

FORMAT = "headwater.manifest"
FORMAT_VERSION = 1
_HEX_DIGEST = re.compile("[0-9a-f]+")
#: A manifest built by :class:`ManifestWriter` goes to a temporary file once it is this large.
SPILL_BYTES = 32 << 20
#: Bytes per piece when a spilled manifest is written, hashed or read back.
_PIECE = 8 << 20
# A plain entry line exactly as _dumps writes it when the path needs no JSON escaping (paths never
# hold a backslash or a control character, see paths.py, so only '"' would): parsed without json.
_PLAIN_LINE = re.compile(
    r'\{"digest":"([0-9a-f]{64})","path":"([^"\\]*)","size":(0|[1-9][0-9]*)\}'
)


def _dumps(obj: Any) -> str:
    # Raw UTF-8 (ensure_ascii=False) and no str() fallback: the v1 format as written since day one.
    return canonical_json(obj, ensure_ascii=False, stringify=False)


def check_digest(digest: str) -> str:
    if len(digest) != DIGEST_HEX_LEN or _HEX_DIGEST.fullmatch(digest) is None:
        raise HeadwaterError(f"malformed object digest {digest!r}")
    return digest


@dataclass(frozen=True)
class ReferenceSource:
    """Where a reference entry's bytes live, and how to tell whether they changed."""

    uri: str
    fingerprint: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"fingerprint": dict(sorted(self.fingerprint.items())), "uri": self.uri}


@dataclass(frozen=True, order=True, slots=True)
class ManifestEntry:
    path: str
    digest: str | None
    size: int
    source: ReferenceSource | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        check_relpath(self.path)
        if self.digest is None and self.source is None:
            raise HeadwaterError(f"manifest entry {self.path!r} has neither digest nor source")
        if self.digest is not None:
            check_digest(self.digest)
        if self.size < 0:
            raise HeadwaterError(f"manifest entry {self.path!r} has a negative size")

    @classmethod
    def of_local_file(cls, path: str, digest: str, size: int) -> ManifestEntry:
        """An entry for a path built by a directory walk and a digest Headwater computed.

        Cheaper than the checked constructor (a snapshot makes one per file): a walk's path
        segments are real file names (never empty, ``.``, ``..``, nor holding ``/`` or NUL), so
        only the characters :func:`check_relpath` also rejects are searched for, and the full
        check runs (and raises) if one is found.
        """
        if _NEEDS_FULL_CHECK.search(path) is not None:
            check_relpath(path)
        entry = object.__new__(cls)
        _set_path(entry, path)
        _set_digest(entry, digest)
        _set_size(entry, size)
        _set_source(entry, None)
        return entry

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "size": self.size}
        if self.digest is not None:
            out["digest"] = self.digest
        if self.source is not None:
            out["source"] = self.source.to_json()
        return out

    def to_line(self) -> str:
        """The entry's canonical JSON line (without newline), as ``_dumps(self.to_json())``."""
        if self.source is None and self.digest is not None and '"' not in self.path:
            return f'{{"digest":"{self.digest}","path":"{self.path}","size":{self.size}}}'
        return _dumps(self.to_json())

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> ManifestEntry:
        src = obj.get("source")
        source = (
            ReferenceSource(uri=src["uri"], fingerprint=dict(src.get("fingerprint", {})))
            if src
            else None
        )
        return cls(path=obj["path"], digest=obj.get("digest"), size=int(obj["size"]), source=source)


# slot setters of the frozen ManifestEntry, for of_local_file
_SLOTS: Mapping[str, Any] = ManifestEntry.__dict__
_set_path = _SLOTS["path"].__set__
_set_digest = _SLOTS["digest"].__set__
_set_size = _SLOTS["size"].__set__
_set_source = _SLOTS["source"].__set__
_NEEDS_FULL_CHECK = re.compile(r"[\x00-\x1f\x7f\\]|^[A-Za-z]:")


def _header() -> str:
    return _dumps({"format": FORMAT, "hash": HASH_NAME, "version": FORMAT_VERSION})


def object_line(path: str, digest: str, size: int) -> str:
    """The canonical line (without newline) of a stored-object entry, as ``to_line`` makes it.

    For writers that build a manifest's bytes directly (a snapshot of 100k files) instead of an
    entry object per file; ``path`` must already be a checked relative path.
    """
    if '"' not in path:
        return f'{{"digest":"{digest}","path":"{path}","size":{size}}}'
    return _dumps({"digest": digest, "path": path, "size": size})


class Manifest:
    """An immutable, path-sorted list of entries with canonical bytes and a root digest.

    Built from entries (sorted and checked here), or by :meth:`from_canonical_body` from lines a
    writer already produced in canonical order; then the entries are parsed only if asked for,
    so logging an unchanged 100k-file tree never creates 100k entry objects.
    """

    __slots__ = ("_body", "_bytes", "_count", "_digest", "_entries", "_file", "_size", "_total")

    def __init__(self, entries: Iterable[ManifestEntry]) -> None:
        ordered = sorted(entries, key=lambda e: e.path)
        for a, b in itertools.pairwise(ordered):
            if a.path == b.path:
                raise UnsafePath(f"path {a.path!r} appears twice in one manifest")
        # a file may not also be a directory: not always neighbours ("a", "a-x", "a/b")
        files = {e.path for e in ordered}
        for e in ordered:
            cut = e.path.rfind("/")
            while cut > 0:
                if e.path[:cut] in files:
                    raise UnsafePath(
                        f"{e.path[:cut]!r} is both a file and a directory in one manifest")
                cut = e.path.rfind("/", 0, cut)
        self._entries: tuple[ManifestEntry, ...] | None = tuple(ordered)
        self._body: bytes | None = None
        self._count = len(self._entries)
        self._total = sum(e.size for e in self._entries)
        self._bytes: bytes | None = None
        self._digest: str | None = None
        self._file: IO[bytes] | None = None
        self._size = 0

    @classmethod
    def from_canonical_body(cls, body: bytes, *, count: int, total_size: int) -> Manifest:
        """A manifest whose entry lines (``\n``-terminated, in ascending path order, each
        exactly as :func:`object_line` writes it) a writer has already produced.

        The caller vouches for order and uniqueness (a directory walk gives both); the entries
        are parsed, and every path checked again, the first time :attr:`entries` is read.
        """
        self = object.__new__(cls)
        self._entries = None
        self._body = body
        self._count = count
        self._total = total_size
        self._bytes = None
        self._digest = None
        self._file = None
        self._size = 0
        return self

    @classmethod
    def _canonical(cls, *, data: bytes | None = None, file: IO[bytes] | None = None,
                   size: int = 0, digest: str | None = None, count: int,
                   total_size: int) -> Manifest:
        """A manifest whose whole canonical bytes (header included) are ``data``, or the first
        ``size`` bytes of ``file`` (then ``digest`` is theirs); see :class:`ManifestWriter`."""
        self = cls.from_canonical_body(b"", count=count, total_size=total_size)
        self._body = None
        self._bytes, self._file, self._size, self._digest = data, file, size, digest
        return self

    @property
    def entries(self) -> tuple[ManifestEntry, ...]:
        if self._entries is None:
            if self._body is not None:
                self._entries = tuple(iter_entries([_header(), *self._body.splitlines()]))
            else:
                self._entries = tuple(iter_entries(_lines(self.iter_chunks())))
        return self._entries

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[ManifestEntry]:
        return iter(self.entries)

    @property
    def total_size(self) -> int:
        return self._total

    @property
    def is_reference(self) -> bool:
        if self._entries is None:
            return False  # a canonical body holds stored-object entries only
        return any(e.source is not None for e in self._entries)

    def iter_chunks(self, lines_per_chunk: int = 8192) -> Iterator[bytes]:
        """The canonical bytes in pieces, so a large manifest is hashed or written streaming."""
        if self._bytes is not None:
            yield self._bytes
            return
        if self._file is not None:
            for start in range(0, self._size, _PIECE):
                yield _pread(self._file, min(_PIECE, self._size - start), start)
            return
        yield (_header() + "\n").encode("utf-8")
        if self._body is not None:
            yield self._body
            return
        for start in range(0, len(self.entries), lines_per_chunk):
            part = self.entries[start : start + lines_per_chunk]
            yield ("\n".join([e.to_line() for e in part]) + "\n").encode("utf-8")

    @property
    def nbytes(self) -> int:
        """Length of the canonical bytes, without making them when they are spilled or held."""
        if self._bytes is not None:
            return len(self._bytes)
        if self._file is not None:
            return self._size
        return sum(len(chunk) for chunk in self.iter_chunks())

    def to_bytes(self) -> bytes:
        if self._bytes is not None:
            return self._bytes
        if self._file is not None:  # one buffer of the exact size, not pieces joined
            return _pread(self._file, self._size, 0)
        return b"".join(self.iter_chunks())

    @property
    def digest(self) -> str:
        if self._digest is None:
            h = new_hasher()
            for chunk in self.iter_chunks():
                h.update(chunk)
            self._digest = h.hexdigest()
        return self._digest

    def by_path(self) -> dict[str, ManifestEntry]:
        return {e.path: e for e in self.entries}

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        return cls(iter_entries(data.splitlines()))


class ManifestWriter:
    """Builds a manifest from blocks of canonical entry lines written in path order (what a
    directory walk produces), without holding them twice.

    Up to :data:`SPILL_BYTES` the bytes stay in memory and are joined once, header included,
    into the buffer :meth:`Manifest.to_bytes` returns. Beyond that they are hashed as they come
    and written to an unlinked temporary file, which the manifest reads back only when asked for
    its bytes: a million files' manifest (~120 MB) is not held while the snapshot still holds
    the rest of its state (issue 18).
    """

    def __init__(self, *, spill: int | None = None, tmp_dir: str | None = None) -> None:
        self._parts = [(_header() + "\n").encode("utf-8")]
        self._held = len(self._parts[0])
        self._size = 0  # bytes written to the file
        self._spill = SPILL_BYTES if spill is None else spill
        self._tmp_dir = tmp_dir
        self._file: IO[bytes] | None = None
        self._hasher: Any = None

    def write(self, block: bytes) -> None:
        """Append entry lines, each ``\n``-terminated, as :func:`object_line` makes them."""
        self._parts.append(block)
        self._held += len(block)
        if self._held >= (_PIECE if self._file is not None else self._spill):
            self._drain()

    def _drain(self) -> None:
        if self._file is None:
            import tempfile

            # closed with the manifest that reads it back
            self._file = tempfile.TemporaryFile(  # noqa: SIM115
                prefix="hw-manifest-", dir=self._tmp_dir)
            self._hasher = new_hasher()
        data = b"".join(self._parts)
        self._parts, self._held = [], 0
        self._hasher.update(data)
        self._file.write(data)
        self._size += len(data)

    def finish(self, *, count: int, total_size: int) -> Manifest:
        """The manifest of what was written: ``count`` entries of ``total_size`` bytes."""
        if self._file is None:
            data = b"".join(self._parts)
            self._parts = []
            return Manifest._canonical(data=data, count=count, total_size=total_size)
        self._drain()
        self._file.flush()
        file, self._file = self._file, None
        return Manifest._canonical(file=file, size=self._size, digest=self._hasher.hexdigest(),
                                   count=count, total_size=total_size)

    def abort(self) -> None:
        self._parts = []
        if self._file is not None:
            self._file.close()
            self._file = None


def _pread(file: IO[bytes], size: int, offset: int) -> bytes:
    data = os.pread(file.fileno(), size, offset)
    if len(data) == size:
        return data
    parts = [data]
    got = len(data)
    while got < size:
        more = os.pread(file.fileno(), size - got, offset + got)
        if not more:
            raise HeadwaterError("a spilled manifest's temporary file is shorter than written")
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def _lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The lines of a byte stream given in pieces that may cut lines anywhere."""
    rest = b""
    for chunk in chunks:
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        yield from lines
    if rest:
        yield rest


def iter_entries(lines: Iterable[bytes | str]) -> Iterator[ManifestEntry]:
    """Stream the entries of a manifest from its lines (header first)."""
    it = iter(lines)
    try:
        header = json.loads(next(it))
    except StopIteration:
        raise HeadwaterError("empty manifest: no header line") from None
    if header.get("format") != FORMAT or header.get("hash") != HASH_NAME:
        raise HeadwaterError(f"not a {FORMAT} manifest (header {header!r})")
    if header.get("version") != FORMAT_VERSION:
        raise HeadwaterError(
            f"manifest format version {header.get('version')} is not supported by this "
            f"Headwater (it reads version {FORMAT_VERSION}); upgrade Headwater"
        )
    for line in it:
        text = (line.decode("utf-8") if isinstance(line, bytes) else line).rstrip("\n")
        if not text:
            continue
        plain = _PLAIN_LINE.fullmatch(text)
        if plain is not None:  # digest and size are well-formed by the pattern; check the path
            yield ManifestEntry(plain[2], plain[1], int(plain[3]))
        else:
            yield ManifestEntry.from_json(json.loads(text))

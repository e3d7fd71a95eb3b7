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
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from headwater.canonical import canonical_json
from headwater.errors import HeadwaterError, UnsafePath
from headwater.store.hashing import DIGEST_HEX_LEN, HASH_NAME, new_hasher
from headwater.store.paths import check_relpath

FORMAT = "headwater.manifest"
FORMAT_VERSION = 1
_HEX_DIGEST = re.compile("[0-9a-f]+")
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

    __slots__ = ("_body", "_bytes", "_count", "_digest", "_entries", "_total")

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
        return self

    @property
    def entries(self) -> tuple[ManifestEntry, ...]:
        if self._entries is None:
            body = self._body or b""
            self._entries = tuple(iter_entries([_header(), *body.splitlines()]))
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
        yield (_header() + "\n").encode("utf-8")
        if self._body is not None:
            yield self._body
            return
        for start in range(0, len(self.entries), lines_per_chunk):
            part = self.entries[start : start + lines_per_chunk]
            yield ("\n".join([e.to_line() for e in part]) + "\n").encode("utf-8")

    def to_bytes(self) -> bytes:
        if self._bytes is not None:
            return self._bytes
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

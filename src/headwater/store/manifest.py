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
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from headwater.errors import HeadwaterError, UnsafePath
from headwater.store.hashing import DIGEST_HEX_LEN, HASH_NAME, hash_bytes
from headwater.store.paths import check_relpath

FORMAT = "headwater.manifest"
FORMAT_VERSION = 1
_HEX = frozenset("0123456789abcdef")


def _dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def check_digest(digest: str) -> str:
    if len(digest) != DIGEST_HEX_LEN or not set(digest) <= _HEX:
        raise HeadwaterError(f"malformed object digest {digest!r}")
    return digest


@dataclass(frozen=True)
class ReferenceSource:
    """Where a reference entry's bytes live, and how to tell whether they changed."""

    uri: str
    fingerprint: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"fingerprint": dict(sorted(self.fingerprint.items())), "uri": self.uri}


@dataclass(frozen=True, order=True)
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

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "size": self.size}
        if self.digest is not None:
            out["digest"] = self.digest
        if self.source is not None:
            out["source"] = self.source.to_json()
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> ManifestEntry:
        src = obj.get("source")
        source = (
            ReferenceSource(uri=src["uri"], fingerprint=dict(src.get("fingerprint", {})))
            if src
            else None
        )
        return cls(path=obj["path"], digest=obj.get("digest"), size=int(obj["size"]), source=source)


def _header() -> str:
    return _dumps({"format": FORMAT, "hash": HASH_NAME, "version": FORMAT_VERSION})


class Manifest:
    """An immutable, path-sorted list of entries with canonical bytes and a root digest."""

    __slots__ = ("_bytes", "_digest", "entries")

    def __init__(self, entries: Iterable[ManifestEntry]) -> None:
        ordered = sorted(entries, key=lambda e: e.path)
        for a, b in itertools.pairwise(ordered):
            if a.path == b.path:
                raise UnsafePath(f"path {a.path!r} appears twice in one manifest")
            if b.path.startswith(a.path + "/"):
                raise UnsafePath(f"{a.path!r} is both a file and a directory in one manifest")
        self.entries: tuple[ManifestEntry, ...] = tuple(ordered)
        self._bytes: bytes | None = None
        self._digest: str | None = None

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[ManifestEntry]:
        return iter(self.entries)

    @property
    def total_size(self) -> int:
        return sum(e.size for e in self.entries)

    @property
    def is_reference(self) -> bool:
        return any(e.source is not None for e in self.entries)

    def to_bytes(self) -> bytes:
        if self._bytes is None:
            lines = [_header(), *(_dumps(e.to_json()) for e in self.entries)]
            self._bytes = ("\n".join(lines) + "\n").encode("utf-8")
        return self._bytes

    @property
    def digest(self) -> str:
        if self._digest is None:
            self._digest = hash_bytes(self.to_bytes())
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
        if line:
            yield ManifestEntry.from_json(json.loads(line))

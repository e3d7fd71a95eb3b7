"""Pack files: many small objects in one blob, found through an index (ADR 0005).

Layout under the store root::

    packs/<P>.pack   the objects' bytes, concatenated; P is the BLAKE3 digest of the whole pack
    packs/<I>.idx    the index of one pack; I is the BLAKE3 digest of the index's own bytes

An index is one JSON header line (``{"count":N,"format":"headwater.packindex","pack":P,
"size":S,"version":1}``) followed by N records of 48 bytes, sorted by digest: the object's
digest (32 raw bytes), its offset and its length in the pack (unsigned 64-bit big-endian).

Visibility: a pack is written (an atomic rename locally; remotely one PUT, or above
:data:`PACK_PART` a multipart/resumable upload that the backend shows only once complete and
that a failure aborts) before its index, and an object is in the store through a pack only once
the index naming it exists. A crash before the index leaves a pack nobody refers to: ``gc``
deletes ``.pack`` files without an index once they are older than the grace period, and aborts
the unfinished S3 uploads under ``packs/`` of a writer killed between two parts. Manifests and
digests do not change: a version's identity is the digest of its manifest whichever way its
objects are stored.

A packed copy whose digest has a marker in ``quarantine/`` (a read found it corrupted) is void:
the store treats the object as absent there, and the repair writes it again as a loose object.
"""

from __future__ import annotations

import contextlib
import json
import struct
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from headwater import _failpoints
from headwater.errors import HeadwaterError
from headwater.store.hashing import DIGEST_HEX_LEN, hash_bytes

if TYPE_CHECKING:
    from headwater.store.cache import ReadCache
    from headwater.store.objects import ObjectStore

PACKS_DIR = "packs"
INDEX_FORMAT = "headwater.packindex"
INDEX_VERSION = 1
#: Objects up to this size go into packs (when the store packs); larger ones stay loose.
PACK_MAX_OBJECT = 1 << 20
#: A pack is closed and uploaded once it holds this many bytes.
PACK_TARGET = 32 << 20
#: A pack larger than this is uploaded in parts of this size (S3 multipart: at least 5 MiB;
#: GCS resumable: a multiple of 256 KiB), each retried on its own by the client.
PACK_PART = 8 << 20
#: Packs uploaded at the same time by one writer (memory: this many + 1 packs in flight).
UPLOADS_IN_FLIGHT = 2
#: Neighbouring ranges of one pack closer than this are fetched with one ranged GET.
COALESCE_GAP = 1 << 20
#: ... as long as the merged range stays below this.
COALESCE_MAX = 16 << 20
_RECORD = struct.Struct(">32sQQ")


@dataclass(frozen=True, slots=True)
class PackedAt:
    """Where a packed object's bytes are: ``pack`` (a pack digest), offset and length."""

    pack: str
    offset: int
    length: int


def pack_relpath(pack: str) -> str:
    return f"{PACKS_DIR}/{pack}.pack"


def index_relpath(index: str) -> str:
    return f"{PACKS_DIR}/{index}.idx"


def encode_index(pack: str, pack_size: int, entries: Iterable[tuple[str, int, int]]) -> bytes:
    """The bytes of the index of ``pack``: ``entries`` are ``(digest, offset, length)``."""
    rows = sorted(entries)
    header = json.dumps({"count": len(rows), "format": INDEX_FORMAT, "pack": pack,
                         "size": pack_size, "version": INDEX_VERSION},
                        sort_keys=True, separators=(",", ":")).encode() + b"\n"
    body = b"".join(_RECORD.pack(bytes.fromhex(d), off, n) for d, off, n in rows)
    return header + body


def _parse_index(data: bytes, index: str) -> _Index:
    """One index's bytes, checked against their digest ``index`` and kept as they are: the
    records are looked up in place (:meth:`_Index.position`), not decoded one object each."""
    if hash_bytes(data) != index:
        raise HeadwaterError(f"pack index {index} is corrupted (its bytes do not hash to its name)")
    nl = data.find(b"\n")
    try:
        header = json.loads(data[:nl])
        if header.get("format") != INDEX_FORMAT or header.get("version") != INDEX_VERSION:
            raise ValueError("unknown format")
        pack, size, count = str(header["pack"]), int(header["size"]), int(header["count"])
    except (ValueError, KeyError, TypeError) as exc:
        raise HeadwaterError(f"pack index {index} cannot be read: {exc}") from None
    body = data[nl + 1:]
    if len(body) != count * _RECORD.size:
        raise HeadwaterError(f"pack index {index} has {len(body)} record bytes for {count}")
    return _Index(pack, size, body, count)


def decode_index(data: bytes, index: str) -> tuple[str, int, list[tuple[str, int, int]]]:
    """``(pack, pack size, entries)`` of index bytes, checked against their digest ``index``."""
    parsed = _parse_index(data, index)
    return parsed.pack, parsed.size, parsed.entries()


class _Index:
    """One pack index, its records kept as read (48 bytes each, sorted by digest): a lookup
    bisects them; the hex digests are made once, all at once, when many lookups need them."""

    __slots__ = ("body", "count", "pack", "size")

    def __init__(self, pack: str, size: int, body: bytes, count: int) -> None:
        self.pack, self.size, self.body, self.count = pack, size, body, count

    def position(self, raw: bytes) -> int:
        """The record number of the raw digest ``raw``, -1 if this index does not hold it."""
        body, lo, hi, width = self.body, 0, self.count, _RECORD.size
        while lo < hi:
            mid = (lo + hi) >> 1
            at = mid * width
            key = body[at:at + 32]
            if key < raw:
                lo = mid + 1
            elif key > raw:
                hi = mid
            else:
                return mid
        return -1

    def at(self, i: int) -> PackedAt:
        _digest, off, n = _RECORD.unpack_from(self.body, i * _RECORD.size)
        return PackedAt(self.pack, off, n)

    def digests(self) -> list[str]:
        """Every digest of this index, in hex (one ``hex()`` of the whole body, then slices)."""
        text = self.body.hex()
        step = 2 * _RECORD.size
        return [text[i:i + DIGEST_HEX_LEN] for i in range(0, len(text), step)]

    def numbered(self, base: int) -> Iterator[tuple[str, int]]:
        """``(digest, base + record number)`` for every record."""
        return zip(self.digests(), range(base, base + self.count), strict=True)

    def entries(self) -> list[tuple[str, int, int]]:
        return [(d.hex(), off, n) for d, off, n in _RECORD.iter_unpack(self.body)]


#: Lookups that bisect the indexes before one table of every packed digest is built instead.
BISECT_LOOKUPS = 256


class _Where(Mapping[str, PackedAt]):
    """``digest -> PackedAt`` of every packed object (void ones included), read through the
    :class:`PackSet` without materialising a ``PackedAt`` per object."""

    def __init__(self, packs: PackSet) -> None:
        self._packs = packs

    def __getitem__(self, digest: str) -> PackedAt:
        at = self._packs.locate(digest)
        if at is None:
            raise KeyError(digest)
        return at

    def __contains__(self, digest: object) -> bool:
        return isinstance(digest, str) and self._packs.locate(digest) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self._packs.table())

    def __len__(self) -> int:
        return len(self._packs.table())

    def __bool__(self) -> bool:  # without building the table
        return self._packs.any()


class PackSet:
    """The indexes of a store's packs, loaded once and refreshed on demand (one listing).

    Shared by the threads of one :class:`ObjectStore`; other processes' new packs are seen at
    the next :meth:`refresh` (every existence check refreshes; a read of an object not found
    refreshes once before it reports it missing).

    An index is kept as its bytes (:class:`_Index`): loading 100k packed objects' indexes
    costs a read and a hash, not 100k decoded entries (that was 0.19 s of an unchanged
    re-log into a packing store). The first :data:`BISECT_LOOKUPS` lookups bisect each
    index; more build one table of every packed digest (~30 ms per 100k), kept up to date as
    indexes are published and rebuilt when one goes.
    """

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        #: index digest -> its records
        self._ix: dict[str, _Index] = {}
        #: index digest -> pack digest, for the indexes loaded
        self.indexes: dict[str, str] = {}
        #: pack digest -> size in bytes
        self.pack_sizes: dict[str, int] = {}
        #: packed copies that were found corrupted (``quarantine/<digest>``)
        self.void: set[str] = set()
        self.loaded = False
        #: the indexes the read cache saw at the last refresh were loaded (no request)
        self.from_cache = False
        #: ``(digest -> index number << 32 | record number, the indexes by number)``, once
        #: built; replaced whole (never half-updated for a reader) when an index goes
        self._table: tuple[dict[str, int], list[_Index]] | None = None
        self._lookups = 0
        self._lock = threading.Lock()
        #: one refresh at a time: a checkout's threads all need the indexes at once
        self._refreshing = threading.Lock()

    @property
    def where(self) -> Mapping[str, PackedAt]:
        """``digest -> PackedAt`` of every packed object (void copies included)."""
        return _Where(self)

    def any(self) -> bool:
        """Whether any index is loaded (the store holds packed objects)."""
        return bool(self._ix)

    def loaded_indexes(self) -> list[_Index]:
        return list(self._ix.values())

    def _add(self, index: str, parsed: _Index) -> None:
        """Know the index ``index`` (under ``self._lock``)."""
        if index in self._ix:
            return
        self._ix[index] = parsed
        self.indexes[index] = parsed.pack
        self.pack_sizes[parsed.pack] = parsed.size
        if self._table is not None:
            table, by_number = self._table
            base = len(by_number) << 32
            by_number.append(parsed)
            table.update(parsed.numbered(base))

    def table(self) -> dict[str, int]:
        """Every packed digest (void ones included), built on first use."""
        built = self._table
        if built is None:
            with self._lock:
                built = self._table
                if built is None:
                    by_number = list(self._ix.values())
                    table: dict[str, int] = {}
                    for k, parsed in enumerate(by_number):
                        base = k << 32
                        table.update(parsed.numbered(base))
                    built = self._table = (table, by_number)
        return built[0]

    def locate(self, digest: str) -> PackedAt | None:
        """Where a pack holds ``digest`` (void or not), None if no loaded index names it."""
        built = self._table
        if built is None:
            self._lookups += 1
            if self._lookups <= BISECT_LOOKUPS:
                try:
                    raw = bytes.fromhex(digest)
                except ValueError:
                    return None
                for parsed in list(self._ix.values()):
                    i = parsed.position(raw)
                    if i >= 0:
                        return parsed.at(i)
                return None
            self.table()
            built = self._table
            assert built is not None
        code = built[0].get(digest)
        if code is None:
            return None
        return built[1][code >> 32].at(code & 0xFFFFFFFF)

    def refresh(self) -> None:
        with self._refreshing:
            self._refresh()

    def _refresh(self) -> None:
        names = self.store.list_dir(PACKS_DIR)
        wanted = {n[:-4] for n in names if n.endswith(".idx") and len(n) == DIGEST_HEX_LEN + 4}
        void = {n for n in self.store.list_dir("quarantine") if len(n) == DIGEST_HEX_LEN}
        new = sorted(wanted - self._ix.keys())
        loaded: list[tuple[str, _Index]] = []
        if new:
            workers = 1 if self.store.local or len(new) == 1 else 8
            with ThreadPoolExecutor(max_workers=workers) as pool:
                for index, parsed in zip(new, pool.map(self._read_index, new), strict=True):
                    if parsed is not None:
                        loaded.append((index, parsed))
        with self._lock:
            gone = self._ix.keys() - wanted
            for index in gone:
                self._ix.pop(index)
                self.indexes.pop(index, None)
            if gone:  # an index was removed (gc repacked): drop its entries
                live = set(self.indexes.values())
                self.pack_sizes = {p: s for p, s in self.pack_sizes.items() if p in live}
                self._table = None
            for index, parsed in loaded:
                self._add(index, parsed)
            self.void = void
            self.loaded = True
        self.remember()

    def remember(self) -> None:
        """Write the indexes known now to the read cache, for a later process's
        :meth:`ensure_cached` (no request)."""
        if self.store.cache is not None and (self.loaded or self.from_cache):
            with self._lock:
                seen = {"indexes": sorted(self.indexes), "void": sorted(self.void)}
            self.store.cache.put_aux(self._seen_key(), json.dumps(seen).encode())

    def published(self, index: str, data: bytes) -> None:
        """A writer of this process has just written the index ``index`` (bytes ``data``):
        known from now on without another listing, and kept in the read cache."""
        parsed = _parse_index(data, index)
        if self.store.cache is not None:
            self.store.cache.put_aux(f"idx-{index}", data)
        with self._lock:
            if not (self.loaded or self.from_cache):
                return  # nothing loaded yet: the next refresh reads it like any other
            self._add(index, parsed)

    def _seen_key(self) -> str:
        return "packs-" + hash_bytes(self.store.url.encode())[:32]

    def ensure_cached(self) -> None:
        """Load the indexes this store had at the read cache's last refresh, from the cache,
        sending no request. For reads only (each object read is verified; a pack gone since
        makes the read refresh): a digest not found this way is looked up after
        :meth:`ensure`, which lists the store."""
        cache = self.store.cache
        if self.loaded or self.from_cache or cache is None:
            return
        with self._refreshing:  # threads arriving together wait for the one loading
            if not (self.loaded or self.from_cache):
                self._load_cached(cache)
                self.from_cache = True

    def _load_cached(self, cache: ReadCache) -> None:
        _failpoints.reached("packs.load_cached")
        raw = cache.get_aux(self._seen_key())
        try:
            seen = json.loads(raw) if raw is not None else {}
            names, void = [str(n) for n in seen["indexes"]], {str(n) for n in seen["void"]}
        except (ValueError, KeyError, TypeError):
            return
        loaded: list[tuple[str, _Index]] = []
        for index in names:
            data = cache.get_aux(f"idx-{index}")
            if data is None:
                continue
            try:
                loaded.append((index, _parse_index(data, index)))
            except HeadwaterError:
                cache.drop_aux(f"idx-{index}")
        with self._lock:
            if self.loaded:
                return
            for index, parsed in loaded:
                self._add(index, parsed)
            self.void = void

    def _read_index(self, index: str) -> _Index | None:
        data = self.store.read_aux(index_relpath(index), cache_key=f"idx-{index}")
        if data is None:
            return None
        try:
            return _parse_index(data, index)
        except HeadwaterError:
            self.store.drop_cached_aux(f"idx-{index}")
            return None

    def ensure(self) -> None:
        if not self.loaded:
            with self._refreshing:  # threads arriving together: one listing, one decoding
                if not self.loaded:
                    self._refresh()

    def find(self, digest: str) -> PackedAt | None:
        if digest in self.void:
            return None
        return self.locate(digest)

    def present(self) -> set[str]:
        return self.table().keys() - self.void

    def absent_among(self, digests: set[str]) -> set[str]:
        """Those of ``digests`` that no loaded index holds (or whose packed copy is void)."""
        if self._table is None:
            if len(digests) <= BISECT_LOOKUPS:
                return {d for d in digests if self.find(d) is None}
            # many: one pass over every index's records instead of building the table (a
            # string and an int per packed object: ~190 MB per million, issue 18)
            absent = set(digests)
            step = 2 * _RECORD.size
            for parsed in self.loaded_indexes():
                text = parsed.body.hex()
                for i in range(0, len(text), step):
                    absent.discard(text[i:i + DIGEST_HEX_LEN])
            return absent | (digests & self.void)
        table, void = self.table(), self.void
        return {d for d in digests if d not in table or d in void}


#: One ranged read: ``(pack, start, end, [(digest, where), ...])``.
RangedRead = tuple[str, int, int, list[tuple[str, PackedAt]]]
#: A decoded index: ``(pack, pack size, [(digest, offset, length), ...])``.
IndexEntries = tuple[str, int, list[tuple[str, int, int]]]


def coalesce(wanted: list[tuple[str, PackedAt]]) -> list[RangedRead]:
    """Group ``(digest, where)`` into ranged reads ``(pack, start, end, members)``: neighbours in
    one pack closer than :data:`COALESCE_GAP` share one read of at most :data:`COALESCE_MAX`."""
    by_pack: dict[str, list[tuple[str, PackedAt]]] = {}
    for item in wanted:
        by_pack.setdefault(item[1].pack, []).append(item)
    out: list[RangedRead] = []
    for pack, items in by_pack.items():
        items.sort(key=lambda x: x[1].offset)
        start = end = -1
        members: list[tuple[str, PackedAt]] = []
        for digest, at in items:
            stop = at.offset + at.length
            if members and at.offset - end <= COALESCE_GAP and stop - start <= COALESCE_MAX:
                end = max(end, stop)
                members.append((digest, at))
                continue
            if members:
                out.append((pack, start, end, members))
            start, end, members = at.offset, stop, [(digest, at)]
        if members:
            out.append((pack, start, end, members))
    return out


class PackWriter:
    """Appends small objects to a pack in memory; a full pack is uploaded in the background.

    ``add`` is called from one thread (the snapshot's), in manifest order, so neighbours in a
    version are neighbours in a pack and a checkout reads them with few ranged GETs. ``close``
    uploads the last pack and waits for every upload; only then are the objects in the store.
    Any upload failure is raised by ``close`` (or the next ``add``); packs uploaded before it
    without their index are orphans that ``gc`` reclaims.
    """

    def __init__(self, store: ObjectStore, *, target: int = PACK_TARGET,
                 part_size: int = PACK_PART,
                 on_published: Callable[[list[tuple[str, int, int]]], None] | None = None) -> None:
        self.store = store
        self.target = target
        self.part_size = part_size
        self._parts: list[bytes] = []
        self._entries: list[tuple[str, int, int]] = []
        self._size = 0
        #: the raw digests added (64 B each, not a 113 B string: a million small files)
        self._claimed: set[bytes] = set()
        self._pool = ThreadPoolExecutor(max_workers=UPLOADS_IN_FLIGHT)
        self._pending: list[Future[None]] = []
        self._on_published = on_published
        self.packs_written = 0

    def add(self, digest: str, data: bytes | memoryview) -> bool:
        """Append ``data`` (already hashed to ``digest``); False if this writer has it already."""
        raw = bytes.fromhex(digest)
        if raw in self._claimed:
            return False
        self._claimed.add(raw)
        self._entries.append((digest, self._size, len(data)))
        self._parts.append(bytes(data))
        self._size += len(data)
        if self._size >= self.target:
            self._flush()
        return True

    def _flush(self) -> None:
        if not self._entries:
            return
        parts, entries = self._parts, self._entries
        self._parts, self._entries, self._size = [], [], 0
        # bounded: wait for the oldest upload before queueing another
        while len(self._pending) >= UPLOADS_IN_FLIGHT:
            self._pending.pop(0).result()
        self._pending.append(self._pool.submit(self._upload, parts, entries))

    def _upload(self, parts: list[bytes], entries: list[tuple[str, int, int]]) -> None:
        blob = b"".join(parts)
        parts.clear()
        pack = hash_bytes(blob)
        index = encode_index(pack, len(blob), entries)
        # 1. the pack, in parts: visible once complete, and then still unreferenced
        self.store.write_aux(pack_relpath(pack), blob, part_size=self.part_size)
        del blob
        _failpoints.reached("pack.before_index")
        name = hash_bytes(index)
        self.store.write_aux(index_relpath(name), index)  # 2. visible now
        self.store.packs.published(name, index)
        self.packs_written += 1
        if self._on_published is not None:
            self._on_published(entries)

    def close(self) -> None:
        try:
            self._flush()
            for f in self._pending:
                f.result()
        finally:
            self._pending = []
            self._pool.shutdown(wait=True)
        if self.packs_written:
            self.store.packs.remember()

    def abort(self) -> None:
        for f in self._pending:
            f.cancel()
        with contextlib.suppress(Exception):
            for f in self._pending:
                if not f.cancelled():
                    f.result()
        self._pool.shutdown(wait=True)

    def __enter__(self) -> PackWriter:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def iter_pack_files(names: Iterable[str]) -> Iterator[tuple[str, str]]:
    """``(kind, digest)`` of the pack files among directory entry ``names``."""
    for n in names:
        if n.endswith(".pack") and len(n) == DIGEST_HEX_LEN + 5:
            yield "pack", n[:-5]
        elif n.endswith(".idx") and len(n) == DIGEST_HEX_LEN + 4:
            yield "idx", n[:-4]


def loaded_index_entries(store: ObjectStore, index: str) -> IndexEntries:
    """Read and decode one index (for gc and verify), raising on damage."""
    data = store.read_aux(index_relpath(index), cache_key=f"idx-{index}")
    if data is None:
        raise HeadwaterError(f"pack index {index} is missing")
    return decode_index(data, index)


__all__ = ["PACK_MAX_OBJECT", "PACK_TARGET", "PackSet", "PackWriter", "PackedAt", "coalesce",
           "decode_index", "encode_index", "index_relpath", "pack_relpath"]

"""A snapshot's memory per file (issue 18: a million files logged in <= 500 MB).

The manifest is built by :class:`ManifestWriter` (spilled to a temporary file past
``SPILL_BYTES``, never held twice) and each directory is kept compact once its lines are
written; neither may change a version's identity: the bytes and digest of the manifest.
"""

from __future__ import annotations

import os
import random
import shutil
import tracemalloc
from pathlib import Path

import pytest

from headwater.store import manifest as manifest_mod
from headwater.store import packs as packs_mod
from headwater.store import snapshot as snapshot_mod
from headwater.store.hashing import hash_file
from headwater.store.manifest import Manifest, ManifestEntry, ManifestWriter
from headwater.store.objects import ObjectStore
from headwater.store.snapshot import scan_local, snapshot_local
from headwater.store.statcache import SqliteStatCache

NAMES = ["a", "a-x/b", "a.d/c", "b/\u00e9t\u00e9.csv", 'q"uote', "sp ace/x", "z/_SUCCESS",
         "b/zz/deep/er", "b0", "\u65e5\u672c/\u8a9e"]


def _tree(root: Path, dirs: int = 6, per_dir: int = 25, size: int = 40) -> None:
    rng = random.Random(18)
    for i, name in enumerate(NAMES):
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"{i}\n")
    for d in range(dirs):
        folder = root / f"part-{d:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        for f in range(per_dir):
            (folder / f"file-{f:04d}.bin").write_bytes(rng.randbytes(size))
    (root / "part-00" / "dup.bin").write_bytes((root / "part-01" / "file-0000.bin").read_bytes())


def _expected(root: Path) -> Manifest:
    return Manifest([ManifestEntry(f.rel, hash_file(f.path)[0], f.size) for f in scan_local(root)])


def _same(got: Manifest, expected: Manifest) -> None:
    assert got.digest == expected.digest
    assert got.to_bytes() == expected.to_bytes()
    assert b"".join(got.iter_chunks()) == expected.to_bytes()
    assert got.nbytes == expected.nbytes == len(expected.to_bytes())
    assert len(got) == len(expected) and got.total_size == expected.total_size
    assert list(got) == list(expected)


@pytest.mark.parametrize("spill", [None, 0, 700])
def test_manifest_writer_gives_the_same_bytes_in_memory_or_spilled(spill: int | None,
                                                                   monkeypatch: pytest.MonkeyPatch
                                                                   ) -> None:
    rng = random.Random(1)
    quote = '"'
    entries = sorted((ManifestEntry(f"d{i // 7}/f{i:05d}{quote if i % 11 == 0 else ''}",
                                    f"{rng.getrandbits(256):064x}", rng.randint(0, 10**9))
                      for i in range(300)), key=lambda e: e.path)
    expected = Manifest(entries)
    monkeypatch.setattr(manifest_mod, "_PIECE", 97)  # read back in pieces that cut lines
    writer = ManifestWriter(spill=spill)
    for k in range(0, len(entries), 13):
        writer.write("".join(e.to_line() + "\n" for e in entries[k : k + 13]).encode())
    got = writer.finish(count=len(entries), total_size=expected.total_size)
    _same(got, expected)
    assert (got._file is not None) == (spill is not None)


@pytest.mark.parametrize(("spill", "pack"), [(None, False), (0, False), (900, False),
                                            (None, True), (0, True)])
def test_snapshot_identity_with_a_spilled_manifest(tmp_path: Path, spill: int | None, pack: bool,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Cold, unchanged and modified logs give byte for byte the manifest Manifest(entries)
    writes, whether the snapshot's manifest stayed in memory or went to a temporary file."""
    if spill is not None:
        monkeypatch.setattr(manifest_mod, "SPILL_BYTES", spill)
    root = tmp_path / "tree"
    _tree(root)
    store = ObjectStore(str(tmp_path / "store"), pack=pack)
    cache = SqliteStatCache(tmp_path / "statcache.db")
    past = 1_600_000_000
    for p in root.rglob("*"):  # old enough for the stat cache to vouch for them
        os.utime(p, (past, past))
    cold = snapshot_local(store, root, stat_cache=cache)
    _same(cold.manifest, _expected(root))
    again = snapshot_local(store, root, stat_cache=cache,
                           committed=lambda ds: ds & {cold.manifest.digest})
    _same(again.manifest, cold.manifest)
    assert again.known and again.new_objects == 0
    (root / "part-03" / "file-0007.bin").write_bytes(b"changed")
    (root / "part-04" / "file-0001.bin").unlink()
    changed = snapshot_local(store, root, stat_cache=cache,
                             committed=lambda ds: ds & {cold.manifest.digest})
    _same(changed.manifest, _expected(root))
    assert changed.new_objects == 1


def test_lost_objects_are_written_again_from_compact_directories(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:
    """What runs after the walk (the check that reused objects are there, the repair) reads
    the directories back from their compact form."""
    monkeypatch.setattr(manifest_mod, "SPILL_BYTES", 0)
    root = tmp_path / "tree"
    _tree(root)
    past = 1_600_000_000
    for p in root.rglob("*"):
        os.utime(p, (past, past))
    store = ObjectStore(str(tmp_path / "store"), pack=False)  # loose objects, deleted below
    cache = SqliteStatCache(tmp_path / "statcache.db")
    cold = snapshot_local(store, root, stat_cache=cache)
    lost = [e.digest for e in cold.manifest if e.path.startswith(("part-02/", "part-05/"))][:7]
    for digest in lost:
        assert digest is not None
        os.unlink(store.object_path(digest))
    again = snapshot_local(store, root, stat_cache=cache,
                           committed=lambda ds: ds & {cold.manifest.digest})
    _same(again.manifest, cold.manifest)
    assert again.repaired == len(lost)
    assert not store.missing({e.digest for e in cold.manifest if e.digest is not None})


def _peaks(tmp_path: Path, dirs: int, per_dir: int = 100) -> tuple[int, int]:
    """Peak traced bytes of a cold log of ``dirs`` x ``per_dir`` files of 16 B into a local
    store of loose objects, and of its unchanged re-log."""
    root = tmp_path / f"tree-{dirs}"
    rng = random.Random(dirs)
    for d in range(dirs):
        folder = root / f"part-{d:02d}" / f"group-{d:02d}"
        folder.mkdir(parents=True)
        for f in range(per_dir):
            (folder / f"file-{d * per_dir + f:07d}.bin").write_bytes(rng.randbytes(16))
    past = 1_600_000_000
    for p in root.rglob("*.bin"):
        os.utime(p, (past, past))
    store = ObjectStore(str(tmp_path / f"store-{dirs}"), pack=False)
    cache = SqliteStatCache(tmp_path / f"statcache-{dirs}.db")
    peaks = []
    committed: set[str] = set()
    for _ in range(2):
        # no existence certificate (whether the cold log could leave one depends on the
        # filesystem clock's tick): the re-log lists what it checks, as a first one may
        shutil.rmtree(tmp_path / f"store-{dirs}" / "checks", ignore_errors=True)
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            snap = snapshot_local(store, root, stat_cache=cache,
                                  committed=lambda ds: ds & committed)
            peaks.append(tracemalloc.get_traced_memory()[1] - base)
        finally:
            tracemalloc.stop()
        committed.add(snap.manifest.digest)
    assert snap.known
    return peaks[0], peaks[1]


def test_a_snapshot_holds_no_per_file_objects(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Python memory per file at the peak of a cold log into a local store and of an unchanged
    re-log, with the manifest spilled (as it is past SPILL_BYTES): the compact directories
    (~130 B a file) and, at the check after the walk, the digests the store's existence check
    groups by prefix (~130 B); ~260 B in all, either way.

    Measured as the difference between two tree sizes, so that what does not grow with the
    files (imports, free lists, buffers, the files waiting for their digests) cancels out.
    Before issue 18's fixes a file cost ~900 B (cold) and ~600 B (unchanged): its stat tuple,
    name, digest string and manifest line were all held until the end.
    """
    monkeypatch.setattr(manifest_mod, "SPILL_BYTES", 0)
    monkeypatch.setattr(manifest_mod, "_PIECE", 4096)
    monkeypatch.setattr(snapshot_mod, "BATCH", 8)  # files waiting to be written: 4 x BATCH
    small = _peaks(tmp_path, 10)
    big = _peaks(tmp_path, 30)
    cold, unchanged = ((b - s) / 2000 for s, b in zip(small, big, strict=True))
    assert cold < 500, f"cold log: {cold:.0f} B of Python objects per file at its peak"
    assert unchanged < 400, f"unchanged re-log: {unchanged:.0f} B per file at its peak"


def test_many_digests_are_looked_for_in_packs_without_a_table(tmp_path: Path) -> None:
    """An existence check of many digests against the pack indexes passes over their records
    once instead of building the table of every packed digest (a string and an int per object:
    ~190 MB per million), and answers as the table does."""
    root = tmp_path / "tree"
    _tree(root, dirs=4, per_dir=100)
    snap = snapshot_local(ObjectStore(str(tmp_path / "store"), pack=True), root)
    packed = {e.digest for e in snap.manifest if e.digest is not None}
    assert len(packed) > packs_mod.BISECT_LOOKUPS
    rng = random.Random(3)
    strangers = {f"{rng.getrandbits(256):064x}" for _ in range(50)}
    store = ObjectStore(str(tmp_path / "store"), pack=True)
    store.packs.refresh()
    assert store.packs.absent_among(packed | strangers) == strangers
    assert store.packs._table is None
    void = sorted(packed)[0]
    store.packs.void = {void}
    assert store.packs.absent_among(packed | strangers) == strangers | {void}
    store.packs.table()  # with the table built: the same answers
    assert store.packs.absent_among(packed | strangers) == strangers | {void}

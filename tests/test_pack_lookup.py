"""Pack indexes kept as their bytes (looked up by bisection, then through one table) and the
existence certificate of a re-log into a packing store: a lost pack or a voided packed copy is
still noticed and repaired (issue 18)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from headwater import Catalog
from headwater.store.hashing import hash_bytes
from headwater.store.objects import ObjectStore
from headwater.store.packs import BISECT_LOOKUPS, PackedAt, decode_index, index_relpath


def _packed_store(root: Path, n: int) -> tuple[ObjectStore, dict[str, PackedAt]]:
    """A store with ``n`` small objects in several packs; where each one is, from the indexes
    decoded entry by entry."""
    store = ObjectStore(str(root), pack=True)
    with store.pack_writer() as writer:
        writer.target = 4096  # many packs
        for i in range(n):
            data = f"object {i}\n".encode() * 20
            writer.add(hash_bytes(data), data)
    where: dict[str, PackedAt] = {}
    for name in os.listdir(root / "packs"):
        if name.endswith(".idx"):
            data = (root / "packs" / name).read_bytes()
            pack, _size, entries = decode_index(data, name[:-4])
            where.update((d, PackedAt(pack, off, n)) for d, off, n in entries)
    return store, where


def test_bisection_and_table_lookups_agree_with_the_decoded_indexes(tmp_path: Path) -> None:
    _, where = _packed_store(tmp_path / "store", 3 * BISECT_LOOKUPS)
    fresh = ObjectStore(str(tmp_path / "store"))
    fresh.packs.refresh()
    assert len(fresh.packs.indexes) > 5
    strangers = {hash_bytes(f"not stored {i}".encode()) for i in range(20)}
    digests = sorted(where)
    # the first lookups bisect the indexes' bytes; no table of every digest yet
    assert [fresh.packs.find(d) for d in digests[:100]] == [where[d] for d in digests[:100]]
    assert all(fresh.packs.find(d) is None for d in strangers)
    assert fresh.packs.find("zz" * 32) is None
    assert fresh.packs._table is None
    assert fresh.packs.absent_among(set(digests[:50]) | strangers) == strangers
    assert fresh.packs.where and digests[0] in fresh.packs.where
    # many lookups: one table
    assert [fresh.packs.find(d) for d in digests] == [where[d] for d in digests]
    assert fresh.packs._table is not None
    assert fresh.packs.absent_among(set(digests) | strangers) == strangers
    assert fresh.packs.present() == set(where)
    assert dict(fresh.packs.where) == where
    # a voided copy is absent, by either path
    fresh.packs.void.add(digests[7])
    assert fresh.packs.find(digests[7]) is None
    assert fresh.packs.absent_among({digests[7], digests[8]}) == {digests[7]}
    assert fresh.packs.absent_among(set(digests)) == {digests[7]}


def test_an_index_published_or_removed_is_seen_by_the_table(tmp_path: Path) -> None:
    store, where = _packed_store(tmp_path / "store", 2 * BISECT_LOOKUPS)
    store.packs.refresh()
    assert store.packs.present() == set(where)  # the table is built
    with store.pack_writer() as writer:
        writer.add(hash_bytes(b"one more"), b"one more")
    assert store.packs.find(hash_bytes(b"one more")) is not None  # published: in the table
    gone = next(i for i in store.packs.indexes if hash_bytes(b"one more") not in
                {d for d, *_ in decode_index((tmp_path / "store" / index_relpath(i))
                                             .read_bytes(), i)[2]})
    lost = {d for d, *_ in decode_index((tmp_path / "store" / index_relpath(gone)).read_bytes(),
                                        gone)[2]}
    os.unlink(tmp_path / "store" / index_relpath(gone))
    store.packs.refresh()
    assert store.packs.absent_among(set(where)) == lost
    assert store.missing(where) == lost


def _logged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Catalog, Path, Any]:
    """A packed version of 60 small files, logged, then re-logged unchanged once the prefix
    folders are old enough to be trusted: the re-log leaves an existence certificate."""
    monkeypatch.setenv("HEADWATER_PACK", "on")
    src = tmp_path / "src"
    src.mkdir()
    for i in range(60):
        (src / f"f{i:02d}.txt").write_bytes(f"file {i}\n".encode() * (i + 1))
        os.utime(src / f"f{i:02d}.txt", (time.time() - 60, time.time() - 60))  # not "recent":
        # the stat cache vouches for them at the re-logs, which hash nothing
    cat = Catalog.open(f"sqlite:///{tmp_path / 'c.db'}", store_url=str(tmp_path / "store"))
    v = cat.log(src, name="ds")
    store = Path(cat.store.root)
    assert [n for n in os.listdir(store / "packs") if n.endswith(".idx")]
    past = time.time() - 60
    for prefix in os.listdir(store / "objects"):  # as if logged a minute ago
        os.utime(store / "objects" / prefix, (past, past))
    assert cat.log(src, name="ds").digest == v.digest
    assert (store / "checks" / v.digest).exists()
    return cat, src, v


def test_a_relog_into_a_packed_store_notices_a_lost_pack(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cat, src, v = _logged(tmp_path, monkeypatch)
    store = Path(cat.store.root)
    for name in os.listdir(store / "packs"):  # the pack and its index are lost
        os.unlink(store / "packs" / name)
    wanted = {e.digest for e in cat.manifest_of(v) if e.digest}
    assert ObjectStore(cat.store.url).missing(wanted) == wanted
    again = cat.log(src, name="ds")
    assert again.digest == v.digest and not again.created
    assert ObjectStore(cat.store.url).missing(wanted) == set()
    assert cat.verify("ds@1").ok
    cat.close()


def test_a_relog_into_a_packed_store_notices_a_voided_packed_copy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cat, src, v = _logged(tmp_path, monkeypatch)
    wanted = sorted(e.digest for e in cat.manifest_of(v) if e.digest)
    other = ObjectStore(cat.store.url)  # another process found one packed copy corrupted
    other.quarantine(wanted[3])
    assert ObjectStore(cat.store.url).missing(wanted) == {wanted[3]}
    again = cat.log(src, name="ds")
    assert again.digest == v.digest
    assert ObjectStore(cat.store.url).missing(wanted) == set()  # written again
    assert cat.verify("ds@1").ok
    cat.close()


def test_a_certificate_needs_no_two_second_wait_and_a_deletion_right_after_is_seen(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The certificate is dated by the filesystem's clock (its temporary file's mtime), not by
    a two-second window: the first re-log after a log leaves one, and an object deleted right
    after it was written still moves its directory's mtime past it."""
    monkeypatch.setenv("HEADWATER_PACK", "off")
    src = tmp_path / "src"
    src.mkdir()
    for i in range(5):
        (src / f"f{i}.txt").write_bytes(f"file {i}\n".encode())
        os.utime(src / f"f{i}.txt", (time.time() - 60, time.time() - 60))
    cat = Catalog.open(f"sqlite:///{tmp_path / 'c.db'}", store_url=str(tmp_path / "store"))
    v = cat.log(src, name="ds")
    time.sleep(0.05)  # a few ticks of the filesystem's clock (not the old 2 s)
    assert not cat.log(src, name="ds").created
    checks = tmp_path / "store" / "checks"
    assert sorted(p.name for p in checks.iterdir()) == sorted([v.digest, "last"])  # no tmp
    digest = sorted(e.digest for e in cat.manifest_of(v) if e.digest)[2]
    os.unlink(tmp_path / "store" / "objects" / digest[:2] / digest[2:])
    assert not cat.log(src, name="ds").created
    assert ObjectStore(cat.store.url).missing({digest}) == set()
    assert cat.verify("ds@1").ok
    cat.close()


def _aged_files(src: Path, n: int, seed: str = "") -> None:
    src.mkdir(exist_ok=True)
    for i in range(n):
        (src / f"f{i:02d}.txt").write_bytes(f"file {i}{seed}\n".encode() * (i + 1))
        os.utime(src / f"f{i:02d}.txt", (time.time() - 60, time.time() - 60))


def _change(path: Path, text: bytes) -> None:
    path.write_bytes(text)
    os.utime(path, (time.time() - 30, time.time() - 30))


def test_a_new_version_lists_only_the_prefixes_that_changed_since_the_last_certificate(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADWATER_PACK", "off")
    src = tmp_path / "src"
    _aged_files(src, 40)
    cat = Catalog.open(f"sqlite:///{tmp_path / 'c.db'}", store_url=str(tmp_path / "store"))
    v = cat.log(src, name="ds")
    time.sleep(0.05)
    cat.log(src, name="ds")  # leaves a certificate of v (and checks/last names it)
    assert (tmp_path / "store" / "checks" / "last").read_text() == v.digest
    prefixes = {e.digest[:2] for e in cat.manifest_of(v) if e.digest}
    listed: list[str] = []
    real = ObjectStore._absent_by_prefix

    def counting(self: ObjectStore, by_prefix: dict[str, list[str]]) -> set[str]:
        listed.extend(by_prefix)
        return real(self, by_prefix)

    time.sleep(0.05)
    _change(src / "f05.txt", b"changed\n")
    monkeypatch.setattr(ObjectStore, "_absent_by_prefix", counting)
    v2 = cat.log(src, name="ds")
    monkeypatch.setattr(ObjectStore, "_absent_by_prefix", real)
    assert v2.created and len(prefixes) > 20
    # the prefixes of f05's new and old object (and of the manifest, if it shares one)
    assert 1 <= len(listed) <= 3, listed
    # a deletion in a prefix the change did not touch moves that prefix's mtime: still seen
    time.sleep(0.05)
    lost = next(e.digest for e in cat.manifest_of(v2) if e.digest and e.path != "f05.txt"
                and e.path != "f06.txt")
    os.unlink(tmp_path / "store" / "objects" / lost[:2] / lost[2:])
    _change(src / "f06.txt", b"changed too\n")
    v3 = cat.log(src, name="ds")
    assert v3.created
    assert ObjectStore(cat.store.url).missing({lost}) == set()
    assert cat.verify(v3.ref).ok and cat.verify(v2.ref).ok
    cat.close()


def test_a_new_version_in_a_packed_store_notices_an_index_lost_since_the_last_certificate(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cat, src, v = _logged(tmp_path, monkeypatch)
    store = Path(cat.store.root)
    assert (store / "checks" / "last").read_text() == v.digest
    for name in os.listdir(store / "packs"):  # the pack and its index are lost
        os.unlink(store / "packs" / name)
    _change(src / "f05.txt", b"changed\n")
    v2 = cat.log(src, name="ds")
    assert v2.created
    wanted = {e.digest for e in cat.manifest_of(v2) if e.digest}
    assert ObjectStore(cat.store.url).missing(wanted) == set()
    assert cat.verify(v2.ref).ok
    cat.close()

"""The stat cache: unchanged files are not hashed again, changed ones always are (issue 7)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from headwater import Catalog
from headwater.settings import Settings
from headwater.store import snapshot as snapshot_mod
from headwater.store.hashing import hash_bytes
from headwater.store.objects import ObjectStore
from headwater.store.snapshot import snapshot_local
from headwater.store.statcache import (
    RECENT_NS,
    NullStatCache,
    SqliteStatCache,
    open_stat_cache,
)

OLD = 1_600_000_000 * 10**9  # 2020: far outside the "recent" window


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Records every file the snapshot module reads and hashes (instrumentation only)."""
    calls: list[str] = []
    real_read = snapshot_mod.read_file
    real_open = snapshot_mod.hash_open_file

    def read_file(path: str, size_hint: int | None = None) -> bytes:
        calls.append(path)
        return real_read(path, size_hint)

    def hash_open_file(fd: int, size: int) -> str:
        calls.append(f"fd:{fd}")
        return real_open(fd, size)

    monkeypatch.setattr(snapshot_mod, "read_file", read_file)
    monkeypatch.setattr(snapshot_mod, "hash_open_file", hash_open_file)
    yield calls


def _age(root: Path, mtime_ns: int = OLD) -> None:
    for p in root.rglob("*"):
        if p.is_file():
            os.utime(p, ns=(mtime_ns, mtime_ns))


def _rows(db: Path) -> dict[str, tuple[int, int, int, str]]:
    """The files whose digest the cache vouches for (recent ones are kept as unknown)."""
    return {
        path: (size, mtime, inode, digest)
        for path, (size, mtime, inode, digest) in SqliteStatCache(db).files().items()
        if digest is not None
    }


@pytest.fixture
def store(tmp_path: Path) -> ObjectStore:
    # loose: the tests below delete single objects, as gc does to loose ones (packed objects
    # leave with their pack: tests/test_pack_lookup.py)
    return ObjectStore(str(tmp_path / "store"), pack=False)


@pytest.fixture
def cache(tmp_path: Path) -> SqliteStatCache:
    return SqliteStatCache(tmp_path / "home" / "statcache.db")


def test_unchanged_files_are_not_hashed_again(
    store: ObjectStore, cache: SqliteStatCache, data_dir: Path, hashed: list[str]
) -> None:
    _age(data_dir)
    first = snapshot_local(store, data_dir, stat_cache=cache)
    assert len(hashed) == 5
    hashed.clear()
    again = snapshot_local(store, data_dir, stat_cache=cache)
    assert hashed == []
    assert again.manifest.to_bytes() == first.manifest.to_bytes()
    assert again.new_objects == 0
    # one changed file is the only one read
    (data_dir / "sub" / "c.txt").write_text("gamma, changed\n")
    third = snapshot_local(store, data_dir, stat_cache=cache)
    assert hashed == [str(data_dir / "sub" / "c.txt")]
    assert third.manifest.by_path()["sub/c.txt"].digest == hash_bytes(b"gamma, changed\n")


def test_manifest_is_identical_with_and_without_the_cache(
    tmp_path: Path, cache: SqliteStatCache, data_dir: Path
) -> None:
    _age(data_dir)
    plain = snapshot_local(ObjectStore(str(tmp_path / "s1")), data_dir)
    cold = snapshot_local(ObjectStore(str(tmp_path / "s2")), data_dir, stat_cache=cache)
    warm = snapshot_local(ObjectStore(str(tmp_path / "s3")), data_dir, stat_cache=cache)
    assert plain.manifest.to_bytes() == cold.manifest.to_bytes() == warm.manifest.to_bytes()
    assert plain.manifest.digest == warm.manifest.digest
    # a warm cache into an empty store still uploads every object (they were checked for)
    assert warm.new_objects == plain.new_objects == 4


def test_same_tick_rewrite_is_detected_because_the_file_is_recent(
    store: ObjectStore, cache: SqliteStatCache, tmp_path: Path
) -> None:
    """Same path, size, inode and mtime: only the "recent" rule can tell; it must."""
    root = tmp_path / "tick"
    root.mkdir()
    f = root / "data.bin"
    f.write_bytes(b"A" * 100)
    st = f.stat()
    assert st.st_mtime_ns > time.time_ns() - RECENT_NS  # just written: recent
    first = snapshot_local(store, root, stat_cache=cache)
    assert _rows(Path(cache.path)) == {}  # recent files are never cached
    with open(f, "r+b") as out:  # rewrite in place: same inode, same size
        out.write(b"B" * 100)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))  # and the very same mtime
    assert (f.stat().st_ino, f.stat().st_size, f.stat().st_mtime_ns) == (
        st.st_ino,
        st.st_size,
        st.st_mtime_ns,
    )
    second = snapshot_local(store, root, stat_cache=cache)
    assert first.manifest.by_path()["data.bin"].digest == hash_bytes(b"A" * 100)
    assert second.manifest.by_path()["data.bin"].digest == hash_bytes(b"B" * 100)


@pytest.mark.parametrize("how", ["size", "inode", "mtime", "ctime"])
def test_old_file_with_a_changed_stat_is_hashed_again(
    store: ObjectStore, cache: SqliteStatCache, tmp_path: Path, hashed: list[str], how: str
) -> None:
    root = tmp_path / "old"
    root.mkdir()
    f = root / "data.bin"
    f.write_bytes(b"0123456789")
    _age(root)
    snapshot_local(store, root, stat_cache=cache)
    assert len(_rows(Path(cache.path))) == 1
    hashed.clear()
    if how == "size":
        f.write_bytes(b"0123456789+")
        _age(root)  # mtime back to exactly the cached value
    elif how == "inode":
        new = root / "new.tmp"
        new.write_bytes(b"9876543210")  # same size
        os.replace(new, f)  # atomic replace: a new inode
        _age(root)
    elif how == "mtime":
        with open(f, "r+b") as out:  # same inode, same size
            out.write(b"abcdefghij")
        _age(root, OLD + 1)  # an old mtime, one nanosecond off
    else:  # same inode, same size, the very same mtime put back: only the ctime moved
        before = f.stat()
        time.sleep(0.01)
        with open(f, "r+b") as out:
            out.write(b"abcdefghij")
        _age(root)
        now = f.stat()
        assert (now.st_ino, now.st_size, now.st_mtime_ns) == (
            before.st_ino, before.st_size, before.st_mtime_ns)
        assert now.st_ctime_ns != before.st_ctime_ns
    after = snapshot_local(store, root, stat_cache=cache)
    assert hashed == [str(f)]
    assert after.manifest.by_path()["data.bin"].digest == hash_bytes(f.read_bytes())


def test_deleted_files_drop_out_of_the_cache(
    store: ObjectStore, cache: SqliteStatCache, data_dir: Path
) -> None:
    _age(data_dir)
    snapshot_local(store, data_dir, stat_cache=cache)
    gone = str(data_dir / "sub" / "deeper" / "d.txt")
    assert gone in _rows(Path(cache.path))
    os.unlink(gone)
    again = snapshot_local(store, data_dir, stat_cache=cache)
    assert "sub/deeper/d.txt" not in again.manifest.by_path()
    rows = _rows(Path(cache.path))
    assert gone not in rows and len(rows) == 4
    # scanning a subdirectory leaves rows of the rest of the tree alone
    snapshot_local(store, data_dir / "sub", stat_cache=cache)
    assert len(_rows(Path(cache.path))) == 4


def test_objects_collected_since_are_uploaded_again(
    store: ObjectStore, cache: SqliteStatCache, data_dir: Path, hashed: list[str]
) -> None:
    _age(data_dir)
    first = snapshot_local(store, data_dir, stat_cache=cache)
    victim = first.manifest.by_path()["b.bin"].digest or ""
    store.delete(victim)
    hashed.clear()
    again = snapshot_local(store, data_dir, stat_cache=cache)
    assert again.new_objects == 1
    assert store.read_bytes(victim) == (data_dir / "b.bin").read_bytes()
    assert again.manifest.digest == first.manifest.digest


def test_a_stale_cache_entry_never_puts_wrong_bytes_under_a_digest(
    tmp_path: Path, cache: SqliteStatCache
) -> None:
    """Content changed behind an unchanged stat: the cache lies, but no object is corrupted."""
    root = tmp_path / "stale"
    root.mkdir()
    f = root / "x.txt"
    f.write_bytes(b"first!")
    _age(root)
    snapshot_local(ObjectStore(str(tmp_path / "s1")), root, stat_cache=cache)
    with open(f, "r+b") as out:
        out.write(b"second")  # same size, same inode
    _age(root)  # same mtime
    fresh = ObjectStore(str(tmp_path / "s2"))
    snap = snapshot_local(fresh, root, stat_cache=cache)
    digest = snap.manifest.by_path()["x.txt"].digest or ""
    assert digest == hash_bytes(b"second")  # what was read, not what the cache said
    assert fresh.read_bytes(digest) == b"second"


def test_a_broken_cache_file_never_fails_a_snapshot(
    store: ObjectStore, tmp_path: Path, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = tmp_path / "statcache.db"
    bad.write_bytes(b"this is not a SQLite database" * 100)
    snap = snapshot_local(store, data_dir, stat_cache=SqliteStatCache(bad))
    assert len(snap.manifest) == 5
    assert "stat cache" in caplog.text


def test_null_cache_and_settings(tmp_path: Path) -> None:
    assert isinstance(open_stat_cache(None), NullStatCache)
    env = {"HEADWATER_HOME": str(tmp_path / "home")}
    beside = Settings.resolve(catalog_url=f"sqlite:///{tmp_path / 'cat' / 'c.db'}", environ=env)
    assert beside.stat_cache_path == str(tmp_path / "cat" / "statcache.db")
    pg = Settings.resolve(catalog_url="postgresql://x@127.0.0.1/db", environ=env)
    assert pg.stat_cache_path == str(tmp_path / "home" / "statcache.db")
    off = Settings.resolve(environ={**env, "HEADWATER_STAT_CACHE": "off"})
    assert off.stat_cache_path is None
    there = Settings.resolve(environ={**env, "HEADWATER_STAT_CACHE": str(tmp_path / "x.db")})
    assert there.stat_cache_path == str(tmp_path / "x.db")


def test_catalog_log_uses_the_stat_cache(
    tmp_path: Path, data_dir: Path, hashed: list[str]
) -> None:
    _age(data_dir)
    with Catalog.open(f"sqlite:///{tmp_path / 'catalog.db'}", store_url=str(tmp_path / "st")) as c:
        assert c.settings.stat_cache_path == str(tmp_path / "statcache.db")
        v1 = c.log(data_dir, name="tree")
        assert len(hashed) == 5
        hashed.clear()
        v2 = c.log(data_dir, name="tree")
        assert hashed == [] and not v2.created and v2.digest == v1.digest


def test_unchanged_relog_of_a_committed_version_checks_and_profiles_nothing(
    tmp_path: Path, data_dir: Path, hashed: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The catalog says the manifest is committed: no existence check, no verify, no profile."""
    (data_dir / "t.csv").write_text("a,b\n1,x\n2,\n")
    _age(data_dir)
    with Catalog.open(f"sqlite:///{tmp_path / 'catalog.db'}", store_url=str(tmp_path / "st")) as c:
        v1 = c.log(data_dir, name="tree")
        asked: list[int] = []
        real_missing = ObjectStore.missing

        def missing(self: ObjectStore, digests: object) -> set[str]:
            found = real_missing(self, digests)  # type: ignore[arg-type]
            asked.append(len(set(digests)))  # type: ignore[call-overload]
            return found

        monkeypatch.setattr(ObjectStore, "missing", missing)
        hashed.clear()
        v2 = c.log(data_dir, name="tree")
        assert hashed == [] and not v2.created and v2.digest == v1.digest
        assert asked == [0]  # the commit's verify step had nothing left to confirm
        # a copy under another name is the same content: still no check, profile from the row
        v3 = c.log(data_dir, name="copy")
        assert v3.created and v3.digest == v1.digest and asked == [0, 0]
        assert v3.row_count == v1.row_count is None  # two formats (csv + bin): not a table


def test_rows_of_an_uncommitted_manifest_are_checked(
    store: ObjectStore, cache: SqliteStatCache, data_dir: Path
) -> None:
    """A stat-cache row vouches for objects only through a committed manifest."""
    _age(data_dir)
    first = snapshot_local(store, data_dir, stat_cache=cache, committed=lambda d: set())
    for e in first.manifest:
        store.delete(e.digest or "")
    again = snapshot_local(store, data_dir, stat_cache=cache, committed=lambda d: set())
    assert again.new_objects == 4 and not again.known
    # ...and not at all once the catalog says that manifest was committed
    asked: list[set[str]] = []

    def committed(digests: set[str]) -> set[str]:
        asked.append(set(digests))
        return digests & {again.manifest.digest}

    third = snapshot_local(store, data_dir, stat_cache=cache, committed=committed)
    assert third.known and third.new_objects == 0 and third.unconfirmed == frozenset()
    assert asked == [{again.manifest.digest}]  # one question for the whole tree


def test_a_partial_match_reuses_the_unchanged_files_of_a_directory(
    store: ObjectStore, cache: SqliteStatCache, tmp_path: Path, hashed: list[str]
) -> None:
    root = tmp_path / "flat"
    root.mkdir()
    for i in range(50):
        (root / f"f{i:02d}.txt").write_text(f"file {i}\n")
    _age(root)
    snapshot_local(store, root, stat_cache=cache)
    (root / "f07.txt").write_text("changed\n")
    (root / "f99.txt").write_text("new\n")
    (root / "f20.txt").unlink()
    _age(root, OLD + 10**9)
    hashed.clear()
    snap = snapshot_local(store, root, stat_cache=cache)
    # every file has a new mtime now, so all are hashed once; a second run reads none
    assert len(hashed) == 50
    hashed.clear()
    snap2 = snapshot_local(store, root, stat_cache=cache)
    assert hashed == [] and snap2.manifest.digest == snap.manifest.digest
    (root / "f08.txt").write_text("changed again\n")
    os.utime(root / "f08.txt", ns=(OLD + 5 * 10**9, OLD + 5 * 10**9))
    hashed.clear()
    snapshot_local(store, root, stat_cache=cache)
    assert [Path(p).name for p in hashed] == ["f08.txt"]


def test_rows_of_a_corrected_snapshot_vouch_for_nothing(
    store: ObjectStore, cache: SqliteStatCache, tmp_path: Path
) -> None:
    """A stale row whose object was gone got corrected; committing that manifest must not make
    the stale digest trusted later."""
    root = tmp_path / "stale"
    root.mkdir()
    f = root / "x.txt"
    f.write_bytes(b"first!")
    _age(root)
    nothing: set[str] = set()
    first = snapshot_local(store, root, stat_cache=cache, committed=lambda d: nothing)
    store.delete(first.manifest.by_path()["x.txt"].digest or "")
    with open(f, "r+b") as out:
        out.write(b"second")  # same size, same inode, same mtime below: the cache now lies
    _age(root)
    second = snapshot_local(store, root, stat_cache=cache, committed=lambda d: nothing)
    assert second.manifest.by_path()["x.txt"].digest == hash_bytes(b"second")
    committed = {second.manifest.digest}  # the corrected manifest gets committed
    third = snapshot_local(store, root, stat_cache=cache, committed=lambda d: d & committed)
    assert third.manifest.digest == second.manifest.digest
    assert store.read_bytes(hash_bytes(b"second")) == b"second"


def test_a_known_table_gets_its_profile_from_the_catalog_row(tmp_path: Path) -> None:
    """The same table under a second name: no re-profiling, and the same schema, row count,
    null counts and fingerprint as profiling it would give."""
    root = tmp_path / "table"
    root.mkdir()
    (root / "part-0.csv").write_text("id,name\n1,ann\n2,\n3,bob\n")
    (root / "part-1.csv").write_text("id,name\n4,cy\n")
    _age(root)
    with Catalog.open(f"sqlite:///{tmp_path / 'catalog.db'}", store_url=str(tmp_path / "st")) as c:
        first = c.log(root, name="users")
        again = c.log(root, name="users_copy")
        assert again.created and again.digest == first.digest
        assert (again.row_count, again.schema, again.table_fingerprint) == (
            first.row_count, first.schema, first.table_fingerprint) and first.row_count == 4
        assert again.stats["null_counts"] == first.stats["null_counts"] == {"id": 0, "name": 1}

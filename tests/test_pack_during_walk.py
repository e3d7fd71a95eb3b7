"""Packing during the walk (issue 18, ADR 0005): into a packing store, once more than
``PACK_AFTER`` small files need hashing, presence comes from one listing and each new small file
is appended to a pack from the walk's own buffer — read once, not twice — with every guarantee
of the gather-then-pack path kept (identity, one pack, dedup loose or packed, crash, gc)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from headwater import Catalog
from headwater._failpoints import EXIT_CODE
from headwater.errors import DatasetNotFound
from headwater.store import snapshot
from headwater.store.hashing import hash_bytes, read_file
from headwater.store.objects import ObjectStore
from headwater.store.packs import PACK_MAX_OBJECT

os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")

N = 200  # well above snapshot.PACK_AFTER


def _source(root: Path, n: int = N, *, seed: int = 0, big: bool = False) -> Path:
    for i in range(n):
        d = root / f"d{i % 5}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"x{i:03d}.txt").write_bytes(f"{i} seed {seed}\n".encode() * (1 + i % 40))
    (root / "dup.txt").write_bytes((root / "d1" / "x001.txt").read_bytes())
    if big:
        (root / "big.bin").write_bytes(os.urandom(PACK_MAX_OBJECT + 4096))
    return root


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _open(tmp_path: Path, store_url: str, options: dict[str, Any] | None = None, *,
          name: str = "catalog") -> Catalog:
    return Catalog.open(f"sqlite:///{tmp_path / f'{name}.db'}", store_url=store_url,
                        store_options=options or {})


def _kinds(store: ObjectStore) -> list[str]:
    return sorted(k for k, *_ in store.iter_pack_files())


@pytest.fixture
def packing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HEADWATER_PACK", "on")
    monkeypatch.setenv("HEADWATER_CACHE", str(tmp_path / "cache"))


@pytest.fixture(params=["file", "s3"])
def store_spec(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    if request.param == "file":
        return str(tmp_path / "store"), {}
    remote = request.getfixturevalue("s3_store")
    return remote.url, remote.storage_options


def test_each_small_file_is_read_once_and_packed_into_one_pack(
        store_spec: tuple[str, dict[str, Any]], packing: None, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    url, options = store_spec
    src = _source(tmp_path / "src", big=True)
    reads: list[str] = []
    real = read_file

    def counted(path: str, size: int) -> bytes:
        reads.append(path)
        data: bytes = real(path, size)
        return data

    monkeypatch.setattr(snapshot, "read_file", counted)
    cat = _open(tmp_path, url, options)
    try:
        v = cat.log(src, name="ds")
        files = [p for p in src.rglob("*") if p.is_file()]
        # every file is read whole once, by the walk (the gather-then-pack path read every new
        # small file twice); big.bin, too big to pack, is streamed loose after the walk
        assert sorted(reads) == sorted(str(p) for p in files)
        store = cat.store
        # one pack: the files hashed before the listing go into the walk's writer too
        assert _kinds(store) == ["idx", "pack"]
        loose = {o.digest for o in store.iter_objects()}
        entries = list(cat.manifest_of(v))
        assert not {e.digest for e in entries if e.size <= PACK_MAX_OBJECT} & loose
        big = hash_bytes((src / "big.bin").read_bytes())
        assert big in loose and v.digest in loose
        fresh = ObjectStore(url, options=options)
        assert fresh.missing({e.digest for e in entries if e.digest}) == set()
        assert len(fresh.packs.present()) == N  # dup.txt once
        assert _tree(cat.checkout(v, tmp_path / "out")) == _tree(src)
        assert cat.verify("ds@1").ok
    finally:
        cat.close()
    # identity does not depend on packing (nor on packing during the walk)
    monkeypatch.setenv("HEADWATER_PACK", "off")
    loose_cat = _open(tmp_path, str(tmp_path / "loose-store"), name="loose")
    assert loose_cat.log(src, name="ds").digest == v.digest
    loose_cat.close()


def test_dedup_against_packed_and_loose_objects_during_the_walk(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store with loose objects (packing off) and packed ones: a copy of the data at another
    path (hashed again, no stat cache row) with new files packs only the new files."""
    store_url = str(tmp_path / "store")
    monkeypatch.setenv("HEADWATER_PACK", "off")
    cat = _open(tmp_path, store_url)
    loose_src = _source(tmp_path / "a", seed=1)
    cat.log(loose_src, name="loose")
    cat.close()
    monkeypatch.setenv("HEADWATER_PACK", "on")
    cat = _open(tmp_path, store_url)
    packed_src = _source(tmp_path / "b", seed=2)
    cat.log(packed_src, name="packed")
    assert _kinds(cat.store) == ["idx", "pack"]
    before = {o.digest for o in cat.store.iter_objects()}
    both = tmp_path / "both"
    (both / "a").parent.mkdir(parents=True, exist_ok=True)
    import shutil

    shutil.copytree(loose_src, both / "a")
    shutil.copytree(packed_src, both / "b")
    for i in range(80):
        (both / f"new{i:02d}.txt").write_bytes(f"new {i}\n".encode())
    v = cat.log(both, name="both")
    after = {o.digest for o in cat.store.iter_objects()}
    assert after - before == {v.digest}  # nothing loose written again, only the manifest
    assert _kinds(cat.store) == ["idx", "idx", "pack", "pack"]
    cat.store.packs.refresh()
    assert len(cat.store.packs.present()) == N + 80  # the new pack holds the 80 new files only
    assert _tree(cat.checkout(v, tmp_path / "out")) == _tree(both)
    assert cat.verify(v.ref).ok
    cat.close()


CRASHER = textwrap.dedent("""
    import sys
    from headwater import Catalog
    url, store, data = sys.argv[1:4]
    Catalog.open(url, store_url=store).log(data, name="victim")
""")


def test_crash_between_a_walk_pack_and_its_index(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADWATER_PACK", "on")
    src = _source(tmp_path / "src")
    url, store_url = f"sqlite:///{tmp_path / 'c.db'}", str(tmp_path / "store")
    Catalog.open(url, store_url=store_url).close()
    env = {**os.environ, "HEADWATER_FAILPOINTS": "pack.before_index"}
    crashed = subprocess.run([sys.executable, "-c", CRASHER, url, store_url, str(src)],
                             env=env, capture_output=True, text=True, timeout=120)
    assert crashed.returncode == EXIT_CODE, crashed.stderr
    cat = Catalog.open(url, store_url=store_url)
    with pytest.raises(DatasetNotFound):
        cat.get("victim")
    assert _kinds(cat.store) == ["pack"]  # a pack, no index
    digests = {hash_bytes(p.read_bytes()) for p in src.rglob("*") if p.is_file()}
    assert cat.store.missing(digests) == digests  # nothing half-visible
    assert cat.gc(grace_seconds=0).packs_deleted == 1 and _kinds(cat.store) == []
    rerun = subprocess.run([sys.executable, "-c", CRASHER, url, store_url, str(src)],
                           capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert [v.number for v in cat.versions("victim")] == [1]
    assert cat.verify("victim").ok
    cat.close()


def test_gc_repack_during_an_open_run_that_deduplicated_during_the_walk(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A retry whose walk found a failed try's objects packed (so did not write them), with gc
    deleting that pack inside the open block: the commit notices (gc epoch) and writes them."""
    monkeypatch.setenv("HEADWATER_PACK", "on")
    cat = _open(tmp_path, str(tmp_path / "store"))
    src = _source(tmp_path / "src")
    with pytest.raises(RuntimeError), cat.run("fails") as run:
        run.log_output(src, name="never")
        raise RuntimeError("after staging")
    copy = tmp_path / "copy"  # no stat-cache row: every file is hashed again during the walk
    import shutil

    shutil.copytree(src, copy)
    with cat.run("step") as run:
        run.log_output(copy, name="out")
        assert _kinds(cat.store) == ["idx", "pack"]  # nothing new was packed: all found
        report = cat.gc(grace_seconds=0)
        assert report.packs_deleted == 1  # the race happened: the pack it relies on is gone
    assert cat.verify("out@1").ok
    assert _tree(cat.checkout(cat.get("out@1"), tmp_path / "out")) == _tree(src)
    cat.close()

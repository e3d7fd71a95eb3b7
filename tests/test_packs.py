"""Pack files for small objects (issue 18, ADR 0005) on file://, S3 (moto) and GCS (emulator):
identity unchanged, round trips, dedup loose or packed, mixed stores, verify, crash safety, gc."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from headwater import Catalog
from headwater._failpoints import EXIT_CODE
from headwater.errors import DatasetNotFound
from headwater.store.objects import ObjectStore
from headwater.store.packs import PACK_MAX_OBJECT, coalesce, decode_index, encode_index

os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")


def _source(root: Path, n: int = 40, *, big: bool = True, seed: int = 0) -> Path:
    (root / "sub").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        where = root / ("sub" if i % 3 == 0 else "") / f"f{i:03d}.txt"
        where.write_bytes(f"file {i} seed {seed}\n".encode() * (i + 1))
    (root / "dup.txt").write_bytes((root / "f001.txt").read_bytes())  # same bytes, two paths
    if big:
        (root / "big.bin").write_bytes(os.urandom(PACK_MAX_OBJECT + 4096))
    return root


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _open(tmp_path: Path, store_url: str, options: dict | None = None, *, name: str = "catalog"
          ) -> Catalog:
    return Catalog.open(f"sqlite:///{tmp_path / f'{name}.db'}", store_url=store_url,
                        store_options=options or {})


@pytest.fixture
def packing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HEADWATER_PACK", "on")
    monkeypatch.setenv("HEADWATER_CACHE", str(tmp_path / "cache"))


@pytest.fixture(params=["file", "s3", "gcs"])
def store_spec(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict]:
    if request.param == "file":
        return str(tmp_path / "store"), {}
    remote = request.getfixturevalue("s3_store" if request.param == "s3" else "gcs_store")
    return remote.url, remote.storage_options


def test_index_round_trip_and_coalescing() -> None:
    entries = [(f"{i:064x}", i * 10, 10) for i in (3, 1, 2)]
    data = encode_index("ab" * 32, 40, entries)
    from headwater.store.hashing import hash_bytes

    pack, size, got = decode_index(data, hash_bytes(data))
    assert (pack, size, got) == ("ab" * 32, 40, sorted(entries))
    from headwater.errors import HeadwaterError

    with pytest.raises(HeadwaterError, match="corrupted"):
        decode_index(data[:-1] + b"x", hash_bytes(data))
    from headwater.store.packs import COALESCE_GAP, PackedAt

    far = COALESCE_GAP * 3
    reads = coalesce([("a", PackedAt("p", 0, 10)), ("b", PackedAt("p", 10, 5)),
                      ("c", PackedAt("p", far, 1)), ("d", PackedAt("q", 0, 1))])
    assert sorted((r[0], r[1], r[2], len(r[3])) for r in reads) == [
        ("p", 0, 15, 2), ("p", far, far + 1, 1), ("q", 0, 1, 1)]


@pytest.mark.xdist_group("emulators")
def test_packed_round_trip(store_spec: tuple[str, dict], packing: None, tmp_path: Path) -> None:
    url, options = store_spec
    src = _source(tmp_path / "src")
    cat = _open(tmp_path, url, options)
    try:
        v = cat.log(src, name="ds")
        store = cat.store
        # identity does not depend on packing: the same data into a loose store, same digest
        os.environ["HEADWATER_PACK"] = "off"
        try:
            loose = _open(tmp_path, str(tmp_path / "loose-store"), name="loose")
            assert not loose.store.packing
            assert loose.log(src, name="ds").digest == v.digest
            loose.close()
        finally:
            os.environ["HEADWATER_PACK"] = "on"
        # small objects are in a pack, not loose; the big one and the manifest are loose
        loose_objects = {o.digest for o in store.iter_objects()}
        entries = list(cat.manifest_of(v))
        small = {e.digest for e in entries if e.size <= PACK_MAX_OBJECT}
        assert not small & loose_objects
        assert v.digest in loose_objects
        kinds = [k for k, *_ in store.iter_pack_files()]
        assert kinds.count("pack") == 1 and kinds.count("idx") == 1
        # a fresh store object (another process) finds them: dedup, reads, verify
        fresh = ObjectStore(url, options=options)
        assert fresh.missing({e.digest for e in entries if e.digest}) == set()
        out = cat.checkout(v, tmp_path / "out")
        assert _tree(out) == _tree(src)
        assert cat.verify("ds@1").ok
        again = cat.log(src, name="ds")
        assert again.number == 1  # unchanged: no new version
        (src / "f005.txt").write_bytes(b"changed\n")
        (src / "new.txt").write_bytes(b"new\n")
        v2 = cat.log(src, name="ds")
        kinds = [k for k, *_ in store.iter_pack_files()]
        assert kinds.count("pack") == 2  # only the two new objects, in a second pack
        assert _tree(cat.checkout(v2, tmp_path / "out2")) == _tree(src)
    finally:
        cat.close()


def test_mixed_store_loose_then_packed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store of loose objects keeps working when packing is turned on: old objects are
    found loose (not written again), new ones are packed, both versions read back."""
    src = _source(tmp_path / "src", big=False)
    monkeypatch.setenv("HEADWATER_PACK", "off")
    cat = _open(tmp_path, str(tmp_path / "store"))
    v1 = cat.log(src, name="ds")
    cat.close()
    before = {o.digest for o in cat.store.iter_objects()}
    monkeypatch.setenv("HEADWATER_PACK", "on")
    cat = _open(tmp_path, str(tmp_path / "store"))
    (src / "extra.txt").write_bytes(b"extra\n")
    v2 = cat.log(src, name="ds")
    assert cat.store.packing
    after = {o.digest for o in cat.store.iter_objects()}
    assert after - before == {v2.digest}  # only the new manifest is loose
    packed = cat.store.packs.present()
    assert len(packed) == 1  # extra.txt alone went into a pack
    assert _tree(cat.checkout(v1, tmp_path / "o1")) == {
        k: v for k, v in _tree(src).items() if k != "extra.txt"}
    assert _tree(cat.checkout(v2, tmp_path / "o2")) == _tree(src)
    assert cat.verify("ds@1").ok and cat.verify("ds@2").ok
    cat.close()


CRASHER = textwrap.dedent("""
    import sys
    from headwater import Catalog
    url, store, data = sys.argv[1:4]
    Catalog.open(url, store_url=store).log(data, name="victim")
""")


def test_crash_between_pack_and_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed after a pack was written and before its index: nothing is visible (no version,
    no object counts as present), the orphan pack is reclaimed by gc, a rerun commits v1."""
    monkeypatch.setenv("HEADWATER_PACK", "on")
    src = _source(tmp_path / "src", big=False)
    url, store_url = f"sqlite:///{tmp_path / 'c.db'}", str(tmp_path / "store")
    Catalog.open(url, store_url=store_url).close()
    env = {**os.environ, "HEADWATER_FAILPOINTS": "pack.before_index"}
    crashed = subprocess.run([sys.executable, "-c", CRASHER, url, store_url, str(src)],
                             env=env, capture_output=True, text=True, timeout=120)
    assert crashed.returncode == EXIT_CODE, crashed.stderr
    cat = Catalog.open(url, store_url=store_url)
    with pytest.raises(DatasetNotFound):
        cat.get("victim")
    files = list(cat.store.iter_pack_files())
    assert [k for k, *_ in files] == ["pack"]  # a pack, no index
    from headwater.store.hashing import hash_bytes

    digests = {hash_bytes(p.read_bytes()) for p in src.rglob("*") if p.is_file()}
    assert cat.store.missing(digests) == digests  # nothing half-visible
    report = cat.gc(grace_seconds=0)
    assert report.packs_deleted == 1 and list(cat.store.iter_pack_files()) == []
    rerun = subprocess.run([sys.executable, "-c", CRASHER, url, store_url, str(src)],
                           capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert [v.number for v in cat.versions("victim")] == [1]
    assert cat.verify("victim").ok
    cat.close()


def test_verify_finds_a_corrupted_packed_object_and_relog_repairs_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADWATER_PACK", "on")
    src = _source(tmp_path / "src", big=False)
    cat = _open(tmp_path, str(tmp_path / "store"))
    v = cat.log(src, name="ds")
    ((_, pack, *_),) = [f for f in cat.store.iter_pack_files() if f[0] == "pack"]
    path = Path(cat.store.root) / "packs" / f"{pack}.pack"
    blob = bytearray(path.read_bytes())
    blob[5] ^= 0xFF  # one flipped byte inside the first object
    path.write_bytes(bytes(blob))
    report = cat.verify("ds@1")
    assert not report.ok and len({p.digest for p in report.problems}) == 1  # dup.txt + f001
    assert all("corrupted" in p.problem for p in report.problems)
    again = cat.log(src, name="ds")
    assert again.digest == v.digest
    assert cat.verify("ds@1").ok  # the object was written again, loose
    assert _tree(cat.checkout(v, tmp_path / "out")) == _tree(src)
    cat.close()


def _failed_log(cat: Catalog, src: Path) -> None:
    with pytest.raises(RuntimeError), cat.run("fails") as run:
        run.log_output(src, name="never")
        raise RuntimeError("after staging")


def test_gc_deletes_dead_packs_and_repacks_mostly_dead_ones(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADWATER_PACK", "on")
    cat = _open(tmp_path, str(tmp_path / "store"))
    kept = cat.log(_source(tmp_path / "kept", 10, big=False, seed=1), name="kept")
    _failed_log(cat, _source(tmp_path / "dead", 10, big=False, seed=2))  # a pack nobody uses
    part = _source(tmp_path / "part", 30, big=False, seed=3)
    _failed_log(cat, part)  # a pack that will be 10 % live
    few = tmp_path / "few"
    few.mkdir()
    for name in ("f001.txt", "f002.txt", "f004.txt"):
        (few / name).write_bytes((part / name).read_bytes())
    v = cat.log(few, name="few")  # deduplicates against the failed run's pack
    assert len([k for k, *_ in cat.store.iter_pack_files() if k == "pack"]) == 3
    young = cat.gc()  # grace period: nothing touched
    assert young.packs_deleted == young.packs_repacked == 0
    report = cat.gc(grace_seconds=0)
    assert report.packs_deleted == 1 and report.packs_repacked == 1
    assert len([k for k, *_ in cat.store.iter_pack_files() if k == "pack"]) == 2
    assert report.deleted  # the dropped objects are listed
    assert cat.verify(kept.ref).ok and cat.verify(v.ref).ok
    assert _tree(cat.checkout(v, tmp_path / "out")) == _tree(few)
    fresh = ObjectStore(cat.store.url)
    assert _tree(cat.checkout(kept, tmp_path / "out2")) == _tree(tmp_path / "kept")
    assert len(fresh.missing({e.digest for e in cat.manifest_of(v) if e.digest})) == 0
    cat.close()


def test_gc_repack_during_an_open_run_keeps_what_it_commits(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A retry deduplicating against a failed try's packed objects, with gc repacking them
    away inside its open block: the commit notices (gc epoch) and writes them again."""
    monkeypatch.setenv("HEADWATER_PACK", "on")
    cat = _open(tmp_path, str(tmp_path / "store"))
    src = _source(tmp_path / "src", 12, big=False)
    _failed_log(cat, src)
    with cat.run("step") as run:
        run.log_output(src, name="out")
        report = cat.gc(grace_seconds=0)
        assert report.packs_deleted == 1  # the race happened: the pack it relies on is gone
    assert cat.verify("out@1").ok
    assert _tree(cat.checkout(cat.get("out@1"), tmp_path / "out")) == _tree(src)
    cat.close()


@pytest.fixture
def many_small(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "many"
    for i in range(300):
        d = root / f"d{i % 7}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"x{i}.txt").write_bytes(f"{i}\n".encode() * (1 + i % 50))
    yield root


def test_packed_checkout_reads_neighbours_with_few_ranged_reads(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, many_small: Path) -> None:
    """300 packed objects come back in a handful of coalesced ranged reads."""
    monkeypatch.setenv("HEADWATER_PACK", "on")
    cat = _open(tmp_path, str(tmp_path / "store"))
    v = cat.log(many_small, name="many")
    store = cat.store
    calls: list[tuple[str, int, int]] = []
    original = store.read_range

    def counting(pack: str, start: int, end: int) -> bytes:
        calls.append((pack, start, end))
        return original(pack, start, end)

    monkeypatch.setattr(store, "read_range", counting)
    out = cat.checkout(v, tmp_path / "out")
    assert _tree(out) == _tree(many_small)
    assert 1 <= len(calls) <= 4  # batches of 256 entries: one ranged read each
    cat.close()


# ------------------------------------------------------------------ multipart pack uploads
def _one_mib_files(root: Path, n: int) -> Path:
    """``n`` files of exactly 1 MiB (the largest packed size): one pack of ``n`` MiB."""
    root.mkdir(parents=True)
    for i in range(n):
        (root / f"m{i:02d}.bin").write_bytes(os.urandom(PACK_MAX_OBJECT))
    return root


def _emulator_requests(server, bucket: str) -> list[str]:  # type: ignore[no-untyped-def]
    text = Path(server.log_path).read_text(errors="replace")
    return [line for line in text.splitlines() if bucket in line]


@pytest.mark.xdist_group("emulators")
@pytest.mark.parametrize("backend", ["s3", "gcs"])
def test_a_pack_larger_than_a_part_is_uploaded_in_parts(
        backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        request: pytest.FixtureRequest) -> None:
    """A 20 MiB pack goes up in 8 MiB parts (S3: CreateMultipartUpload, three UploadPart,
    CompleteMultipartUpload, counted in moto's own request log; GCS: a resumable upload) and
    reads back byte-identical, both the pack itself and every file through a checkout."""
    from headwater.store.hashing import hash_bytes
    from headwater.store.packs import PACK_PART

    monkeypatch.setenv("HEADWATER_CACHE", "off")  # the checkout reads the pack, not a cache
    server = request.getfixturevalue(f"{backend}_server")
    store = request.getfixturevalue(f"{backend}_store")
    src = _one_mib_files(tmp_path / "src", 20)
    assert 20 * PACK_MAX_OBJECT > 2 * PACK_PART
    cat = _open(tmp_path, store.url, store.storage_options)
    before = len(_emulator_requests(server, store.bucket))
    v = cat.log(src, name="big-pack")
    sent = _emulator_requests(server, store.bucket)[before:]
    ((_, pack, size, _),) = [f for f in cat.store.iter_pack_files() if f[0] == "pack"]
    assert size == 20 * PACK_MAX_OBJECT
    pack_lines = [line for line in sent if f"{pack}.pack" in line]
    if backend == "s3":
        assert sum("?uploads" in line and '"POST ' in line for line in pack_lines) == 1
        parts = [line for line in pack_lines if "partNumber=" in line and '"PUT ' in line]
        assert len(parts) == 3, pack_lines  # 8 + 8 + 4 MiB
        assert sum("uploadId=" in line and '"POST ' in line for line in pack_lines) == 1
        info = cat.store.fs.info(f"{cat.store.root}/packs/{pack}.pack")
        assert str(info["ETag"]).strip('"').endswith("-3")  # a multipart object's ETag
    else:
        assert any("uploadType=resumable" in line for line in sent), sent
    blob = cat.store.fs.cat_file(f"{cat.store.root}/packs/{pack}.pack")
    assert hash_bytes(blob) == pack  # byte-identical: the pack's name is its digest
    out = cat.checkout(v, tmp_path / "out")
    assert _tree(out) == _tree(src)
    assert cat.verify("big-pack").ok
    cat.close()


def _pending_uploads(store) -> list[dict]:  # type: ignore[no-untyped-def]
    from tests.emulators import filesystem_for

    fs = filesystem_for(store)
    return list(fs.call_s3("list_multipart_uploads", Bucket=store.bucket).get("Uploads") or [])


@pytest.mark.xdist_group("emulators")
@pytest.mark.parametrize("backend", ["s3"])  # gcs: the emulator has no route to cancel a
# resumable upload; gcsfs retries its DELETE for ~35 s (nothing becomes visible either way)
def test_a_failed_part_aborts_the_multipart_upload(
        backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        request: pytest.FixtureRequest) -> None:
    """An upload that fails after its first part is aborted: no pack, no parts left on the
    server (S3), no object counted present, no version; a second log succeeds."""
    from headwater import _failpoints

    monkeypatch.setenv("HEADWATER_CACHE", "off")
    store = request.getfixturevalue(f"{backend}_store")
    src = _one_mib_files(tmp_path / "src", 20)
    cat = _open(tmp_path, store.url, store.storage_options)
    calls: list[int] = []

    def fail_after_first_part() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("network gone after part 1")

    monkeypatch.setitem(_failpoints.HOOKS, "upload.part_written", fail_after_first_part)
    with pytest.raises(ConnectionError):
        cat.log(src, name="ds")
    assert list(cat.store.iter_pack_files()) == []
    if backend == "s3":
        assert _pending_uploads(store) == []  # AbortMultipartUpload was sent
    with pytest.raises(DatasetNotFound):
        cat.get("ds")
    v = cat.log(src, name="ds")
    assert _tree(cat.checkout(v, tmp_path / "out")) == _tree(src)
    cat.close()


CRASH_S3 = textwrap.dedent("""
    import json, sys
    from headwater import Catalog
    url, store, options, data = sys.argv[1:5]
    Catalog.open(url, store_url=store, store_options=json.loads(options)).log(data, name="v")
""")


@pytest.mark.xdist_group("emulators")
def test_gc_aborts_the_multipart_upload_of_a_crashed_writer(
        s3_store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Killed between two parts: the upload is invisible (no pack, no version) but its parts
    are kept by S3 until aborted; gc aborts it once past the grace period."""
    import json

    src = _one_mib_files(tmp_path / "src", 20)
    url = f"sqlite:///{tmp_path / 'c.db'}"
    env = {**os.environ, "HEADWATER_FAILPOINTS": "upload.part_written",
           "HEADWATER_CACHE": "off"}
    crashed = subprocess.run(
        [sys.executable, "-c", CRASH_S3, url, s3_store.url, json.dumps(s3_store.storage_options),
         str(src)], env=env, capture_output=True, text=True, timeout=300)
    assert crashed.returncode == EXIT_CODE, crashed.stderr
    assert len(_pending_uploads(s3_store)) == 1
    cat = Catalog.open(url, store_url=s3_store.url, store_options=s3_store.storage_options)
    assert list(cat.store.iter_pack_files()) == []
    # moto reports every upload as initiated at 2010-11-10T20:48:33Z: one started after the
    # cutoff (a writer that may still be uploading) is left alone
    assert cat.store.abort_stale_uploads(cutoff=1262304000.0) == 0  # 2010-01-01
    assert len(_pending_uploads(s3_store)) == 1
    report = cat.gc(grace_seconds=0)
    assert report.staging_removed == 1
    assert _pending_uploads(s3_store) == []
    cat.close()


def test_a_local_store_packs_small_objects_by_default(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """HEADWATER_PACK unset (``auto``): a local store packs too since session 6 (one inode per
    object bounded a local cold log); ``off`` keeps new objects loose, with the same version."""
    monkeypatch.delenv("HEADWATER_PACK", raising=False)
    src = _source(tmp_path / "src", big=False)
    cat = _open(tmp_path, str(tmp_path / "store"))
    v = cat.log(src, name="ds")
    assert ObjectStore(str(tmp_path / "store")).packing
    assert [kind for kind, *_ in cat.store.iter_pack_files()].count("pack") == 1
    assert {o.digest for o in cat.store.iter_objects()} == {v.digest}  # only the manifest
    cat.close()
    monkeypatch.setenv("HEADWATER_PACK", "off")
    loose = _open(tmp_path, str(tmp_path / "loose"), name="loose")
    assert loose.log(src, name="ds").digest == v.digest
    assert list(loose.store.iter_pack_files()) == []
    loose.close()

"""The pieces that let snapshots scale (issue 7): sorted streaming walk, canonical lines without
json, streaming diffs, fast local publishes and checkouts, batched existence checks on S3."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import pytest

from headwater.diff import VersionDiff, diff_manifests
from headwater.errors import ObjectCorrupted, UnsafePath
from headwater.store import objects as objects_mod
from headwater.store.checkout import checkout, iter_manifest
from headwater.store.hashing import hash_bytes, hash_file
from headwater.store.manifest import Manifest, ManifestEntry, _dumps, iter_entries
from headwater.store.objects import ObjectStore, write_new_file
from headwater.store.snapshot import SMALL_MAX, scan_local, snapshot_local
from tests.damage import stored_digests

D = "c" * 64


def test_walk_yields_manifest_order_without_a_global_sort(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    names = ["a", "a-b/x", "a.txt", "a0", "b/a/z", "b/a-/y", "b/a.c", "B", "é/1", "z z/q", "_x"]
    for name in names:
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(name)
    (root / "dir").mkdir()
    (root / "dir" / "inner.txt").write_text("x")
    (root / "link").symlink_to(root / "dir")  # a link to a directory is not descended
    (root / "flink").symlink_to(root / "a.txt")  # a link to a file is followed
    rels = [f.rel for f in scan_local(root)]
    assert rels == sorted(rels)
    assert set(rels) == {*names, "dir/inner.txt", "flink"}


def test_canonical_lines_match_json_for_any_path() -> None:
    rng = random.Random(7)
    alphabet = 'abcXYZ019 ._-"é€日本😀/'
    for _ in range(2000):
        parts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 6))) for _ in "ab"]
        path = "/".join(p.strip("/") or "q" for p in parts).replace("//", "/")
        try:
            entry = ManifestEntry(path, D, rng.randint(0, 10**12))
        except UnsafePath:
            continue
        assert entry.to_line() == _dumps(entry.to_json())
        back = list(iter_entries([_dumps({"format": "headwater.manifest", "hash": "blake3",
                                          "version": 1}), entry.to_line()]))
        assert back == [entry]


def test_large_manifest_round_trip_and_streaming_diff(tmp_path: Path) -> None:
    store = ObjectStore(str(tmp_path / "store"))
    n = 20_000
    a = Manifest(ManifestEntry(f"d{i % 97}/f{i:06d}", hash_bytes(str(i).encode()), i)
                 for i in range(n))
    entries = list(a)
    entries[5] = ManifestEntry(entries[5].path, D, 1)  # changed
    del entries[7]  # removed
    entries.append(ManifestEntry("zz/new", D, 2))  # added
    b = Manifest(entries)
    for m in (a, b):
        store.put_bytes(m.to_bytes())
        assert b"".join(m.iter_chunks(1000)) == m.to_bytes()
    streamed = list(iter_manifest(store, a.digest))
    assert streamed == list(a) and Manifest(streamed).digest == a.digest
    out = VersionDiff("a", "b")
    diff_manifests(iter_manifest(store, a.digest), iter_manifest(store, b.digest), out)
    assert [e.path for e in out.added] == ["zz/new"]
    assert [e.path for e in out.removed] == [a.entries[7].path]
    assert [x.path for x, _ in out.changed] == [a.entries[5].path]
    assert out.unchanged == n - 2


def test_streamed_manifest_must_be_sorted(tmp_path: Path) -> None:
    store = ObjectStore(str(tmp_path / "store"))
    header = _dumps({"format": "headwater.manifest", "hash": "blake3", "version": 1})
    lines = [header, ManifestEntry("b", D, 1).to_line(), ManifestEntry("a", D, 1).to_line()]
    digest = store.put_bytes(("\n".join(lines) + "\n").encode())
    with pytest.raises(UnsafePath, match="not in path order"):
        list(iter_manifest(store, digest))


def test_write_new_file_is_atomic_and_idempotent(tmp_path: Path) -> None:
    assert write_new_file(str(tmp_path), "x", b"one") is True
    assert write_new_file(str(tmp_path), "x", b"two") is False
    assert (tmp_path / "x").read_bytes() == b"one"
    assert sorted(os.listdir(tmp_path)) == ["x"]  # no temporary left behind


def test_duplicate_content_is_published_once(tmp_path: Path) -> None:
    root = tmp_path / "dups"
    root.mkdir()
    big = os.urandom(SMALL_MAX + 1000)
    for i in range(6):
        (root / f"small{i}").write_bytes(b"same small content")
        (root / f"big{i}").write_bytes(big)
    store = ObjectStore(str(tmp_path / "store"))
    snap = snapshot_local(store, root)
    assert snap.new_objects == 2
    assert snap.new_bytes == len(big) + len(b"same small content")
    assert stored_digests(store) == {hash_bytes(big), hash_bytes(b"same small content")}


def test_large_files_round_trip_verified(tmp_path: Path) -> None:
    root = tmp_path / "large"
    root.mkdir()
    payload = os.urandom(SMALL_MAX * 5)  # above the threshold for multithreaded hashing too
    (root / "blob.bin").write_bytes(payload)
    os.utime(root / "blob.bin", ns=(10**18, 10**18))  # old: copied by the kernel
    (root / "fresh.bin").write_bytes(payload[::-1])  # recent: copied through userspace, hashed
    store = ObjectStore(str(tmp_path / "store"))
    snap = snapshot_local(store, root)
    assert snap.manifest.by_path()["blob.bin"].digest == hash_bytes(payload)
    assert hash_file(root / "blob.bin") == (hash_bytes(payload), len(payload))
    out = checkout(store, snap.manifest, tmp_path / "out", options={})
    assert (out / "blob.bin").read_bytes() == payload
    assert (out / "fresh.bin").read_bytes() == payload[::-1]
    # a checkout is a copy: editing it cannot touch the store
    stored = store.object_path(hash_bytes(payload))
    assert os.stat(out / "blob.bin").st_ino != os.stat(stored).st_ino
    with open(stored, "r+b") as f:
        f.seek(12345)
        f.write(b"\0corrupt\0")
    with pytest.raises(ObjectCorrupted, match=r"blob\.bin"):
        checkout(store, snap.manifest, tmp_path / "out2", options={})
    assert not (tmp_path / "out2" / "blob.bin").exists()


def test_checkout_of_many_small_files(tmp_path: Path) -> None:
    root = tmp_path / "many"
    for i in range(600):
        p = root / f"d{i % 7}" / f"f{i}.txt"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"file {i}\n")
    store = ObjectStore(str(tmp_path / "store"))
    snap = snapshot_local(store, root)
    out = checkout(store, snap.manifest, tmp_path / "out", options={})
    for f in scan_local(root):
        assert (out / f.rel).read_bytes() == Path(f.path).read_bytes()
    again = checkout(store, snap.manifest, out, options={})  # over an existing checkout
    assert sorted(os.listdir(again / "d0")) == sorted(os.listdir(root / "d0"))


@pytest.mark.emulator
def test_s3_existence_checks_are_batched_listings(
    s3_store: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two thousand objects on moto: listings only (16 streams, or one per prefix), no HEAD."""
    import fsspec

    store = ObjectStore(s3_store.url, options=s3_store.storage_options)
    fs = fsspec.filesystem("s3", skip_instance_cache=True, **s3_store.storage_options)
    blobs = [f"object {i}".encode() for i in range(2000)]
    digests = [hash_bytes(b) for b in blobs]
    fs.pipe({store.object_path(d): b for d, b in zip(digests, blobs, strict=True)})
    absent = [hash_bytes(f"absent {i}".encode()) for i in range(50)]
    calls: dict[str, list[str]] = {"prefix": [], "stream": []}
    real_prefix, real_stream = store._list_prefix_digests, store._list_stream
    monkeypatch.setattr(
        store, "_list_prefix_digests", lambda p: calls["prefix"].append(p) or real_prefix(p)
    )
    monkeypatch.setattr(
        store, "_list_stream", lambda p: calls["stream"].append(p) or real_stream(p)
    )
    for name in ("info", "exists", "_info", "_exists", "head_object"):
        if hasattr(store.fs, name):
            monkeypatch.setattr(store.fs, name, _forbidden(name))
    # many prefixes: one paginated listing per first hex digit
    assert store.missing(digests + absent) == set(absent)
    assert calls["prefix"] == [] and sorted(calls["stream"]) == list("0123456789abcdef")
    # few prefixes: one listing per 2-hex prefix touched
    few = [d for d in digests if d[:2] in {"00", "7f", "a3"}] + absent[:2]
    assert store.missing(few) == set(absent[:2])
    assert sorted(calls["prefix"]) == sorted({d[:2] for d in few})
    # every stored object was seen by exactly one stream
    assert sum(len(real_stream(c)) for c in "0123456789abcdef") == 2000


def _forbidden(name: str) -> Any:
    def call(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"{name} called: existence checks must list, not HEAD")

    return call


@pytest.mark.emulator
def test_snapshot_into_s3_uploads_only_what_is_missing(s3_store: Any, tmp_path: Path) -> None:
    root = tmp_path / "tree"
    for i in range(300):
        p = root / f"d{i % 5}" / f"f{i}.bin"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(f"{i}".encode() * (i + 1))
    (root / "big.bin").write_bytes(os.urandom(SMALL_MAX + 10))
    store = ObjectStore(s3_store.url, options=s3_store.storage_options)
    first = snapshot_local(store, root)
    assert first.new_objects == 301
    again = snapshot_local(store, root)
    assert again.new_objects == 0 and again.manifest.digest == first.manifest.digest
    (root / "d0" / "f0.bin").write_bytes(b"changed")
    third = snapshot_local(store, root)
    assert third.new_objects == 1
    out = checkout(store, third.manifest, tmp_path / "out", options=s3_store.storage_options)
    assert (out / "d0" / "f0.bin").read_bytes() == b"changed"
    assert (out / "big.bin").read_bytes() == (root / "big.bin").read_bytes()


def test_missing_checks_digests_in_one_pass(tmp_path: Path) -> None:
    store = ObjectStore(str(tmp_path / "store"))
    good = [hash_bytes(str(i).encode()) for i in range(100)]
    assert store.missing(good) == set(good)
    for bad in ("A" * 64, "a" * 63, "g" * 64, "a" * 65):
        with pytest.raises(Exception, match="malformed"):
            store.missing([*good, bad])
    assert len(good) > objects_mod.STAT_LIMIT
    assert json.dumps(sorted(store.missing(good[:3]))) == json.dumps(sorted(good[:3]))


def test_snapshot_bytes_equal_a_manifest_built_from_entries(tmp_path: Path) -> None:
    """The walk writes manifest lines directly: byte for byte what Manifest(entries) writes,
    for names that need JSON escaping, Unicode, and files interleaved with folders."""
    root = tmp_path / "tricky"
    names = ["a", "a-x/b", "a.d/c", "b/\u00e9t\u00e9.csv", 'q"uote', "sp ace/x", "z/_SUCCESS",
             "b/zz/deep/er", "b0", "\u65e5\u672c/\u8a9e"]
    for i, name in enumerate(names):
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"{i}\n")
    store = ObjectStore(str(tmp_path / "store"))
    snap = snapshot_local(store, root)
    expected = Manifest(
        [ManifestEntry(f.rel, hash_file(f.path)[0], f.size) for f in scan_local(root)]
    )
    assert snap.manifest.to_bytes() == expected.to_bytes()
    assert snap.manifest.digest == expected.digest
    assert [e.path for e in snap.manifest] == sorted(names)
    assert len(snap.manifest) == len(names) and snap.manifest.total_size == expected.total_size
    assert snap.formats == frozenset({None, "csv"})


def test_unsafe_directory_names_are_rejected(tmp_path: Path) -> None:
    root = tmp_path / "bad"
    (root / "ok" / "back\\slash").mkdir(parents=True)
    (root / "ok" / "back\\slash" / "f").write_text("x")
    with pytest.raises(UnsafePath):
        snapshot_local(ObjectStore(str(tmp_path / "store")), root)


def test_importing_the_api_stays_light(tmp_path: Path) -> None:
    """Every CLI command pays for what ``import headwater`` imports: the table stack, Alembic
    and the OpenLineage client are loaded on first use, not at import or catalog open."""
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'c.db'}"
    env = {**os.environ, "HEADWATER_LINEAGE": "off"}
    create = f"from headwater import Catalog; Catalog.open({url!r}, store_url={str(tmp_path)!r})"
    subprocess.run([sys.executable, "-c", create], env=env, check=True)  # migrates: Alembic
    data = tmp_path / "files"
    data.mkdir()
    (data / "a.txt").write_text("a")
    code = (
        f"import sys; from headwater import Catalog; c = Catalog.open({url!r}, "
        f"store_url={str(tmp_path)!r}); c.datasets(); c.log({str(data)!r}, name='f'); c.close();"
        "print(sorted(m for m in ('pyarrow', 'pandas', 'numpy', 'alembic', 'openlineage',"
        " 'matplotlib', 'sklearn') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True)
    assert out.stdout.strip() == "[]"

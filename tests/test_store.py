"""One conformance suite for the object store, on local disk, S3 (moto) and GCS (emulator)."""

from __future__ import annotations

from pathlib import Path

import pytest

from headwater.errors import ObjectCorrupted, ObjectMissing
from headwater.store.hashing import hash_bytes
from headwater.store.objects import ObjectStore
from headwater.store.snapshot import snapshot_local, snapshot_reference, snapshot_remote


@pytest.fixture(params=["file", "s3", "gcs"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "file":
        return ObjectStore(str(tmp_path / "store"))
    remote = request.getfixturevalue(f"{request.param}_store")
    return ObjectStore(remote.url, options=remote.storage_options)


def _corrupt(store: ObjectStore, digest: str, data: bytes) -> None:
    with store.fs.open(store.object_path(digest), "wb") as f:
        f.write(data)


def test_put_and_read_back_verified(store: ObjectStore) -> None:
    digest = store.put_bytes(b"hello world")
    assert digest == hash_bytes(b"hello world")
    assert store.read_bytes(digest) == b"hello world"
    assert store.put_bytes(b"hello world") == digest  # idempotent
    assert store.missing([digest, hash_bytes(b"other")]) == {hash_bytes(b"other")}


def test_missing_object_is_named(store: ObjectStore) -> None:
    absent = hash_bytes(b"never stored")
    with pytest.raises(ObjectMissing, match=absent):
        store.read_bytes(absent, context="ds@1 a.txt")


def test_corruption_detected_on_read_and_verify(store: ObjectStore) -> None:
    digest = store.put_bytes(b"precious bytes")
    _corrupt(store, digest, b"precious bytez")
    with pytest.raises(ObjectCorrupted, match=digest):
        store.read_bytes(digest, context="ds@3 file.bin")
    with pytest.raises(ObjectCorrupted, match="ds@3"):
        store.verify(digest, context="ds@3")


def test_writer_publishes_only_on_success(store: ObjectStore) -> None:
    with pytest.raises(RuntimeError), store.writer() as w:
        w.write(b"half")
        raise RuntimeError("crash mid-write")
    assert store.missing([hash_bytes(b"half")])
    with store.writer() as w:
        w.write(b"whole ")
        w.write(b"object")
    assert store.read_bytes(w.digest) == b"whole object"


def test_snapshot_uploads_only_new_objects(store: ObjectStore, data_dir: Path) -> None:
    first = snapshot_local(store, data_dir)
    assert len(first.manifest) == 5
    assert first.new_objects == 4  # a.txt and same-as-a.txt share one object
    again = snapshot_local(store, data_dir)
    assert again.new_objects == 0
    assert again.manifest.digest == first.manifest.digest
    (data_dir / "new.txt").write_text("new\n")
    third = snapshot_local(store, data_dir)
    assert third.new_objects == 1


def test_iter_and_delete(store: ObjectStore) -> None:
    a, b = store.put_bytes(b"a"), store.put_bytes(b"b")
    listed = {o.digest for o in store.iter_objects()}
    assert {a, b} <= listed
    assert all(o.modified is not None for o in store.iter_objects())
    store.delete(a)
    assert store.missing([a, b]) == {a}


def test_remote_copy_and_reference_fingerprints(s3_store, tmp_path: Path) -> None:
    """Copy mode streams bytes in; reference mode records the ETag and copies nothing."""
    import fsspec

    fs = fsspec.filesystem("s3", skip_instance_cache=True, **s3_store.storage_options)
    src = s3_store.url.rstrip("/") + "-src"
    fs.pipe({f"{src}/x.csv": b"a,b\n1,2\n", f"{src}/dir/y.csv": b"a,b\n3,4\n"})
    local = ObjectStore(str(tmp_path / "store"))
    copied = snapshot_remote(local, src, options=s3_store.storage_options)
    assert [e.path for e in copied.manifest] == ["dir/y.csv", "x.csv"]
    assert local.read_bytes(copied.manifest.entries[1].digest or "") == b"a,b\n1,2\n"
    ref = snapshot_reference(src, options=s3_store.storage_options)
    entry = ref.manifest.by_path()["x.csv"]
    assert entry.digest is None and entry.source is not None
    assert entry.source.uri.startswith("s3://") and "etag" in entry.source.fingerprint
    assert '"' not in entry.source.fingerprint["etag"]

"""A checkout parses its stored manifest as it writes (issue 18: a million entries are never
held), with the checks a :class:`Manifest` makes when built: a manifest from someone else's
store that is out of order, repeats a path, makes a file a directory or escapes the destination
fails the checkout and publishes nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from headwater.errors import HeadwaterError, ObjectCorrupted, UnsafePath
from headwater.store import checkout as checkout_mod
from headwater.store.checkout import StoredManifest, checkout, stream_manifest
from headwater.store.manifest import Manifest, ManifestEntry, ReferenceSource
from headwater.store.objects import ObjectStore
from headwater.store.snapshot import snapshot_local

HEADER = b'{"format":"headwater.manifest","hash":"blake3","version":1}\n'


def _line(path: str, digest: str, size: int) -> bytes:
    return f'{{"digest":"{digest}","path":"{path}","size":{size}}}\n'.encode()


def _store_manifest(store: ObjectStore, paths: list[str]) -> str:
    """A manifest of ``paths`` (as given: any order) whose objects are in ``store``."""
    lines = [HEADER]
    for p in paths:
        data = f"content of {p}\n".encode()
        lines.append(_line(p, store.put_bytes(data), len(data)))
    return str(store.put_bytes(b"".join(lines)))


def test_the_stream_gives_the_entries_of_the_manifest(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for i in range(50):
        p = src / f"d{i % 4}" / f"f {i:02d} é.txt"  # a space and UTF-8: still plain lines
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"{i}\n")
    (src / 'quo"te.txt').write_text("escaped in JSON")  # not a plain line: parsed as JSON
    store = ObjectStore(str(tmp_path / "store"))
    snap = snapshot_local(store, src)
    stored = store.put_bytes(snap.manifest.to_bytes())
    streamed = stream_manifest(store, stored)
    assert len(streamed) == 51
    assert list(streamed) == list(snap.manifest.entries)
    first, second = streamed.halves()
    assert list(first()) + list(second()) == list(snap.manifest.entries)
    assert 0 < len(list(first())) < 51


def test_reference_entries_and_an_empty_manifest_stream(tmp_path: Path) -> None:
    ref = ManifestEntry("r/x.csv", None, 3,
                        ReferenceSource("s3://b/x.csv", {"etag": '"abc"'}))
    plain = ManifestEntry("a.txt", "a" * 64, 1)
    m = Manifest([ref, plain])
    assert list(StoredManifest(m.to_bytes(), "t")) == [plain, ref]
    empty = StoredManifest(Manifest([]).to_bytes(), "t")
    assert len(empty) == 0 and list(empty) == []


@pytest.mark.parametrize("paths, match", [
    (["b.txt", "a.txt"], "not in path order"),
    (["a.txt", "a.txt"], "not in path order"),
    (["a", "a-b/x", "a/b"], "both a file and a directory"),
    (["a", "a/b"], "both a file and a directory"),
    (["../escape.txt"], "escape"),
    (["ok/../../escape.txt"], "escape"),
])
def test_a_hostile_stored_manifest_fails_and_publishes_nothing(
        tmp_path: Path, paths: list[str], match: str) -> None:
    store = ObjectStore(str(tmp_path / "store"))
    digest = _store_manifest(store, paths)
    if paths != ["b.txt", "a.txt"]:  # (a built manifest sorts; canonical bytes are sorted)
        with pytest.raises(HeadwaterError):
            Manifest.from_bytes(store.read_bytes(digest))  # what the built manifest refuses
    out = tmp_path / "out"
    with pytest.raises(UnsafePath, match=match):
        checkout(store, stream_manifest(store, digest), out, options={})
    assert os.listdir(out) == []
    assert not (tmp_path / "escape.txt").exists()


def test_a_corrupted_stored_manifest_is_refused_before_anything_is_written(
        tmp_path: Path) -> None:
    store = ObjectStore(str(tmp_path / "store"), pack=False)
    digest = _store_manifest(store, ["a.txt", "b.txt"])
    with open(store.object_path(digest), "r+b") as f:
        f.seek(70)
        f.write(b"X")
    with pytest.raises(ObjectCorrupted):
        stream_manifest(store, digest)


def test_the_parent_checks_the_order_across_the_two_halves(tmp_path: Path) -> None:
    """The child writes the second half; the parent reads both halves and finds a path of the
    second half that sorts before the first (the fork needs a process without threads: this
    one may have some, so the halves are checked through ``_Child`` directly)."""
    store = ObjectStore(str(tmp_path / "store"))
    paths = [f"d/f{i:03d}" for i in range(40)]
    paths[30] = "a/early"  # in the second half, before every path of the first
    streamed = stream_manifest(store, _store_manifest(store, paths))
    first, second = streamed.halves()
    child = checkout_mod._Child(first, second, lambda e: True, streamed.label)
    assert [e.path for e in child.theirs()][:1] == [child.cut]
    with pytest.raises(UnsafePath, match="not in path order at 'a/early'"):
        list(child.mine())

"""The manifest format is a contract: canonical bytes, golden digest, safe paths."""

from pathlib import Path

import pytest

from headwater.errors import UnsafePath
from headwater.store.checkout import checkout
from headwater.store.manifest import Manifest, ManifestEntry, ReferenceSource
from headwater.store.objects import ObjectStore
from headwater.store.paths import check_relpath

D1 = "a" * 64
D2 = "b" * 64


def test_canonical_bytes_and_golden_digest() -> None:
    m = Manifest([ManifestEntry("z/file.csv", D2, 20), ManifestEntry("a.txt", D1, 10)])
    assert m.to_bytes() == (
        b'{"format":"headwater.manifest","hash":"blake3","version":1}\n'
        b'{"digest":"' + D1.encode() + b'","path":"a.txt","size":10}\n'
        b'{"digest":"' + D2.encode() + b'","path":"z/file.csv","size":20}\n'
    )
    # Golden digest: changing the format changes every version's identity. Do not update this
    # value without a new manifest format version and a migration story.
    assert m.digest == "3f3740d62d549d4c00d027f5d858b94626df72a32601abb49abf1a365933585f"
    assert m.digest == Manifest(reversed(list(m))).digest
    assert Manifest.from_bytes(m.to_bytes()).to_bytes() == m.to_bytes()


def test_reference_entries_round_trip() -> None:
    src = ReferenceSource("s3://bucket/key.csv", {"etag": "abc", "size": "3"})
    m = Manifest([ManifestEntry("key.csv", None, 3, source=src)])
    back = Manifest.from_bytes(m.to_bytes())
    assert back.entries[0].source == src
    assert back.digest == m.digest


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "/etc/passwd",
        "../x",
        "a/../../x",
        "a//b",
        "./a",
        "a/.",
        "C:/x",
        "C:",
        "a\\b",
        "..\\x",
        "a\x00b",
        "a\nb",
    ],
)
def test_unsafe_paths_rejected_on_write(bad: str) -> None:
    with pytest.raises(UnsafePath):
        check_relpath(bad)
    with pytest.raises(UnsafePath):
        ManifestEntry(bad, D1, 1)


def test_duplicate_and_file_dir_clash_rejected() -> None:
    with pytest.raises(UnsafePath, match="twice"):
        Manifest([ManifestEntry("a", D1, 1), ManifestEntry("a", D2, 1)])
    with pytest.raises(UnsafePath, match="both a file and a directory"):
        Manifest([ManifestEntry("a", D1, 1), ManifestEntry("a/b", D2, 1)])
    with pytest.raises(UnsafePath, match="both a file and a directory"):  # not neighbours
        Manifest([ManifestEntry("a", D1, 1), ManifestEntry("a-x", D1, 1),
                  ManifestEntry("a/b/c", D2, 1)])


def test_unsafe_paths_rejected_on_checkout(tmp_path: Path) -> None:
    """A manifest written by someone else (bypassing our checks) cannot escape on checkout."""
    store = ObjectStore(str(tmp_path / "store"))
    digest = store.put_bytes(b"evil")
    hostile = (
        b'{"format":"headwater.manifest","hash":"blake3","version":1}\n'
        b'{"digest":"' + digest.encode() + b'","path":"../escape.txt","size":4}\n'
    )
    with pytest.raises(UnsafePath):
        Manifest.from_bytes(hostile)
    # a symlink inside the destination pointing outside is refused as well
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "link").symlink_to(tmp_path)
    m = Manifest([ManifestEntry("link/escape.txt", digest, 4)])
    with pytest.raises(UnsafePath, match="outside"):
        checkout(store, m, dest, options={})
    assert not (tmp_path / "escape.txt").exists()

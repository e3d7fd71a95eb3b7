"""Re-logging repairs, as the error message promises (issue 14, section 3).

A version whose stored objects were damaged (content corrupted, truncated, deleted; manifest
corrupted, truncated, deleted), for a directory of files and for a table: logging the same data
again — under the same name or another — writes the bad objects again from the source, and
``verify`` passes afterwards. Damage the size reveals (truncated, deleted) is repaired by the
re-log alone, even when the stat cache vouches for every file; a same-size corruption is found
by the first read or ``verify`` (which quarantine the object) and the re-log then repairs it.
"""

from __future__ import annotations

import os

os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from headwater import Catalog
from headwater.errors import ObjectCorrupted
from headwater.store.objects import ObjectStore

#: the damage below is done to loose object files (truncated, deleted, flipped); packed objects'
#: damage and repair: tests/test_packs.py and tests/test_pack_lookup.py
pytestmark = pytest.mark.loose_store

OLD = 1_600_000_000 * 10**9  # an mtime far in the past: the stat cache vouches for the files


def _files(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("alpha\n" * 50)
    (root / "b.bin").write_bytes(bytes(range(256)) * 40)
    (root / "sub" / "c.txt").write_text("gamma\n" * 30)
    return root


def _table(root: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    root.mkdir(parents=True)
    pq.write_table(pa.table({"id": list(range(200)), "label": ["spam", "ham"] * 100}),
                   root / "part-0.parquet")
    pq.write_table(pa.table({"id": list(range(200, 260)), "label": ["ham"] * 60}),
                   root / "part-1.parquet")
    return root


def _age(root: Path) -> None:
    for p in root.rglob("*"):
        if p.is_file():
            os.utime(p, ns=(OLD, OLD))


def _corrupt(path: str) -> None:
    data = bytearray(Path(path).read_bytes())
    data[len(data) // 2] ^= 0xFF
    os.chmod(path, 0o644)
    Path(path).write_bytes(bytes(data))


def _truncate(path: str) -> None:
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


DAMAGE: dict[str, Callable[[str], None]] = {
    "corrupt": _corrupt, "truncate": _truncate, "delete": os.unlink,
}


@pytest.fixture
def cat(tmp_path: Path) -> Iterator[Catalog]:
    c = Catalog.open(f"sqlite:///{tmp_path / 'catalog.db'}", store_url=str(tmp_path / "store"))
    yield c
    c.close()


def _target(cat: Catalog, ref: str, what: str) -> str:
    v = cat.get(ref)
    if what == "manifest":
        return cat.store.object_path(v.digest)
    entry = next(e for e in cat.manifest_of(v) if e.digest is not None)
    return cat.store.object_path(entry.digest or "")


@pytest.mark.parametrize("kind", ["files", "table"])
@pytest.mark.parametrize("what", ["object", "manifest"])
@pytest.mark.parametrize("damage", sorted(DAMAGE))
@pytest.mark.parametrize("relog_as", ["same", "other"])
def test_relog_repairs_a_damaged_store(
    cat: Catalog, tmp_path: Path, kind: str, what: str, damage: str, relog_as: str
) -> None:
    src = (_files if kind == "files" else _table)(tmp_path / "src")
    _age(src)
    first = cat.log(src, name="ds")
    assert cat.verify("ds@1").ok
    DAMAGE[damage](_target(cat, "ds@1", what))
    assert not cat.verify("ds@1").ok  # the damage is real (and a corrupted object is flagged)
    again = cat.log(src, name="ds" if relog_as == "same" else "copy")
    assert again.digest == first.digest
    assert cat.verify("ds@1").ok
    assert cat.verify(again.ref).ok
    if relog_as == "same":
        assert not again.created  # still "unchanged": the same version, now intact


@pytest.mark.parametrize(("what", "damage"), [
    ("object", "delete"), ("manifest", "delete"), ("manifest", "truncate")])
@pytest.mark.parametrize("certified", [False, True])
def test_relog_repairs_damage_nobody_has_read_yet(
    cat: Catalog, tmp_path: Path, damage: str, what: str, certified: bool
) -> None:
    """No verify in between: the stat cache vouches for every file, yet a lost object (or a
    lost or truncated manifest) is written again by the re-log itself — also when the last
    check's certificate (prefix-directory mtimes) is in place: a deletion moves them."""
    src = _files(tmp_path / "src")
    _age(src)
    cat.log(src, name="ds")
    if certified:  # directories older than the 2 s window: the next check leaves a certificate
        for d in (tmp_path / "store" / "objects").iterdir():
            os.utime(d, ns=(OLD, OLD))
    cat.log(src, name="ds")  # the stat cache rows now name the committed manifest
    if certified:
        assert list((tmp_path / "store" / "checks").iterdir())
    DAMAGE[damage](_target(cat, "ds@1", what))
    again = cat.log(src, name="ds")
    assert not again.created
    assert cat.verify("ds@1").ok


def test_same_bytes_elsewhere_replace_an_unseen_corrupted_object(
    cat: Catalog, tmp_path: Path
) -> None:
    """Same bytes at another path (no stat-cache row): a new version never refers to a stored
    copy that does not hold them, even if nobody has read that copy since it was damaged."""
    src = _files(tmp_path / "src")
    cat.log(src, name="ds")
    _corrupt(_target(cat, "ds@1", "object"))
    copy = tmp_path / "elsewhere"
    shutil.copytree(src, copy)
    other = cat.log(copy, name="other")
    assert cat.verify(other.ref).ok
    assert cat.verify("ds@1").ok


def test_a_read_that_finds_corruption_flags_the_object_for_the_relog(
    cat: Catalog, tmp_path: Path
) -> None:
    src = _files(tmp_path / "src")
    _age(src)
    v = cat.log(src, name="ds")
    _corrupt(_target(cat, "ds@1", "object"))
    with pytest.raises(ObjectCorrupted, match="flagged"):
        cat.checkout(v, tmp_path / "out")
    assert cat.store.flagged() == {_target(cat, "ds@1", "object").replace("/", "")[-64:]}
    cat.log(src, name="ds")
    cat.checkout(cat.get("ds@1"), tmp_path / "out2")
    assert (tmp_path / "out2" / "a.txt").read_bytes() == (src / "a.txt").read_bytes()


def test_verify_repair_restores_objects_and_manifest_from_a_directory(
    cat: Catalog, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from headwater.cli import main

    src = _files(tmp_path / "src")
    cat.log(src, name="ds")
    _corrupt(_target(cat, "ds@1", "object"))
    os.unlink(_target(cat, "ds@1", "manifest"))
    backup = tmp_path / "backup"
    shutil.copytree(src, backup)
    shutil.rmtree(src)  # the original is gone: re-logging is impossible
    env = {"HEADWATER_CATALOG_URL": f"sqlite:///{tmp_path / 'catalog.db'}",
           "HEADWATER_STORE_URL": str(tmp_path / "store"), "HEADWATER_LINEAGE": "off"}
    result = CliRunner().invoke(main, ["verify", "ds@1", "--repair", str(backup)], env=env)
    assert result.exit_code == 0, result.output
    assert "repaired" in result.output
    assert cat.verify("ds@1").ok


def test_gc_skips_and_reports_a_damaged_manifest(cat: Catalog, tmp_path: Path) -> None:
    a = cat.log(_files(tmp_path / "a"), name="a")
    b_src = tmp_path / "b"
    b_src.mkdir()
    (b_src / "only-b.txt").write_text("bee\n" * 10)
    cat.log(b_src, name="b")
    orphan = cat.store.put_bytes(b"nobody refers to me")
    _corrupt(cat.store.object_path(a.digest))
    report = cat.gc(grace_seconds=0)
    assert orphan in report.deleted
    assert [d.split(":")[0] for d in report.damaged] == [a.digest]
    # the objects the damaged manifest names are kept (its bytes still list most of them)
    for entry in cat.manifest_of(cat.get("b@1")):
        assert ObjectStore(cat.store.url).has(entry.digest or "")
    assert cat.store.has(next(e.digest for e in _manifest_lines(tmp_path, a.digest)))


def _manifest_lines(tmp_path: Path, digest: str) -> list[object]:
    """Entries readable from a (partly corrupted) manifest file, line by line."""
    import json

    from headwater.store.manifest import ManifestEntry

    out = []
    raw = (tmp_path / "store" / "quarantine" / digest) if (
        tmp_path / "store" / "quarantine" / digest).exists() else Path(
        ObjectStore(str(tmp_path / "store")).object_path(digest))
    for line in raw.read_bytes().splitlines():
        try:
            d = json.loads(line)
            out.append(ManifestEntry(d["path"], d["digest"], d["size"]))
        except (ValueError, KeyError):
            continue
    return out


def test_relog_repairs_a_damaged_s3_store(s3_store, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The same on S3 (moto): a deleted object and a truncated one are written again."""
    import fsspec

    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("HEADWATER_PACK", "off")  # loose objects; packed ones: tests/test_packs.py
    c = Catalog.open(f"sqlite:///{tmp_path / 'catalog.db'}", store_url=s3_store.url,
                     store_options=s3_store.storage_options)
    try:
        src = _files(tmp_path / "src")
        _age(src)
        v = c.log(src, name="ds")
        entries = [e for e in c.manifest_of(v) if e.digest is not None]
        fs = fsspec.filesystem("s3", skip_instance_cache=True, **s3_store.storage_options)
        fs.rm(c.store.object_path(entries[0].digest or ""))
        fs.pipe(c.store.object_path(entries[1].digest or ""), b"short")
        assert not c.verify("ds@1").ok
        again = c.log(src, name="ds")
        assert not again.created
        assert c.verify("ds@1").ok
    finally:
        c.close()

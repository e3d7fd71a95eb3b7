"""Checkouts build the names new to their destination in a hidden directory and move them into
place at the end (issue 18: three system calls a file instead of six), so no file is ever
visible under its final name half-written or unverified, whatever happens to the process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from headwater.errors import ObjectCorrupted
from headwater.store import checkout as checkout_mod
from headwater.store.checkout import STAGING_PREFIX, checkout
from headwater.store.manifest import Manifest, ManifestEntry
from headwater.store.objects import ObjectStore
from headwater.store.snapshot import snapshot_local
from tests import damage


def _tree(root: Path, n: int = 30) -> Path:
    for i in range(n):
        p = root / f"d{i % 3}" / f"sub{i % 2}" / f"f{i:03d}.txt"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"file {i}\n" * (1 + i % 4))
    (root / "top.txt").write_text("at the top\n")
    return root


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("pack", [False, True])
def test_a_new_destination_gets_every_file_and_no_staging_is_left(
        tmp_path: Path, pack: bool) -> None:
    src = _tree(tmp_path / "src")
    store = ObjectStore(str(tmp_path / "store"), pack=pack)
    snap = snapshot_local(store, src)
    out = tmp_path / "new" / "out"  # parents made too
    checkout(store, snap.manifest, out, options={})
    assert _files(out) == _files(src)
    assert sorted(os.listdir(out)) == ["d0", "d1", "d2", "top.txt"]


def test_an_empty_existing_destination_is_filled(tmp_path: Path) -> None:
    src = _tree(tmp_path / "src")
    store = ObjectStore(str(tmp_path / "store"))
    snap = snapshot_local(store, src)
    out = tmp_path / "out"
    out.mkdir()
    checkout(store, snap.manifest, out, options={})
    assert _files(out) == _files(src)
    assert not [n for n in os.listdir(out) if n.startswith(STAGING_PREFIX)]


def test_a_destination_holding_some_names_is_merged(tmp_path: Path) -> None:
    """Names the destination holds are written in place (replaced), new ones staged; files
    that are not in the version stay."""
    src = _tree(tmp_path / "src")
    store = ObjectStore(str(tmp_path / "store"))
    snap = snapshot_local(store, src)
    out = tmp_path / "out"
    (out / "d1" / "sub0").mkdir(parents=True)
    (out / "d1" / "sub0" / "f001.txt").write_text("stale")  # f001 is in d1/sub1: not this one
    (out / "d1" / "sub1").mkdir()
    (out / "d1" / "sub1" / "f001.txt").write_text("stale")
    (out / "top.txt").write_text("stale")
    (out / "mine.txt").write_text("not in the version")
    checkout(store, snap.manifest, out, options={})
    want = _files(src)
    want["d1/sub0/f001.txt"] = b"stale"
    want["mine.txt"] = b"not in the version"
    assert _files(out) == want
    assert not [n for n in os.listdir(out) if n.startswith(STAGING_PREFIX)]


def test_a_name_that_appears_meanwhile_is_merged_file_by_file(tmp_path: Path) -> None:
    """Another process makes one of the new top-level folders during the checkout: the staged
    folder cannot be renamed over it (not empty), so its files are moved in one by one."""
    base = tmp_path / "out"
    base.mkdir()
    where = checkout_mod._Destination(base)
    fresh = checkout_mod._Fresh(str(where.base), empty=True)
    fresh.write("a/b/one.txt", b"1")
    fresh.write("a/two.txt", b"2")
    fresh.write("c.txt", b"3")
    (base / "a" / "b").mkdir(parents=True)
    (base / "a" / "b" / "theirs.txt").write_bytes(b"theirs")
    fresh.publish(where)
    assert _files(base) == {"a/b/one.txt": b"1", "a/two.txt": b"2", "c.txt": b"3",
                            "a/b/theirs.txt": b"theirs"}
    assert sorted(os.listdir(base)) == ["a", "c.txt"]


def test_an_error_leaves_no_file_of_the_new_names(tmp_path: Path) -> None:
    """A corrupted object fails the checkout: what was staged is removed, not published."""
    src = _tree(tmp_path / "src")
    store = ObjectStore(str(tmp_path / "store"), pack=False)  # damaged loose
    snap = snapshot_local(store, src)
    bad = snap.manifest.entries[-2]
    assert bad.digest is not None
    damage.corrupt(store, bad.digest, at=0)  # loose or packed
    out = tmp_path / "out"
    with pytest.raises(ObjectCorrupted, match=bad.path):
        checkout(store, snap.manifest, out, options={})
    assert os.listdir(out) == []


def test_a_large_object_and_a_reference_free_manifest_of_one_file(tmp_path: Path) -> None:
    """Large objects (the pool) land in the staged tree too."""
    big = os.urandom(checkout_mod.SMALL_MAX + 5)
    store = ObjectStore(str(tmp_path / "store"))
    digest = store.put_bytes(big)
    small = store.put_bytes(b"small")
    m = Manifest([ManifestEntry("x/big.bin", digest, len(big)),
                  ManifestEntry("x/small.txt", small, 5)])
    out = tmp_path / "out"
    checkout(store, m, out, options={})
    assert _files(out) == {"x/big.bin": big, "x/small.txt": b"small"}
    assert os.listdir(out) == ["x"]


CRASH = textwrap.dedent("""
    import sys
    from headwater.store import checkout as checkout_mod
    from headwater.store.objects import ObjectStore
    from headwater.store.snapshot import snapshot_local
    checkout_mod.FORK_MIN = 10
    store = ObjectStore(sys.argv[2])
    snap = snapshot_local(store, sys.argv[1])
    checkout_mod.checkout(store, snap.manifest, sys.argv[3], options={})
""")


def test_a_crash_before_the_move_leaves_no_visible_file(tmp_path: Path) -> None:
    """Killed once every file is written (by both processes) but before any is moved: the
    destination shows nothing but the hidden staging directory."""
    src = _tree(tmp_path / "src")
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-c", CRASH, str(src), str(tmp_path / "store"), str(out)],
        env={**os.environ, "HEADWATER_FAILPOINTS": "checkout.before_publish"},
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 86, done.stderr
    names = os.listdir(out)
    assert len(names) == 1 and names[0].startswith(STAGING_PREFIX)
    assert _files(out / names[0]) == _files(src)  # both halves were written there
    done = subprocess.run(  # and a checkout again gives the version
        [sys.executable, "-c", CRASH, str(src), str(tmp_path / "store"), str(out)],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert {k: v for k, v in _files(out).items()
            if not k.startswith(STAGING_PREFIX)} == _files(src)

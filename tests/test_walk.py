"""Directory listing for snapshots: in process, shared with a helper process, or prefetched by
the ``headwater`` command — the same runs of files in the same order every way (issue 7)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from headwater.command import local_source_of_add
from headwater.store import snapshot as snapshot_mod
from headwater.store import walk
from headwater.store.objects import ObjectStore
from headwater.store.snapshot import _walk, snapshot_local

# one worker: the last test checks that no helper left its directory behind
pytestmark = pytest.mark.xdist_group("walk-helper")


def _tree(root: Path) -> Path:
    for top in ("a", "a-b", "b", "c.d", "e"):
        for sub in ("x", "y"):
            d = root / top / sub
            d.mkdir(parents=True)
            (d / "f.txt").write_text(f"{top}/{sub}\n")
        (root / top / "m").write_text(top)  # a file between subdirectories
        (root / top / "z").write_text(top)
    (root / "top.txt").write_text("top")
    (root / "a" / "x" / "deep" / "er").mkdir(parents=True)
    (root / "a" / "x" / "deep" / "er" / "g").write_text("g")
    return root


def _runs(root: Path, **kwargs: object) -> list[tuple[str, list[walk.FileStat]]]:
    listed: list[str] = []
    runs = [(d.prefix, d.files[a:b]) for d, a, b in
            _walk(str(root), lambda d: listed.append(d.key), **kwargs)]  # type: ignore[arg-type]
    assert listed == sorted(listed)  # the stat cache's key order
    return runs


def test_a_helper_process_lists_the_same_runs(tmp_path: Path) -> None:
    root = _tree(tmp_path / "t")
    alone = _runs(root)
    shared = _runs(root, helper=True)
    assert shared == alone
    paths = [p + f[0] for p, files in alone for f in files]
    assert paths == sorted(paths) and len(paths) == 22


def test_a_prefetched_listing_is_taken_over_once(tmp_path: Path) -> None:
    root = _tree(tmp_path / "t")
    walk.prefetch(str(root))
    helper = walk.take_prefetched(str(root))
    assert helper is not None and walk.take_prefetched(str(root)) is None
    assert _runs(root, prefetched=helper) == _runs(root)
    walk.prefetch(str(root))
    assert walk.take_prefetched(str(tmp_path)) is None  # another root: dropped, not used


def test_a_failed_helper_only_means_listing_here(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    root = _tree(tmp_path / "t")
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    assert _runs(root, helper=True) == _runs(root)
    monkeypatch.undo()
    helper = walk.Helper([str(root)])
    helper._proc.kill()  # type: ignore[union-attr]  # dies before writing anything
    assert _runs(root, prefetched=helper) == _runs(root)


def test_snapshot_with_a_shared_walk_equals_one_without(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _tree(tmp_path / "t")
    plain = snapshot_local(ObjectStore(str(tmp_path / "s1")), root)
    monkeypatch.setattr(snapshot_mod, "HELPER_MIN_DIRS", 0)  # share even a tiny tree
    shared = snapshot_local(ObjectStore(str(tmp_path / "s2")), root)
    assert shared.manifest.to_bytes() == plain.manifest.to_bytes()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["add", "{d}", "--name", "x"], "{d}"),
        (["--catalog", "sqlite:///c.db", "add", "--name", "x", "{d}"], "{d}"),
        (["add", "--name", "add", "--meta", "k=v", "file://{d}"], "{d}"),
        (["add", "{d}", "--name", "x", "--reference"], None),
        (["add", "s3://bucket/prefix", "--name", "x"], None),
        (["add", "--label", "{d}", "--description", "{d}", "s3://b/p", "--name", "x"], None),
        (["add", "{d}/missing", "--name", "x"], None),
        (["get", "x@1", "{d}"], None),
        (["--store", "add", "get", "{d}"], None),
        ([], None),
    ],
)
def test_the_command_finds_the_directory_to_prefetch(
    tmp_path: Path, argv: list[str], expected: str | None
) -> None:
    d = str(tmp_path)
    args = [a.replace("{d}", d) for a in argv]
    want = expected.replace("{d}", d) if expected else None
    assert local_source_of_add(args) == want


def test_the_command_runs_with_a_prefetch(tmp_path: Path) -> None:
    """End to end through the console entry: prefetch, import, log, identical digest, and no
    helper files left behind."""
    import json
    import subprocess
    import tempfile

    def helper_dirs() -> set[str]:
        return {p for p in os.listdir(tempfile.gettempdir()) if p.startswith("hw-walk-")}

    before = helper_dirs()
    root = _tree(tmp_path / "t")
    env = {**os.environ, "HEADWATER_HOME": str(tmp_path / "home"), "HEADWATER_LINEAGE": "off"}
    cmd = [sys.executable, "-m", "headwater", "add", str(root), "--name", "tree", "--json"]
    one = json.loads(subprocess.run(cmd, env=env, capture_output=True, text=True,
                                    check=True).stdout)
    two = json.loads(subprocess.run(cmd, env=env, capture_output=True, text=True,
                                    check=True).stdout)
    assert one["digest"] == two["digest"] and two["created"] is False
    assert helper_dirs() <= before


def test_a_prefetch_nobody_takes_is_cleaned_up_at_exit(tmp_path: Path) -> None:
    """``headwater add DIR --name 'bad name'`` fails before its snapshot: nothing is left."""
    import subprocess
    import tempfile

    root = _tree(tmp_path / "t")
    before = {p for p in os.listdir(tempfile.gettempdir()) if p.startswith("hw-walk-")}
    env = {**os.environ, "HEADWATER_HOME": str(tmp_path / "home"), "HEADWATER_LINEAGE": "off"}
    out = subprocess.run([sys.executable, "-m", "headwater", "add", str(root), "--name", "a b!"],
                         env=env, capture_output=True, text=True)
    assert out.returncode == 2, out.stderr
    after = {p for p in os.listdir(tempfile.gettempdir()) if p.startswith("hw-walk-")}
    assert after <= before

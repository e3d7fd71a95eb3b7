"""A large checkout from a local store writes half of its small files in a forked child
(issue 18: file creation on both cores); the result, and the errors, are those of one process.

Each case runs in a fresh interpreter: the fork is made only by a process with no other thread,
and a test session has some (emulator clients, fsspec's event loop)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent("""
    import json, os, sys, threading
    from pathlib import Path
    from headwater.errors import ObjectCorrupted
    from headwater.store import checkout as checkout_mod
    from headwater.store.objects import ObjectStore
    from headwater.store.snapshot import snapshot_local

    root, store_dir, out, mode = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    checkout_mod.FORK_MIN = 50
    result = {"error": None}
    forks = []
    real = os.fork
    def fork():
        pid = real()
        if pid:
            forks.append(pid)
        return pid
    os.fork = fork
    store = ObjectStore(store_dir, pack=(mode == "packed"))
    snap = snapshot_local(store, root)
    result["packed"] = sum(1 for e in snap.manifest.entries
                           if store.packs.find(e.digest) is not None)
    if mode == "corrupt":  # a small file near the end: in the child's half
        last = snap.manifest.entries[-2]
        with open(store.object_path(last.digest), "r+b") as f:
            f.write(b"X")
        result["path"] = last.path
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    if mode == "thread":
        other.start()
    manifest = snap.manifest
    if mode == "stream":  # as `headwater get` reads it: parsed as it is written
        manifest = checkout_mod.stream_manifest(store, store.put_bytes(snap.manifest.to_bytes()))
    try:
        checkout_mod.checkout(store, manifest, out, options={})
    except ObjectCorrupted as exc:
        result["error"] = str(exc)
    finally:
        stop.set()
    result["forks"] = len(forks)
    print(json.dumps(result))
""")


def _tree(n: int, root: Path) -> Path:
    from headwater.store.checkout import SMALL_MAX

    for i in range(n):
        p = root / f"d{i % 9}" / f"f{i:04d}.txt"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"file {i}\n" * (1 + i % 5))
    (root / "big.bin").write_bytes(os.urandom(SMALL_MAX + 10))  # goes to the thread pool
    return root


def _run(tmp_path: Path, mode: str) -> tuple[dict, Path, Path]:  # type: ignore[type-arg]
    root = _tree(400, tmp_path / "src")
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(root), str(tmp_path / "store"),
                           str(out), mode], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1]), root, out


def _same(root: Path, out: Path) -> None:
    want = {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    got = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert got == want and len(want) == 401  # no leftover temporary file either


def test_a_large_local_checkout_is_written_by_two_processes(tmp_path: Path) -> None:
    result, root, out = _run(tmp_path, "plain")
    assert result == {"error": None, "forks": 1, "packed": 0}
    _same(root, out)


def test_a_packed_local_store_checks_out_in_two_processes(tmp_path: Path) -> None:
    """Packed objects of a local store (HEADWATER_PACK=on) are read in coalesced batches by
    threads and written by this process and the forked child, as loose ones."""
    result, root, out = _run(tmp_path, "packed")
    assert result["error"] is None and result["forks"] == 1
    assert result["packed"] == 400  # every small file is in a pack, the large one is loose
    _same(root, out)


def test_a_streamed_manifest_is_checked_out_by_two_processes(tmp_path: Path) -> None:
    """The child parses only the second half of the manifest's bytes, the parent all of it."""
    result, root, out = _run(tmp_path, "stream")
    assert result == {"error": None, "forks": 1, "packed": 0}
    _same(root, out)


def test_a_corrupted_object_in_the_childs_half_is_reported_by_the_parent(
        tmp_path: Path) -> None:
    result, _root, _out = _run(tmp_path, "corrupt")
    assert result["forks"] == 1
    assert result["error"] is not None and result["path"] in result["error"]
    assert "corrupted" in result["error"]


def test_no_fork_when_the_process_has_other_threads(tmp_path: Path) -> None:
    result, root, out = _run(tmp_path, "thread")
    assert result == {"error": None, "forks": 0, "packed": 0}
    _same(root, out)

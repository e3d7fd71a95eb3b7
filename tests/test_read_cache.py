"""The local read cache of remote stores (issue 18): a second get of an S3 version sends no
request to the server (counted in the moto server's own request log), hits are verified,
the size is bounded (least recently used go first), processes share it, it can be turned off,
and ``headwater cache`` reports it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from headwater import Catalog
from headwater.store.cache import ReadCache, parse_size
from headwater.store.hashing import hash_bytes

os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")


def _source(root: Path, n: int = 30) -> Path:
    root.mkdir(parents=True)
    for i in range(n):
        (root / f"f{i:02d}.txt").write_bytes(f"row {i}\n".encode() * (i + 3))
    (root / "t.csv").write_text("a,b\n1,2\n3,4\n")
    return root


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _requests(server, bucket: str) -> list[str]:  # type: ignore[no-untyped-def]
    """The moto server's access-log lines for ``bucket`` (one per HTTP request)."""
    text = Path(server.log_path).read_text(errors="replace")
    return [line for line in text.splitlines() if f"/{bucket}" in line and "HTTP/1.1" in line]


@pytest.mark.xdist_group("emulators")
def test_second_get_of_an_s3_version_sends_no_request(
        s3_server, s3_store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HEADWATER_CACHE", str(tmp_path / "cache"))
    src = _source(tmp_path / "src")
    url = f"sqlite:///{tmp_path / 'c.db'}"
    cat = Catalog.open(url, store_url=s3_store.url, store_options=s3_store.storage_options)
    v = cat.log(src, name="ds")
    cat.close()
    for n, expect_requests in ((1, True), (2, False), (3, False)):
        # a fresh catalog each time: nothing is remembered in memory between gets
        before = len(_requests(s3_server, s3_store.bucket))
        cat = Catalog.open(url, store_url=s3_store.url, store_options=s3_store.storage_options)
        out = cat.checkout(cat.get("ds@1"), tmp_path / f"out{n}")
        with cat.open_file(v, "t.csv") as f:
            assert f.read() == b"a,b\n1,2\n3,4\n"
        cat.close()
        sent = _requests(s3_server, s3_store.bucket)[before:]
        assert _tree(out) == _tree(src)
        if expect_requests:
            assert any('"GET ' in line for line in sent), sent  # the log does count requests
        else:
            assert sent == [], sent
    rc = ReadCache(str(tmp_path / "cache"))
    usage = rc.usage()
    # the 32 packed objects are kept as the one ranged read that fetched them (plus the
    # manifest): two files, not 33; hits and misses still count objects
    assert usage.objects == 2 and usage.bytes >= sum(len(b) for b in _tree(src).values())
    assert usage.stats.misses == 32 and usage.stats.hits >= 2 * 32


def test_hits_are_verified_and_a_bad_copy_is_fetched_again(
        s3_store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HEADWATER_CACHE", str(tmp_path / "cache"))
    src = _source(tmp_path / "src", 3)
    cat = Catalog.open(f"sqlite:///{tmp_path / 'c.db'}", store_url=s3_store.url,
                       store_options=s3_store.storage_options)
    v = cat.log(src, name="ds")
    cat.checkout(v, tmp_path / "o1")
    # the packed files are cached as the one pack range that fetched them
    (cached,) = (tmp_path / "cache" / "ranges").glob("*/*")
    good = cached.read_bytes()
    cached.write_bytes(bytes(b ^ 0xFF for b in good))  # same length, every byte wrong
    assert _tree(cat.checkout(v, tmp_path / "o2")) == _tree(src)  # from the store again
    assert cached.read_bytes() == good  # and the cache holds good bytes again
    digest = hash_bytes((src / "f01.txt").read_bytes())
    cached.write_bytes(b"short")  # a truncated range is not used either
    with cat.open_file(v, "f01.txt") as f:
        assert hash_bytes(f.read()) == digest
    cat.close()


def test_size_bound_evicts_least_recently_used(tmp_path: Path) -> None:
    rc = ReadCache(str(tmp_path / "c"), max_bytes=10_000)
    blobs = [bytes([i]) * 1000 for i in range(8)]
    digests = [hash_bytes(b) for b in blobs]
    for d, b in zip(digests, blobs, strict=True):
        rc.put(d, b)
    old = os.stat(rc.path_of(digests[0])).st_mtime - 100
    for i, d in enumerate(digests):  # recency: 0 oldest ... 7 newest
        os.utime(rc.path_of(d), (old + i, old + i))
    assert rc.get(digests[0]) == blobs[0]  # a hit makes it the most recent
    rc.trim(max_bytes=5_000)
    kept = {d for d in digests if os.path.exists(rc.path_of(d))}
    assert digests[0] in kept and digests[1] not in kept and digests[7] in kept
    assert sum(len(b) for d, b in zip(digests, blobs, strict=True) if d in kept) <= 4_500
    assert parse_size("10G") == 10 << 30 and parse_size("500M") == 500 << 20


READER = textwrap.dedent("""
    import sys
    from headwater import Catalog
    url, store, options, dest = sys.argv[1:5]
    import json
    cat = Catalog.open(url, store_url=store, store_options=json.loads(options))
    cat.checkout(cat.get("ds@1"), dest)
""")


def test_processes_share_the_cache_and_headwater_cache_reports_it(
        s3_store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hw) -> None:  # type: ignore[no-untyped-def]
    cache = tmp_path / "cache"
    monkeypatch.setenv("HEADWATER_CACHE", str(cache))
    src = _source(tmp_path / "src", 10)
    url = f"sqlite:///{tmp_path / 'c.db'}"
    cat = Catalog.open(url, store_url=s3_store.url, store_options=s3_store.storage_options)
    cat.log(src, name="ds")
    cat.close()
    env = {**os.environ, "HEADWATER_CACHE": str(cache)}
    for n in (1, 2):  # two processes: the second reads what the first cached
        done = subprocess.run([sys.executable, "-c", READER, url, s3_store.url,
                               json.dumps(s3_store.storage_options), str(tmp_path / f"o{n}")],
                              env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert _tree(tmp_path / f"o{n}") == _tree(src)
    stats = json.loads((cache / "stats.json").read_text())
    assert stats["misses"] == 12 and stats["hits"] == 12  # 11 files + the manifest, twice
    shown = hw("cache", "--json").stdout
    # cached files: the manifest and the one pack range holding the 11 packed files
    assert json.loads(shown)["hits"] == 12 and json.loads(shown)["objects"] == 2
    assert "hits: 12" in hw("cache").stdout
    assert "deleted 2" in hw("cache", "clear").stdout
    assert json.loads(hw("cache", "--json").stdout)["objects"] == 0


def test_opt_out(s3_store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HEADWATER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HEADWATER_CACHE", "off")
    cat = Catalog.open(f"sqlite:///{tmp_path / 'c.db'}", store_url=s3_store.url,
                       store_options=s3_store.storage_options)
    v = cat.log(_source(tmp_path / "src", 2), name="ds")
    cat.checkout(v, tmp_path / "out")
    assert cat.store.cache is None
    assert not (tmp_path / "home" / "cache").exists()
    cat.close()


@pytest.mark.xdist_group("emulators")
def test_warm_get_of_many_batches_sends_no_request(
        s3_server, s3_store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """1,200 packed files: several batches fetched by several threads at once, all of which
    need the pack indexes. With the cache warm, every thread waits for the one loading the
    cached indexes (slowed down here) instead of going on without them and listing the
    store."""
    import time

    from headwater import _failpoints

    monkeypatch.setenv("HEADWATER_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "src"
    for i in range(1200):
        (src / f"d{i % 5}").mkdir(parents=True, exist_ok=True)
        (src / f"d{i % 5}" / f"f{i:04d}.txt").write_bytes(f"{i}\n".encode() * (1 + i % 40))
    url = f"sqlite:///{tmp_path / 'c.db'}"
    cat = Catalog.open(url, store_url=s3_store.url, store_options=s3_store.storage_options)
    cat.log(src, name="many")
    cat.close()
    monkeypatch.setitem(_failpoints.HOOKS, "packs.load_cached", lambda: time.sleep(0.3))
    for n, expect_requests in ((1, True), (2, False)):
        before = len(_requests(s3_server, s3_store.bucket))
        cat = Catalog.open(url, store_url=s3_store.url, store_options=s3_store.storage_options)
        out = cat.checkout(cat.get("many@1"), tmp_path / f"o{n}")
        cat.close()
        sent = _requests(s3_server, s3_store.bucket)[before:]
        assert _tree(out) == _tree(src)
        assert bool(sent) == expect_requests, sent

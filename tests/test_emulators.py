"""The storage emulators themselves, driven through fsspec (s3fs / gcsfs) the way the store uses
them.  Every test runs on both S3 (moto server) and GCS (gcp-storage-emulator), each in a fresh
bucket."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fsspec
import pytest

if TYPE_CHECKING:
    from tests.emulators import EmulatorServer, RemoteStore

# Registers the fixtures when this file runs without the conftest line; a no-op once
# tests/conftest.py has ``pytest_plugins = ["tests.emulators"]`` (same module name).
# tests.emulators is imported inside the functions below, not at the top: importing it before
# pytest registers it as a plugin triggers PytestAssertRewriteWarning.
pytest_plugins = ["tests.emulators"]

pytestmark = pytest.mark.emulator

MiB = 2**20


@pytest.fixture(params=["s3", "gcs"])
def store(request: pytest.FixtureRequest) -> RemoteStore:
    return request.getfixturevalue(f"{request.param}_store")


@pytest.fixture
def fs(store: RemoteStore) -> Any:
    from tests.emulators import filesystem_for

    return filesystem_for(store)


def md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def version_token(store: RemoteStore, info: dict[str, Any]) -> str:
    """What identifies one written version of an object: S3 ETag / GCS generation."""
    return info["ETag"] if store.protocol == "s3" else info["generation"]


# --------------------------------------------------------------------------- servers


def test_servers_answer_and_report_startup(
    s3_server: EmulatorServer, gcs_server: EmulatorServer
) -> None:
    for server in (s3_server, gcs_server):
        assert server.endpoint_url == f"http://127.0.0.1:{server.port}"
        assert server.startup_seconds < 30
        os.kill(server.pid, 0)  # still running
    assert s3_server.port != gcs_server.port


def test_context_managers_stop_the_process() -> None:
    from tests.emulators import gcs_emulator, moto_s3_server

    for start in (moto_s3_server, gcs_emulator):
        with start() as server:
            pid = server.pid
            os.kill(pid, 0)
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_failed_start_reports_output_tail(tmp_path: Path) -> None:
    from tests.emulators import _run_emulator

    argv = [sys.executable, "-c", "import sys; sys.stderr.write('boom: no such port'); sys.exit(3)"]
    with (
        pytest.raises(RuntimeError, match=r"exited with code 3(.|\n)*boom: no such port"),
        _run_emulator("broken", lambda port: argv, lambda url: False, timeout=10, log_dir=tmp_path),
    ):
        pass


def test_hanging_start_times_out(tmp_path: Path) -> None:
    from tests.emulators import _run_emulator

    argv = [sys.executable, "-c", "import sys, time; print('starting', flush=True); time.sleep(60)"]
    started = time.monotonic()
    with (
        pytest.raises(RuntimeError, match=r"not ready in 1.0s(.|\n)*starting"),
        _run_emulator("hang", lambda port: argv, lambda url: False, timeout=1.0, log_dir=tmp_path),
    ):
        pass
    assert time.monotonic() - started < 15


def test_port_taken_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    """The free-port probe can race with another process (xdist workers): a server that cannot
    bind is stopped and started again on another port."""
    from tests import emulators

    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()  # accepts connections but never answers HTTP
        taken = squatter.getsockname()[1]
        ports = iter([taken])
        real_free_port = emulators._free_port
        monkeypatch.setattr(emulators, "_free_port", lambda: next(ports, None) or real_free_port())
        for start in (emulators.moto_s3_server, emulators.gcs_emulator):
            ports = iter([taken])
            started = time.monotonic()
            with start() as server:
                assert server.port != taken
            assert time.monotonic() - started < 15


def test_each_store_is_a_fresh_bucket(s3_store: RemoteStore, gcs_store: RemoteStore) -> None:
    from tests.emulators import filesystem_for

    assert s3_store.url.startswith("s3://hw-") and s3_store.url.endswith("/store")
    assert gcs_store.url.startswith("gs://hw-") and gcs_store.url.endswith("/store")
    for st in (s3_store, gcs_store):
        fs = filesystem_for(st)
        assert fs.exists(st.bucket)
        assert fs.find(st.bucket) == []


def test_gcsfs_hns_probe_is_disabled() -> None:
    import gcsfs

    assert os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"].lower() == "false"
    assert gcsfs.GCSFileSystem.__name__ == "GCSFileSystem"


# --------------------------------------------------------------------------- objects


def test_write_read_bytes(store: RemoteStore, fs: Any) -> None:
    path = f"{store.path}/data/part-0.bin"
    payload = bytes(range(256)) * 100
    fs.pipe_file(path, payload)
    assert fs.cat_file(path) == payload
    assert fs.cat_file(path, start=10, end=20) == payload[10:20]
    with fs.open(path, "rb") as f:
        assert f.read() == payload
    # the fsspec URL API works with the storage options too
    with fsspec.open(f"{store.url}/data/part-0.bin", "rb", **store.storage_options) as f:
        assert f.read() == payload


def test_ls_and_find_by_prefix(store: RemoteStore, fs: Any) -> None:
    base = store.path
    for name in ["v1/a.txt", "v1/sub/b.txt", "v2/c.txt", "v10/d.txt"]:
        fs.pipe_file(f"{base}/{name}", name.encode())
    assert fs.find(f"{base}/v1") == [f"{base}/v1/a.txt", f"{base}/v1/sub/b.txt"]
    assert sorted(fs.ls(f"{base}/v1", detail=False)) == [f"{base}/v1/a.txt", f"{base}/v1/sub"]
    assert sorted(fs.ls(base, detail=False)) == [f"{base}/v1", f"{base}/v10", f"{base}/v2"]
    # "v1" as a directory does not match "v10": find on a prefix is per path segment
    assert f"{base}/v10/d.txt" not in fs.find(f"{base}/v1")
    assert fs.isdir(f"{base}/v1/sub") and fs.isfile(f"{base}/v1/a.txt")
    assert fs.glob(f"{base}/v*/*.txt") == [
        f"{base}/v1/a.txt",
        f"{base}/v10/d.txt",
        f"{base}/v2/c.txt",
    ]


def test_info_checksums(store: RemoteStore, fs: Any) -> None:
    path = f"{store.path}/obj"
    payload = b"headwater" * 1000
    fs.pipe_file(path, payload)
    info = fs.info(path)
    assert info["size"] == len(payload)
    assert info["type"] == "file"
    if store.protocol == "s3":
        # the ETag keeps its double quotes; a single-part upload's ETag is the hex MD5
        assert info["ETag"] == f'"{hashlib.md5(payload).hexdigest()}"'
    else:
        assert isinstance(info["generation"], str) and info["generation"].isdigit()
        assert info["md5Hash"] == md5_b64(payload)  # base64, not hex
        assert isinstance(info["crc32c"], str)


def test_overwrite_changes_version_token(store: RemoteStore, fs: Any) -> None:
    path = f"{store.path}/obj"
    fs.pipe_file(path, b"one")
    first = version_token(store, fs.info(path))
    fs.pipe_file(path, b"two")
    second = version_token(store, fs.info(path))
    assert first != second
    assert fs.cat_file(path) == b"two"
    fs.pipe_file(path, b"two")  # same bytes again
    third = version_token(store, fs.info(path))
    if store.protocol == "s3":
        assert third == second  # ETag is a content hash: an identical rewrite is invisible
    else:
        assert third != second  # generation changes on every write


def test_copy_and_move(store: RemoteStore, fs: Any) -> None:
    src, copy, moved = (f"{store.path}/{n}" for n in ("src", "copy", "sub/moved"))
    fs.pipe_file(src, b"payload")
    fs.copy(src, copy)
    assert fs.cat_file(copy) == b"payload"
    started = time.monotonic()
    fs.mv(src, moved)
    # GCS: gcsfs uses the moveTo API; without the emulator patch this alone takes 30-70 s
    assert time.monotonic() - started < 5
    assert not fs.exists(src)
    assert fs.cat_file(moved) == b"payload"
    # A "directory" move that works on both: copy recursively, then remove.  (On S3,
    # fs.mv(dir, dir2, recursive=True) raises FileNotFoundError: fsspec's mv copies with
    # on_error="raise" and the implicit directory itself has no object to copy.)
    fs.copy(f"{store.path}/sub", f"{store.path}/sub2", recursive=True)
    fs.rm(f"{store.path}/sub", recursive=True)
    assert fs.find(store.path) == [f"{store.path}/copy", f"{store.path}/sub2/moved"]
    with pytest.raises(FileNotFoundError):
        fs.mv(f"{store.path}/nope", f"{store.path}/nope2")


def test_missing_key(store: RemoteStore, fs: Any) -> None:
    assert fs.exists(f"{store.path}/nope") is False
    assert fs.exists(f"{store.path}/no/such/dir") is False
    with pytest.raises(FileNotFoundError):
        fs.info(f"{store.path}/nope")
    with pytest.raises(FileNotFoundError):
        fs.cat_file(f"{store.path}/nope")
    assert fs.find(f"{store.path}/nope") == []


def test_put_file_multipart(store: RemoteStore, fs: Any, tmp_path: Path) -> None:
    payload = os.urandom(11 * MiB + 123)
    local = tmp_path / "big.bin"
    local.write_bytes(payload)
    path = f"{store.path}/big.bin"
    # 5 MiB (the S3 minimum part size, a multiple of GCS's 256 KiB) forces a multipart /
    # resumable upload; the default chunksize (50 MiB) would send this in one request.
    fs.put_file(str(local), path, chunksize=5 * MiB)
    info = fs.info(path)
    assert info["size"] == len(payload)
    assert hashlib.sha256(fs.cat_file(path)).digest() == hashlib.sha256(payload).digest()
    if store.protocol == "s3":
        assert info["ETag"].startswith('"') and info["ETag"].endswith('-3"')  # 3 parts
    else:
        assert info["md5Hash"] == md5_b64(payload)
    fs.get_file(path, str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == payload


def test_streaming_write_then_read(store: RemoteStore, fs: Any) -> None:
    path = f"{store.path}/stream.bin"
    chunks = [os.urandom(MiB) for _ in range(7)]
    with fs.open(path, "wb", block_size=5 * MiB) as f:
        for chunk in chunks:
            f.write(chunk)
    payload = b"".join(chunks)
    assert fs.info(path)["size"] == len(payload)
    if store.protocol == "s3":
        assert fs.info(path)["ETag"].endswith('-2"')  # flushed as two parts
    read = bytearray()
    with fs.open(path, "rb", block_size=MiB) as f:
        while block := f.read(300_000):
            read += block
    assert bytes(read) == payload
    # small text write through the same API
    with fs.open(f"{store.path}/note.txt", "w") as f:
        f.write("hello\n")
    assert fs.cat_file(f"{store.path}/note.txt") == b"hello\n"


def test_listing_cache_across_instances(store: RemoteStore) -> None:
    """fsspec caches filesystem instances (per class, options, pid) and their directory
    listings.  A listing cached in one instance does not see another process's writes until
    ``invalidate_cache()``; ``use_listings_cache=False`` avoids the cache altogether."""
    from tests.emulators import filesystem_for

    d = f"{store.path}/d"
    reader = filesystem_for(store)
    writer = filesystem_for(store)  # stands for another process
    assert reader is not writer
    writer.pipe_file(f"{d}/one", b"1")
    assert reader.ls(d, detail=False) == [f"{d}/one"]
    writer.pipe_file(f"{d}/two", b"2")
    writer.rm_file(f"{d}/one")
    # find() always asks the server ...
    assert reader.find(d) == [f"{d}/two"]
    # ... and invalidate_cache() makes ls/exists/info fresh again.
    reader.invalidate_cache()
    assert reader.ls(d, detail=False) == [f"{d}/two"]
    assert reader.exists(f"{d}/two") and not reader.exists(f"{d}/one")

    uncached = fsspec.filesystem(
        store.protocol, skip_instance_cache=True, use_listings_cache=False, **store.storage_options
    )
    assert uncached.ls(d, detail=False) == [f"{d}/two"]
    writer.pipe_file(f"{d}/three", b"3")
    assert uncached.exists(f"{d}/three")
    assert sorted(uncached.ls(d, detail=False)) == [f"{d}/three", f"{d}/two"]

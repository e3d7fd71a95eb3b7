"""Real local storage emulators for the store test suite: S3 (moto server) and GCS
(gcp-storage-emulator).

Each emulator runs as a subprocess on a free 127.0.0.1 port.  Under pytest-xdist every worker
is its own process with its own session, so every worker starts its own servers (the
session-scoped fixtures below are per worker); nothing is shared between workers, so there is no
cross-worker locking to do.  Each test gets a fresh, uniquely named bucket.

Use from a conftest (``tests/`` is a package, i.e. has an ``__init__.py``)::

    pytest_plugins = ["tests.emulators"]

or outside pytest::

    with moto_s3_server() as server:
        store = new_s3_bucket(server)
        fs = filesystem_for(store)
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# gcsfs (2026.10 here) decides at *import time* (gcsfs/__init__.py) whether ``GCSFileSystem`` is the
# "extended" zonal/HNS-aware class.  That class probes the bucket layout over gRPC before each
# operation; the emulator has no gRPC endpoint, so every call stalls for 40-90 s before falling
# back.  The variable must therefore be set before the first ``import gcsfs`` anywhere in the
# process (fsspec imports gcsfs lazily on the first "gs://" use).  setdefault keeps an explicit
# value from the environment; ``_check_gcsfs_hns_disabled`` fails fast if it came too late.
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

__all__ = [
    "GCS_PROJECT",
    "EmulatorServer",
    "EmulatorStartError",
    "RemoteStore",
    "filesystem_for",
    "gcs_emulator",
    "gcs_server",
    "gcs_storage_options",
    "gcs_store",
    "moto_s3_server",
    "new_gcs_bucket",
    "new_s3_bucket",
    "s3_server",
    "s3_storage_options",
    "s3_store",
]

HOST = "127.0.0.1"
START_TIMEOUT_S = float(os.environ.get("HEADWATER_EMULATOR_START_TIMEOUT", "30"))
STOP_TIMEOUT_S = 5.0
PORT_ATTEMPTS = 3
_ADDRESS_IN_USE = "Address already in use"  # what both servers print when the port is taken
GCS_PROJECT = "headwater-test"
S3_KEY = "testing"
S3_SECRET = "testing"

# Loopback requests must never go through an HTTP(S)_PROXY from the environment.
_NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class EmulatorStartError(RuntimeError):
    """An emulator process did not start answering in time (or exited)."""


@dataclasses.dataclass(frozen=True)
class EmulatorServer:
    name: str
    endpoint_url: str  # http://127.0.0.1:PORT, no trailing slash
    host: str
    port: int
    pid: int
    startup_seconds: float  # spawn -> first good answer
    log_path: Path  # combined stdout+stderr of the server


@dataclasses.dataclass(frozen=True)
class RemoteStore:
    """A fresh bucket on an emulator: ``url`` is ``s3://bucket/prefix`` or ``gs://bucket/prefix``,
    ``storage_options`` are the fsspec keyword arguments to reach it."""

    url: str
    storage_options: dict[str, Any]

    @property
    def protocol(self) -> str:
        return self.url.split("://", 1)[0]

    @property
    def bucket(self) -> str:
        return self.url.split("://", 1)[1].split("/", 1)[0]

    @property
    def path(self) -> str:
        """``bucket/prefix`` without the scheme, as fsspec methods take it."""
        return self.url.split("://", 1)[1]


# --------------------------------------------------------------------------- process handling


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _console_script(name: str, module: str) -> list[str]:
    """The console script next to the running interpreter (the venv's ``bin/``; do not resolve
    the ``python`` symlink, that would leave the venv), else ``python -m module``."""
    candidate = Path(sys.executable).parent / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return [str(candidate)]
    return [sys.executable, "-m", module]


# On Linux, wrap the server so that it gets SIGTERM when the process that started it dies
# (e.g. a pytest-xdist worker killed with SIGKILL), instead of leaking a server.
_PDEATHSIG_WRAPPER = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)\n"  # PR_SET_PDEATHSIG
    "if os.getppid() != int(sys.argv[1]): sys.exit(0)\n"  # parent already gone
    "os.execvp(sys.argv[2], sys.argv[2:])\n"
)


def _wrap(argv: list[str]) -> list[str]:
    if sys.platform.startswith("linux"):
        return [sys.executable, "-c", _PDEATHSIG_WRAPPER, str(os.getpid()), *argv]
    return argv


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    return "\n".join(text.splitlines()[-lines:]) or "<empty>"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group (it is its own session leader), then SIGKILL."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, STOP_TIMEOUT_S)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _http_get(url: str, timeout: float = 1.0) -> tuple[int, bytes]:
    try:
        with _NO_PROXY_OPENER.open(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@contextlib.contextmanager
def _run_emulator(
    name: str,
    argv_for_port: Callable[[int], list[str]],
    is_ready: Callable[[str], bool],
    timeout: float,
    log_dir: Path | None = None,
) -> Iterator[EmulatorServer]:
    errors: list[str] = []
    failed_logs: list[Path] = []
    for _attempt in range(PORT_ATTEMPTS):
        port = _free_port()
        endpoint = f"http://{HOST}:{port}"
        log_fd, log_name = tempfile.mkstemp(prefix=f"headwater-{name}-", suffix=".log", dir=log_dir)
        log_path = Path(log_name)
        failed = False
        started = time.monotonic()
        with os.fdopen(log_fd, "wb") as log:
            proc = subprocess.Popen(
                _wrap(argv_for_port(port)),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: killpg reaches its children
            )
        try:
            deadline = started + timeout
            ready = port_taken = False
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    ready = is_ready(endpoint)
                except OSError:  # refused / reset / timed out while it binds
                    ready = False
                # Re-check the process: someone else's server could answer on a port that ours
                # failed to bind (gcp-storage-emulator does not even exit then, it hangs).
                port_taken = _ADDRESS_IN_USE in _log_tail(log_path)
                if port_taken or (ready and proc.poll() is None):
                    break
                time.sleep(0.05)
            if not ready or port_taken:
                code = proc.poll()
                if port_taken:
                    what = "could not bind the port"
                elif code is not None:
                    what = f"exited with code {code}"
                else:
                    what = f"not ready in {timeout}s"
                errors.append(
                    f"{name} on port {port} {what}; command {argv_for_port(port)}; "
                    f"output tail ({log_path}):\n{_log_tail(log_path)}"
                )
                failed = True
                failed_logs.append(log_path)
                _stop(proc)
                port_taken = port_taken or _ADDRESS_IN_USE in _log_tail(log_path)
                if not port_taken:
                    break  # only a lost race for the port is retried
                continue
            server = EmulatorServer(
                name=name,
                endpoint_url=endpoint,
                host=HOST,
                port=port,
                pid=proc.pid,
                startup_seconds=time.monotonic() - started,
                log_path=log_path,
            )
            for path in failed_logs:  # lost port races, not worth keeping
                with contextlib.suppress(OSError):
                    path.unlink()
            yield server
            return
        finally:
            _stop(proc)
            if not failed:  # keep a failed attempt's log: the error message points at it
                with contextlib.suppress(OSError):
                    log_path.unlink()
    raise EmulatorStartError("\n\n".join(errors))


def _moto_ready(endpoint: str) -> bool:
    status, body = _http_get(endpoint + "/")
    return status == 200 and b"ListAllMyBucketsResult" in body


def _gcs_ready(endpoint: str) -> bool:
    status, body = _http_get(f"{endpoint}/storage/v1/b?project={GCS_PROJECT}")
    return status == 200 and b"storage#buckets" in body


@contextlib.contextmanager
def moto_s3_server(timeout: float = START_TIMEOUT_S) -> Iterator[EmulatorServer]:
    """Start ``moto_server`` (S3 and the rest of AWS, in memory) on a free port."""
    cmd = _console_script("moto_server", "moto.server")
    with _run_emulator(
        "moto", lambda port: [*cmd, "-H", HOST, "-p", str(port)], _moto_ready, timeout
    ) as server:
        yield server


# gcsfs (2026.10 here) implements ``mv`` with the JSON API's ``objects.move`` (POST
# .../o/SRC/moveTo/o/DST).  gcp-storage-emulator answers that with 501, which gcsfs retries six
# times with exponential backoff (30-70 s) before it falls back to rewrite+delete: every
# ``fs.mv`` on the emulator would take over half a minute.  With ``move_api=True`` (the default)
# the emulator is started from this small script, which adds a moveTo route (copy, then delete,
# inside the emulator) and then runs the emulator's own ``main()`` exactly like the console
# script does.  If the emulator's internals change, it starts unpatched and says so on stderr.
_GCS_WITH_MOVE_SCRIPT = """
import sys
from http import HTTPStatus
try:
    from gcp_storage_emulator import server
    from gcp_storage_emulator.exceptions import NotFound
    from gcp_storage_emulator.handlers import objects

    def move(request, response, storage, *args, **kwargs):
        p = request.params
        try:
            dest = objects._copy(request.base_url, storage, p["bucket_name"], p["object_id"],
                                 p["bucket_name"], p["dest_object_id"])
            storage.delete_file(p["bucket_name"], p["object_id"])
        except NotFound:
            response.status = HTTPStatus.NOT_FOUND
            return
        response.json(dest)

    route = (r"^/storage/v1/b/(?P<bucket_name>[-.\\w]+)/o/(?P<object_id>.*[^/]+)"
             r"/moveTo/o/(?P<dest_object_id>.*[^/]+)$", {"POST": move})
    server.HANDLERS = (route, *server.HANDLERS)
except Exception as exc:
    print(f"headwater: moveTo patch not applied ({exc!r})", file=sys.stderr, flush=True)
from gcp_storage_emulator.__main__ import main
sys.argv[0] = "gcp-storage-emulator"
sys.exit(main())
"""


@contextlib.contextmanager
def gcs_emulator(
    timeout: float = START_TIMEOUT_S, *, move_api: bool = True
) -> Iterator[EmulatorServer]:
    """Start ``gcp-storage-emulator`` (in memory) on a free port.  ``move_api``: see above."""
    if move_api:
        cmd = [sys.executable, "-c", _GCS_WITH_MOVE_SCRIPT]
    else:
        cmd = _console_script("gcp-storage-emulator", "gcp_storage_emulator")
    with _run_emulator(
        "gcs",
        lambda port: [*cmd, "start", "--host", HOST, "--port", str(port), "--in-memory"],
        _gcs_ready,
        timeout,
    ) as server:
        yield server


# --------------------------------------------------------------------------- buckets


def _unique_bucket() -> str:
    # 3-63 chars, lowercase letters/digits/hyphens: valid on both S3 and GCS.
    return f"hw-{os.getpid()}-{uuid.uuid4().hex[:16]}"


def s3_storage_options(server: EmulatorServer) -> dict[str, Any]:
    # No region_name: s3fs would send it as the bucket's LocationConstraint on mkdir, and
    # "us-east-1" is not a valid LocationConstraint (moto, like AWS, rejects it).
    return {
        "key": S3_KEY,
        "secret": S3_SECRET,
        "client_kwargs": {"endpoint_url": server.endpoint_url},
    }


def gcs_storage_options(server: EmulatorServer) -> dict[str, Any]:
    return {"endpoint_url": server.endpoint_url, "token": "anon", "project": GCS_PROJECT}


def new_s3_bucket(server: EmulatorServer, prefix: str = "store") -> RemoteStore:
    """Create a fresh bucket on the moto server; return ``s3://bucket/prefix``."""
    import boto3  # a dependency of moto[server]

    bucket = _unique_bucket()
    client = boto3.client(
        "s3",
        endpoint_url=server.endpoint_url,
        aws_access_key_id=S3_KEY,
        aws_secret_access_key=S3_SECRET,
        region_name="us-east-1",  # fine here: no LocationConstraint is sent below
    )
    try:
        client.create_bucket(Bucket=bucket)
    finally:
        client.close()
    return RemoteStore(url=f"s3://{bucket}/{prefix}", storage_options=s3_storage_options(server))


def new_gcs_bucket(server: EmulatorServer, prefix: str = "store") -> RemoteStore:
    """Create a fresh bucket on the GCS emulator; return ``gs://bucket/prefix``."""
    _check_gcsfs_hns_disabled()
    bucket = _unique_bucket()
    req = urllib.request.Request(
        f"{server.endpoint_url}/storage/v1/b?project={GCS_PROJECT}",
        data=json.dumps({"name": bucket}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with _NO_PROXY_OPENER.open(req, timeout=10) as resp:
        if resp.status != 200:
            raise RuntimeError(f"creating GCS bucket {bucket}: HTTP {resp.status}")
    return RemoteStore(url=f"gs://{bucket}/{prefix}", storage_options=gcs_storage_options(server))


def _check_gcsfs_hns_disabled() -> None:
    gcsfs = sys.modules.get("gcsfs")
    if gcsfs is not None and gcsfs.GCSFileSystem.__name__ == "ExtendedGcsFileSystem":
        raise RuntimeError(
            "gcsfs was imported with GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT enabled; every call to the "
            "emulator would stall 40-90 s. Set GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false before "
            "gcsfs is first imported (tests.emulators does so unless gcsfs was imported earlier "
            "or the variable is set to true in the environment)."
        )


def filesystem_for(store: RemoteStore, *, fresh: bool = True) -> Any:
    """An fsspec filesystem for ``store``.  ``fresh=True`` bypasses fsspec's instance cache
    (``skip_instance_cache``), so the instance has its own empty listings cache, like a separate
    process would."""
    import fsspec

    if store.protocol == "gs":
        _check_gcsfs_hns_disabled()
    return fsspec.filesystem(store.protocol, skip_instance_cache=fresh, **store.storage_options)


# --------------------------------------------------------------------------- pytest fixtures


@pytest.fixture(scope="session")
def s3_server() -> Iterator[EmulatorServer]:
    """One moto server per test process (per xdist worker)."""
    with moto_s3_server() as server:
        yield server


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[EmulatorServer]:
    """One GCS emulator per test process (per xdist worker)."""
    with gcs_emulator() as server:
        yield server


@pytest.fixture
def s3_store(s3_server: EmulatorServer) -> RemoteStore:
    """A fresh bucket for this test: ``s3://hw-.../store``."""
    return new_s3_bucket(s3_server)


@pytest.fixture
def gcs_store(gcs_server: EmulatorServer) -> RemoteStore:
    """A fresh bucket for this test: ``gs://hw-.../store``."""
    return new_gcs_bucket(gcs_server)

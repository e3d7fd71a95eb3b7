"""Fixtures of the topology tests: services started as separate processes on 127.0.0.1.

* ``topology_pg_url``: a fresh PostgreSQL database (not a schema) for a Headwater catalog,
  dropped afterwards;
* ``beam_services``: a Beam job service (``local_job_service_main``) and an SDK worker pool
  (``worker_pool_main``), each its own process group, started through :mod:`tests.topology.
  loopback` so their gRPC servers bind 127.0.0.1 (Beam binds ``[::]`` otherwise);
* :func:`listening_addresses`: what a process tree listens on, to prove it.

Tests here are slow and share heavy processes: ``xdist_group("topology")`` keeps them on one
xdist worker, one after another.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import sqlalchemy as sa

from tests.conftest import PG_URL


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _admin_url(database: str) -> sa.URL:
    from headwater.catalog.db import normalise_url

    return sa.make_url(normalise_url(PG_URL)).set(database=database)


@pytest.fixture
def topology_pg_url(pg_base_url: str) -> Iterator[str]:
    """A catalog URL on a PostgreSQL database created for this test."""
    db = f"hw_topology_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(_admin_url("postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{db}"'))
    try:
        yield _admin_url(db).render_as_string(hide_password=False).replace("+psycopg", "")
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        admin.dispose()


def listening_addresses(pid: int) -> set[str]:
    """The local addresses (``ip:port``) a process and its descendants listen on (TCP)."""
    out: set[str] = set()
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return out
    for proc in procs:
        with suppress(psutil.Error):
            for c in proc.net_connections(kind="inet"):
                if c.status == psutil.CONN_LISTEN:
                    out.add(f"{c.laddr.ip}:{c.laddr.port}")
    return out


def is_loopback(address: str) -> bool:
    ip = address.rsplit(":", 1)[0]
    return ip in ("127.0.0.1", "::1", "::ffff:127.0.0.1")


@dataclass
class Service:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def tail(self, chars: int = 3000) -> str:
        return f"--- {self.name} ---\n" + self.log.read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
        with suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # SDK workers the pool started
        with suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)


def start_service(name: str, module: str, args: list[str], port: int, logs: Path,
                  env: dict[str, str] | None = None) -> Service:
    """``python -m tests.topology.loopback MODULE ARGS`` in its own session; waits for PORT."""
    log = logs / f"{name}.log"
    with open(log, "ab") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.topology.loopback", module, *args],
            cwd=Path(__file__).resolve().parents[2], env={**os.environ, **(env or {})},
            stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
    service = Service(name, proc, port, log)
    deadline = time.monotonic() + 60
    while True:
        with suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return service
        if proc.poll() is not None or time.monotonic() > deadline:
            service.stop()
            raise AssertionError(f"{name} did not start on 127.0.0.1:{port}\n{service.tail()}")
        time.sleep(0.3)


@dataclass
class BeamServices:
    job_service: Service
    worker_pool: Service

    @property
    def pipeline_options(self) -> list[str]:
        return ["--runner=PortableRunner",
                f"--job_endpoint=127.0.0.1:{self.job_service.port}",
                "--environment_type=EXTERNAL",
                f"--environment_config=127.0.0.1:{self.worker_pool.port}"]

    def tail(self) -> str:
        return self.job_service.tail() + "\n" + self.worker_pool.tail()


@pytest.fixture(scope="module")
def beam_services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BeamServices]:
    logs = tmp_path_factory.mktemp("beam-services")
    # the pool starts each SDK worker as plain ``python`` from PATH: this interpreter's first
    bindir = str(Path(sys.executable).parent)
    env = {"AWS_EC2_METADATA_DISABLED": "true",
           "PATH": os.pathsep.join([bindir, os.environ.get("PATH", "")])}
    jport, wport = free_port(), free_port()
    job = start_service("job-service", "apache_beam.runners.portability.local_job_service_main",
                        ["--port", str(jport)], jport, logs, env)
    try:
        pool = start_service("worker-pool", "apache_beam.runners.worker.worker_pool_main",
                             ["--service_port", str(wport)], wport, logs, env)
    except BaseException:
        job.stop()
        raise
    try:
        yield BeamServices(job, pool)
    finally:
        pool.stop()
        job.stop()

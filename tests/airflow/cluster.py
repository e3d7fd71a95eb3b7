"""A real Airflow 3 deployment for end-to-end tests: scheduler, dag-processor, api-server (and, for
the CeleryExecutor, one Celery worker), all on 127.0.0.1.

* its own ``AIRFLOW_HOME`` in a temporary directory, holding a copy of the repository's ``dags/``
  (plus any extra DAG files);
* the metadata DB on a fresh PostgreSQL database created here and dropped at the end; the
  Headwater catalog of the tasks in a schema ``headwater`` of the same database (tasks of one DAG
  run write concurrently, which a SQLite file would serialise);
* the executor is a parameter: ``LocalExecutor`` or ``CeleryExecutor`` (Redis 127.0.0.1:6379 as
  broker, PostgreSQL as result backend, one ``airflow celery worker --skip-serve-logs``);
* the simple auth manager with users and passwords from the environment (a passwords file written
  before the api-server starts), so a client logs in with ``POST /auth/token``;
* every process in its own session, terminated (then killed) by its process group id at the end.

FACTS (shared/FACTS.md): ``--skip-serve-logs`` (serve-logs binds every interface otherwise);
manual runs have no logical date; the openlineage provider is disabled here (no transport).

Use the session fixture :func:`airflow_cluster` (LocalExecutor), or :func:`start_cluster` as a
context manager for another topology::

    with start_cluster(tmp, executor="CeleryExecutor") as cluster:
        run_id = cluster.trigger("headwater_reference_pipeline", conf={"n_users": 300})
        assert cluster.wait(DAG_ID, run_id) == "success"
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from headwater.rebuild.airflow_api import AirflowApi, AirflowApiError

REPO = Path(__file__).resolve().parents[2]
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
PG_URL = os.environ.get("HEADWATER_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("HEADWATER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
EXECUTORS = ("LocalExecutor", "CeleryExecutor")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _with_database(url: str, database: str) -> sa.URL:
    from headwater.catalog.db import normalise_url

    return sa.make_url(normalise_url(url)).set(database=database)


@dataclass
class AirflowCluster:
    """A running deployment: its environment (for ``airflow`` CLI calls and subprocesses that
    must reach the same metadata DB and catalog), the api-server URL and a user's credentials."""

    home: Path
    env: dict[str, str]
    api_url: str
    username: str
    password: str
    executor: str
    #: the Headwater catalog URL the tasks write to (``HEADWATER_CATALOG_URL`` in ``env``)
    catalog_url: str
    store_url: str
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _client: AirflowApi | None = None

    @property
    def client(self) -> AirflowApi:
        """Headwater's own ``/api/v2`` client (what ``headwater rebuild`` uses), logged in."""
        if self._client is None:
            self._client = AirflowApi(self.api_url, username=self.username,
                                      password=self.password, timeout=60)
        return self._client

    # -- REST API (/api/v2) ---------------------------------------------------------------------
    def token(self) -> str:
        return self.client._bearer()

    def api(self, method: str, path: str, json: Any = None) -> Any:
        return self.client.request(method, path, json)

    def trigger(self, dag_id: str, *, conf: Mapping[str, Any] | None = None,
                run_id: str | None = None) -> str:
        return str(self.client.trigger(dag_id, conf=dict(conf or {}), run_id=run_id)
                   ["dag_run_id"])

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.client.dag_run(dag_id, run_id)

    def wait(self, dag_id: str, run_id: str, *, timeout: float = 300) -> str:
        """Poll the DAG run until it ends; its final state (``success`` or ``failed``). Fails
        with the processes' log tails when it outlives ``timeout`` or a process died."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.client.wait(dag_id, run_id, timeout=5, poll=1)
            except AirflowApiError as exc:
                if time.monotonic() > deadline:
                    raise AssertionError(f"{exc}; logs: {self.home / 'logs'}\n"
                                         + self.tail()) from None
                self.check_alive()

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        return self.client.task_states(dag_id, run_id)

    def wait_for_dag(self, dag_id: str, *, timeout: float = 120) -> None:
        """Until the dag-processor has serialised ``dag_id`` (the api-server knows it)."""
        deadline = time.monotonic() + timeout
        while True:
            with suppress(AirflowApiError):  # 404 until the dag-processor has parsed it
                self.api("GET", f"/dags/{dag_id}")
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"DAG {dag_id} not parsed after {timeout:.0f} s\n"
                                     + self.tail())
            self.check_alive()
            time.sleep(1)

    # -- processes ------------------------------------------------------------------------------
    def airflow(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """An ``airflow`` CLI call against this deployment."""
        proc = subprocess.run([AIRFLOW, *args], env=self.env, capture_output=True, text=True,
                              timeout=600)
        if check and proc.returncode != 0:
            raise AssertionError(f"airflow {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n"
                                 f"{proc.stderr[-4000:]}")
        return proc

    def check_alive(self) -> None:
        dead = {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}
        if dead:
            raise AssertionError(f"Airflow processes exited: {dead}\n" + self.tail())

    def tail(self, chars: int = 3000) -> str:
        out = []
        for name in self.procs:
            log = self.home / "logs" / f"{name}.log"
            if log.exists():
                out.append(f"--- {name} ---\n{log.read_text(errors='replace')[-chars:]}")
        return "\n".join(out)

    def start(self, name: str, *args: str) -> None:
        logs = self.home / "logs"
        logs.mkdir(exist_ok=True)
        with open(logs / f"{name}.log", "ab") as log:
            self.procs[name] = subprocess.Popen(
                [AIRFLOW, *args], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)

    def stop(self) -> None:
        """Terminate every process this cluster started (by its process group), then kill."""
        for p in self.procs.values():
            if p.poll() is None:
                with suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for p in self.procs.values():
            with suppress(subprocess.TimeoutExpired):
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            with suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)  # children (task runners) of a stopped leader
            with suppress(subprocess.TimeoutExpired):
                p.wait(timeout=5)


def _wait_http(url: str, cluster: AirflowCluster, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with suppress(OSError), urllib.request.urlopen(url, timeout=5) as resp:
            if resp.status == 200:
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} not up after {timeout:.0f} s\n" + cluster.tail())
        cluster.check_alive()
        time.sleep(0.5)


def airflow_home_env(home: Path, dags: Path, extra_dags: Sequence[Path] = ()) -> dict[str, str]:
    """An isolated Airflow: ``dags`` holds the repository's DAGs plus ``extra_dags``; the
    environment is this process's without any AIRFLOW/OPENLINEAGE/HEADWATER variable, plus the
    settings every test deployment shares (used by ``airflow dags test`` and the cluster)."""
    dags.mkdir(parents=True)
    for src in [*(REPO / "dags").glob("*.py"), *extra_dags]:
        shutil.copy(src, dags / Path(src).name)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW", "OPENLINEAGE", "HEADWATER_"))}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
    })
    return env


@contextmanager
def start_cluster(
    base: Path,
    *,
    executor: str = "LocalExecutor",
    extra_dags: Sequence[Path] = (),
    extra_env: Mapping[str, str] | None = None,
    users: Mapping[str, str] | None = None,
    pg_url: str = PG_URL,
    redis_url: str = REDIS_URL,
    parallelism: int = 4,
) -> Iterator[AirflowCluster]:
    """Start a deployment under ``base``; stop it and drop its database on exit.

    ``users`` maps user name to password (all admins; default ``{"admin": <random>}``).
    ``extra_env`` is added to every process's environment (e.g. ``HEADWATER_*``)."""
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {EXECUTORS}, not {executor!r}")
    home = base / "airflow"
    dags = home / "dags"
    env = airflow_home_env(home, dags, extra_dags)
    users = dict(users or {"admin": secrets.token_urlsafe(12)})
    (home / "passwords.json").write_text(json.dumps(users))

    db = f"hw_airflow_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(_with_database(pg_url, "postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{db}"'))
    db_url = _with_database(pg_url, db)
    with sa.create_engine(db_url).begin() as conn:
        conn.execute(sa.text("CREATE SCHEMA headwater"))
    plain = db_url.render_as_string(hide_password=False).replace("+psycopg", "")
    catalog_url = f"{plain}?options=-csearch_path%3Dheadwater"
    store_url = str(base / "headwater-store")

    port = free_port()
    api_url = f"http://127.0.0.1:{port}"
    env.update({
        "AIRFLOW__CORE__EXECUTOR": executor,
        "AIRFLOW__CORE__PARALLELISM": str(parallelism),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api_url}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:admin" for u in users),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__API__BASE_URL": api_url,
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db_url.render_as_string(hide_password=False),
        # psycopg 3 is the installed driver; Airflow's default async driver (asyncpg) is not
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": db_url.set(
            drivername="postgresql+psycopg_async").render_as_string(hide_password=False),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "AIRFLOW__OPENLINEAGE__DISABLED": "True",
        "HEADWATER_HOME": str(base / "headwater"),
        "HEADWATER_CATALOG_URL": catalog_url,
        "HEADWATER_STORE_URL": store_url,
        "HEADWATER_LINEAGE": "off",
        "AWS_EC2_METADATA_DISABLED": "true",
    })
    if executor == "CeleryExecutor":
        env.update({
            "AIRFLOW__CELERY__BROKER_URL": redis_url,
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + plain,
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(parallelism),
        })
    env.update(extra_env or {})
    user, password = next(iter(users.items()))
    cluster = AirflowCluster(home=home, env=env, api_url=api_url, username=user,
                             password=password, executor=executor, catalog_url=catalog_url,
                             store_url=store_url)
    try:
        cluster.airflow("db", "migrate")
        cluster.start("api-server", "api-server", "--host", "127.0.0.1", "--port", str(port),
                      "--workers", "1")
        cluster.start("dag-processor", "dag-processor")
        cluster.start("scheduler", "scheduler", "--skip-serve-logs")
        if executor == "CeleryExecutor":
            cluster.start("celery-worker", "celery", "worker", "--skip-serve-logs",
                          "--concurrency", str(parallelism))
        _wait_http(f"{api_url}/api/v2/monitor/health", cluster)
        yield cluster
    finally:
        cluster.stop()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def airflow_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowCluster]:
    """One LocalExecutor deployment per test session (per xdist worker) running the repository's
    DAGs; tests that use it belong to ``xdist_group("airflow-cluster")``."""
    with start_cluster(tmp_path_factory.mktemp("cluster")) as cluster:
        cluster.wait_for_dag("headwater_reference_pipeline")
        yield cluster

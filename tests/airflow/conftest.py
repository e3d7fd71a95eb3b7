"""Real Airflow for the provider tests: one isolated AIRFLOW_HOME per test session (per xdist
worker), its own SQLite metadata DB migrated once, and a dags folder holding the repository's
DAGs plus the test DAGs. Each test gets its own Headwater home (catalog + store)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.airflow.cluster import (
    airflow_cluster,  # noqa: F401 (a real deployment, per session)
    airflow_home_env,
)

AIRFLOW = str(Path(sys.executable).with_name("airflow"))


@dataclass
class AirflowEnv:
    home: Path
    env: dict[str, str]

    def run(self, *args: str, hw_home: Path, extra_env: dict[str, str] | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**self.env, "HEADWATER_HOME": str(hw_home), **(extra_env or {})}
        proc = subprocess.run([AIRFLOW, *args], env=env, capture_output=True, text=True,
                              timeout=600)
        if check and proc.returncode != 0:
            raise AssertionError(f"airflow {' '.join(args)} failed:\n{proc.stdout[-6000:]}"
                                 f"\n{proc.stderr[-3000:]}")
        return proc

    def dags_test(self, dag_id: str, *, hw_home: Path, conf: dict | None = None,
                  extra_env: dict[str, str] | None = None) -> str:
        args = ["dags", "test", dag_id]
        if conf:
            args += ["--conf", json.dumps(conf)]
        proc = self.run(*args, hw_home=hw_home, extra_env=extra_env)
        out = proc.stdout + proc.stderr
        assert "state=success" in out, out[-6000:]
        return out

    def query(self, sql: str, *params: object) -> list[tuple]:
        with sqlite3.connect(self.home / "airflow.db") as conn:
            return conn.execute(sql, params).fetchall()


@pytest.fixture(scope="session")
def airflow_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowEnv]:
    home = tmp_path_factory.mktemp("airflow_home")
    test_dags = sorted((Path(__file__).parent / "dags").glob("*.py"))
    env = airflow_home_env(home, home / "dags", test_dags)
    af = AirflowEnv(home, env)
    af.run("db", "migrate", hw_home=home / "hw-unused")
    af.run("dags", "reserialize", hw_home=home / "hw-unused")
    yield af


@pytest.fixture
def hw_home(tmp_path: Path) -> Path:
    return tmp_path / "headwater"


@pytest.fixture
def open_catalog(hw_home: Path) -> Callable[[], object]:
    from headwater import Catalog

    def opener() -> Catalog:
        return Catalog.open(f"sqlite:///{hw_home / 'catalog.db'}",
                            store_url=str(hw_home / "store"), lineage=_null())

    return opener


def _null():
    from headwater.lineage import NullLineage

    return NullLineage()

"""Shared fixtures: catalogs on SQLite and PostgreSQL, stores on local disk, S3 and GCS.

PostgreSQL is a real server (``HEADWATER_TEST_PG_URL``, default the local one at 127.0.0.1:5432,
database ``test``); each test gets a schema of its own. S3 and GCS are real local emulators
(``tests/emulators.py``). Nothing is skipped silently: an unreachable PostgreSQL fails the tests
that need it, with the reason.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from headwater import Catalog

pytest_plugins = ["tests.emulators"]

# botocore looks for credentials at the instance-metadata address when none are configured: never
# let a test (or a subprocess it starts, which inherits this) probe an address off this machine.
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

PG_URL = os.environ.get("HEADWATER_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _pg_engine(url: str = PG_URL) -> sa.Engine:
    from headwater.catalog.db import normalise_url

    return sa.create_engine(normalise_url(url))


@pytest.fixture(scope="session")
def pg_base_url() -> str:
    engine = _pg_engine()
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
    except sa.exc.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL at {PG_URL} is not reachable ({exc.orig}); start it with "
            "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`"
        )
    finally:
        engine.dispose()
    return PG_URL


@pytest.fixture
def pg_url(pg_base_url: str) -> Iterator[str]:
    """A catalog URL on PostgreSQL, confined to a fresh schema dropped afterwards."""
    schema = f"hw_{uuid.uuid4().hex[:12]}"
    engine = _pg_engine(pg_base_url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in pg_base_url else "?"
    yield f"{pg_base_url}{sep}options=-csearch_path%3D{schema}"
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


@pytest.fixture(autouse=True)
def _loose_store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """``@pytest.mark.loose_store``: catalogs opened by the test keep every object loose
    (``HEADWATER_PACK=off``); autouse, so it is in place before any catalog fixture opens."""
    if request.node.get_closest_marker("loose_store"):
        monkeypatch.setenv("HEADWATER_PACK", "off")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'catalog.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def catalog(catalog_url: str, tmp_path: Path) -> Iterator[Catalog]:
    """A catalog on SQLite and on PostgreSQL, with a local-disk store."""
    cat = Catalog.open(catalog_url, store_url=str(tmp_path / "store"))
    yield cat
    cat.close()


@pytest.fixture
def sqlite_catalog(tmp_path: Path) -> Iterator[Catalog]:
    cat = Catalog.open(f"sqlite:///{tmp_path / 'catalog.db'}", store_url=str(tmp_path / "store"))
    yield cat
    cat.close()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A small directory tree of files."""
    root = tmp_path / "data"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "a.txt").write_text("alpha\n")
    (root / "b.bin").write_bytes(bytes(range(256)) * 16)
    (root / "sub" / "c.txt").write_text("gamma\n")
    (root / "sub" / "deeper" / "d.txt").write_text("delta\n")
    (root / "sub" / "same-as-a.txt").write_text("alpha\n")
    return root


@pytest.fixture
def hw(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The CLI in-process (click's runner), as a user's shell would call it."""
    from click.testing import CliRunner

    from headwater.cli import main

    monkeypatch.setenv("HEADWATER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HEADWATER_CATALOG_URL", raising=False)
    monkeypatch.delenv("HEADWATER_STORE_URL", raising=False)
    runner = CliRunner()

    def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        result = runner.invoke(main, list(args), catch_exceptions=False)
        proc = subprocess.CompletedProcess(args, result.exit_code, result.stdout,
                                           result.stderr)
        if ok:
            assert proc.returncode == 0, proc.stderr
        return proc

    return run

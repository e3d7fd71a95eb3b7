"""Fixtures of the server tests: an app over the shared ``catalog`` fixture (SQLite and
PostgreSQL), clients with and without tokens, and a small catalog with a known shape."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from headwater import Catalog
from headwater.server.app import create_app
from headwater.server.auth import AccessPolicy

WRITE = "w" * 8 + "-write-token-0123"
READ = "r" * 8 + "-read-token-45678"
DATA = Path(__file__).parent / "data"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def small(catalog: Catalog) -> Catalog:
    """t/users @1 @2 (keyed table), t/summary @1 derived from @2 by a run, alias production→1."""
    v1 = catalog.log(pa.table({"id": [1, 2, 3], "x": ["a", None, "c"]}), name="t/users",
                     key=["id"])
    catalog.log(pa.table({"id": [1, 2, 4], "x": ["a", "b", "d"]}), name="t/users")
    with catalog.run("derive", inputs=["t/users@2"], namespace="t", params={"n": 1},
                     engine={"name": "airflow", "dag_id": "d", "task_id": "derive"}) as run:
        run.log_output(pa.table({"n": [3]}), name="t/summary", type="table")
    catalog.alias(v1, "production")
    return catalog


@pytest.fixture
def client(small: Catalog) -> Iterator[TestClient]:
    with TestClient(create_app(small), base_url="http://localhost") as c:
        yield c


@pytest.fixture
def secured(small: Catalog) -> Iterator[TestClient]:
    policy = AccessPolicy.build(write_tokens=[WRITE], read_tokens=[READ])
    with TestClient(create_app(small, policy=policy), base_url="http://localhost") as c:
        yield c


@contextmanager
def served(app: Any) -> Iterator[str]:
    """``app`` served by a real uvicorn on 127.0.0.1 (a free port) in a thread: its base URL."""
    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "the server did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)

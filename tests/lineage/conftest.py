"""Fixtures for the lineage tests: catalogs (SQLite, and PostgreSQL in a schema of its own)
whose outbox recorder delivers to an in-memory transport, and a schema validator that every
event produced here goes through."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from headwater import Catalog
from headwater.catalog.models import LineageOutbox
from headwater.lineage.emitter import DeliveryPolicy, Emitter
from headwater.lineage.facets import stored_event
from headwater.lineage.outbox import OutboxRecorder
from tests.lineage.support import MemoryTransport, OLValidator

#: Fast backoff so tests never wait for a real one.
FAST = DeliveryPolicy(attempts_per_drain=1, retry_wait=0.0, backoff_base=0.01, backoff_max=0.05)


@pytest.fixture(scope="session")
def ol_validator() -> OLValidator:
    return OLValidator()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'c.db'}"
    return str(request.getfixturevalue("pg_url"))  # tests/conftest.py: a fresh schema


@pytest.fixture
def sqlite_db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'c.db'}"


@pytest.fixture
def memory() -> MemoryTransport:
    return MemoryTransport()


@pytest.fixture
def open_catalog(
    tmp_path: Path, ol_validator: OLValidator
) -> Iterator[Callable[..., tuple[Catalog, OutboxRecorder]]]:
    """``open_catalog(url, transport, **recorder_kwargs)`` → (catalog, recorder).

    On teardown every event left in any of the outboxes and every event the transports received
    is validated against the OpenLineage schemas."""
    opened: list[tuple[Catalog, OutboxRecorder, Any]] = []

    def _open(
        url: str, transport: Any, *, policy: DeliveryPolicy = FAST, **kwargs: Any
    ) -> tuple[Catalog, OutboxRecorder]:
        recorder = OutboxRecorder(Emitter(transport=transport, policy=policy), **kwargs)
        cat = Catalog.open(url, store_url=str(tmp_path / "store"), lineage=recorder)
        opened.append((cat, recorder, transport))
        return cat, recorder

    yield _open
    for cat, recorder, transport in opened:
        recorder.join(5)
        with cat.session() as s:
            stored = [stored_event(row.event) for row in s.scalars(select(LineageOutbox)).all()]
        cat.close()
        for event in stored + list(getattr(transport, "events", [])):
            ol_validator.validate(event)


@pytest.fixture
def catalog_mem(
    db_url: str, memory: MemoryTransport, open_catalog: Callable[..., tuple[Catalog, Any]]
) -> tuple[Catalog, OutboxRecorder]:
    """A catalog (SQLite and PostgreSQL) delivering to ``memory``."""
    return open_catalog(db_url, memory)

"""Migrations build exactly the schema the models describe, and run down and up again."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from headwater.catalog import db
from headwater.catalog.models import Base


def test_migrations_match_models_and_round_trip(catalog_url: str) -> None:
    engine = db.create_catalog_engine(catalog_url)
    db.upgrade(engine)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(ctx, Base.metadata) == []
    command.downgrade(db.alembic_config(engine), "base")
    assert db.current_revision(engine) is None
    db.upgrade(engine)
    assert db.current_revision(engine) == db.head_revision()
    engine.dispose()


def test_head_constant_is_alembics_head() -> None:
    """Opening a catalog compares against HEAD_REVISION without importing Alembic."""
    assert db.head_revision() == db.HEAD_REVISION


def test_current_revision_reads_what_alembic_reads(catalog_url: str) -> None:
    engine = db.create_catalog_engine(catalog_url)
    assert db.current_revision(engine) is None  # empty database: no alembic_version table
    db.upgrade(engine, "0002")
    with engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == "0002"
    assert db.current_revision(engine) == "0002"
    engine.dispose()

"""Alembic environment: runs against the engine Headwater hands over (no alembic.ini needed)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from headwater import _failpoints
from headwater.catalog.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    engine = config.attributes.get("engine")
    if engine is None:
        engine = create_engine(config.get_main_option("sqlalchemy.url") or "sqlite://")
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
            # crash injection for the half-initialised-catalog test: migrate.after_0002, ...
            on_version_apply=lambda *, step, **_: _failpoints.hit(
                f"migrate.after_{step.up_revision_id}"
            ),
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations_online()

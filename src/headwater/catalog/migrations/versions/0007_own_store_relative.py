"""Versions and reports kept in the catalog's own store (``store`` beside a SQLite catalog file)
record ``"."`` instead of its absolute path, so a copied or moved ``HEADWATER_HOME`` stays
readable (see ``headwater.catalog.stores``). PostgreSQL catalogs have no own store: no change.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 20:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TABLES = ("versions", "reports")


def _own_store() -> str | None:
    from headwater.catalog.stores import own_store

    return own_store(op.get_bind().engine.url.render_as_string(hide_password=False))


def upgrade() -> None:
    own = _own_store()
    if own is None:
        return
    forms = [own, own + "/", "file://" + own, "file://" + own + "/"]
    for table in TABLES:
        op.get_bind().execute(
            sa.text(f"UPDATE {table} SET store_url = '.' WHERE store_url IN "
                    "(:a, :b, :c, :d)"),
            dict(zip("abcd", forms, strict=True)),
        )


def downgrade() -> None:
    own = _own_store()
    if own is None:
        return
    for table in TABLES:
        op.get_bind().execute(
            sa.text(f"UPDATE {table} SET store_url = :own WHERE store_url = '.'"), {"own": own}
        )

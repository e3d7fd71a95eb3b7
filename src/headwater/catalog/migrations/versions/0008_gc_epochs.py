"""gc epochs: one counter per store, bumped by ``gc`` in the transaction that holds its lock while
it deletes a batch of objects. A commit compares the counter it read when its run started with
the one it reads under the shared gc lock in its record transaction: unchanged means no object
was deleted since, so its staged objects are still there (ADR 0001, "gc and open runs").

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 19:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gc_epochs",
        sa.Column("store_url", sa.String(length=1000), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("store_url", name=op.f("pk_gc_epochs")),
    )


def downgrade() -> None:
    op.drop_table("gc_epochs")

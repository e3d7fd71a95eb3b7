"""Lineage delivery across processes: who holds an outbox claim (so a dead owner's claims can be
taken over at once), and backoff state shared by every process delivering to one transport.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 19:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("lineage_outbox") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(length=200), nullable=True))
    op.create_table(
        "lineage_backoff",
        sa.Column("transport_key", sa.String(length=64), nullable=False),
        sa.Column("transport", sa.Text(), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("transport_key", name=op.f("pk_lineage_backoff")),
    )


def downgrade() -> None:
    op.drop_table("lineage_backoff")
    with op.batch_alter_table("lineage_outbox") as batch:
        batch.drop_column("claimed_by")

"""Retractions (an append-only history of retract/unretract entries per version) and the
reference each run input was resolved from (``run_inputs.ref``/``selector``, and
``is_state`` for a step's own state), so ``status`` can
tell when the alias or ``@latest`` a step read has since moved (docs/retract-status.md).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 20:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "version_retractions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=256), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["versions.id"],
            name="fk_version_retractions_version_id_versions",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_version_retractions"),
    )
    op.create_index(
        "ix_version_retractions_version_id", "version_retractions", ["version_id"]
    )
    with op.batch_alter_table("run_inputs") as batch:
        batch.add_column(sa.Column("ref", sa.String(length=400), nullable=True))
        batch.add_column(sa.Column("selector", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("is_state", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("run_inputs") as batch:
        batch.drop_column("is_state")
        batch.drop_column("selector")
        batch.drop_column("ref")
    op.drop_index("ix_version_retractions_version_id", table_name="version_retractions")
    op.drop_table("version_retractions")

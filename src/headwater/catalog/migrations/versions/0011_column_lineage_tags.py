"""Column-level lineage (the ``columnLineage`` facet of a run's output version) and Marquez's
tags (named tags, put on datasets and on their fields), for the Marquez-compatible API.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 23:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "column_lineage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=True),
        sa.Column("fields", JSON, nullable=False),
        sa.Column("producer", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["version_id"], ["versions.id"],
                                name="fk_column_lineage_version_id_versions"),
        sa.PrimaryKeyConstraint("id", name="pk_column_lineage"),
    )
    op.create_index("ix_column_lineage_version_id", "column_lineage", ["version_id"])
    op.create_index("ix_column_lineage_run_id", "column_lineage", ["run_id"])
    op.create_table(
        "tags",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tags"),
        sa.UniqueConstraint("name", name="uq_tags_name"),
    )
    op.create_table(
        "dataset_tags",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("field", sa.String(length=512), nullable=False),
        sa.Column("tag", sa.String(length=256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"],
                                name="fk_dataset_tags_dataset_id_datasets"),
        sa.PrimaryKeyConstraint("id", name="pk_dataset_tags"),
        sa.UniqueConstraint("dataset_id", "field", "tag", name="uq_dataset_tags_dataset_id"),
    )


def downgrade() -> None:
    op.drop_table("dataset_tags")
    op.drop_table("tags")
    op.drop_index("ix_column_lineage_run_id", table_name="column_lineage")
    op.drop_index("ix_column_lineage_version_id", table_name="column_lineage")
    op.drop_table("column_lineage")

"""Version labels, annotations (description + properties with history) and reports.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 20:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("versions") as batch:
        batch.add_column(sa.Column("label", sa.String(length=128), nullable=True))
        batch.create_unique_constraint("uq_versions_dataset_id_label", ["dataset_id", "label"])
    op.create_table(
        "version_annotations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("properties", JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=256), nullable=True),
        sa.ForeignKeyConstraint(["version_id"], ["versions.id"],
                                name=op.f("fk_version_annotations_version_id_versions")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_version_annotations")),
    )
    op.create_index(op.f("ix_version_annotations_version_id"), "version_annotations",
                    ["version_id"])
    op.create_table(
        "reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=True),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=True),
        sa.Column("store_url", sa.Text(), nullable=True),
        sa.Column("media_type", sa.String(length=128), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("body", JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["version_id"], ["versions.id"],
                                name=op.f("fk_reports_version_id_versions")),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_reports_run_id_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reports")),
    )
    op.create_index("ix_reports_version_id_name", "reports", ["version_id", "name"])


def downgrade() -> None:
    op.drop_index("ix_reports_version_id_name", table_name="reports")
    op.drop_table("reports")
    op.drop_index(op.f("ix_version_annotations_version_id"), table_name="version_annotations")
    op.drop_table("version_annotations")
    with op.batch_alter_table("versions") as batch:
        batch.drop_constraint("uq_versions_dataset_id_label", type_="unique")
        batch.drop_column("label")
